//! Child contexts, parallel, map, and the deterministic helpers.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

use durafn::prelude::*;
use durafn::testing::TestRuntime;
use durafn_runtime::model::{OpKind, OpStatus};
use serde_json::json;

mod common;
use common::Calls;

#[tokio::test]
async fn a_child_context_is_checkpointed_as_a_unit_and_not_rerun() {
    let calls = Calls::default();
    let c = calls.clone();
    let h = handler(move |ctx: DurableContext, _: ()| {
        let c = c.clone();
        async move {
            let sum: u32 = ctx
                .child("pair", |child| async move {
                    let a: u32 = child
                        .step("a", |_| async move { Ok::<_, DurableError>(c.hit()) })
                        .await?;
                    child.sleep("nap", Duration::from_secs(5)).await?;
                    let b: u32 = child
                        .step("b", |_| async { Ok::<_, DurableError>(10) })
                        .await?;
                    Ok(a + b)
                })
                .await?;
            ctx.sleep("after", Duration::from_secs(5)).await?;
            let after: u32 = ctx
                .step("after-step", |_| async { Ok::<_, DurableError>(100) })
                .await?;
            Ok(sum + after)
        }
    });
    let rt = TestRuntime::new();
    let exec = rt.start(h, ()).await.unwrap();
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Succeeded);
    assert_eq!(exec.result::<u32>().await.unwrap(), 111);
    assert_eq!(calls.get(), 1);
    assert_eq!(
        exec.invocations(),
        3,
        "suspended inside the child, then after it"
    );
    let ids: Vec<_> = exec
        .operations()
        .await
        .unwrap()
        .into_iter()
        .map(|o| (o.id, o.kind, o.name))
        .collect();
    assert_eq!(
        ids,
        vec![
            ("1".to_string(), OpKind::Child, "pair".to_string()),
            ("1.1".into(), OpKind::Step, "a".into()),
            ("1.2".into(), OpKind::Sleep, "nap".into()),
            ("1.3".into(), OpKind::Step, "b".into()),
            ("2".into(), OpKind::Sleep, "after".into()),
            ("3".into(), OpKind::Step, "after-step".into()),
        ]
    );
}

#[tokio::test]
async fn a_child_error_propagates_and_can_be_caught_identically_on_replay() {
    let h = handler(|ctx: DurableContext, _: ()| async move {
        let r: Result<u32, _> = ctx
            .child("risky", |child| async move {
                child
                    .step("boom", |_| async {
                        Err::<u32, _>(DurableError::terminal(DurableError::new("Boom", "no")))
                    })
                    .await
            })
            .await;
        let caught = r.unwrap_err().to_string();
        ctx.sleep("pause", Duration::from_secs(1)).await?;
        Ok(caught)
    });
    let rt = TestRuntime::new();
    let exec = rt.start(h, ()).await.unwrap();
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Succeeded);
    assert_eq!(
        exec.result::<String>().await.unwrap(),
        "Boom: \"risky\" failed: step \"boom\" failed after 1 attempt: no"
    );
    let child = exec.operation("risky").await.unwrap().unwrap();
    assert_eq!(child.status, OpStatus::Failed);
}

