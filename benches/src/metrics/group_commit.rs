//! `step_group_commit_c20_per_s`, `sqlite_commit_c1_per_s` and
//! `group_commit_speedup`: how many durable steps per second one SQLite store
//! sustains when 20 executions each run their steps in parallel (the store's
//! writer groups concurrent checkpoints into one commit), against how many
//! raw durable commits per second one sequential writer gets.
//!
//! Floor: `n` sequential one-row transactions on a fresh WAL,
//! `synchronous=FULL` database. Figure: 20 executions started on one fresh
//! `TestRuntime`, each awaiting `k` steps together, run concurrently (one
//! invocation each, `run_once`); steps per second of wall time. The two
//! alternate over several rounds; the figures are medians. No targets
//! (DESIGN.md §8 states the 20-concurrent target for whole workflows under
//! the emulator: `wf10_c20_per_s` in the `emulator` group).

use std::time::{Duration, Instant};

use durafn::ExecutionStatus;
use durafn::testing::TestRuntime;
use tokio::task::JoinSet;

use crate::Scale;
use crate::floor::CommitFloor;
use crate::measure::{Result, median, spread, warn_if_noisy};
use crate::report::{Figure, Report};
use crate::workflows::{BodyCount, expected_output, parallel_steps};

/// Steps per second with 20 concurrent executions.
const GROUP: &str = "step_group_commit_c20_per_s";
/// Raw sequential commits per second.
const FLOOR: &str = "sqlite_commit_c1_per_s";
/// The first over the second.
const SPEEDUP: &str = "group_commit_speedup";

/// The metrics this group reports.
pub(crate) const METRICS: &[&str] = &[GROUP, FLOOR, SPEEDUP];

/// How many executions run at once.
const CONCURRENCY: usize = 20;

/// No target yet: printed as `target=0`.
const NO_TARGET: f64 = 0.0;

struct Sizes {
    rounds: usize,
    steps_per_execution: u64,
    floor_commits: usize,
}

impl Sizes {
    fn of(scale: Scale) -> Self {
        match scale {
            Scale::Full => Sizes {
                rounds: 7,
                steps_per_execution: 25,
                floor_commits: 500,
            },
            Scale::Quick => Sizes {
                rounds: 2,
                steps_per_execution: 2,
                floor_commits: 20,
            },
        }
    }
}

/// What one round times.
#[derive(Debug, Clone, Copy)]
enum Side {
    /// Sequential raw commits.
    Floor,
    /// [`CONCURRENCY`] executions of parallel steps.
    Concurrent,
}

/// Measures and reports [`METRICS`].
pub(crate) async fn run(scale: Scale, report: &mut Report) {
    let sizes = Sizes::of(scale);
    let mut floor: Result<Vec<f64>, String> = Ok(Vec::new());
    let mut group: Result<Vec<f64>, String> = Ok(Vec::new());
    for round in 1..=sizes.rounds {
        // Alternate which side goes first, so neither always runs on a disk
        // the other has just made busy.
        let mut order = [Side::Floor, Side::Concurrent];
        if round % 2 == 0 {
            order.reverse();
        }
        for side in order {
            match side {
                Side::Floor => {
                    if let Ok(samples) = &mut floor {
                        match CommitFloor::measure(sizes.floor_commits).await {
                            Ok(t) => samples.push(sizes.floor_commits as f64 / t.as_secs_f64()),
                            Err(e) => floor = Err(e.to_string()),
                        }
                    }
                }
                Side::Concurrent => {
                    if let Ok(samples) = &mut group {
                        match time_concurrent(sizes.steps_per_execution).await {
                            Ok(t) => samples.push(total_steps(&sizes) as f64 / t.as_secs_f64()),
                            Err(e) => group = Err(e.to_string()),
                        }
                    }
                }
            }
        }
        let last = |s: &Result<Vec<f64>, String>| {
            s.as_ref()
                .ok()
                .and_then(|v| v.last().copied())
                .unwrap_or(f64::NAN)
        };
        report.info(
            GROUP,
            &[
                ("round", round as f64),
                ("steps", total_steps(&sizes) as f64),
                ("steps_per_s", last(&group)),
                ("sqlite_commits_per_s", last(&floor)),
            ],
        );
    }
    if let Ok(samples) = &floor {
        report.info(GROUP, &[("floor_spread", spread(samples))]);
        warn_if_noisy(report, GROUP, samples);
    }
    let medians = |s: Result<Vec<f64>, String>| {
        s.and_then(|v| median(&v).ok_or_else(|| "no rounds were run".to_string()))
    };
    let (floor, group) = (medians(floor), medians(group));
    match &group {
        Ok(v) => report.figure(Figure {
            metric: GROUP,
            value: *v,
            unit: "steps/s",
            target: NO_TARGET,
        }),
        Err(e) => report.error(GROUP, e),
    }
    match &floor {
        Ok(v) => report.figure(Figure {
            metric: FLOOR,
            value: *v,
            unit: "commits/s",
            target: NO_TARGET,
        }),
        Err(e) => report.error(FLOOR, e),
    }
    match (&group, &floor) {
        (Ok(g), Ok(f)) => report.figure(Figure {
            metric: SPEEDUP,
            value: g / f,
            unit: "ratio",
            target: NO_TARGET,
        }),
        (Err(e), _) | (_, Err(e)) => report.error(SPEEDUP, e),
    }
}

fn total_steps(sizes: &Sizes) -> u64 {
    CONCURRENCY as u64 * sizes.steps_per_execution
}

/// Starts [`CONCURRENCY`] executions of `k` parallel steps on a fresh
/// `TestRuntime`, then times running them all to the end concurrently.
async fn time_concurrent(k: u64) -> Result<Duration> {
    let rt = TestRuntime::try_new()?;
    let bodies = BodyCount::default();
    let handler = parallel_steps(bodies.clone());
    let mut executions = Vec::with_capacity(CONCURRENCY);
    for _ in 0..CONCURRENCY {
        executions.push(rt.start(handler.clone(), k).await?);
    }
    let started = Instant::now();
    let mut running = JoinSet::new();
    for exec in executions {
        running.spawn(async move {
            let ran = exec.run_once().await;
            (exec, ran)
        });
    }
    let mut settled = Vec::with_capacity(CONCURRENCY);
    while let Some(joined) = running.join_next().await {
        settled.push(joined?);
    }
    let elapsed = started.elapsed();
    for (exec, ran) in settled {
        ran?.ok_or("an execution was not due")?;
        let status = exec.status().await?;
        if status != ExecutionStatus::Succeeded {
            let why = exec
                .error()
                .await?
                .map(|e| e.to_string())
                .unwrap_or_default();
            return Err(format!("an execution ended {status}, not SUCCEEDED: {why}").into());
        }
        let out: u64 = exec.result().await?;
        if out != expected_output(k) {
            return Err(format!(
                "an execution returned {out}, expected {}",
                expected_output(k)
            )
            .into());
        }
    }
    let expected = CONCURRENCY as u64 * k;
    if bodies.get() != expected {
        return Err(format!("{} step bodies ran, expected {expected}", bodies.get()).into());
    }
    Ok(elapsed)
}
