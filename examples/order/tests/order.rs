//! The order workflow under the test runtime (virtual time, real SQLite journal).

use durafn::prelude::*;
use durafn::testing::TestRuntime;
use order_example::{Order, Receipt, email, inventory, payments, workflow};

fn order(id: &str) -> Order {
    Order {
        order_id: id.into(),
        amount_cents: 1999,
        fail_reserve_attempts: 0,
    }
}

#[tokio::test]
async fn an_order_runs_to_completion_with_each_step_recorded() {
    let rt = TestRuntime::new();
    let start = rt.now();
    let exec = rt
        .start(handler(workflow), order("o-complete"))
        .await
        .unwrap();
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Succeeded);

    let receipt: Receipt = exec.result().await.unwrap();
    assert_eq!(receipt.charge_id, "ch-o-complete-1");
    assert_eq!(receipt.reservation_id, "rsv-o-complete");
    assert_eq!(payments::charges("o-complete"), 1);
    assert_eq!(email::sent("o-complete"), 1);

    let ops = exec.operations().await.unwrap();
    let summary: Vec<_> = ops
        .iter()
        .map(|o| {
            (
                o.id.as_str(),
                o.kind.as_str(),
                o.name.as_str(),
                o.status.as_str(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("1", "STEP", "charge", "SUCCEEDED"),
            ("2", "SLEEP", "cool-off", "SUCCEEDED"),
            ("3", "STEP", "reserve", "SUCCEEDED"),
            ("4", "STEP", "email", "SUCCEEDED"),
        ]
    );
    assert!(
        rt.now().0 - start.0 >= 10_000,
        "the 10 s cool-off was skipped in virtual time"
    );
    // Invocation 1 charges and suspends on the timer; invocation 2 finishes.
    assert_eq!(exec.invocations(), 2);
}

#[tokio::test]
async fn a_crash_after_the_payment_does_not_charge_twice() {
    let rt = TestRuntime::new();
    let exec = rt.start(handler(workflow), order("o-crash")).await.unwrap();
    // The process dies right after the charge is checkpointed.
    assert!(exec.crash_after_checkpoints(1).await.unwrap());
    assert_eq!(payments::charges("o-crash"), 1);
    assert_eq!(
        exec.status().await.unwrap(),
        Status::Running,
        "the dead invocation still holds its lease"
    );

    // The lease expires; the next invocation replays the charge from the journal.
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Succeeded);
    assert_eq!(payments::charges("o-crash"), 1, "charged exactly once");
    let charge = exec.operation("charge").await.unwrap().unwrap();
    assert_eq!((charge.attempt, charge.rev), (1, 1));
    let receipt: Receipt = exec.result().await.unwrap();
    assert_eq!(receipt.charge_id, "ch-o-crash-1");
    // The crashed claim, then one that replays and finishes: by the time the
    // 15-minute lease expired, the 10 s cool-off was long due.
    assert_eq!(exec.execution().await.unwrap().epoch, 2);
}

#[tokio::test]
async fn a_flaky_reservation_is_retried_with_backoff_by_suspending() {
    let rt = TestRuntime::new();
    let mut o = order("o-flaky");
    o.fail_reserve_attempts = 2;
    let exec = rt.start(handler(workflow), o).await.unwrap();
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Succeeded);
    assert_eq!(inventory::attempts("o-flaky"), 3);
    let reserve = exec.operation("reserve").await.unwrap().unwrap();
    assert_eq!(reserve.attempt, 3);
    assert_eq!(reserve.status.as_str(), "SUCCEEDED");
    // charge+sleep, then one invocation per reserve attempt.
    assert_eq!(exec.invocations(), 4);
    assert_eq!(payments::charges("o-flaky"), 1);
}

#[tokio::test]
async fn a_declined_payment_fails_the_order_without_retrying() {
    let rt = TestRuntime::new();
    let mut o = order("o-declined");
    o.amount_cents = 0;
    let exec = rt.start(handler(workflow), o).await.unwrap();
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Failed);
    let err: ErrorObject = exec.error().await.unwrap().unwrap();
    assert_eq!(err.error_type, "ServiceError");
    assert_eq!(
        err.message,
        "step \"charge\" failed after 1 attempt: payment of 0 cents declined"
    );
    let charge = exec.operation("charge").await.unwrap().unwrap();
    assert_eq!(charge.status.as_str(), "FAILED");
    assert!(exec.operation("cool-off").await.unwrap().is_none());
}

#[tokio::test]
async fn bad_input_fails_the_execution_with_a_clear_error() {
    let rt = TestRuntime::new();
    let exec = rt
        .start(handler(workflow), serde_json::json!({"order": 1}))
        .await
        .unwrap();
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Failed);
    let err = exec.error().await.unwrap().unwrap();
    assert!(err.message.contains("missing field `order_id`"), "{err}");
}