#[tokio::test]
async fn map_keeps_input_order_limits_concurrency_and_resumes_without_rerunning() {
    let calls = Calls::default();
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (c, r, p) = (calls.clone(), running.clone(), peak.clone());
    let h = handler(move |ctx: DurableContext, items: Vec<u32>| {
        let (c, r, p) = (c.clone(), r.clone(), p.clone());
        async move {
            let result = ctx
                .map("square", items, move |branch, n: u32, i| {
                    let (c, r, p) = (c.clone(), r.clone(), p.clone());
                    async move {
                        let v: u32 = branch
                            .step("compute", move |_| async move {
                                let now = r.fetch_add(1, Ordering::SeqCst) + 1;
                                p.fetch_max(now, Ordering::SeqCst);
                                c.hit();
                                tokio::task::yield_now().await;
                                r.fetch_sub(1, Ordering::SeqCst);
                                Ok::<_, DurableError>(n * n)
                            })
                            .await?;
                        // Odd items wait on a timer: the batch suspends mid-way.
                        if i % 2 == 1 {
                            branch.sleep("settle", Duration::from_secs(30)).await?;
                        }
                        Ok(v)
                    }
                })
                .max_concurrency(2)
                .await?;
            assert_eq!(result.completion_reason, CompletionReason::AllCompleted);
            result.into_values()
        }
    });
    let rt = TestRuntime::new();
    let exec = rt.start(h, vec![5, 1, 4, 2, 3]).await.unwrap();
    let first = exec.run_once().await.unwrap().unwrap();
    assert_eq!(first.status, "SUSPENDED");
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Succeeded);
    assert_eq!(
        exec.result::<Vec<u32>>().await.unwrap(),
        vec![25, 1, 16, 4, 9]
    );
    assert_eq!(calls.get(), 5, "no branch ran its step twice");
    assert!(
        peak.load(Ordering::SeqCst) <= 2,
        "max_concurrency respected"
    );
    let branch_ids: Vec<_> = exec
        .operations()
        .await
        .unwrap()
        .into_iter()
        .filter(|o| o.kind == OpKind::Child && o.id.starts_with("1."))
        .map(|o| (o.id, o.name))
        .collect();
    assert_eq!(branch_ids[0], ("1.1".to_string(), "square[0]".to_string()));
    assert_eq!(branch_ids.len(), 5);
}

fn outcome_batch(completion: Completion, fail: Vec<bool>) -> Handler {
    handler(move |ctx: DurableContext, _: ()| {
        let (completion, fail) = (completion.clone(), fail.clone());
        async move {
            let branches = fail
                .into_iter()
                .enumerate()
                .map(|(i, f)| {
                    Branch::new(move |b: DurableContext| async move {
                        b.step("work", move |_| async move {
                            if f {
                                Err(DurableError::terminal(DurableError::new(
                                    "Bad",
                                    format!("item {i}"),
                                )))
                            } else {
                                Ok(i)
                            }
                        })
                        .await
                    })
                })
                .collect();
            let r = ctx
                .parallel("batch", branches)
                .completion(completion)
                .await?;
            Ok(json!({
                "reason": r.completion_reason,
                "ok": r.succeeded(),
                "failed": r.errors().len(),
                "items": r.items,
            }))
        }
    })
}

async fn run_batch(completion: Completion, fail: Vec<bool>) -> serde_json::Value {
    let rt = TestRuntime::new();
    let exec = rt.start(outcome_batch(completion, fail), ()).await.unwrap();
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Succeeded);
    exec.result().await.unwrap()
}

#[tokio::test]
async fn completion_rule_edge_cases() {
    let empty = run_batch(Completion::all(), vec![]).await;
    assert_eq!(empty["reason"], "ALL_COMPLETED");
    assert_eq!(empty["items"], json!([]));

    let all_fail_tolerated =
        run_batch(Completion::all().tolerated_failures(3), vec![true; 3]).await;
    assert_eq!(all_fail_tolerated["reason"], "ALL_COMPLETED");
    assert_eq!(all_fail_tolerated["failed"], 3);

    let at_threshold = run_batch(
        Completion::all().tolerated_failure_percent(25.0),
        vec![true, false, false, false],
    )
    .await;
    assert_eq!(
        at_threshold["reason"], "ALL_COMPLETED",
        "25% failed, 25% tolerated"
    );
    let over = run_batch(
        Completion::all().tolerated_failure_percent(25.0),
        vec![true, true, false, false],
    )
    .await;
    assert_eq!(over["reason"], "FAILURE_TOLERANCE_EXCEEDED");

    let strict = run_batch(Completion::all(), vec![false, true, false]).await;
    assert_eq!(strict["reason"], "FAILURE_TOLERANCE_EXCEEDED");
    assert_eq!(strict["items"][1]["status"], "FAILED");
    assert_eq!(strict["items"][1]["error"]["type"], "Bad");

    let early = run_batch(
        Completion::all().min_successful(1).tolerated_failures(9),
        vec![false, false, false],
    )
    .await;
    assert_eq!(early["reason"], "MIN_SUCCESSFUL_REACHED");
    assert_eq!(early["ok"], 1);
}

