//! Conformance with AWS Lambda durable functions (issue 18): callbacks that
//! exist from their creation, missed heartbeats, `PARALLEL`/`MAP` records,
//! sleep bounds, callback ids in records, and at-most-once steps killed
//! mid-body. All in virtual time.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::time::Duration;

use durafn::prelude::*;
use durafn::testing::TestRuntime;
use durafn_runtime::model::{OpKind, OpStatus, Operation};
use serde_json::{Value, json};

mod common;
use common::Calls;

// ---- 1. A callback exists from the moment it is created ----------------------

/// Creates a callback, hands its id out, sleeps, then awaits the callback.
fn create_then_sleep(timeout: Duration, heartbeat: Option<Duration>, nap: Duration) -> Handler {
    handler(move |ctx: DurableContext, _: ()| async move {
        let mut create = ctx.create_callback::<Value>("approval").timeout(timeout);
        if let Some(hb) = heartbeat {
            create = create.heartbeat_timeout(hb);
        }
        let cb = create.await?;
        let id = cb.id().to_string();
        let handed: String = ctx
            .step(
                "hand-out",
                move |_| async move { Ok::<_, DurableError>(id) },
            )
            .await?;
        ctx.sleep("meanwhile", nap).await?;
        let outcome = match cb.await {
            Ok(v) => json!({ "value": v }),
            Err(DurableError::Timeout { .. }) => json!("timed out"),
            Err(DurableError::HeartbeatTimeout { .. }) => json!("heartbeat missed"),
            Err(e) => return Err(e),
        };
        Ok(json!({ "id": handed, "outcome": outcome }))
    })
}

#[tokio::test]
async fn a_callback_completed_during_a_sleep_before_its_await_is_delivered_after() {
    let rt = TestRuntime::new();
    let start = rt.now();
    let exec = rt
        .start(
            create_then_sleep(Duration::from_secs(3600), None, Duration::from_secs(60)),
            (),
        )
        .await
        .unwrap();
    // One invocation: the callback is recorded, the id handed out, the sleep starts.
    assert_eq!(exec.run_once().await.unwrap().unwrap().status, "SUSPENDED");
    let cb = exec.operation("approval").await.unwrap().unwrap();
    assert_eq!(
        (cb.id.as_str(), cb.kind, cb.status),
        ("1", OpKind::Callback, OpStatus::Pending)
    );
    assert_eq!(
        cb.wake_at,
        Some(start.plus(Duration::from_secs(3600))),
        "the timeout runs from creation"
    );

    // Completed during the sleep, before anything awaited it.
    exec.callback_succeed("approval", json!({"by": "ops"}))
        .await
        .unwrap();
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Succeeded);
    let out: Value = exec.result().await.unwrap();
    assert_eq!(out["outcome"], json!({ "value": {"by": "ops"} }));
    assert!(
        rt.now().0 - start.0 >= 60_000,
        "the sleep still ran in full"
    );
    let sleep = exec.operation("meanwhile").await.unwrap().unwrap();
    assert_eq!(sleep.status, OpStatus::Succeeded);
}

#[tokio::test]
async fn a_callback_timeout_that_runs_out_during_a_sleep_fails_the_await_with_a_timeout() {
    let rt = TestRuntime::new();
    let start = rt.now();
    let exec = rt
        .start(
            create_then_sleep(Duration::from_secs(5), None, Duration::from_secs(10)),
            (),
        )
        .await
        .unwrap();
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Succeeded);
    let out: Value = exec.result().await.unwrap();
    assert_eq!(out["outcome"], "timed out");
    let cb = exec.operation("approval").await.unwrap().unwrap();
    assert_eq!(cb.status, OpStatus::TimedOut);
    assert_eq!(cb.error.unwrap().error_type, "Timeout");
    assert_eq!(cb.wake_at, Some(start.plus(Duration::from_secs(5))));
    // A completion after the timeout is refused.
    let err = exec
        .callback_succeed("approval", json!(1))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("TIMED_OUT"), "{err}");
}

