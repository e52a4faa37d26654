//! Callbacks, events and conditions under the test runtime.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use durafn::prelude::*;
use durafn::testing::TestRuntime;
use durafn_runtime::model::{OpKind, OpStatus};
use durafn_runtime::trigger::callback::CallbackRef;
use serde_json::{Value, json};

mod common;
use common::Calls;

/// Asks for approval through a callback; on timeout or rejection, says so.
fn approval(submits: Calls, timeout: Duration) -> Handler {
    handler(move |ctx: DurableContext, _: ()| {
        let submits = submits.clone();
        async move {
            let answer = ctx
                .wait_for_callback("approval", move |id: String| async move {
                    submits.hit();
                    assert!(id.starts_with("cb2."), "{id}");
                    Ok::<_, DurableError>(())
                })
                .timeout(timeout)
                .await;
            let verdict: String = match answer {
                Ok(v) => {
                    let v: Value = v;
                    format!("approved by {}", v["by"].as_str().unwrap_or("?"))
                }
                Err(DurableError::Timeout { .. }) => "timed out".into(),
                Err(DurableError::CallbackFailed { error, .. }) => {
                    format!("rejected: {}", error.message)
                }
                Err(other) => return Err(other),
            };
            ctx.step(
                "record",
                move |_| async move { Ok::<_, DurableError>(verdict) },
            )
            .await
        }
    })
}

#[tokio::test]
async fn a_callback_suspends_until_completed_and_replays_without_resubmitting() {
    let rt = TestRuntime::new();
    let submits = Calls::default();
    let exec = rt
        .start(approval(submits.clone(), Duration::from_secs(86_400)), ())
        .await
        .unwrap();
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Suspended);
    assert_eq!(submits.get(), 1);
    let e = exec.execution().await.unwrap();
    assert_eq!(
        e.due_at,
        Some(rt.now().plus(Duration::from_secs(86_400))),
        "wakes at the timeout"
    );

    // The id handed out verifies against this execution's seed only.
    let id = exec.callback_id("approval").await.unwrap();
    let r = CallbackRef::parse(&id).unwrap();
    assert_eq!(&r.execution_id, exec.id());
    assert!(r.verify(&e.seed));
    assert!(!r.verify("another-seed"));

    exec.callback_succeed("approval", json!({"by": "ops"}))
        .await
        .unwrap();
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Succeeded);
    assert_eq!(exec.result::<String>().await.unwrap(), "approved by ops");
    assert_eq!(submits.get(), 1, "the submit step replayed");
    let cb = exec.operation("approval").await.unwrap().unwrap();
    assert_eq!(
        (cb.kind, cb.status),
        (OpKind::Callback, OpStatus::Succeeded)
    );
    assert_eq!(cb.result, Some(json!({"by": "ops"})));

    // Completing twice is refused and changes nothing.
    let err = exec
        .callback_succeed("approval", json!({"by": "mallory"}))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("already ended"), "{err}");
    assert_eq!(
        exec.operation("approval").await.unwrap().unwrap().result,
        Some(json!({"by": "ops"}))
    );
}

#[tokio::test]
async fn a_failed_callback_can_be_caught() {
    let rt = TestRuntime::new();
    let exec = rt
        .start(approval(Calls::default(), Duration::from_secs(60)), ())
        .await
        .unwrap();
    exec.run_until_settled().await.unwrap();
    exec.callback_fail("approval", ErrorObject::new("Rejected", "not on a Friday"))
        .await
        .unwrap();
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Succeeded);
    assert_eq!(
        exec.result::<String>().await.unwrap(),
        "rejected: not on a Friday"
    );
}

#[tokio::test]
async fn a_failed_callback_propagates_when_not_caught() {
    let h = handler(|ctx: DurableContext, _: ()| async move {
        let v: Value = ctx.create_callback("payment").await?.await?;
        Ok(v)
    });
    let rt = TestRuntime::new();
    let exec = rt.start(h, ()).await.unwrap();
    exec.run_until_settled().await.unwrap();
    exec.callback_fail(
        "payment",
        ErrorObject::new("CardDeclined", "insufficient funds"),
    )
    .await
    .unwrap();
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Failed);
    let err = exec.error().await.unwrap().unwrap();
    assert_eq!(err.error_type, "CardDeclined");
    assert_eq!(
        err.message,
        "callback \"payment\" was failed: insufficient funds"
    );
}