#[tokio::test]
async fn max_concurrency_zero_is_rejected_with_a_clear_error() {
    let h = handler(|ctx: DurableContext, _: ()| async move {
        let r = ctx
            .map("m", vec![1u32], |_c, n, _| async move { Ok(n) })
            .max_concurrency(0)
            .await;
        Ok(r.err().map(|e| e.to_string()))
    });
    let rt = TestRuntime::new();
    let exec = rt.start(h, ()).await.unwrap();
    exec.run_until_settled().await.unwrap();
    let msg: Option<String> = exec.result().await.unwrap();
    assert!(msg.unwrap().contains("max_concurrency must be at least 1"));
}

#[tokio::test]
async fn uuid_random_and_now_are_the_same_on_every_replay() {
    let h = handler(|ctx: DurableContext, _: ()| async move {
        let first = (ctx.uuid().to_string(), ctx.random(), ctx.now().await?.0);
        ctx.sleep("replay-me", Duration::from_secs(60)).await?;
        let second = ctx.uuid().to_string();
        // Record what the first run saw, to compare with the final replay.
        let seen = first.clone();
        let recorded: (String, f64, i64) = ctx
            .step("seen", move |_| async move { Ok::<_, DurableError>(seen) })
            .await?;
        Ok(json!({ "replayed": first, "recorded": recorded, "second": second }))
    });
    let rt = TestRuntime::new();
    let exec = rt.start(h, ()).await.unwrap();
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Succeeded);
    let v: serde_json::Value = exec.result().await.unwrap();
    assert_eq!(
        v["replayed"], v["recorded"],
        "uuid, random and now replay identically"
    );
    assert_ne!(v["replayed"][0], v["second"], "successive uuids differ");
    let r = v["replayed"][1].as_f64().unwrap();
    assert!((0.0..1.0).contains(&r));
}

#[tokio::test]
async fn patched_keeps_old_executions_on_the_old_path() {
    let deployed = Arc::new(AtomicU32::new(1));
    let d = deployed.clone();
    let h = handler(move |ctx: DurableContext, _: ()| {
        let d = d.clone();
        async move {
            ctx.step("start", |_| async { Ok::<_, DurableError>(()) })
                .await?;
            ctx.sleep("wait", Duration::from_secs(10)).await?;
            let path = if d.load(Ordering::SeqCst) >= 2 && ctx.patched("new-pricing").await? {
                "new"
            } else {
                "old"
            };
            ctx.step("price", move |_| async move {
                Ok::<_, DurableError>(path.to_string())
            })
            .await
        }
    });
    let rt = TestRuntime::new();
    // An execution that got past the patch point under the old code...
    let old = rt.start(h.clone(), ()).await.unwrap();
    assert_eq!(old.run_until_settled().await.unwrap(), Status::Succeeded);
    // ...and one that is mid-way when the new code is deployed.
    let mid = rt.start(h.clone(), ()).await.unwrap();
    mid.run_once().await.unwrap();
    deployed.store(2, Ordering::SeqCst);
    assert_eq!(mid.run_until_settled().await.unwrap(), Status::Succeeded);
    assert_eq!(
        mid.result::<String>().await.unwrap(),
        "new",
        "it reached the point under new code"
    );
    // Replaying the old execution under the new code stays on the old path.
    let new = rt.start(h, ()).await.unwrap();
    assert_eq!(new.run_until_settled().await.unwrap(), Status::Succeeded);
    assert_eq!(new.result::<String>().await.unwrap(), "new");
    assert_eq!(old.result::<String>().await.unwrap(), "old");
    let marker = mid.operation("patch:new-pricing").await.unwrap();
    assert!(marker.is_some());
}