#[tokio::test]
async fn a_heartbeat_clock_runs_from_creation_too() {
    let rt = TestRuntime::new();
    let exec = rt
        .start(
            create_then_sleep(
                Duration::from_secs(3600),
                Some(Duration::from_secs(30)),
                Duration::from_secs(60),
            ),
            (),
        )
        .await
        .unwrap();
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Succeeded);
    let out: Value = exec.result().await.unwrap();
    assert_eq!(
        out["outcome"], "heartbeat missed",
        "no heartbeat within 30 s of creation"
    );
}

#[tokio::test]
async fn two_callbacks_created_up_front_and_completed_out_of_order_reach_their_own_awaits() {
    let h = handler(|ctx: DurableContext, _: ()| async move {
        let a = ctx.create_callback::<String>("a").await?;
        let b = ctx.create_callback::<String>("b").await?;
        let ids = (a.id().to_string(), b.id().to_string());
        ctx.step(
            "hand-out",
            move |_| async move { Ok::<_, DurableError>(ids) },
        )
        .await?;
        let first = a.await?;
        let second = b.await?;
        Ok((first, second))
    });
    let rt = TestRuntime::new();
    let exec = rt.start(h, ()).await.unwrap();
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Suspended);
    exec.callback_succeed("b", "for b").await.unwrap();
    assert_eq!(
        exec.run_until_settled().await.unwrap(),
        Status::Suspended,
        "still waiting on a"
    );
    exec.callback_succeed("a", "for a").await.unwrap();
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Succeeded);
    assert_eq!(
        exec.result::<(String, String)>().await.unwrap(),
        ("for a".to_string(), "for b".to_string())
    );
}

#[tokio::test]
async fn a_created_callback_that_is_never_awaited_can_still_be_completed() {
    let h = handler(|ctx: DurableContext, _: ()| async move {
        let _unused = ctx.create_callback::<Value>("fire-and-forget").await?;
        ctx.sleep("nap", Duration::from_secs(5)).await?;
        Ok(())
    });
    let rt = TestRuntime::new();
    let exec = rt.start(h, ()).await.unwrap();
    assert_eq!(exec.run_once().await.unwrap().unwrap().status, "SUSPENDED");
    exec.callback_succeed("fire-and-forget", json!("ok"))
        .await
        .unwrap();
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Succeeded);
    let cb = exec.operation("fire-and-forget").await.unwrap().unwrap();
    assert_eq!(
        (cb.status, cb.result),
        (OpStatus::Succeeded, Some(json!("ok")))
    );
}

// ---- 2. A missed heartbeat is its own error ---------------------------------

#[tokio::test]
async fn a_missed_heartbeat_fails_with_its_own_error_apart_from_the_overall_timeout() {
    let h = handler(|ctx: DurableContext, _: ()| async move {
        let v: Value = ctx
            .create_callback("job")
            .heartbeat_timeout(Duration::from_secs(60))
            .timeout(Duration::from_secs(3600))
            .await?
            .await?;
        Ok(v)
    });
    let rt = TestRuntime::new();
    let exec = rt.start(h, ()).await.unwrap();
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Suspended);
    rt.advance(Duration::from_secs(40));
    exec.callback_heartbeat("job").await.unwrap();
    exec.run_until_settled().await.unwrap();
    rt.advance(Duration::from_secs(60));
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Failed);

    // The SDK error, as the execution recorded it.
    let err = exec.error().await.unwrap().unwrap();
    assert_eq!(err.error_type, "HeartbeatTimeout");
    assert_eq!(
        err.message,
        "callback \"job\" timed out waiting for a heartbeat"
    );
    // The history.
    let cb = exec.operation("job").await.unwrap().unwrap();
    assert_eq!(cb.status, OpStatus::TimedOut);
    let op_err = cb.error.unwrap();
    assert_eq!(op_err.error_type, "HeartbeatTimeout");
    assert!(op_err.message.contains("within 60 s"), "{op_err}");
}

