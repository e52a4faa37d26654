//! Steps and timers under the test runtime: replay, retries, semantics, limits.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use durafn::prelude::*;
use durafn::testing::TestRuntime;
use durafn_runtime::model::{MAX_PAYLOAD_BYTES, OpStatus};
use serde_json::json;

mod common;
use common::Calls;

#[tokio::test]
async fn completed_steps_are_not_run_again_on_replay() {
    let calls = Calls::default();
    let c = calls.clone();
    let h = handler(move |ctx: DurableContext, n: u32| {
        let c = c.clone();
        async move {
            let a: u32 = ctx
                .step("a", |_| async { Ok::<_, DurableError>(c.hit() + n) })
                .await?;
            ctx.sleep("wait", Duration::from_secs(60)).await?;
            let b: u32 = ctx
                .step("b", |_| async move { Ok::<_, DurableError>(a * 10) })
                .await?;
            Ok(b)
        }
    });
    let rt = TestRuntime::new();
    let exec = rt.start(h, 4).await.unwrap();
    let first = exec.run_once().await.unwrap().unwrap();
    assert_eq!(first.status, "SUSPENDED");
    assert_eq!(first.wake_at, Some(rt.now().plus(Duration::from_secs(60))));
    assert_eq!(calls.get(), 1);
    assert_eq!(
        exec.run_once().await.unwrap(),
        None,
        "not due before the timer"
    );
    rt.advance(Duration::from_secs(60));
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Succeeded);
    assert_eq!(calls.get(), 1, "step a replayed from the journal");
    assert_eq!(exec.result::<u32>().await.unwrap(), 50);
}

#[tokio::test]
async fn terminal_errors_stop_retries_and_retryable_ones_use_the_policy() {
    let calls = Calls::default();
    let c = calls.clone();
    let h = handler(move |ctx: DurableContext, terminal: bool| {
        let c = c.clone();
        async move {
            ctx.step("flaky", |_| async move {
                c.hit();
                let e = DurableError::new("Boom", "no luck");
                Err::<(), _>(if terminal {
                    DurableError::terminal(e)
                } else {
                    e
                })
            })
            .retry(RetryPolicy::fixed(Duration::from_secs(5)).max_attempts(4))
            .await?;
            Ok(())
        }
    });
    let rt = TestRuntime::new();
    let exec = rt.start(h.clone(), true).await.unwrap();
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Failed);
    assert_eq!(calls.get(), 1, "a terminal error is not retried");

    let exec = rt.start(h, false).await.unwrap();
    let t0 = rt.now();
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Failed);
    assert_eq!(calls.get(), 1 + 4);
    assert_eq!(
        exec.invocations(),
        4,
        "each retry is a new invocation after a suspension"
    );
    assert_eq!(
        rt.now().0 - t0.0,
        15_000,
        "three fixed 5 s backoffs in virtual time"
    );
    let op = exec.operation("flaky").await.unwrap().unwrap();
    assert_eq!((op.status, op.attempt), (OpStatus::Failed, 4));
    let err = exec.error().await.unwrap().unwrap();
    assert_eq!(err.error_type, "Boom");
    assert_eq!(
        err.message,
        "step \"flaky\" failed after 4 attempts: no luck"
    );
}

#[tokio::test]
async fn a_recorded_failure_is_raised_identically_on_replay_and_can_be_caught() {
    let calls = Calls::default();
    let c = calls.clone();
    let h = handler(move |ctx: DurableContext, _: ()| {
        let c = c.clone();
        async move {
            let r = ctx
                .step("pay", |_| async move {
                    c.hit();
                    Err::<(), _>(DurableError::terminal(DurableError::new(
                        "Declined",
                        "card declined",
                    )))
                })
                .await;
            let caught = match r {
                Err(e) => e.to_string(),
                Ok(()) => "no error".into(),
            };
            ctx.sleep("pause", Duration::from_secs(1)).await?;
            Ok(caught)
        }
    });
    let rt = TestRuntime::new();
    let exec = rt.start(h, ()).await.unwrap();
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Succeeded);
    assert_eq!(
        exec.invocations(),
        2,
        "the second invocation replays the failure"
    );
    assert_eq!(calls.get(), 1);
    assert_eq!(
        exec.result::<String>().await.unwrap(),
        "Declined: step \"pay\" failed after 1 attempt: card declined"
    );
}

