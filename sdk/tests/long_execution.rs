//! One execution of 100,000 operations, without continue-as-new: it runs to
//! the end across invocations (each ends at a sleep; the next replays every
//! operation before it), no step body runs twice, and its journal holds
//! every operation.
//! The replay time of such journals is measured by `durafn-bench`
//! (`replay_100k_ms`, `replay_growth_10k_to_100k`).

use std::time::Duration;

use durafn::prelude::*;
use durafn::testing::TestRuntime;
use durafn_runtime::model::OpStatus;

mod common;
use common::Calls;

/// Steps in the execution, run `BATCH` at a time (awaited together, so
/// their checkpoints share SQLite commits), with one sleep after every
/// `SLEEP_EVERY` steps.
const STEPS: u32 = 100_000;
const BATCH: u32 = 500;
const SLEEP_EVERY: u32 = 25_000;

fn long_workflow(calls: Calls) -> Handler {
    handler(move |ctx: DurableContext, n: u32| {
        let calls = calls.clone();
        async move {
            let mut sum: u64 = 0;
            let mut i = 0;
            while i < n {
                let batch = (i + 1..=(i + BATCH).min(n)).map(|k| {
                    let c = calls.clone();
                    ctx.step("s", move |_| async move {
                        c.hit();
                        Ok::<_, DurableError>(k)
                    })
                });
                for v in futures::future::join_all(batch).await {
                    let v: u32 = v?;
                    sum += u64::from(v);
                }
                i = (i + BATCH).min(n);
                if i % SLEEP_EVERY == 0 {
                    ctx.sleep("pause", Duration::from_secs(1)).await?;
                }
            }
            Ok::<_, DurableError>(sum)
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_execution_of_100k_operations_runs_to_the_end() {
    let calls = Calls::default();
    let rt = TestRuntime::new();
    let exec = rt.start(long_workflow(calls.clone()), STEPS).await.unwrap();
    let status = exec.run_until_settled().await.unwrap();
    assert_eq!(status, durafn_runtime::model::ExecutionStatus::Succeeded);
    let out: u64 = exec.result().await.unwrap();
    assert_eq!(out, u64::from(STEPS) * (u64::from(STEPS) + 1) / 2);
    // Every step body ran once, though each later invocation replayed all
    // the operations before it.
    assert_eq!(calls.get(), STEPS);
    let journal = rt.store().load_journal(exec.id()).await.unwrap().unwrap();
    let sleeps = STEPS / SLEEP_EVERY;
    assert_eq!(journal.operations.len(), (STEPS + sleeps) as usize);
    assert!(
        journal
            .operations
            .iter()
            .all(|op| op.status == OpStatus::Succeeded),
        "every operation completed"
    );
}