#[tokio::test]
async fn heartbeats_that_keep_coming_end_in_the_overall_timeout() {
    let h = handler(|ctx: DurableContext, _: ()| async move {
        let r: Result<Value, _> = ctx
            .create_callback("job")
            .heartbeat_timeout(Duration::from_secs(60))
            .timeout(Duration::from_secs(100))
            .await?
            .await;
        Ok(match r {
            Err(DurableError::Timeout { .. }) => "timeout",
            Err(DurableError::HeartbeatTimeout { .. }) => "heartbeat",
            _ => "other",
        })
    });
    let rt = TestRuntime::new();
    let exec = rt.start(h, ()).await.unwrap();
    exec.run_until_settled().await.unwrap();
    rt.advance(Duration::from_secs(50));
    exec.callback_heartbeat("job").await.unwrap();
    exec.run_until_settled().await.unwrap();
    // The heartbeat deadline (50 + 60 s) is past the overall timeout (100 s).
    rt.advance(Duration::from_secs(50));
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Succeeded);
    assert_eq!(exec.result::<String>().await.unwrap(), "timeout");
    let cb = exec.operation("job").await.unwrap().unwrap();
    assert_eq!(cb.error.unwrap().error_type, "Timeout");
}

// ---- 3. parallel and map record PARALLEL and MAP ------------------------------

fn batches() -> Handler {
    handler(|ctx: DurableContext, _: ()| async move {
        let fan = ctx
            .parallel(
                "fan",
                vec![
                    Branch::new(|c: DurableContext| async move {
                        c.step("left", |_| async { Ok::<_, DurableError>(1) }).await
                    }),
                    Branch::new(|c: DurableContext| async move {
                        c.step("right", |_| async { Ok::<_, DurableError>(2) })
                            .await
                    }),
                ],
            )
            .await?
            .into_values()?;
        let each = ctx
            .map(
                "each",
                vec![10, 20],
                |c: DurableContext, n: u32, _| async move {
                    c.step(
                        "double",
                        move |_| async move { Ok::<_, DurableError>(n * 2) },
                    )
                    .await
                },
            )
            .await?
            .into_values()?;
        Ok((fan, each))
    })
}

fn kinds(ops: &[Operation]) -> Vec<(String, OpKind, String)> {
    ops.iter()
        .map(|o| (o.id.clone(), o.kind, o.name.clone()))
        .collect()
}

#[tokio::test]
async fn parallel_and_map_record_their_own_types_with_child_contexts_under_them() {
    let rt = TestRuntime::new();
    let exec = rt.start(batches(), ()).await.unwrap();
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Succeeded);
    assert_eq!(
        exec.result::<(Vec<u32>, Vec<u32>)>().await.unwrap(),
        (vec![1, 2], vec![20, 40])
    );
    let ops = exec.operations().await.unwrap();
    let k = |id: &str, kind: OpKind, name: &str| (id.to_string(), kind, name.to_string());
    assert_eq!(
        kinds(&ops),
        vec![
            k("1", OpKind::Parallel, "fan"),
            k("1.1", OpKind::Child, "fan[0]"),
            k("1.1.1", OpKind::Step, "left"),
            k("1.2", OpKind::Child, "fan[1]"),
            k("1.2.1", OpKind::Step, "right"),
            k("2", OpKind::Map, "each"),
            k("2.1", OpKind::Child, "each[0]"),
            k("2.1.1", OpKind::Step, "double"),
            k("2.2", OpKind::Child, "each[1]"),
            k("2.2.1", OpKind::Step, "double"),
        ]
    );
    assert_eq!(
        serde_json::to_value(&ops[0]).unwrap()["type"],
        "PARALLEL",
        "as the journal and the API write it"
    );
    assert_eq!(serde_json::to_value(&ops[5]).unwrap()["type"], "MAP");
}