#[tokio::test]
async fn a_panicking_step_is_recorded_and_retried() {
    let calls = Calls::default();
    let c = calls.clone();
    let h = handler(move |ctx: DurableContext, _: ()| {
        let c = c.clone();
        async move {
            ctx.step("shaky", |_| async move {
                if c.hit() < 3 {
                    panic!("index out of bounds");
                }
                Ok::<_, DurableError>("ok".to_string())
            })
            .await
        }
    });
    let rt = TestRuntime::new();
    let exec = rt.start(h, ()).await.unwrap();
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Succeeded);
    assert_eq!(calls.get(), 3);
    let op = exec.operation("shaky").await.unwrap().unwrap();
    assert_eq!(op.attempt, 3);
}

#[tokio::test]
async fn a_panicking_handler_blocks_the_execution() {
    let h = handler(|_ctx: DurableContext, _: ()| async move {
        if true {
            panic!("bug in the handler");
        }
        Ok(())
    });
    let rt = TestRuntime::new();
    let exec = rt.start(h, ()).await.unwrap();
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Blocked);
    let err = exec.error().await.unwrap().unwrap();
    assert!(err.message.contains("bug in the handler"), "{err}");
}

#[tokio::test]
async fn an_at_most_once_step_interrupted_by_a_crash_is_not_rerun() {
    let calls = Calls::default();
    let c = calls.clone();
    let h = handler(move |ctx: DurableContext, _: ()| {
        let c = c.clone();
        async move {
            ctx.step("transfer", |s| async move {
                c.hit();
                if s.attempt() == 1 {
                    // The process dies during the first attempt.
                    std::future::pending::<()>().await;
                }
                Ok::<_, DurableError>(s.attempt())
            })
            .semantics(StepSemantics::AtMostOncePerRetry)
            .retry(RetryPolicy::fixed(Duration::from_secs(1)))
            .await
        }
    });
    let rt = TestRuntime::new();
    let exec = rt.start(h, ()).await.unwrap();
    // Checkpoint 1 is the "attempt 1 started" record; the crash comes after it.
    assert!(exec.crash_after_checkpoints(1).await.unwrap());
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Succeeded);
    assert_eq!(calls.get(), 2, "attempt 1 ran once, attempt 2 once");
    assert_eq!(exec.result::<u32>().await.unwrap(), 2);
}

#[tokio::test]
async fn an_at_least_once_step_interrupted_by_a_crash_runs_the_same_attempt_again() {
    let calls = Calls::default();
    let c = calls.clone();
    let h = handler(move |ctx: DurableContext, _: ()| {
        let c = c.clone();
        async move {
            ctx.step("first", |_| async { Ok::<_, DurableError>(1) })
                .await?;
            ctx.step("second", |s| async move {
                if c.hit() == 1 {
                    // The process dies in the middle of this attempt.
                    std::future::pending::<()>().await;
                }
                Ok::<_, DurableError>(s.attempt())
            })
            .await
        }
    });
    let rt = TestRuntime::new();
    let exec = rt.start(h, ()).await.unwrap();
    assert!(exec.crash_after_checkpoints(1).await.unwrap());
    assert_eq!(calls.get(), 1);
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Succeeded);
    assert_eq!(calls.get(), 2, "the interrupted attempt ran again");
    assert_eq!(
        exec.result::<u32>().await.unwrap(),
        1,
        "as the same attempt"
    );
    assert_eq!(exec.operation("first").await.unwrap().unwrap().rev, 1);
}

#[tokio::test]
async fn a_step_timeout_fails_the_attempt_retryably() {
    let calls = Calls::default();
    let c = calls.clone();
    let h = handler(move |ctx: DurableContext, _: ()| {
        let c = c.clone();
        async move {
            ctx.step("slow", |_| async move {
                if c.hit() == 1 {
                    std::future::pending::<()>().await;
                }
                Ok::<_, DurableError>("fast enough".to_string())
            })
            .timeout(Duration::from_millis(20))
            .await
        }
    });
    let rt = TestRuntime::new();
    let exec = rt.start(h, ()).await.unwrap();
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Succeeded);
    assert_eq!(calls.get(), 2);
}

