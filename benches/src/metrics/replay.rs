//! `replay_10k_ms` and `replay_growth_1k_to_10k`: how long one invocation
//! takes to replay a journal of completed steps and finish (DESIGN.md §8:
//! 10,000 operations in ≤ 50 ms, cost linear in journal length), and the same
//! for 100,000 operations (`replay_100k_ms`, `replay_growth_10k_to_100k`).
//!
//! Each journal is written straight into a SQLite store (`put_operation`,
//! the records the SDK would have written), then one invocation is timed:
//! claim, load the journal, replay every step (no body may run: they are
//! counted) and finish. Journals of 1k and 10k steps alternate over several
//! rounds, 100k steps over fewer; the figures are medians.

use std::sync::Arc;
use std::time::{Duration, Instant};

use durafn::testing::{TestExecution, TestRuntime};
use durafn_runtime::store::{OpWrite, SqliteStore};
use tokio::task::JoinSet;

use crate::Scale;
use crate::measure::{Result, median, millis, scratch_dir};
use crate::report::{Figure, Report};
use crate::workflows::{BodyCount, completed_step, expected_output, sequential_steps};

/// Replay time of the long journal.
const REPLAY_10K: &str = "replay_10k_ms";
/// Replay time of the long journal over that of the short one.
const GROWTH: &str = "replay_growth_1k_to_10k";
/// Replay time of the huge journal (issue #17: 100,000 operations in one
/// execution, without continue-as-new).
const REPLAY_100K: &str = "replay_100k_ms";
/// Replay time of the huge journal over that of the long one.
const GROWTH_100K: &str = "replay_growth_10k_to_100k";

/// The metrics this group reports.
pub(crate) const METRICS: &[&str] = &[REPLAY_10K, GROWTH, REPLAY_100K, GROWTH_100K];

/// DESIGN.md §8: 10,000 operations replay in at most 50 ms.
const TARGET_MS: f64 = 50.0;
/// Linear growth would be 10; allow some slack for fixed costs that do not
/// shrink (they make growth look *better*, never worse).
const TARGET_GROWTH: f64 = 12.0;
/// 100,000 operations: the 10k target, linearly.
const TARGET_100K_MS: f64 = 500.0;

struct Sizes {
    rounds: usize,
    /// Rounds of the huge journal (each writes 100,000 records first).
    huge_rounds: usize,
    short: u64,
    long: u64,
    huge: u64,
}

impl Sizes {
    fn of(scale: Scale) -> Self {
        match scale {
            Scale::Full => Sizes {
                rounds: 7,
                huge_rounds: 3,
                short: 1_000,
                long: 10_000,
                huge: 100_000,
            },
            Scale::Quick => Sizes {
                rounds: 2,
                huge_rounds: 1,
                short: 100,
                long: 1_000,
                huge: 10_000,
            },
        }
    }
}

/// Measures and reports [`METRICS`].
pub(crate) async fn run(scale: Scale, report: &mut Report) {
    let sizes = Sizes::of(scale);
    let [short, long, huge] = match measure(&sizes, report).await {
        Ok(samples) => samples,
        Err(e) => {
            let msg = e.to_string();
            for m in METRICS {
                report.error(m, &msg);
            }
            return;
        }
    };
    report_pair(report, (REPLAY_10K, TARGET_MS), GROWTH, &long, &short);
    report_pair(
        report,
        (REPLAY_100K, TARGET_100K_MS),
        GROWTH_100K,
        &huge,
        &long,
    );
}