#[tokio::test]
async fn a_journal_recorded_with_child_batches_still_replays() {
    // A fresh run gives the records; turn the batches back into CHILD, as
    // SDKs before PARALLEL/MAP wrote them, and keep only the first batch.
    let fresh = TestRuntime::new();
    let first = fresh.start(batches(), ()).await.unwrap();
    first.run_until_settled().await.unwrap();
    let old: Vec<Operation> = first
        .operations()
        .await
        .unwrap()
        .into_iter()
        .filter(|o| o.id == "1" || o.id.starts_with("1."))
        .map(|mut o| {
            if o.id == "1" {
                o.kind = OpKind::Child;
            }
            o
        })
        .collect();
    assert_eq!(old[0].kind, OpKind::Child);

    let calls = Calls::default();
    let c = calls.clone();
    let h = handler(move |ctx: DurableContext, _: ()| {
        let c = c.clone();
        async move {
            let fan = ctx
                .parallel(
                    "fan",
                    vec![Branch::new(move |_: DurableContext| async move {
                        c.hit();
                        Ok::<u32, DurableError>(99)
                    })],
                )
                .await?;
            let after = ctx
                .map(
                    "each",
                    vec![1u32],
                    |_: DurableContext, n: u32, _| async move { Ok::<_, DurableError>(n) },
                )
                .await?;
            Ok((
                fan.values().into_iter().copied().collect::<Vec<u32>>(),
                after.succeeded(),
            ))
        }
    });
    let rt = TestRuntime::new();
    let exec = rt.start_named("old", h, ()).await.unwrap();
    for op in &old {
        rt.store().put_operation(exec.id(), op).await.unwrap();
    }
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Succeeded);
    assert_eq!(calls.get(), 0, "the recorded batch did not run again");
    assert_eq!(
        exec.result::<(Vec<u32>, usize)>().await.unwrap(),
        (vec![1, 2], 1)
    );
    let ops = exec.operations().await.unwrap();
    assert_eq!(
        ops[0].kind,
        OpKind::Child,
        "the old record is kept as it was"
    );
    let each = ops.iter().find(|o| o.id == "2").unwrap();
    assert_eq!(each.kind, OpKind::Map, "new batches record their own type");
}

// ---- 4. Sleep bounds --------------------------------------------------------

#[tokio::test]
async fn a_sleep_shorter_than_a_second_is_refused_at_once_without_suspending() {
    let h = handler(|ctx: DurableContext, _: ()| async move {
        let err = ctx
            .sleep("blink", Duration::from_millis(500))
            .await
            .unwrap_err();
        ctx.sleep("one-second", Duration::from_secs(1)).await?;
        Ok(err.to_error_object())
    });
    let rt = TestRuntime::new();
    let exec = rt.start(h, ()).await.unwrap();
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Succeeded);
    assert_eq!(exec.invocations(), 2, "only the 1 s sleep suspended");
    let err: ErrorObject = exec.result().await.unwrap();
    assert_eq!(err.error_type, "InvalidArgument");
    assert!(err.message.contains("\"blink\""), "{err}");
    assert!(err.message.contains("1 s minimum"), "{err}");
    assert!(err.message.contains("1 s to 1 year"), "{err}");
    let ops = exec.operations().await.unwrap();
    assert_eq!(ops.len(), 1, "nothing recorded for the refused sleep");
    assert_eq!(ops[0].name, "one-second");

    // Uncaught, it fails the execution in its first invocation.
    let zero =
        handler(
            |ctx: DurableContext, _: ()| async move { ctx.sleep("zero", Duration::ZERO).await },
        );
    let exec = rt.start(zero, ()).await.unwrap();
    assert_eq!(exec.run_once().await.unwrap().unwrap().status, "FAILED");
    assert_eq!(
        exec.error().await.unwrap().unwrap().error_type,
        "InvalidArgument"
    );
}

// ---- 5. The record carries the callback id ----------------------------------

#[tokio::test]
async fn the_callback_record_carries_the_id_it_was_created_with() {
    let rt = TestRuntime::new();
    let exec = rt
        .start(
            create_then_sleep(Duration::from_secs(3600), None, Duration::from_secs(60)),
            (),
        )
        .await
        .unwrap();
    exec.run_once().await.unwrap();
    let handed: String = exec
        .operation("hand-out")
        .await
        .unwrap()
        .unwrap()
        .result
        .map(|v| serde_json::from_value(v).unwrap())
        .unwrap();
    assert!(handed.starts_with("cb2."), "{handed}");
    let cb = exec.operation("approval").await.unwrap().unwrap();
    assert_eq!(cb.result.as_ref().unwrap()["callback_id"], json!(handed));
    assert_eq!(
        durafn_runtime::trigger::callback::recorded_id(&cb),
        Some(handed.as_str())
    );
    assert_eq!(exec.callback_id("approval").await.unwrap(), handed);

    // A failed callback keeps it.
    exec.callback_fail("approval", ErrorObject::new("No", "rejected"))
        .await
        .unwrap();
    let failed = exec.operation("approval").await.unwrap().unwrap();
    assert_eq!(failed.status, OpStatus::Failed);
    assert_eq!(
        durafn_runtime::trigger::callback::recorded_id(&failed),
        Some(handed.as_str())
    );
}