#[tokio::test]
async fn an_oversized_step_result_is_a_clear_terminal_error() {
    let h = handler(|ctx: DurableContext, _: ()| async move {
        ctx.step("download", |_| async {
            Ok::<_, DurableError>("x".repeat(MAX_PAYLOAD_BYTES + 1))
        })
        .await?;
        Ok(())
    });
    let rt = TestRuntime::new();
    let exec = rt.start(h, ()).await.unwrap();
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Failed);
    let err = exec.error().await.unwrap().unwrap();
    assert_eq!(err.error_type, "PayloadError");
    assert!(err.message.contains("step \"download\" result"), "{err}");
    assert!(
        err.message.contains(&MAX_PAYLOAD_BYTES.to_string()),
        "{err}"
    );
    assert_eq!(
        exec.operation("download").await.unwrap().unwrap().attempt,
        1,
        "not retried"
    );
}

#[tokio::test]
async fn an_oversized_start_input_is_refused() {
    let rt = TestRuntime::new();
    let h = handler(|_ctx: DurableContext, _: String| async { Ok(()) });
    let err = rt
        .start(h, "i".repeat(MAX_PAYLOAD_BYTES + 1))
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("execution input"), "{err}");
    assert!(err.contains("limit"), "{err}");
}

#[tokio::test]
async fn max_steps_per_invocation_yields_between_steps() {
    let h = handler(|ctx: DurableContext, _: ()| async move {
        let mut total = 0u32;
        for i in 0..5u32 {
            total += ctx
                .step(
                    &format!("s{i}"),
                    |_| async move { Ok::<_, DurableError>(i) },
                )
                .await?;
        }
        Ok(total)
    });
    let rt = TestRuntime::new().max_steps_per_invocation(1);
    let exec = rt.start(h, ()).await.unwrap();
    let t0 = rt.now();
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Succeeded);
    assert_eq!(exec.invocations(), 5);
    assert_eq!(rt.now(), t0, "yields are due at once");
    assert_eq!(exec.result::<u32>().await.unwrap(), 10);
}

#[tokio::test]
async fn sleep_until_a_past_time_fires_at_once_and_long_sleeps_are_refused() {
    let h = handler(|ctx: DurableContext, _: ()| async move {
        ctx.sleep_until("past", Timestamp(0)).await?;
        let r = ctx
            .sleep("forever", Duration::from_secs(400 * 24 * 3600))
            .await;
        Ok(r.err().map(|e| e.to_string()))
    });
    let rt = TestRuntime::new();
    let exec = rt.start(h, ()).await.unwrap();
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Succeeded);
    assert_eq!(exec.invocations(), 1);
    let msg: Option<String> = exec.result().await.unwrap();
    assert!(msg.unwrap_or_default().contains("one-year limit"));
}

#[tokio::test]
async fn joined_branches_suspend_together_and_resume_without_rerunning() {
    let calls = Calls::default();
    let c = calls.clone();
    let h = handler(move |ctx: DurableContext, _: ()| {
        let c = c.clone();
        async move {
            let (c1, c2) = (c.clone(), c.clone());
            // Both ids are claimed here, at creation, so join! is deterministic.
            let a = ctx.step("a", |_| async move { Ok::<_, DurableError>(c1.hit()) });
            let short = ctx.sleep("short", Duration::from_secs(5));
            let long = ctx.sleep("long", Duration::from_secs(30));
            let b = ctx.step("b", |_| async move { Ok::<_, DurableError>(c2.hit()) });
            let (a, s, l, b) = futures::join!(a, short, long, b);
            s?;
            l?;
            Ok(a? + b?)
        }
    });
    let rt = TestRuntime::new();
    let exec = rt.start(h, ()).await.unwrap();
    let first = exec.run_once().await.unwrap().unwrap();
    assert_eq!(first.status, "SUSPENDED");
    assert_eq!(
        first.wake_at,
        Some(rt.now().plus(Duration::from_secs(5))),
        "earliest timer"
    );
    assert_eq!(calls.get(), 2);
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Succeeded);
    assert_eq!(calls.get(), 2, "finished branches are not re-run");
    assert_eq!(exec.result::<u32>().await.unwrap(), 3);
    let ids: Vec<_> = exec
        .operations()
        .await
        .unwrap()
        .into_iter()
        .map(|o| (o.id, o.name))
        .collect();
    assert_eq!(
        ids,
        vec![
            ("1".to_string(), "a".to_string()),
            ("2".into(), "short".into()),
            ("3".into(), "long".into()),
            ("4".into(), "b".into())
        ]
    );
}

