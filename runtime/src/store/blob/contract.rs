//! The blob store contract (feature `testing`): what every [`BlobStore`]
//! backend must do, run against each (`runtime/tests/blobs.rs`).

// Test code shipped behind the `testing` feature: a panic fails the case.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;

use super::{BlobKey, BlobStore};
use crate::model::ExecutionId;

fn id(s: &str) -> ExecutionId {
    ExecutionId::new(s).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs every check against `blobs`, which must start empty.
pub async fn run_all(blobs: &dyn BlobStore) {
    put_get_delete(blobs).await;
    large_blobs_round_trip(blobs).await;
    executions_are_listed_in_pages_and_deleted_whole(blobs).await;
}

async fn put_get_delete(blobs: &dyn BlobStore) {
    let x = id("c-put");
    let key = BlobKey::of(&x, b"hello");
    assert_eq!(blobs.get(&key).await.unwrap(), None, "absent at first");
    blobs.put(&key, Bytes::from_static(b"hello")).await.unwrap();
    // A second write of the same key (same bytes) is a no-op.
    blobs.put(&key, Bytes::from_static(b"hello")).await.unwrap();
    assert_eq!(
        blobs.get(&key).await.unwrap().as_deref(),
        Some(&b"hello"[..])
    );
    // The same bytes under another execution are another blob.
    let other = BlobKey::of(&id("c-put-2"), b"hello");
    assert_eq!(blobs.get(&other).await.unwrap(), None);
    blobs.delete(&key).await.unwrap();
    blobs.delete(&key).await.unwrap();
    assert_eq!(blobs.get(&key).await.unwrap(), None, "deleted");
    blobs.delete_execution(&x).await.unwrap();
}

async fn large_blobs_round_trip(blobs: &dyn BlobStore) {
    let x = id("c-large");
    let bytes: Vec<u8> = (0..20 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let key = BlobKey::of(&x, &bytes);
    blobs.put(&key, Bytes::from(bytes.clone())).await.unwrap();
    let back = blobs.get(&key).await.unwrap().unwrap();
    assert_eq!(back.len(), bytes.len());
    assert!(back == bytes, "20 MiB came back changed");
    assert_eq!(blobs.delete_execution(&x).await.unwrap(), 1);
}

async fn executions_are_listed_in_pages_and_deleted_whole(blobs: &dyn BlobStore) {
    let ids = ["c-list-a", "c-list-b", "c-list-c"].map(id);
    for x in &ids {
        for n in 0..2u8 {
            let body = format!("{x}-{n}");
            let key = BlobKey::of(x, body.as_bytes());
            blobs.put(&key, Bytes::from(body)).await.unwrap();
        }
    }
    let first = blobs.executions(None, 2).await.unwrap();
    let listed: Vec<_> = first.iter().map(|f| f.execution.clone()).collect();
    assert_eq!(listed, ids[..2].to_vec());
    assert!(first.iter().all(|f| f.newest.0 > 0), "{first:?}");
    let rest = blobs.executions(listed.last(), 10).await.unwrap();
    let rest: Vec<_> = rest.into_iter().map(|f| f.execution).collect();
    assert_eq!(rest, ids[2..].to_vec());

    assert_eq!(blobs.delete_execution(&ids[1]).await.unwrap(), 2);
    assert_eq!(blobs.delete_execution(&ids[1]).await.unwrap(), 0, "gone");
    let left: Vec<_> = blobs
        .executions(None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.execution)
        .collect();
    assert_eq!(left, vec![ids[0].clone(), ids[2].clone()]);
    let kept = BlobKey::of(&ids[0], format!("{}-0", ids[0]).as_bytes());
    assert!(blobs.get(&kept).await.unwrap().is_some(), "others kept");
    for x in &ids {
        blobs.delete_execution(x).await.unwrap();
    }
}