#[tokio::test]
async fn an_old_journal_without_the_marker_replays_the_old_path_without_blocking() {
    let deployed = Arc::new(AtomicU32::new(1));
    let d = deployed.clone();
    let h = handler(move |ctx: DurableContext, _: ()| {
        let d = d.clone();
        async move {
            let new = d.load(Ordering::SeqCst) >= 2 && ctx.patched("v2").await?;
            let name = if new { "v2-step" } else { "v1-step" };
            ctx.step(name, |_| async { Ok::<_, DurableError>(()) })
                .await?;
            ctx.sleep("wait", Duration::from_secs(10)).await?;
            Ok(new)
        }
    });
    let rt = TestRuntime::new();
    let exec = rt.start(h, ()).await.unwrap();
    exec.run_once().await.unwrap(); // v1-step recorded at op 1, then suspended
    deployed.store(2, Ordering::SeqCst);
    assert_eq!(
        exec.run_until_settled().await.unwrap(),
        Status::Succeeded,
        "not BLOCKED"
    );
    assert!(!exec.result::<bool>().await.unwrap());
}

#[tokio::test]
async fn continue_as_new_ends_this_execution_and_starts_the_next_with_an_empty_journal() {
    let h = handler(|ctx: DurableContext, n: u32| async move {
        ctx.step("work", move |_| async move { Ok::<_, DurableError>(n) })
            .await?;
        if n < 2 {
            return Err(ctx.continue_as_new(&(n + 1))?);
        }
        Ok(n)
    });
    let rt = TestRuntime::new();
    let exec = rt.start_named("loop", h, 0u32).await.unwrap();
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Succeeded);
    let out: serde_json::Value = exec.result().await.unwrap();
    assert_eq!(out, json!({ "continued_as_new": "loop:run-2" }));
    let next = rt
        .store()
        .load_journal(&durafn_runtime::model::ExecutionId::new("loop:run-2").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(next.execution.input, json!(1));
    assert!(next.operations.is_empty(), "a fresh journal");
}

fn child_fn() -> Handler {
    handler(|ctx: DurableContext, n: i64| async move {
        ctx.sleep("think", Duration::from_secs(30)).await?;
        if n < 0 {
            return Err(DurableError::terminal(DurableError::new(
                "Negative",
                "no negatives",
            )));
        }
        ctx.step(
            "double",
            move |_| async move { Ok::<_, DurableError>(n * 2) },
        )
        .await
    })
}

#[tokio::test]
async fn invoke_runs_a_child_execution_and_awaits_its_result_durably() {
    let h = handler(|ctx: DurableContext, n: i64| async move {
        let doubled: i64 = ctx.invoke("double-it", "doubler", n).await?;
        let failed: Result<i64, _> = ctx.invoke("fail-it", "doubler", -1).await;
        let err = match failed {
            Err(DurableError::ChildFailed { error, .. }) => error.error_type,
            other => format!("unexpected: {other:?}"),
        };
        Ok(json!({ "doubled": doubled, "child_error": err }))
    });
    let rt = TestRuntime::new();
    rt.register("doubler", child_fn());
    let exec = rt.start_named("parent", h, 21).await.unwrap();
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Succeeded);
    let out: serde_json::Value = exec.result().await.unwrap();
    assert_eq!(out, json!({ "doubled": 42, "child_error": "Negative" }));
    let child = rt
        .store()
        .get_execution(&durafn_runtime::model::ExecutionId::new("parent::1").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(child.function, "doubler");
    assert_eq!(child.output, Some(json!(42)));
    let op = exec.operation("double-it").await.unwrap().unwrap();
    assert_eq!((op.kind, op.status), (OpKind::Invoke, OpStatus::Succeeded));
}