#[tokio::test]
async fn a_changed_operation_order_blocks_the_execution_with_a_clear_error() {
    let version = Arc::new(AtomicU32::new(1));
    let v = version.clone();
    let h = handler(move |ctx: DurableContext, _: ()| {
        let v = v.clone();
        async move {
            if v.load(Ordering::SeqCst) == 1 {
                ctx.step("charge", |_| async { Ok::<_, DurableError>(1) })
                    .await?;
            } else {
                // A deploy renamed the first step while executions were running.
                ctx.step("authorize", |_| async { Ok::<_, DurableError>(1) })
                    .await?;
            }
            ctx.sleep("wait", Duration::from_secs(10)).await?;
            Ok(())
        }
    });
    let rt = TestRuntime::new();
    let exec = rt.start(h, ()).await.unwrap();
    assert_eq!(exec.run_once().await.unwrap().unwrap().status, "SUSPENDED");
    version.store(2, Ordering::SeqCst);
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Blocked);
    let err = exec.error().await.unwrap().unwrap();
    assert_eq!(err.error_type, "NonDeterministic");
    assert!(
        err.message.contains(
            "at operation 1: the journal recorded STEP \"charge\" but the handler now starts STEP \"authorize\""
        ),
        "{err}"
    );
    assert_eq!(
        err.data,
        Some(json!({
            "op_id": "1",
            "expected": {"type": "STEP", "name": "charge"},
            "actual": {"type": "STEP", "name": "authorize"}
        }))
    );
    // Nothing is lost: the journal still holds the recorded step.
    let ops = exec.operations().await.unwrap();
    assert_eq!(ops[0].name, "charge");
    assert_eq!(ops[0].status, OpStatus::Succeeded);
}

#[tokio::test]
async fn a_changed_operation_type_is_non_deterministic_even_if_the_handler_ignores_it() {
    let version = Arc::new(AtomicU32::new(1));
    let v = version.clone();
    let h = handler(move |ctx: DurableContext, _: ()| {
        let v = v.clone();
        async move {
            if v.load(Ordering::SeqCst) == 1 {
                ctx.sleep("x", Duration::from_secs(1)).await?;
            } else {
                // Created but never awaited, then the handler returns: still blocked.
                let _unused = ctx.step("x", |_| async { Ok::<_, DurableError>(()) });
            }
            Ok(())
        }
    });
    let rt = TestRuntime::new();
    let exec = rt.start(h, ()).await.unwrap();
    exec.run_once().await.unwrap();
    version.store(2, Ordering::SeqCst);
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Blocked);
    let err = exec.error().await.unwrap().unwrap();
    assert!(err.message.contains("SLEEP \"x\""), "{err}");
    assert!(err.message.contains("STEP \"x\""), "{err}");
}

#[tokio::test]
async fn a_cancelled_execution_stops_at_its_next_step_and_is_not_invoked_again() {
    let rt = TestRuntime::new().cancel_check_interval(Duration::ZERO);
    let after = Calls::default();
    let (a, store) = (after.clone(), rt.store());
    let h = handler(move |ctx: DurableContext, _: ()| {
        let (a, store) = (a.clone(), store.clone());
        async move {
            let id = ctx.execution_id().clone();
            ctx.step("first", move |_| async move {
                // Someone cancels the execution while this step runs.
                store
                    .cancel(&id, Timestamp(0))
                    .await
                    .map_err(|e| DurableError::msg(e.to_string()))?;
                Ok::<_, DurableError>(())
            })
            .await?;
            ctx.step(
                "second",
                move |_| async move { Ok::<_, DurableError>(a.hit()) },
            )
            .await?;
            Ok(())
        }
    });
    let exec = rt.start(h, ()).await.unwrap();
    let report = exec.run_once().await.unwrap().unwrap();
    assert_eq!(report.status, "CANCELLED");
    assert_eq!(after.get(), 0, "the step after the cancel did not run");
    assert_eq!(exec.status().await.unwrap(), Status::Cancelled);
    assert!(
        exec.run_once().await.unwrap().is_none(),
        "no further invocations"
    );
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Cancelled);
}

