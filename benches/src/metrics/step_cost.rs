//! `step_vs_sqlite_commit`: what one durable step costs on the embedded store,
//! as a multiple of one raw durable SQLite commit (DESIGN.md §8: ≤ 1.3).
//!
//! Floor: `n` sequential one-row transactions on a fresh WAL,
//! `synchronous=FULL` database. Figure: one execution running `n` sequential
//! steps in one invocation through the real SDK path (`TestRuntime` on a
//! fresh SQLite file), from `start` to the end of its one invocation
//! (`run_once`: claim, steps, finish), divided by `n`. (`run_until_settled`
//! would add the test harness's own scans of the due index, which it does to
//! run child executions.) A third side,
//! `n` direct `Store::put_operation` calls, splits the overhead between the
//! store and the SDK (an `info` field only). The sides take turns over several
//! rounds so disk noise hits them alike; the figure is the ratio of the
//! medians.

use std::time::{Duration, Instant};

use durafn::ExecutionStatus;
use durafn::testing::{EPOCH, TestRuntime};
use durafn_runtime::model::{ExecutionId, NewExecution};
use durafn_runtime::store::{OpWrite, SqliteStore, Store};

use crate::Scale;
use crate::floor::{CommitFloor, ROW_BYTES};
use crate::measure::{Result, median, micros, scratch_dir, spread, warn_if_noisy};
use crate::report::{Figure, Report};
use crate::workflows::{BodyCount, completed_step, expected_output, sequential_steps};

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
                rounds: 9,
                steps: 300,
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

/// What one round times, `n` times over.
#[derive(Debug, Clone, Copy)]
enum Side {
    /// The floor: a raw SQLite commit.
    Commit,
    /// `Store::put_operation` on the SQLite store, called directly: the
    /// store's share of a step (writer thread, savepoint, JSON record).
    StorePut,
    /// A durable step through the SDK: the figure.
    Step,
}

async fn measure(sizes: &Sizes, report: &mut Report) -> Result<f64> {
    let n = sizes.steps;
    let mut samples = [Vec::new(), Vec::new(), Vec::new()];
    for round in 1..=sizes.rounds {
        // Rotate which side goes first, so none always runs on a disk
        // another has just made busy.
        let mut order = [Side::Commit, Side::StorePut, Side::Step];
        let sides = order.len();
        order.rotate_left((round - 1) % sides);
        let mut us = [0.0; 3];
        let mut record_bytes = 0.0;
        for side in order {
            let elapsed = match side {
                Side::Commit => CommitFloor::measure(usize::try_from(n)?).await?,
                Side::StorePut => time_store_puts(n).await?,
                Side::Step => {
                    let run = time_sequential_steps(n).await?;
                    record_bytes = run.record_bytes;
                    run.elapsed
                }
            };
            us[side as usize] = micros(elapsed) / n as f64;
        }
        let [c, p, s] = us;
        report.info(
            STEP_VS_COMMIT,
            &[
                ("round", round as f64),
                ("n", n as f64),
                ("step_us", s),
                ("store_put_us", p),
                ("sqlite_commit_us", c),
                ("ratio", s / c),
                ("op_record_bytes", record_bytes),
                ("floor_row_bytes", ROW_BYTES as f64),
            ],
        );
        for (side, v) in samples.iter_mut().zip(us) {
            side.push(v);
        }
    }
    let [Some(c), Some(p), Some(s)] = samples.each_ref().map(|v| median(v)) else {
        return Err("no rounds were run".into());
    };
    // The same, paired round by round: less sensitive to a disk whose speed
    // drifts between rounds, shown beside the figure as a cross-check.
    let paired: Vec<f64> = samples[2]
        .iter()
        .zip(&samples[0])
        .map(|(s, c)| s / c)
        .collect();
    let paired = median(&paired).unwrap_or(f64::NAN);
    report.info(
        STEP_VS_COMMIT,
        &[
            ("median_step_us", s),
            ("median_store_put_us", p),
            ("median_sqlite_commit_us", c),
            ("median_paired_ratio", paired),
            ("rounds", sizes.rounds as f64),
            ("floor_spread", spread(&samples[0])),
        ],
    );
    warn_if_noisy(report, STEP_VS_COMMIT, &samples[0]);
    Ok(s / c)
}

/// Writes `n` step records one after another with `Store::put_operation`
/// on a fresh SQLite store; returns the time the writes took.
async fn time_store_puts(n: u64) -> Result<Duration> {
    let dir = scratch_dir()?;
    let store = SqliteStore::open(dir.path().join("puts.db"))?;
    let id = ExecutionId::new("store-puts")?;
    store
        .create_execution(&NewExecution {
            id: id.clone(),
            function: "bench".into(),
            version: "1".into(),
            input: n.into(),
            now: EPOCH,
        })
        .await?;
    let records = (1..=n)
        .map(|seq| completed_step(seq, EPOCH))
        .collect::<Result<Vec<_>>>()?;
    let started = Instant::now();
    for op in &records {
        if let OpWrite::Conflict(op) = store.put_operation(&id, op).await? {
            return Err(format!("operation {} was already recorded", op.id).into());
        }
    }
    Ok(started.elapsed())
}

/// One timed execution.
struct StepRun {
    /// From `start` to the end of its invocation.
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
    let invocation = exec.run_once().await?;
    let elapsed = started.elapsed();
    invocation.ok_or("the execution was not due")?;
    let status = exec.status().await?;
    if status != ExecutionStatus::Succeeded {
        let why = exec
            .error()
            .await?
            .map(|e| e.to_string())
            .unwrap_or_default();
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
