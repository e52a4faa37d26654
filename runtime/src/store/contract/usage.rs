//! Contract case for cost counting ([`crate::cost`]): every backend counts
//! the requests it sends for a store call, in the caller's meter scope, with
//! bytes and units that grow with the payload.

use std::sync::Arc;

use serde_json::json;

use super::{T0, at, claimed, op};
use crate::cost::{StoreUsage, UsageMeter, metered};
use crate::store::{OpWrite, Store};

async fn counted<F: std::future::Future>(f: F) -> (F::Output, StoreUsage) {
    let meter = UsageMeter::new();
    let out = metered(meter.clone(), f).await;
    (out, meter.snapshot())
}

/// Writes and reads are counted in the scope that made them, and a bigger
/// payload costs more bytes and units; concurrent scopes keep their own.
pub async fn store_calls_are_counted_with_their_bytes(store: Arc<dyn Store>) {
    let (x, _) = claimed(&store, "cost-1").await;
    let small = op("1", "tiny", 1, json!(1));
    let (w, one) = counted(store.put_operation(&x, &small)).await;
    assert_eq!(w.unwrap(), OpWrite::Written);
    assert!(
        one.writes >= 1,
        "a checkpoint is at least one write: {one:?}"
    );
    assert!(one.write_units >= 1 && one.write_bytes > 0, "{one:?}");
    assert_eq!(one.reads, 0, "a first write reads nothing: {one:?}");

    let payload = "x".repeat(20_000);
    let big = op("2", "big", 1, json!(payload));
    let (w, two) = counted(store.put_operation(&x, &big)).await;
    assert_eq!(w.unwrap(), OpWrite::Written);
    assert!(
        two.write_bytes >= one.write_bytes + 19_000,
        "20 KB more payload is 20 KB more bytes: {one:?} vs {two:?}"
    );
    assert!(two.write_units >= 20, "1 KB a write unit: {two:?}");

    let (j, read) = counted(store.load_journal(&x)).await;
    assert_eq!(j.unwrap().unwrap().operations.len(), 2);
    assert!(read.reads >= 1 && read.writes == 0, "{read:?}");
    assert!(read.read_bytes >= 20_000, "the journal's bytes: {read:?}");
    assert!(read.read_units >= 5, "4 KB a read unit: {read:?}");

    // Two scopes at once: each counts only its own calls.
    let (x2, epoch2) = claimed(&store, "cost-2").await;
    let third = op("3", "a", 1, json!("a"));
    let (a, b) = tokio::join!(
        counted(store.put_operation(&x, &third)),
        counted(async {
            store
                .suspend(&x2, epoch2, 0, Some(at(5_000)), T0)
                .await
                .unwrap();
            store.load_journal(&x2).await.unwrap();
        }),
    );
    assert_eq!(a.0.unwrap(), OpWrite::Written);
    assert_eq!((a.1.writes >= 1, a.1.reads), (true, 0), "{:?}", a.1);
    assert!(b.1.writes >= 1 && b.1.reads >= 1, "{:?}", b.1);
}
