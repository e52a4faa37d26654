//! Replay tests from canned journals under `tests/journals/`.
//!
//! Each fixture is a journal some earlier invocation left behind. It is run two
//! ways, as Temporal's sdk-core does with its histories:
//! - **replayed**: loaded into a fresh store and continued; the test checks the
//!   outcome and which step bodies actually ran (recorded steps must not);
//! - **incrementally**: the same workflow run from an empty journal; the final
//!   journal must equal the replayed run's, operation for operation.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::path::PathBuf;

use durafn::prelude::*;
use durafn::testing::TestRuntime;
use durafn_runtime::model::{ExecutionStatus, Operation};
use durafn_tests::RunLog;
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize)]
struct Fixture {
    description: String,
    workflow: String,
    input: Value,
    operations: Vec<Operation>,
    #[serde(default = "yes")]
    incremental: bool,
    expect: Expect,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
struct Expect {
    status: String,
    #[serde(default)]
    output: Option<Value>,
    #[serde(default)]
    error_type: Option<String>,
    #[serde(default)]
    error_contains: Option<String>,
    bodies_run: Vec<String>,
}

/// `map` over three items (a step each), then a summary step.
fn batches(log: RunLog) -> Handler {
    handler(move |ctx: DurableContext, _input: Value| {
        let log = log.clone();
        async move {
            let l = log.clone();
            let doubled = ctx
                .map(
                    "double",
                    vec![1u64, 2, 3],
                    move |c: DurableContext, n: u64, _| {
                        let l = l.clone();
                        async move {
                            c.step(&format!("double-{n}"), move |_| async move {
                                l.push(&format!("double-{n}"));
                                Ok::<_, DurableError>(n * 2)
                            })
                            .await
                        }
                    },
                )
                .await?
                .into_values()?;
            ctx.step("sum", move |_| async move {
                log.push("sum");
                Ok::<_, DurableError>(doubled.iter().sum::<u64>())
            })
            .await
        }
    })
}

/// The shared workflows, and the ones only these fixtures use.
fn workflow(name: &str, log: RunLog) -> Option<Handler> {
    match name {
        "batches" => Some(batches(log)),
        other => durafn_tests::workflow(other, log),
    }
}

fn journals_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("journals")
}

fn load(name: &str) -> Fixture {
    let path = journals_dir().join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// What must match between two runs of the same workflow.
fn shape(ops: &[Operation]) -> Vec<Value> {
    ops.iter()
        .map(|o| serde_json::json!([o.id, o.kind, o.name, o.status, o.attempt, o.result, o.error]))
        .collect()
}

async fn replayed(name: &str, fx: &Fixture) -> Vec<Operation> {
    let log = RunLog::default();
    let handler = workflow(&fx.workflow, log.clone())
        .unwrap_or_else(|| panic!("{name}: unknown workflow {}", fx.workflow));
    let rt = TestRuntime::new();
    let exec = rt
        .start_named("replayed", handler, &fx.input)
        .await
        .unwrap();
    for op in &fx.operations {
        // Write each revision in turn, as the invocations that made it did.
        for rev in 1..=op.rev {
            let mut at_rev = op.clone();
            at_rev.rev = rev;
            rt.store().put_operation(exec.id(), &at_rev).await.unwrap();
        }
    }
    let status = exec.run_until_settled().await.unwrap();
    let exec_record = exec.execution().await.unwrap();
    assert_eq!(
        status.as_str(),
        fx.expect.status,
        "{name}: {}\n{exec_record:?}",
        fx.description
    );
    if let Some(out) = &fx.expect.output {
        assert_eq!(exec_record.output.as_ref(), Some(out), "{name}: output");
    }
    if let Some(t) = &fx.expect.error_type {
        let err = exec_record
            .error
            .clone()
            .unwrap_or_else(|| panic!("{name}: no error recorded"));
        assert_eq!(&err.error_type, t, "{name}: {err}");
    }
    if let Some(text) = &fx.expect.error_contains {
        let err = exec_record
            .error
            .clone()
            .unwrap_or_else(|| panic!("{name}: no error recorded"));
        assert!(err.message.contains(text.as_str()), "{name}: {err}");
    }
    assert_eq!(
        log.take(),
        fx.expect.bodies_run,
        "{name}: step bodies that ran"
    );
    let ops = exec.operations().await.unwrap();
    if status == ExecutionStatus::Blocked {
        assert_eq!(
            ops, fx.operations,
            "{name}: a blocked execution keeps its journal untouched"
        );
    }
    ops
}

async fn incremental(fx: &Fixture) -> Vec<Operation> {
    let log = RunLog::default();
    let handler = workflow(&fx.workflow, log).unwrap();
    let rt = TestRuntime::new();
    let exec = rt
        .start_named("incremental", handler, &fx.input)
        .await
        .unwrap();
    exec.run_until_settled().await.unwrap();
    exec.operations().await.unwrap()
}

async fn check(name: &str) {
    let fx = load(name);
    let replayed_ops = replayed(name, &fx).await;
    if fx.incremental {
        let fresh_ops = incremental(&fx).await;
        assert_eq!(
            shape(&replayed_ops),
            shape(&fresh_ops),
            "{name}: replaying the journal and running from scratch disagree"
        );
    }
}

macro_rules! journal_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                check(stringify!($name)).await;
            }
        )*

        #[test]
        fn every_journal_fixture_has_a_test() {
            let listed = [$(stringify!($name)),*];
            let mut missing = Vec::new();
            for entry in std::fs::read_dir(journals_dir()).unwrap() {
                let path = entry.unwrap().path();
                let stem = path.file_stem().unwrap().to_string_lossy().to_string();
                if path.extension().is_some_and(|e| e == "json") && !listed.contains(&stem.as_str()) {
                    missing.push(stem);
                }
            }
            assert!(missing.is_empty(), "fixtures without a test: {missing:?}");
        }
    };
}

journal_tests!(
    pipeline_fresh,
    pipeline_waiting_on_timer,
    pipeline_retry_backoff,
    pipeline_finished_before_crash,
    pipeline_step_failed,
    fanout_one_branch_unrecorded,
    nondeterministic_renamed_step,
    nondeterministic_step_became_timer,
    map_recorded_as_child_before_map_existed,
    map_items_recorded_batch_not_yet,
);