#[tokio::test]
async fn a_callback_times_out_and_a_late_completion_is_refused() {
    let rt = TestRuntime::new();
    let start = rt.now();
    let exec = rt
        .start(approval(Calls::default(), Duration::from_secs(86_400)), ())
        .await
        .unwrap();
    exec.run_until_settled().await.unwrap();
    // Nobody answers: advance past the 24 h timeout.
    rt.advance(Duration::from_secs(86_400));
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Succeeded);
    assert_eq!(exec.result::<String>().await.unwrap(), "timed out");
    assert!(rt.now().0 - start.0 >= 86_400_000);
    let cb = exec.operation("approval").await.unwrap().unwrap();
    assert_eq!(cb.status, OpStatus::TimedOut);
    let err = exec
        .callback_succeed("approval", json!({"by": "late"}))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("TIMED_OUT"), "{err}");
}

#[tokio::test]
async fn heartbeats_keep_a_callback_alive_until_they_stop() {
    let h = handler(|ctx: DurableContext, _: ()| async move {
        let r: Result<Value, _> = ctx
            .create_callback("job")
            .heartbeat_timeout(Duration::from_secs(60))
            .timeout(Duration::from_secs(3600))
            .await?
            .await;
        Ok(matches!(r, Err(DurableError::HeartbeatTimeout { .. })))
    });
    let rt = TestRuntime::new();
    let exec = rt.start(h, ()).await.unwrap();
    assert_eq!(exec.run_once().await.unwrap().unwrap().status, "SUSPENDED");
    for _ in 0..3 {
        rt.advance(Duration::from_secs(50));
        exec.callback_heartbeat("job").await.unwrap();
        assert_eq!(
            exec.run_once().await.unwrap().unwrap().status,
            "SUSPENDED",
            "still alive"
        );
    }
    let due = exec.execution().await.unwrap().due_at.unwrap();
    assert_eq!(due, rt.now().plus(Duration::from_secs(60)));
    assert_eq!(
        exec.run_until_settled().await.unwrap(),
        Status::Suspended,
        "outside waits are not skipped"
    );
    rt.advance(Duration::from_secs(60));
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Succeeded);
    assert!(
        exec.result::<bool>().await.unwrap(),
        "timed out once heartbeats stopped"
    );
}

#[tokio::test]
async fn events_sent_early_are_buffered_delivered_in_order_and_consumed_once() {
    let h = handler(|ctx: DurableContext, _: ()| async move {
        let mut got = Vec::new();
        for _ in 0..3 {
            let v: u32 = ctx.wait_for_event("tick").await?;
            got.push(v);
            ctx.sleep("between", Duration::from_secs(1)).await?;
        }
        Ok(got)
    });
    let rt = TestRuntime::new();
    let exec = rt.start(h, ()).await.unwrap();
    // Sent before the execution ever ran: buffered, not lost.
    exec.send_event("tick", 1).await.unwrap();
    exec.send_event("other", 99).await.unwrap();
    exec.send_event("tick", 2).await.unwrap();
    assert_eq!(
        exec.run_until_settled().await.unwrap(),
        Status::Suspended,
        "waits for the third"
    );
    exec.send_event("tick", 3).await.unwrap();
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Succeeded);
    assert_eq!(exec.result::<Vec<u32>>().await.unwrap(), vec![1, 2, 3]);
    let seqs: Vec<Value> = exec
        .operations()
        .await
        .unwrap()
        .into_iter()
        .filter(|o| o.kind == OpKind::Event)
        .map(|o| o.result.unwrap()["seq"].clone())
        .collect();
    assert_eq!(seqs.len(), 3);
    assert!(
        seqs.windows(2).all(|w| w[0] != w[1]),
        "each event consumed once: {seqs:?}"
    );
    let err = exec.send_event("tick", 4).await.unwrap_err();
    assert!(err.to_string().contains("has ended"), "{err}");
}

#[tokio::test]
async fn an_event_wait_times_out_with_a_typed_error() {
    let h = handler(|ctx: DurableContext, _: ()| async move {
        let r: Result<String, _> = ctx
            .wait_for_event("ack")
            .timeout(Duration::from_secs(300))
            .await;
        match r {
            Err(DurableError::Timeout { name, .. }) => Ok(format!("no {name}")),
            Ok(v) => Ok(v),
            Err(e) => Err(e),
        }
    });
    let rt = TestRuntime::new();
    let exec = rt.start(h, ()).await.unwrap();
    exec.run_until_settled().await.unwrap();
    rt.advance(Duration::from_secs(300));
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Succeeded);
    assert_eq!(exec.result::<String>().await.unwrap(), "no ack");
}