/// Counts the store calls made through it, by method.
struct Counting(
    Arc<dyn durafn_runtime::store::Store>,
    Arc<std::sync::Mutex<std::collections::BTreeMap<&'static str, usize>>>,
);

impl durafn_runtime::store::Wrapper for Counting {
    fn inner(&self) -> &dyn durafn_runtime::store::Store {
        &*self.0
    }
    fn around<'a, T, F>(
        &'a self,
        what: &'static str,
        mut call: F,
    ) -> impl std::future::Future<Output = durafn_runtime::Result<T>> + Send + 'a
    where
        T: Send + 'a,
        F: FnMut() -> durafn_runtime::store::InnerCall<'a, T> + Send + 'a,
    {
        *self
            .1
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(what)
            .or_default() += 1;
        call()
    }
}

/// One write per step and one for the end, and each step's checkpoint is
/// durable before the handler goes on (the next step's body sees it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_checkpoint_is_durable_before_the_handler_goes_on() {
    let base = TestRuntime::new(); // owns the SQLite file
    let calls = Arc::new(std::sync::Mutex::new(std::collections::BTreeMap::new()));
    let store: Arc<dyn durafn_runtime::store::Store> =
        Arc::new(Counting(base.store(), calls.clone()));
    let seen = store.clone();
    let h = handler(move |ctx: DurableContext, _: ()| {
        let seen = seen.clone();
        async move {
            let a: u32 = ctx
                .step("a", |_| async { Ok::<_, DurableError>(1) })
                .await?;
            let id = ctx.execution_id().clone();
            let recorded: usize = ctx
                .step("b", move |_| async move {
                    // What step a returned is already in the store.
                    let j = seen.load_journal(&id).await.map_err(DurableError::from)?;
                    let j = j.ok_or_else(|| DurableError::new("Gone", "no journal"))?;
                    Ok::<_, DurableError>(j.operations.iter().filter(|o| o.name == "a").count())
                })
                .await?;
            let c: u32 = ctx
                .step("c", |_| async { Ok::<_, DurableError>(3) })
                .await?;
            Ok(json!({ "a": a, "recorded_before_b": recorded, "c": c }))
        }
    });
    let rt = TestRuntime::with_store(store);
    let exec = rt.start(h, ()).await.unwrap();
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Succeeded);
    let out: serde_json::Value = exec.result().await.unwrap();
    assert_eq!(out, json!({ "a": 1, "recorded_before_b": 1, "c": 3 }));
    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls.get("put_operation"), Some(&3), "{calls:?}");
    assert_eq!(calls.get("finish"), Some(&1), "{calls:?}");
    // The journal was read twice: by the invocation, and by step b's body.
    assert_eq!(calls.get("load_journal"), Some(&2), "{calls:?}");
    // All three steps are in the journal.
    assert_eq!(exec.operations().await.unwrap().len(), 3);
}