// ---- 6. An at-most-once step killed mid-body --------------------------------

fn transfer(
    started: Calls,
    finished: Calls,
    semantics: StepSemantics,
    policy: RetryPolicy,
) -> Handler {
    handler(move |ctx: DurableContext, _: ()| {
        let (started, finished, policy) = (started.clone(), finished.clone(), policy.clone());
        async move {
            ctx.step("transfer", move |s| async move {
                started.hit();
                // The process dies here, at the body's first await.
                tokio::task::yield_now().await;
                finished.hit();
                Ok::<_, DurableError>(s.attempt())
            })
            .semantics(semantics)
            .retry(policy)
            .await
        }
    })
}

#[tokio::test]
async fn an_at_most_once_step_killed_mid_body_is_not_rerun_and_fails_the_step() {
    let (started, finished) = (Calls::default(), Calls::default());
    let rt = TestRuntime::new();
    let exec = rt
        .start(
            transfer(
                started.clone(),
                finished.clone(),
                StepSemantics::AtMostOncePerRetry,
                RetryPolicy::none(),
            ),
            (),
        )
        .await
        .unwrap();
    assert!(exec.crash_during_step("transfer").await.unwrap());
    assert_eq!((started.get(), finished.get()), (1, 0), "killed mid-body");
    let op = exec.operation("transfer").await.unwrap().unwrap();
    assert_eq!((op.status, op.attempt), (OpStatus::Started, 1));

    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Failed);
    assert_eq!(
        (started.get(), finished.get()),
        (1, 0),
        "the interrupted attempt did not run again"
    );
    let op = exec.operation("transfer").await.unwrap().unwrap();
    assert_eq!((op.status, op.attempt), (OpStatus::Failed, 1));
    assert_eq!(op.error.unwrap().error_type, "StepInterrupted");
    let err = exec.error().await.unwrap().unwrap();
    assert_eq!(err.error_type, "StepInterrupted");
    assert!(err.message.contains("\"transfer\""), "{err}");
}

#[tokio::test]
async fn an_interrupted_at_most_once_attempt_counts_as_failed_and_the_next_attempt_runs() {
    let (started, finished) = (Calls::default(), Calls::default());
    let rt = TestRuntime::new();
    let exec = rt
        .start(
            transfer(
                started.clone(),
                finished.clone(),
                StepSemantics::AtMostOncePerRetry,
                RetryPolicy::fixed(Duration::from_secs(2)).max_attempts(3),
            ),
            (),
        )
        .await
        .unwrap();
    assert!(exec.crash_during_step("transfer").await.unwrap());
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Succeeded);
    assert_eq!((started.get(), finished.get()), (2, 1));
    assert_eq!(
        exec.result::<u32>().await.unwrap(),
        2,
        "attempt 2, not 1 again"
    );
}

#[tokio::test]
async fn an_at_least_once_step_killed_mid_body_runs_the_same_attempt_again() {
    let (started, finished) = (Calls::default(), Calls::default());
    let rt = TestRuntime::new();
    let exec = rt
        .start(
            transfer(
                started.clone(),
                finished.clone(),
                StepSemantics::AtLeastOncePerRetry,
                RetryPolicy::none(),
            ),
            (),
        )
        .await
        .unwrap();
    assert!(exec.crash_during_step("transfer").await.unwrap());
    assert!(
        exec.operation("transfer").await.unwrap().is_none(),
        "nothing recorded before the body"
    );
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Succeeded);
    assert_eq!((started.get(), finished.get()), (2, 1));
    assert_eq!(exec.result::<u32>().await.unwrap(), 1, "the same attempt");
}