#[tokio::test]
async fn an_invoke_times_out_with_a_typed_error() {
    let h = handler(|ctx: DurableContext, _: ()| async move {
        let r: Result<i64, _> = ctx
            .invoke("slow", "doubler", 1)
            .timeout(Duration::from_secs(5))
            .await;
        Ok(matches!(r, Err(DurableError::Timeout { .. })))
    });
    let rt = TestRuntime::new();
    rt.register("doubler", child_fn());
    let exec = rt.start(h, ()).await.unwrap();
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Succeeded);
    assert!(
        exec.result::<bool>().await.unwrap(),
        "the 30 s child missed the 5 s timeout"
    );
}

/// A store whose `method` calls fail, as an outage would, from the `from`-th
/// (0-based) on, `count` of them (`usize::MAX`: for good); it counts them all.
struct FailingCalls {
    inner: Arc<dyn durafn_runtime::store::Store>,
    method: &'static str,
    from: usize,
    count: usize,
    calls: Arc<AtomicUsize>,
}

impl durafn_runtime::store::Wrapper for FailingCalls {
    fn inner(&self) -> &dyn durafn_runtime::store::Store {
        &*self.inner
    }
    async fn around<'a, T, F>(
        &'a self,
        what: &'static str,
        mut call: F,
    ) -> durafn_runtime::Result<T>
    where
        T: Send + 'a,
        F: FnMut() -> durafn_runtime::store::InnerCall<'a, T> + Send + 'a,
    {
        if what == self.method {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            if n >= self.from && n - self.from < self.count {
                return Err(durafn_runtime::StoreError::Transient(format!(
                    "{what} failed (injected)"
                )));
            }
        }
        call().await
    }
}

#[tokio::test]
async fn a_parent_whose_wake_up_was_lost_still_sees_its_child_end() {
    let h = handler(|ctx: DurableContext, n: i64| async move {
        let doubled: i64 = ctx.invoke("double-it", "doubler", n).await?;
        Ok(doubled)
    });
    let base = TestRuntime::new(); // owns the SQLite file
    // Every wake-up fails: what a crash between a child's end and its
    // parent's wake-up looks like to the parent.
    let lost = Arc::new(AtomicUsize::new(0));
    let rt = TestRuntime::with_store(Arc::new(FailingCalls {
        inner: base.store(),
        method: "wake",
        from: 0,
        count: usize::MAX,
        calls: lost.clone(),
    }));
    rt.register("doubler", child_fn());
    let exec = rt.start_named("parent", h, 21).await.unwrap();
    // The child ends (after its 30 s sleep) and its wake-up of the parent is
    // lost; the parent looks again by itself and finishes.
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Succeeded);
    assert_eq!(exec.result::<i64>().await.unwrap(), 42);
    assert!(lost.load(Ordering::SeqCst) >= 1, "no wake-up was attempted");
    // It looked a few times while the child slept, not once per clock tick.
    assert!(
        exec.invocations() <= 8,
        "{} invocations",
        exec.invocations()
    );
}

#[tokio::test]
async fn a_store_outage_while_starting_a_child_is_not_the_workflows_failure() {
    let h = handler(|ctx: DurableContext, n: i64| async move {
        let doubled: i64 = ctx.invoke("double-it", "doubler", n).await?;
        Ok(doubled)
    });
    let base = TestRuntime::new(); // owns the SQLite file
    // The second create (the child's; the first is the parent's) fails once.
    let creates = Arc::new(AtomicUsize::new(0));
    let rt = TestRuntime::with_store(Arc::new(FailingCalls {
        inner: base.store(),
        method: "create_execution",
        from: 1,
        count: 1,
        calls: creates.clone(),
    }));
    rt.register("doubler", child_fn());
    let exec = rt.start_named("parent", h, 21).await.unwrap();
    // The invocation ends on the store error; the execution is not failed.
    assert!(exec.run_once().await.is_err());
    assert_eq!(exec.status().await.unwrap(), Status::Running);
    // Its lease expires, the next invocation starts the child, and it succeeds.
    rt.advance(Duration::from_secs(16 * 60));
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Succeeded);
    assert_eq!(exec.result::<i64>().await.unwrap(), 42);
    assert!(creates.load(Ordering::SeqCst) >= 3);
}