#[tokio::test]
async fn a_condition_is_polled_with_durable_waits_until_it_holds() {
    let polls = Calls::default();
    let p = polls.clone();
    let h = handler(move |ctx: DurableContext, _: ()| {
        let p = p.clone();
        async move {
            ctx.wait_for_condition(
                "ready",
                0u32,
                WaitStrategy::new(Duration::from_secs(10)).max_attempts(5),
                move |seen: u32, _s| {
                    let p = p.clone();
                    async move {
                        p.hit();
                        Ok(if seen >= 2 {
                            Condition::Done(seen)
                        } else {
                            Condition::Continue(seen + 1)
                        })
                    }
                },
            )
            .await
        }
    });
    let rt = TestRuntime::new();
    let t0 = rt.now();
    let exec = rt.start(h, ()).await.unwrap();
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Succeeded);
    assert_eq!(exec.result::<u32>().await.unwrap(), 2);
    assert_eq!(polls.get(), 3, "each check ran once, none replayed");
    assert_eq!(
        rt.now().0 - t0.0,
        10_000 + 20_000,
        "10 s then 20 s between checks"
    );
}

#[tokio::test]
async fn a_condition_that_never_holds_fails_after_its_attempts() {
    let h = handler(|ctx: DurableContext, _: ()| async move {
        ctx.wait_for_condition(
            "never",
            (),
            WaitStrategy::new(Duration::from_secs(1)).max_attempts(3),
            |s: (), _| async move { Ok(Condition::Continue(s)) },
        )
        .await
    });
    let rt = TestRuntime::new();
    let exec = rt.start(h, ()).await.unwrap();
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Failed);
    let err = exec.error().await.unwrap().unwrap();
    assert!(err.message.contains("did not hold after 3 checks"), "{err}");
}

#[tokio::test]
async fn a_failed_execution_resumes_from_its_last_checkpoint() {
    let outage = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let before = Calls::default();
    let (o, b) = (outage.clone(), before.clone());
    let h = handler(move |ctx: DurableContext, _: ()| {
        let (o, b) = (o.clone(), b.clone());
        async move {
            ctx.step(
                "before",
                move |_| async move { Ok::<_, DurableError>(b.hit()) },
            )
            .await?;
            ctx.step("flaky", move |_| async move {
                if o.load(Ordering::SeqCst) {
                    Err(DurableError::new("Outage", "upstream down"))
                } else {
                    Ok(7u32)
                }
            })
            .retry(RetryPolicy::fixed(Duration::from_secs(1)).max_attempts(2))
            .await
        }
    });
    let rt = TestRuntime::new();
    let exec = rt.start(h, ()).await.unwrap();
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Failed);
    // The outage ends; an operator resumes the execution.
    outage.store(false, Ordering::SeqCst);
    exec.resume().await.unwrap();
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Succeeded);
    assert_eq!(exec.result::<u32>().await.unwrap(), 7);
    assert_eq!(before.get(), 1, "completed steps are not run again");
    let err = exec.resume().await.unwrap_err();
    assert!(err.to_string().contains("only FAILED or BLOCKED"), "{err}");
}

#[tokio::test]
async fn a_blocked_execution_resumes_after_a_fixed_deploy() {
    let version = Arc::new(AtomicU32::new(1));
    let v = version.clone();
    let h = handler(move |ctx: DurableContext, _: ()| {
        let v = v.clone();
        async move {
            let name = if v.load(Ordering::SeqCst) == 2 {
                "renamed"
            } else {
                "original"
            };
            ctx.step(name, |_| async { Ok::<_, DurableError>(()) })
                .await?;
            ctx.sleep("wait", Duration::from_secs(10)).await?;
            Ok(())
        }
    });
    let rt = TestRuntime::new();
    let exec = rt.start(h, ()).await.unwrap();
    exec.run_once().await.unwrap();
    version.store(2, Ordering::SeqCst); // a bad deploy
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Blocked);
    version.store(3, Ordering::SeqCst); // the fix: back to the recorded order
    exec.resume().await.unwrap();
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Succeeded);
}