/// Reports the time of the bigger journal and its growth over the smaller.
fn report_pair(
    report: &mut Report,
    (metric, target): (&'static str, f64),
    growth: &'static str,
    bigger: &Result<f64, String>,
    smaller: &Result<f64, String>,
) {
    match bigger {
        Ok(big_ms) => {
            report.figure(Figure {
                metric,
                value: *big_ms,
                unit: "ms",
                target,
            });
            match smaller {
                Ok(small_ms) => report.figure(Figure {
                    metric: growth,
                    value: big_ms / small_ms,
                    unit: "ratio",
                    target: TARGET_GROWTH,
                }),
                Err(e) => report.error(growth, &format!("the smaller journal: {e}")),
            }
        }
        Err(e) => {
            report.error(metric, e);
            report.error(growth, &format!("the bigger journal: {e}"));
        }
    }
}

/// The median replay times (ms) of the short, the long and the huge
/// journal; each fails on its own.
type Medians = [Result<f64, String>; 3];

async fn measure(sizes: &Sizes, report: &mut Report) -> Result<Medians> {
    let dir = scratch_dir()?;
    let store = SqliteStore::open(dir.path().join("replay.db"))?;
    let rt = TestRuntime::with_store(Arc::new(store.clone()));
    let mut samples: [Result<Vec<f64>, String>; 3] =
        [Ok(Vec::new()), Ok(Vec::new()), Ok(Vec::new())];
    let rounds = sizes.rounds.max(sizes.huge_rounds);
    for round in 1..=rounds {
        let mut order = vec![(0, sizes.short), (1, sizes.long)];
        if round <= sizes.huge_rounds {
            order.push((2, sizes.huge));
        }
        if round % 2 == 0 {
            order.reverse();
        }
        for (side, n) in order {
            if round > sizes.rounds && side != 2 {
                continue;
            }
            let Ok(times) = &mut samples[side] else {
                continue;
            };
            let name = format!("replay-{n}-round-{round}");
            match time_replay(&rt, &store, &name, n).await {
                Ok(run) => {
                    let metric = if side == 2 { REPLAY_100K } else { REPLAY_10K };
                    report.info(
                        metric,
                        &[
                            ("round", round as f64),
                            ("n", n as f64),
                            ("replay_ms", millis(run.invocation)),
                            ("load_journal_ms", millis(run.load_journal)),
                        ],
                    );
                    times.push(millis(run.invocation));
                }
                Err(e) => samples[side] = Err(format!("replaying {n} steps: {e}")),
            }
        }
    }
    let medians = samples.map(|side| {
        side.and_then(|times| median(&times).ok_or_else(|| "no rounds were run".to_string()))
    });
    if let [Ok(s), Ok(l), Ok(h)] = &medians {
        report.info(
            REPLAY_10K,
            &[
                ("short_n", sizes.short as f64),
                ("median_short_ms", *s),
                ("long_n", sizes.long as f64),
                ("median_long_ms", *l),
                ("huge_n", sizes.huge as f64),
                ("median_huge_ms", *h),
                ("rounds", sizes.rounds as f64),
                ("huge_rounds", sizes.huge_rounds as f64),
            ],
        );
    }
    Ok(medians)
}

/// One timed replay.
struct ReplayRun {
    /// The whole invocation: claim, load, replay, finish.
    invocation: Duration,
    /// Loading the same journal again afterwards, on its own (the store's
    /// share of the invocation).
    load_journal: Duration,
}

/// Writes a journal of `n` completed steps for a new execution `name`, then
/// times the one invocation that replays it and finishes.
async fn time_replay(
    rt: &TestRuntime,
    store: &SqliteStore,
    name: &str,
    n: u64,
) -> Result<ReplayRun> {
    let bodies = BodyCount::default();
    let exec = rt
        .start_named(name, sequential_steps(bodies.clone()), n)
        .await?;
    write_journal(rt, &exec, n).await?;
    checkpoint_wal(store).await?;

    let started = Instant::now();
    let invocation = exec.run_once().await?;
    let elapsed = started.elapsed();

    let invocation = invocation.ok_or("the execution was not due")?;
    if bodies.get() != 0 {
        return Err(format!(
            "{} step bodies ran while replaying {n} recorded steps; a replay must run none",
            bodies.get()
        )
        .into());
    }
    if invocation.status != "SUCCEEDED" {
        return Err(format!(
            "the replay ended {}, not SUCCEEDED: {:?}",
            invocation.status, invocation.error
        )
        .into());
    }
    let out: u64 = exec.result().await?;
    if out != expected_output(n) {
        return Err(format!(
            "the replay returned {out}, expected {}: the recorded results were not used",
            expected_output(n)
        )
        .into());
    }

    let started = Instant::now();
    let journal = rt.store().load_journal(exec.id()).await?;
    let load_journal = started.elapsed();
    let recorded = journal.map_or(0, |j| j.operations.len());
    if recorded as u64 != n {
        return Err(format!("the journal holds {recorded} operations, expected {n}").into());
    }
    Ok(ReplayRun {
        invocation: elapsed,
        load_journal,
    })
}

/// Writes the records of `n` completed steps, concurrently so that the
/// store groups them into few commits.
async fn write_journal(rt: &TestRuntime, exec: &TestExecution, n: u64) -> Result<()> {
    let store = rt.store();
    let mut writes = JoinSet::new();
    for seq in 1..=n {
        let (store, id, op) = (
            store.clone(),
            exec.id().clone(),
            completed_step(seq, rt.now())?,
        );
        writes.spawn(async move { store.put_operation(&id, &op).await });
    }
    while let Some(joined) = writes.join_next().await {
        if let OpWrite::Conflict(op) = joined?? {
            return Err(format!("operation {} was already recorded", op.id).into());
        }
    }
    Ok(())
}

/// Moves the WAL into the database file, so the timed invocation does not
/// pay for checkpointing the journal that was just written.
async fn checkpoint_wal(store: &SqliteStore) -> Result<()> {
    let path = store.path().to_path_buf();
    tokio::task::spawn_blocking(move || -> Result<()> {
        let conn = rusqlite::Connection::open(&path)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        let busy: i64 = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
        if busy != 0 {
            return Err("the WAL checkpoint was blocked by another connection".into());
        }
        Ok(())
    })
    .await
    .map_err(|e| format!("the checkpoint's thread failed: {e}"))?
}