/// What an invocation parks on (a timer, a retry's backoff) is recorded
/// with its suspension: one write, not two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_operation_is_recorded_with_the_suspension() {
    let base = TestRuntime::new(); // owns the SQLite file
    let calls = Arc::new(std::sync::Mutex::new(std::collections::BTreeMap::new()));
    let store: Arc<dyn durafn_runtime::store::Store> =
        Arc::new(Counting(base.store(), calls.clone()));
    let tries = Arc::new(AtomicU32::new(0));
    let t = tries.clone();
    let h = handler(move |ctx: DurableContext, _: ()| {
        let t = t.clone();
        async move {
            ctx.step("a", |_| async { Ok::<_, DurableError>(1) })
                .await?;
            ctx.sleep("nap", Duration::from_secs(60)).await?;
            let n: u32 = ctx
                .step("flaky", move |_| {
                    let t = t.clone();
                    async move {
                        match t.fetch_add(1, Ordering::SeqCst) {
                            0 => Err(DurableError::new("Flaky", "first try fails")),
                            n => Ok(n + 1),
                        }
                    }
                })
                .await?;
            Ok(n)
        }
    });
    let rt = TestRuntime::with_store(store);
    let exec = rt.start(h, ()).await.unwrap();
    let first = exec.run_once().await.unwrap().unwrap();
    assert_eq!(first.status, "SUSPENDED");
    {
        let calls = calls.lock().unwrap();
        // Step a's checkpoint; the timer rides with the suspension.
        assert_eq!(calls.get("put_operation"), Some(&1), "{calls:?}");
        assert_eq!(calls.get("suspend_with"), Some(&1), "{calls:?}");
        assert_eq!(calls.get("suspend"), None, "{calls:?}");
    }
    let nap = exec
        .operation("nap")
        .await
        .unwrap()
        .expect("the timer is recorded");
    assert_eq!(nap.status, OpStatus::Pending);
    assert_eq!(nap.wake_at, exec.execution().await.unwrap().due_at);
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Succeeded);
    let out: u32 = exec.result().await.unwrap();
    assert_eq!(out, 2);
    let calls = calls.lock().unwrap().clone();
    // Two suspensions with their records (the timer; the retry's backoff),
    // each one write.
    assert_eq!(calls.get("suspend_with"), Some(&2), "{calls:?}");
    assert_eq!(calls.get("suspend"), None, "{calls:?}");
    let flaky = exec.operation("flaky").await.unwrap().unwrap();
    assert_eq!((flaky.status, flaky.attempt), (OpStatus::Succeeded, 2));
}

/// A timer's record, deferred to the suspension, that another invocation
/// (a zombie) recorded differently meanwhile: the suspension is not
/// written; the invocation ends due at once, and the next one replays the
/// recorded timer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deferred_record_that_conflicts_reruns_on_the_recorded_one() {
    let rt = TestRuntime::new();
    let store = rt.store();
    let runs = Arc::new(AtomicU32::new(0));
    let (s, r) = (store.clone(), runs.clone());
    let h = handler(move |ctx: DurableContext, _: ()| {
        let (store, runs) = (s.clone(), r.clone());
        async move {
            ctx.step("a", move |sc| async move {
                runs.fetch_add(1, Ordering::SeqCst);
                // The zombie's timer (operation 2), already fired.
                let theirs = durafn_runtime::model::Operation {
                    id: "2".into(),
                    kind: durafn_runtime::model::OpKind::Sleep,
                    name: "nap".into(),
                    status: OpStatus::Succeeded,
                    attempt: 0,
                    result: None,
                    error: None,
                    started_at: durafn_runtime::model::Timestamp(1),
                    ended_at: Some(durafn_runtime::model::Timestamp(2)),
                    wake_at: Some(durafn_runtime::model::Timestamp(2)),
                    rev: 1,
                };
                store
                    .put_operation(sc.execution_id(), &theirs)
                    .await
                    .map_err(DurableError::from)?;
                Ok::<_, DurableError>(1)
            })
            .await?;
            ctx.sleep("nap", Duration::from_secs(3_600)).await?;
            Ok("woke")
        }
    });
    let exec = rt.start(h, ()).await.unwrap();
    let first = exec.run_once().await.unwrap().unwrap();
    assert_eq!(first.status, "SUSPENDED", "{first:?}");
    let e = exec.execution().await.unwrap();
    assert_eq!(e.status, Status::Suspended);
    assert_eq!(e.due_at, Some(rt.now()), "due at once, not in an hour");
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Succeeded);
    let out: String = exec.result().await.unwrap();
    assert_eq!(out, "woke");
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    let nap = exec.operation("nap").await.unwrap().unwrap();
    assert_eq!(
        nap.wake_at,
        Some(durafn_runtime::model::Timestamp(2)),
        "the recorded timer"
    );
}
