//! Large payloads under the test runtime: step results, inputs and outputs
//! over the record limit go to a blob store (docs/payloads.md).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::sync::Arc;

use durafn::prelude::*;
use durafn::testing::TestRuntime;
use durafn_runtime::model::{MAX_OFFLOADED_PAYLOAD_BYTES, MAX_PAYLOAD_BYTES, json_len};
use durafn_runtime::store::blob::DirBlobStore;
use durafn_runtime::store::{OffloadingStore, SqliteStore, Store};

mod common;
use common::Calls;

const MIB: usize = 1024 * 1024;

/// A runtime on SQLite with a folder of blobs; also the raw store.
fn runtime() -> (TestRuntime, Arc<dyn Store>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let raw: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path().join("d.db")).unwrap());
    let blobs = Arc::new(DirBlobStore::new(dir.path().join("blobs")));
    let store = Arc::new(OffloadingStore::new(raw.clone(), blobs));
    (TestRuntime::with_store(store), raw, dir)
}

#[tokio::test]
async fn a_20_mib_step_result_round_trips_through_replay() {
    let calls = Calls::default();
    let c = calls.clone();
    let h = handler(move |ctx: DurableContext, n: usize| {
        let c = c.clone();
        async move {
            let big: String = ctx
                .step("download", |_| async move {
                    c.hit();
                    Ok::<_, DurableError>("d".repeat(n))
                })
                .await?;
            ctx.sleep("settle", Duration::from_secs(5)).await?;
            let len: usize = ctx
                .step(
                    "measure",
                    |_| async move { Ok::<_, DurableError>(big.len()) },
                )
                .await?;
            Ok(len)
        }
    });
    let (rt, raw, _dir) = runtime();
    let exec = rt.start(h, 20 * MIB).await.unwrap();
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Succeeded);
    assert!(exec.invocations() >= 2, "the sleep made it replay");
    assert_eq!(calls.get(), 1, "replay returned the recorded 20 MiB result");
    assert_eq!(exec.result::<usize>().await.unwrap(), 20 * MIB);
    let op = exec.operation("download").await.unwrap().unwrap();
    let result = op.result.unwrap();
    assert_eq!(result.as_str().map(str::len), Some(20 * MIB));
    // The record holds a small reference, not the payload.
    let journal = raw.load_journal(exec.id()).await.unwrap().unwrap();
    let recorded = journal.operations[0].result.as_ref().unwrap();
    assert!(json_len(recorded) < 200, "{recorded}");
    assert!(recorded.get("$durafn_blob").is_some(), "{recorded}");
}

#[tokio::test]
async fn large_inputs_and_outputs_round_trip() {
    let h = handler(|_ctx: DurableContext, input: String| async move { Ok(format!("{input}!")) });
    let (rt, raw, _dir) = runtime();
    let input = "i".repeat(6 * MIB);
    let exec = rt.start(h, input.clone()).await.unwrap();
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Succeeded);
    assert_eq!(exec.result::<String>().await.unwrap(), format!("{input}!"));
    let stored = raw.get_execution(exec.id()).await.unwrap().unwrap();
    assert!(json_len(&stored.input) < 200);
    assert!(json_len(stored.output.as_ref().unwrap()) < 200);
}

#[tokio::test]
async fn a_step_result_over_64_mib_is_a_clear_terminal_error() {
    let h = handler(|ctx: DurableContext, _: ()| async move {
        ctx.step("small", |_| async { Ok::<_, DurableError>(1) })
            .await?;
        ctx.step("huge", |_| async {
            Ok::<_, DurableError>("h".repeat(MAX_OFFLOADED_PAYLOAD_BYTES))
        })
        .await?;
        Ok(())
    });
    let (rt, _raw, _dir) = runtime();
    let exec = rt.start(h, ()).await.unwrap();
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Failed);
    let err = exec.error().await.unwrap().unwrap();
    assert_eq!(err.error_type, "PayloadError");
    assert!(err.message.contains("step \"huge\" result"), "{err}");
    assert!(
        err.message
            .contains(&MAX_OFFLOADED_PAYLOAD_BYTES.to_string()),
        "{err}"
    );
    // Nothing is lost: the earlier step's record is intact.
    let small = exec.operation("small").await.unwrap().unwrap();
    assert_eq!(small.result, Some(serde_json::json!(1)));
}

#[tokio::test]
async fn without_a_blob_store_the_4_mib_limit_says_how_to_lift_it() {
    let h = handler(|ctx: DurableContext, _: ()| async move {
        ctx.step("big", |_| async {
            Ok::<_, DurableError>("b".repeat(MAX_PAYLOAD_BYTES + 1))
        })
        .await?;
        Ok(())
    });
    let rt = TestRuntime::new();
    let exec = rt.start(h, ()).await.unwrap();
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Failed);
    let err = exec.error().await.unwrap().unwrap();
    assert!(err.message.contains("configure a blob store"), "{err}");
    assert!(err.message.contains("DURAFN_BLOBS"), "{err}");
}
