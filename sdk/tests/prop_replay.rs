//! A property of the replay core, checked with `proptest`: for a random
//! workflow shape (steps, sleeps, maps, child contexts, a retried step), any
//! prefix of its finished journal — what a crash at any point leaves behind —
//! replayed by the same handler reaches the same decisions: the same output,
//! the same journal (ids, types, names, statuses, results), and no step
//! recorded in the prefix runs again. Bounded: 48 shapes × 1 prefix each.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use durafn::prelude::*;
use durafn::testing::TestRuntime;
use proptest::prelude::*;
use serde_json::{Value, json};

/// Step bodies that ran: execution id → op ids.
static RAN: Mutex<BTreeMap<String, Vec<String>>> = Mutex::new(BTreeMap::new());

fn ran(exec: &str, op: &str) {
    RAN.lock()
        .unwrap()
        .entry(exec.to_string())
        .or_default()
        .push(op.to_string());
}

fn runs_of(exec: &str) -> Vec<String> {
    RAN.lock().unwrap().get(exec).cloned().unwrap_or_default()
}

/// One element of a workflow's plan: (kind, argument).
type Plan = Vec<(u8, u8)>;

async fn step_value(
    ctx: &DurableContext,
    name: String,
    arg: u8,
    flaky: bool,
) -> Result<String, DurableError> {
    ctx.step(&name.clone(), move |s| async move {
        ran(&s.execution_id().to_string(), s.op_id());
        if flaky && s.attempt() == 1 {
            return Err(DurableError::new("Flaky", "the first attempt fails"));
        }
        Ok::<_, DurableError>(format!("{name}={arg}@{}", s.attempt()))
    })
    .retry(RetryPolicy::fixed(Duration::from_secs(1)))
    .await
}

async fn planned(ctx: DurableContext, plan: Plan) -> Result<Value, DurableError> {
    let mut out = Vec::new();
    for (i, (kind, arg)) in plan.into_iter().enumerate() {
        match kind % 5 {
            0 => out.push(json!(step_value(&ctx, format!("s{i}"), arg, false).await?)),
            1 => out.push(json!(step_value(&ctx, format!("f{i}"), arg, true).await?)),
            2 => {
                ctx.sleep(
                    &format!("z{i}"),
                    Duration::from_secs(u64::from(arg % 5) + 1),
                )
                .await?;
                out.push(json!("slept"));
            }
            3 => {
                let items: Vec<u8> = (0..(arg % 3) + 1).collect();
                let r = ctx
                    .map(&format!("m{i}"), items, |c, item, _| async move {
                        step_value(&c, format!("item{item}"), item, false).await
                    })
                    .max_concurrency(usize::from(arg % 2) + 1)
                    .await?
                    .into_values()?;
                out.push(json!(r));
            }
            _ => {
                let v = ctx
                    .child(&format!("c{i}"), move |c| async move {
                        let a = step_value(&c, "inner-a".into(), arg, false).await?;
                        c.sleep("inner-nap", Duration::from_secs(1)).await?;
                        let b = step_value(&c, "inner-b".into(), arg, false).await?;
                        Ok::<_, DurableError>(format!("{a}+{b}"))
                    })
                    .await?;
                out.push(json!(v));
            }
        }
    }
    Ok(json!({ "out": out }))
}

fn shape(
    ops: &[durafn_runtime::model::Operation],
) -> Vec<(String, String, String, String, String)> {
    ops.iter()
        .map(|o| {
            (
                o.id.clone(),
                format!("{:?}", o.kind),
                o.name.clone(),
                format!("{:?}", o.status),
                o.result.clone().unwrap_or(Value::Null).to_string(),
            )
        })
        .collect()
}

fn check(plan: Plan, cut: usize) -> Result<(), TestCaseError> {
    static CASE: AtomicU64 = AtomicU64::new(0);
    let n = CASE.fetch_add(1, Ordering::Relaxed);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let name = format!("prefix-{n}");
        let full = TestRuntime::new();
        let exec = full
            .start_named(&name, handler(planned), &plan)
            .await
            .unwrap();
        prop_assert_eq!(exec.run_until_settled().await.unwrap(), Status::Succeeded);
        let out: Value = exec.result().await.unwrap();
        let ops = exec.operations().await.unwrap();
        let before = runs_of(&name).len();

        // A crash left the first `cut` records (each in its final state).
        let cut = cut % (ops.len() + 1);
        let replay = TestRuntime::new();
        let again = replay
            .start_named(&name, handler(planned), &plan)
            .await
            .unwrap();
        for op in &ops[..cut] {
            let mut op = op.clone();
            op.rev = 1;
            replay.store().put_operation(again.id(), &op).await.unwrap();
        }
        prop_assert_eq!(again.run_until_settled().await.unwrap(), Status::Succeeded);
        let out2: Value = again.result().await.unwrap();
        prop_assert_eq!(&out2, &out, "the same output after a cut at {}", cut);
        let ops2 = again.operations().await.unwrap();
        // The same records; the only ones missing are inside a child or batch
        // whose own record (its result, checkpointed as one unit) was in the cut.
        let (all, again_shape) = (shape(&ops), shape(&ops2));
        for rec in &again_shape {
            prop_assert!(
                all.contains(rec),
                "{:?} differs after a cut at {}",
                rec,
                cut
            );
        }
        for rec in all.iter().filter(|r| !again_shape.contains(r)) {
            let inside_recorded = ops[..cut].iter().any(|p| {
                rec.0.starts_with(&format!("{}.", p.id))
                    && p.status == durafn_runtime::model::OpStatus::Succeeded
            });
            prop_assert!(
                inside_recorded,
                "{:?} is missing after a cut at {}",
                rec,
                cut
            );
        }
        let rerun: Vec<String> = runs_of(&name)[before..].to_vec();
        for op in &ops[..cut] {
            if op.status == durafn_runtime::model::OpStatus::Succeeded {
                prop_assert!(
                    !rerun.contains(&op.id),
                    "step {} was recorded but ran again",
                    op.id
                );
            }
        }
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_journal_prefix_replays_to_the_same_decisions(
        plan in prop::collection::vec((0u8..5, any::<u8>()), 1..7),
        cut in 0usize..1000
    ) {
        check(plan, cut)?;
    }
}
