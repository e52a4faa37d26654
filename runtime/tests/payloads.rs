//! Large payloads (docs/payloads.md): the blob store contract on every blob
//! backend, and a 20 MiB step result, input and output round-tripping
//! through an `OffloadingStore` on SQLite and on DynamoDB Local, with every
//! table item under DynamoDB's 400 KB and the blobs expiring with their
//! execution (by an injected time, no sleeping).
//!
//! The DynamoDB tests need `DURAFN_DYNAMODB_ENDPOINT` (scripts/test-all.sh
//! starts DynamoDB Local and sets it); without it they fail saying so.

// Test code: panicking on an unexpected answer is how a case fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::types::AttributeValue;
use durafn_runtime::model::{
    ExecutionId, ExecutionStatus, NewExecution, OpKind, OpStatus, Operation, Timestamp, json_len,
};
use durafn_runtime::store::blob::{BlobStore, DirBlobStore, contract};
use durafn_runtime::store::dynamodb::DynamoStore;
use durafn_runtime::store::{OffloadingStore, OpWrite, Outcome, SqliteStore, Store, Transition};
use serde_json::{Value, json};

const MIB: usize = 1024 * 1024;
const T0: Timestamp = Timestamp(3_900_000_000_000);
/// DynamoDB's item size limit.
const ITEM_LIMIT: usize = 400 * 1024;

#[tokio::test]
async fn the_folder_backend_keeps_the_blob_contract() {
    let dir = tempfile::tempdir().unwrap();
    contract::run_all(&DirBlobStore::new(dir.path().join("blobs"))).await;
}

fn xid(name: &str) -> ExecutionId {
    ExecutionId::new(name).unwrap()
}

fn step(id: &str, result: Value) -> Operation {
    Operation {
        id: id.into(),
        kind: OpKind::Step,
        name: format!("step-{id}"),
        status: OpStatus::Succeeded,
        attempt: 1,
        result: Some(result),
        error: None,
        started_at: T0,
        ended_at: Some(T0),
        wake_at: None,
        rev: 1,
    }
}

/// A 20 MiB step result, a 20 MiB input and a 5 MiB output written through
/// `store` and read back through `reader` (another process: nothing cached).
/// The execution finishes with `expires_at` = T0 + 1 s.
async fn round_trip(store: &OffloadingStore, reader: &OffloadingStore, name: &str) {
    let x = xid(name);
    let input = json!({ "doc": "i".repeat(20 * MIB) });
    let created = store
        .create_execution(&NewExecution {
            id: x.clone(),
            function: "f".into(),
            version: "1".into(),
            input: input.clone(),
            now: T0,
        })
        .await
        .expect("create");
    assert_eq!(created.execution().input, input);
    let claimed = store
        .claim(&x, T0, Timestamp(T0.0 + 60_000))
        .await
        .expect("claim")
        .expect("claimable");
    assert_eq!(claimed.input, input);
    let big = json!("r".repeat(20 * MIB));
    assert_eq!(
        store
            .put_operation(&x, &step("1", big.clone()))
            .await
            .unwrap(),
        OpWrite::Written
    );
    // Small results stay in the record.
    store
        .put_operation(&x, &step("2", json!({"n": 2})))
        .await
        .unwrap();
    let output = json!("o".repeat(5 * MIB));
    let done = store
        .finish(
            &x,
            claimed.epoch,
            &Outcome {
                status: ExecutionStatus::Succeeded,
                output: Some(output.clone()),
                error: None,
                expires_at: Some(Timestamp(T0.0 + 1_000)),
            },
            T0,
        )
        .await
        .unwrap();
    assert_eq!(done, Transition::Done);

    let journal = reader.load_journal(&x).await.unwrap().expect("journal");
    assert_eq!(journal.execution.input, input);
    assert_eq!(journal.execution.output, Some(output.clone()));
    assert_eq!(journal.operations[0].result, Some(big));
    assert_eq!(journal.operations[1].result, Some(json!({"n": 2})));
    let raw = store.inner().load_journal(&x).await.unwrap().unwrap();
    assert!(json_len(&raw.execution.input) < 200);
    assert!(json_len(raw.operations[0].result.as_ref().unwrap()) < 200);
    assert!(json_len(raw.execution.output.as_ref().unwrap()) < 200);
}

fn offloading(inner: Arc<dyn Store>, blobs: &Arc<dyn BlobStore>) -> OffloadingStore {
    OffloadingStore::new(inner, blobs.clone())
}

fn folder_count(blobs: &std::path::Path) -> usize {
    std::fs::read_dir(blobs).map_or(0, |d| d.flatten().count())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_20_mib_step_result_round_trips_on_sqlite_and_expires() {
    let dir = tempfile::tempdir().unwrap();
    let raw: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path().join("s.db")).unwrap());
    let folder = dir.path().join("blobs");
    let blobs: Arc<dyn BlobStore> = Arc::new(DirBlobStore::new(&folder));
    let store = offloading(raw.clone(), &blobs);
    round_trip(&store, &offloading(raw.clone(), &blobs), "big-sqlite").await;
    assert_eq!(folder_count(&folder), 1);
    // Past its expiry (injected time): purged, and its blobs with it.
    store.purge_expired(Timestamp(T0.0 + 2_000)).await.unwrap();
    assert!(
        raw.get_execution(&xid("big-sqlite"))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(folder_count(&folder), 0, "blobs expired with the execution");
}

