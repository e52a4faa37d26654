//! `step_vs_sqlite_commit`: what one durable step costs on the embedded store,
//! as a multiple of one raw durable SQLite commit (DESIGN.md §8: ≤ 1.3).
//!
//! Floor: `n` sequential one-row transactions on a fresh WAL,
//! `synchronous=FULL` database. Figure: one execution running `n` sequential
//! steps in one invocation through the real SDK path (`TestRuntime` on a
//! fresh SQLite file), from `start` to settled, divided by `n`. The two
//! alternate over several rounds so disk noise hits both alike; the figure is
//! the ratio of their medians.

use std::time::{Duration, Instant};

use durafn::ExecutionStatus;
use durafn::testing::TestRuntime;

use crate::Scale;
use crate::floor::{CommitFloor, ROW_BYTES};
use crate::measure::{Result, median, micros};
use crate::report::{Figure, Report};
use crate::workflows::{BodyCount, expected_output, sequential_steps};

/// The metric.
const STEP_VS_COMMIT: &str = "step_vs_sqlite_commit";

/// The metrics this group reports.
pub(crate) const METRICS: &[&str] = &[STEP_VS_COMMIT];

/// DESIGN.md §8: a step costs at most 1.3 raw commits.
const TARGET: f64 = 1.3;

struct Sizes {
    rounds: usize,
    steps: u64,
}

impl Sizes {
    fn of(scale: Scale) -> Self {
        match scale {
            Scale::Full => Sizes {
                rounds: 5,
                steps: 500,
            },
            Scale::Quick => Sizes {
                rounds: 2,
                steps: 20,
            },
        }
    }
}

/// Measures and reports [`METRICS`].
pub(crate) async fn run(scale: Scale, report: &mut Report) {
    let sizes = Sizes::of(scale);
    match measure(&sizes, report).await {
        Ok(ratio) => report.figure(Figure {
            metric: STEP_VS_COMMIT,
            value: ratio,
            unit: "ratio",
            target: TARGET,
        }),
        Err(e) => report.error(STEP_VS_COMMIT, &e.to_string()),
    }
}

async fn measure(sizes: &Sizes, report: &mut Report) -> Result<f64> {
    let n = sizes.steps;
    let count = usize::try_from(n)?;
    let mut step_us = Vec::new();
    let mut commit_us = Vec::new();
    for round in 1..=sizes.rounds {
        // Alternate which side goes first, so neither always runs on a
        // disk the other has just made busy.
        let (commit, step) = if round % 2 == 1 {
            let c = CommitFloor::measure(count).await?;
            (c, time_sequential_steps(n).await?)
        } else {
            let s = time_sequential_steps(n).await?;
            (CommitFloor::measure(count).await?, s)
        };
        let (s, c) = (micros(step.elapsed) / n as f64, micros(commit) / n as f64);
        report.info(
            STEP_VS_COMMIT,
            &[
                ("round", round as f64),
                ("n", n as f64),
                ("step_us", s),
                ("sqlite_commit_us", c),
                ("ratio", s / c),
                ("op_record_bytes", step.record_bytes),
                ("floor_row_bytes", ROW_BYTES as f64),
            ],
        );
        step_us.push(s);
        commit_us.push(c);
    }
    let (Some(s), Some(c)) = (median(&step_us), median(&commit_us)) else {
        return Err("no rounds were run".into());
    };
    report.info(
        STEP_VS_COMMIT,
        &[
            ("median_step_us", s),
            ("median_sqlite_commit_us", c),
            ("rounds", sizes.rounds as f64),
        ],
    );
    Ok(s / c)
}

/// One timed execution.
struct StepRun {
    /// From `start` until it settled.
    elapsed: Duration,
    /// The mean size of its operation records, as stored (JSON).
    record_bytes: f64,
}

/// Runs one execution of `n` sequential steps on a fresh `TestRuntime`.
async fn time_sequential_steps(n: u64) -> Result<StepRun> {
    let rt = TestRuntime::try_new()?;
    let bodies = BodyCount::default();
    let handler = sequential_steps(bodies.clone());
    let started = Instant::now();
    let exec = rt.start(handler, n).await?;
    let status = exec.run_until_settled().await?;
    let elapsed = started.elapsed();
    if status != ExecutionStatus::Succeeded {
        let why = exec.error().await?.map(|e| e.to_string()).unwrap_or_default();
        return Err(format!("the workflow ended {status}, not SUCCEEDED: {why}").into());
    }
    let out: u64 = exec.result().await?;
    if out != expected_output(n) {
        return Err(format!(
            "the workflow returned {out}, expected {}",
            expected_output(n)
        )
        .into());
    }
    if bodies.get() != n {
        return Err(format!("{} step bodies ran, expected {n}", bodies.get()).into());
    }
    if exec.invocations() != 1 {
        return Err(format!(
            "the workflow took {} invocations, expected one",
            exec.invocations()
        )
        .into());
    }
    let ops = exec.operations().await?;
    let mut bytes = 0;
    for op in &ops {
        bytes += serde_json::to_string(op)?.len();
    }
    Ok(StepRun {
        elapsed,
        record_bytes: bytes as f64 / ops.len().max(1) as f64,
    })
}
