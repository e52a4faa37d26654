//! Pausing an execution under the test runtime: the running invocation
//! finishes its current step and suspends; nothing runs until unpaused.

use std::time::Duration;

use durafn::prelude::*;
use durafn::testing::TestRuntime;
use serde_json::json;

mod common;
use common::Calls;

#[tokio::test]
async fn a_paused_execution_suspends_after_its_current_step_and_resumes_on_unpause() {
    let rt = TestRuntime::new().cancel_check_interval(Duration::ZERO);
    let (first, second) = (Calls::default(), Calls::default());
    let (f, s, store) = (first.clone(), second.clone(), rt.store());
    let h = handler(move |ctx: DurableContext, _: ()| {
        let (f, s, store) = (f.clone(), s.clone(), store.clone());
        async move {
            let id = ctx.execution_id().clone();
            ctx.step("first", move |_| async move {
                // An operator pauses the execution while this step runs.
                store
                    .set_paused(&id, true, Timestamp(0))
                    .await
                    .map_err(|e| DurableError::msg(e.to_string()))?;
                Ok::<_, DurableError>(f.hit())
            })
            .await?;
            let n = ctx
                .step(
                    "second",
                    move |_| async move { Ok::<_, DurableError>(s.hit()) },
                )
                .await?;
            Ok(n)
        }
    });
    let exec = rt.start(h, ()).await.unwrap();
    let report = exec.run_once().await.unwrap().unwrap();
    assert_eq!(report.status, "SUSPENDED");
    assert_eq!(
        (first.get(), second.get()),
        (1, 0),
        "the current step finished, the next did not start"
    );
    assert_eq!(exec.status().await.unwrap(), Status::Suspended);
    let store = rt.store();
    let e = store.get_execution(exec.id()).await.unwrap().unwrap();
    assert!(e.paused);
    assert!(
        exec.run_once().await.unwrap().is_none(),
        "not dispatched while paused"
    );
    // A signal while paused is recorded; the unpause lets it run and catch up.
    exec.send_event("nudge", json!(1)).await.unwrap();
    assert!(exec.run_once().await.unwrap().is_none());
    store.set_paused(exec.id(), false, rt.now()).await.unwrap();
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Succeeded);
    assert_eq!((first.get(), second.get()), (1, 1));
}

#[tokio::test]
async fn with_pause_on_failure_a_step_out_of_retries_pauses_and_a_fix_plus_unpause_finishes() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let rt = TestRuntime::new().pause_on_failure(true);
    let fixed = Arc::new(AtomicBool::new(false));
    let attempts = Calls::default();
    let (fx, a) = (fixed.clone(), attempts.clone());
    let h = handler(move |ctx: DurableContext, _: ()| {
        let (fx, a) = (fx.clone(), a.clone());
        async move {
            let v: u32 = ctx
                .step("charge", move |s| async move {
                    a.hit();
                    match fx.load(Ordering::SeqCst) {
                        true => Ok(s.attempt()),
                        false => Err(DurableError::new("Down", "the payment service is down")),
                    }
                })
                .retry(RetryPolicy::fixed(Duration::from_secs(1)).max_attempts(2))
                .await?;
            Ok(v)
        }
    });
    let exec = rt.start(h, ()).await.unwrap();
    // Both attempts fail: paused, not failed; the step keeps a third attempt.
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Suspended);
    assert_eq!(attempts.get(), 2);
    let e = exec.execution().await.unwrap();
    assert!(e.paused, "{e:?}");
    assert_eq!(e.error, None);
    let op = exec.operation("charge").await.unwrap().unwrap();
    assert_eq!(op.status, durafn_runtime::model::OpStatus::Pending);
    assert_eq!(op.attempt, 2);
    assert_eq!(op.error.as_ref().unwrap().error_type, "Down");
    // Nothing runs while paused.
    rt.advance(Duration::from_secs(60));
    assert!(exec.run_once().await.unwrap().is_none());
    // Unpaused without a fix: one more attempt, paused again.
    rt.store()
        .set_paused(exec.id(), false, rt.now())
        .await
        .unwrap();
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Suspended);
    assert_eq!(attempts.get(), 3);
    assert!(exec.execution().await.unwrap().paused);
    // The fix is deployed, then the execution unpaused: it finishes.
    fixed.store(true, Ordering::SeqCst);
    rt.store()
        .set_paused(exec.id(), false, rt.now())
        .await
        .unwrap();
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Succeeded);
    assert_eq!(exec.result::<u32>().await.unwrap(), 4);
}

#[tokio::test]
async fn a_terminal_error_fails_even_with_pause_on_failure() {
    let rt = TestRuntime::new().pause_on_failure(true);
    let h = handler(|ctx: DurableContext, _: ()| async move {
        let v: u32 = ctx
            .step("charge", |_| async {
                Err::<u32, _>(DurableError::terminal(DurableError::new(
                    "Declined",
                    "card declined",
                )))
            })
            .retry(RetryPolicy::fixed(Duration::from_secs(1)).max_attempts(1))
            .await?;
        Ok(v)
    });
    let exec = rt.start(h, ()).await.unwrap();
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Failed);
    assert!(!exec.execution().await.unwrap().paused);
}

#[tokio::test]
async fn without_pause_on_failure_a_step_out_of_retries_fails() {
    let rt = TestRuntime::new();
    let h = handler(|ctx: DurableContext, _: ()| async move {
        let v: u32 = ctx
            .step("charge", |_| async {
                Err::<u32, _>(DurableError::new("Down", "the payment service is down"))
            })
            .retry(RetryPolicy::fixed(Duration::from_secs(1)).max_attempts(2))
            .await?;
        Ok(v)
    });
    let exec = rt.start(h, ()).await.unwrap();
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Failed);
    assert!(!exec.execution().await.unwrap().paused);
}
