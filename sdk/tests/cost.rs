//! Cost per execution: each invocation's end record carries the store calls
//! it made, so an execution's cost grows with its steps and its payloads.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use durafn::prelude::*;
use durafn::testing::TestRuntime;
use durafn_runtime::cost::{ExecutionCost, of_history};
use serde_json::json;

/// A workflow of `steps` steps, each returning `size` bytes.
fn workflow(steps: u32, size: usize) -> durafn::Handler {
    durafn::handler(
        move |ctx: DurableContext, _: serde_json::Value| async move {
            for i in 0..steps {
                ctx.step(&format!("s{i}"), |_| async move {
                    Ok::<_, DurableError>("x".repeat(size))
                })
                .await?;
            }
            Ok(steps)
        },
    )
}

async fn cost_of(steps: u32, size: usize) -> ExecutionCost {
    let rt = TestRuntime::new();
    let exec = rt.start(workflow(steps, size), json!({})).await.unwrap();
    exec.run_until_settled().await.unwrap();
    assert_eq!(exec.status().await.unwrap(), Status::Succeeded);
    let entries = rt.store().load_history(exec.id()).await.unwrap();
    of_history(&entries)
}

#[tokio::test]
async fn ten_steps_cost_more_writes_than_one_and_bytes_grow_with_payloads() {
    let one = cost_of(1, 10).await;
    let ten = cost_of(10, 10).await;
    assert_eq!((one.invocations, ten.invocations), (1, 1));
    assert_eq!(one.invocations_uncounted, 0);
    // A checkpoint per step, plus the invocation's records and its end.
    assert!(one.store.writes >= 3, "{one:?}");
    assert_eq!(
        ten.store.writes,
        one.store.writes + 9,
        "one write per step: {one:?} {ten:?}"
    );
    assert!(ten.store.write_units > one.store.write_units);
    assert!(ten.estimate.total_usd > one.estimate.total_usd);

    let big = cost_of(10, 10_000).await;
    assert_eq!(big.store.writes, ten.store.writes);
    assert!(
        big.store.write_bytes >= ten.store.write_bytes + 10 * 9_900,
        "{ten:?} {big:?}"
    );
    assert!(
        big.store.write_units >= ten.store.write_units + 90,
        "{big:?}"
    );
}