fn endpoint() -> String {
    match std::env::var("DURAFN_DYNAMODB_ENDPOINT") {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "DURAFN_DYNAMODB_ENDPOINT is not set: the DynamoDB payload tests need DynamoDB \
             Local. Run scripts/test-all.sh, or start it with \
             `eval \"$(scripts/dynamodb-local.sh start)\"` and run the tests again."
        ),
    }
}

fn client() -> Client {
    Client::from_conf(
        aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(endpoint())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("x", "x", None, None, "test"))
            .build(),
    )
}

/// Deletes its table when the test ends.
struct TableGuard(String);

impl Drop for TableGuard {
    fn drop(&mut self) {
        let table = self.0.clone();
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                let _ = client().delete_table().table_name(table).send().await;
            });
        })
        .join();
    }
}

/// Every item of the table, raw (a test may scan).
async fn scan_all(table: &str) -> Vec<HashMap<String, AttributeValue>> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let out = client()
            .scan()
            .table_name(table)
            .consistent_read(true)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .expect("scan");
        items.extend(out.items.unwrap_or_default());
        match out.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => return items,
        }
    }
}

/// An item's size as DynamoDB counts it (names plus values), near enough.
fn item_size(item: &HashMap<String, AttributeValue>) -> usize {
    item.iter()
        .map(|(k, v)| {
            k.len()
                + match v {
                    AttributeValue::S(s) | AttributeValue::N(s) => s.len(),
                    AttributeValue::B(b) => b.as_ref().len(),
                    _ => 8,
                }
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_20_mib_step_result_round_trips_on_dynamodb_with_items_under_400_kb() {
    let table = format!(
        "durafn-payloads-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
    );
    let _guard = TableGuard(table.clone());
    let dynamo = DynamoStore::from_client(client(), &table);
    assert!(
        dynamo
            .create_table_if_missing()
            .await
            .expect("create table")
    );
    let raw: Arc<dyn Store> = Arc::new(dynamo);
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("blobs");
    let blobs: Arc<dyn BlobStore> = Arc::new(DirBlobStore::new(&folder));
    let store = offloading(raw.clone(), &blobs);
    round_trip(&store, &offloading(raw.clone(), &blobs), "big-ddb").await;

    let items = scan_all(&table).await;
    assert!(items.len() >= 3, "meta and two operations: {}", items.len());
    let largest = items.iter().map(item_size).max().unwrap_or(0);
    eprintln!("{} items, the largest {largest} bytes", items.len());
    assert!(
        largest < ITEM_LIMIT,
        "the largest item is {largest} bytes, over DynamoDB's 400 KB"
    );
    // Offloaded, the payloads are not chunked either: every item is small.
    assert!(largest < 16 * 1024, "largest item {largest} bytes");

    // The table's TTL deletes the items; the blobs go once the execution
    // is past its expiry (an injected time).
    assert_eq!(folder_count(&folder), 1);
    store.collect_garbage(Timestamp(T0.0 + 500)).await.unwrap();
    assert_eq!(folder_count(&folder), 1, "not expired yet");
    store.purge_expired(Timestamp(T0.0 + 2_000)).await.unwrap();
    assert_eq!(folder_count(&folder), 0, "blobs expired with the execution");
}

/// The S3 backend against a local S3-compatible server (s3rver, which
/// scripts/test-all.sh installs and starts: `DURAFN_S3_TEST_ENDPOINT`).
#[cfg(feature = "s3")]
mod s3 {
    use super::*;
    use durafn_runtime::store::blob::S3BlobStore;

    fn endpoint() -> String {
        match std::env::var("DURAFN_S3_TEST_ENDPOINT") {
            Ok(v) if !v.is_empty() => v,
            _ => panic!(
                "DURAFN_S3_TEST_ENDPOINT is not set: the S3 blob store tests need a local S3 \
                 server. Run scripts/test-all.sh, or start one with \
                 `eval \"$(scripts/s3-local.sh start)\"` and run the tests again."
            ),
        }
    }

    /// A store on a fresh bucket of the local server.
    async fn bucket(name: &str) -> S3BlobStore {
        let bucket = format!(
            "{name}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0)
        );
        let url = format!("s3://{bucket}/payloads?endpoint={}", endpoint());
        let store = S3BlobStore::open(&url)
            .unwrap()
            .with_keys("S3RVER", "S3RVER");
        store
            .create_bucket_if_missing()
            .await
            .expect("create bucket");
        store
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_s3_backend_keeps_the_blob_contract() {
        contract::run_all(&bucket("contract").await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_20_mib_step_result_round_trips_through_s3_and_expires() {
        let dir = tempfile::tempdir().unwrap();
        let raw: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path().join("s.db")).unwrap());
        let blobs: Arc<dyn BlobStore> = Arc::new(bucket("roundtrip").await);
        let store = offloading(raw.clone(), &blobs);
        round_trip(&store, &offloading(raw.clone(), &blobs), "big-s3").await;
        assert_eq!(blobs.executions(None, 10).await.unwrap().len(), 1);
        store.purge_expired(Timestamp(T0.0 + 2_000)).await.unwrap();
        assert!(
            blobs.executions(None, 10).await.unwrap().is_empty(),
            "blobs expired with the execution"
        );
    }
}
