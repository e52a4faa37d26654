//! `timers_10k_lateness_p99_ms`: 10,000 timers due in the same second all
//! fire, and how late (DESIGN.md §8: p99 lateness ≤ 200 ms, in one process).
//!
//! Everything runs in this process, on the real clock: a [`SqliteStore`] in a
//! scratch folder, a real [`Dispatcher`] with its default settings, and an
//! in-process [`Invoker`] that runs the real SDK invocation
//! ([`run_invocation`], as `durafn::run` does for a resume request). The
//! handler sleeps until its due time (`ctx.sleep_until`, the time is its
//! input), then a step records the wall-clock µs at which its body ran.
//!
//! First, N executions are created, with due times spread uniformly over one
//! second that starts a margin after the creation. The dispatcher invokes
//! each once; each suspends on its timer. Once all are suspended the
//! benchmark waits for the second to come. The lateness of each execution is
//! the time its post-sleep step body ran minus its due time. The figure is
//! the p99; p50, max and how long the whole second took to drain are on an
//! `info` line. Every execution must end `SUCCEEDED` with a recorded time.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use durafn::invocation::{InvocationConfig, run_invocation};
use durafn::prelude::*;
use durafn_runtime::clock::{Clock, SystemClock};
use durafn_runtime::dispatch::{
    Dispatcher, DispatcherConfig, InvocationSummary, InvokeError, Invoker, ResumeRequest,
};
use durafn_runtime::model::{ExecutionId, ExecutionStatus, NewExecution};
use durafn_runtime::store::{SqliteStore, Store};
use tokio::task::JoinSet;

use crate::Scale;
use crate::measure::{Result, now_us, percentile, scratch_dir};
use crate::report::{Figure, Report};

/// p99 lateness of 10,000 timers due in one second.
const METRIC: &str = "timers_10k_lateness_p99_ms";

/// The metrics this group reports.
pub(crate) const METRICS: &[&str] = &[METRIC];

/// DESIGN.md §8.
const TARGET: f64 = 200.0;

/// The function name of the executions.
const FUNCTION: &str = "timer-probe";

/// The second the timers are spread over.
const WINDOW: Duration = Duration::from_secs(1);

/// How many writes the setup keeps in flight (the store groups them).
const SETUP_CONCURRENCY: usize = 512;

struct Sizes {
    timers: usize,
    /// From the end of the creation to the start of the window: every
    /// execution must have run once and suspended by then.
    margin: Duration,
}

impl Sizes {
    fn of(scale: Scale) -> Self {
        match scale {
            Scale::Full => Sizes {
                timers: 10_000,
                margin: Duration::from_secs(8),
            },
            Scale::Quick => Sizes {
                timers: 200,
                margin: Duration::from_millis(1500),
            },
        }
    }
}

/// Measures and reports [`METRICS`].
pub(crate) async fn run(scale: Scale, report: &mut Report) {
    match measure(&Sizes::of(scale), report).await {
        Ok(p99) => report.figure(Figure {
            metric: METRIC,
            value: p99,
            unit: "ms",
            target: TARGET,
        }),
        Err(e) => report.error(METRIC, &e.to_string()),
    }
}

/// Runs the SDK's invocation in this process, as `durafn::run` does for a
/// resume request, and counts how invocations ended.
struct InProcessInvoker {
    handler: Handler,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    invocations: AtomicUsize,
    suspended: AtomicUsize,
}

#[async_trait]
impl Invoker for InProcessInvoker {
    async fn invoke(
        &self,
        function: &str,
        request: &ResumeRequest,
    ) -> Result<InvocationSummary, InvokeError> {
        if function != FUNCTION {
            return Err(InvokeError::UnknownFunction(function.to_string()));
        }
        self.invocations.fetch_add(1, Ordering::Relaxed);
        let current = self
            .store
            .get_execution(&request.execution_id)
            .await
            .map_err(|e| InvokeError::FunctionError(e.to_string()))?
            .ok_or_else(|| {
                InvokeError::FunctionError(format!("{} does not exist", request.execution_id))
            })?;
        if current.epoch != request.epoch || current.status != ExecutionStatus::Running {
            return Ok(InvocationSummary {
                status: "SUPERSEDED".into(),
                wake_at: None,
            });
        }
        let report = run_invocation(
            &self.handler,
            self.store.clone(),
            self.clock.clone(),
            InvocationConfig::default(),
            &current,
        )
        .await
        .map_err(|e| InvokeError::FunctionError(e.to_string()))?;
        if report.status == "SUSPENDED" {
            self.suspended.fetch_add(1, Ordering::Relaxed);
        }
        Ok(InvocationSummary {
            status: report.status,
            wake_at: report.wake_at,
        })
    }
}

/// Input: the due time (ms since the epoch). Sleeps until then, then a step
/// returns the wall-clock µs at which its body ran.
fn timer_probe(fired: Arc<AtomicUsize>) -> Handler {
    durafn::handler(move |ctx: DurableContext, due_ms: i64| {
        let fired = fired.clone();
        async move {
            ctx.sleep_until("due", Timestamp(due_ms)).await?;
            let ran_at_us: f64 = ctx
                .step("fired", move |_| async move {
                    let at = now_us();
                    fired.fetch_add(1, Ordering::Relaxed);
                    Ok::<_, DurableError>(at)
                })
                .await?;
            Ok::<_, DurableError>(ran_at_us)
        }
    })
}

fn id_of(i: usize) -> Result<ExecutionId> {
    Ok(ExecutionId::new(format!("timer-{i:05}"))?)
}

/// The due time of the `i`-th of `n` timers in the window starting at `start`.
fn due_of(start: Timestamp, i: usize, n: usize) -> Timestamp {
    let window_ms = WINDOW.as_millis() as usize;
    Timestamp(start.0 + (i * window_ms / n.max(1)) as i64)
}

async fn measure(sizes: &Sizes, report: &mut Report) -> Result<f64> {
    let dir = scratch_dir()?;
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path().join("timers.db"))?);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let fired = Arc::new(AtomicUsize::new(0));
    let invoker = Arc::new(InProcessInvoker {
        handler: timer_probe(fired.clone()),
        store: store.clone(),
        clock: clock.clone(),
        invocations: AtomicUsize::new(0),
        suspended: AtomicUsize::new(0),
    });
    let dispatcher = Arc::new(Dispatcher::new(
        store.clone(),
        clock.clone(),
        invoker.clone(),
        DispatcherConfig::default(),
    ));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let runner = {
        let d = dispatcher.clone();
        tokio::spawn(async move {
            d.run(async {
                let _ = stop_rx.await;
            })
            .await;
        })
    };
    let measured = timers(sizes, &store, &clock, &dispatcher, &invoker, &fired, report).await;
    let _ = stop_tx.send(());
    let _ = runner.await;
    dispatcher.idle().await;
    measured
}

async fn timers(
    sizes: &Sizes,
    store: &Arc<dyn Store>,
    clock: &Arc<dyn Clock>,
    dispatcher: &Dispatcher,
    invoker: &InProcessInvoker,
    fired: &AtomicUsize,
    report: &mut Report,
) -> Result<f64> {
    let n = sizes.timers;
    // Create every execution (concurrently: the store groups the commits);
    // the window starts `margin` after the creation began.
    let created = Instant::now();
    let start = clock.now().plus(sizes.margin);
    let mut tasks = JoinSet::new();
    for worker in 0..SETUP_CONCURRENCY.min(n) {
        let store = store.clone();
        let now = clock.now();
        tasks.spawn(async move {
            for i in (worker..n).step_by(SETUP_CONCURRENCY) {
                store
                    .create_execution(&NewExecution {
                        id: id_of(i)?,
                        function: FUNCTION.into(),
                        version: "1".into(),
                        input: serde_json::json!(due_of(start, i, n).0),
                        now,
                    })
                    .await?;
            }
            Ok::<_, crate::measure::BenchError>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let create_s = created.elapsed().as_secs_f64();
    dispatcher.handle().wake();

    // Every execution runs once and suspends on its timer before the window.
    let guard = Duration::from_millis(200);
    loop {
        let suspended = invoker.suspended.load(Ordering::Relaxed);
        if suspended >= n {
            break;
        }
        if clock.now().plus(guard) >= start {
            return Err(format!(
                "only {suspended} of {n} executions had suspended {:?} before their timers \
                 were due (the margin is too short for this machine)",
                guard
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    dispatcher.idle().await;
    let suspend_s = created.elapsed().as_secs_f64() - create_s;
    let lead_ms = clock.now().until(start).as_secs_f64() * 1e3;

    // The window: wait until every step body has run.
    let cpu_before = cpu_seconds();
    let deadline = Instant::now() + sizes.margin + WINDOW + Duration::from_secs(120);
    while fired.load(Ordering::Relaxed) < n {
        if Instant::now() >= deadline {
            return Err(format!(
                "only {} of {n} timers fired within two minutes of their window",
                fired.load(Ordering::Relaxed)
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    dispatcher.idle().await;
    let window_cpu_s = cpu_seconds() - cpu_before;

    // Read what each execution recorded.
    let mut lateness = Vec::with_capacity(n);
    let mut last_us = 0.0_f64;
    let mut reads = JoinSet::new();
    for worker in 0..SETUP_CONCURRENCY.min(n) {
        let store = store.clone();
        reads.spawn(async move {
            let mut out = Vec::new();
            for i in (worker..n).step_by(SETUP_CONCURRENCY) {
                let id = id_of(i)?;
                let e = store
                    .get_execution(&id)
                    .await?
                    .ok_or_else(|| format!("execution {id} vanished"))?;
                let ran_at_us = match (e.status, e.output.as_ref().and_then(|o| o.as_f64())) {
                    (ExecutionStatus::Succeeded, Some(at)) => at,
                    (status, output) => {
                        return Err(format!(
                            "execution {id} ended {status} with output {output:?}, \
                             expected SUCCEEDED with the time its step ran"
                        )
                        .into());
                    }
                };
                out.push((i, ran_at_us));
            }
            Ok::<_, crate::measure::BenchError>(out)
        });
    }
    while let Some(done) = reads.join_next().await {
        for (i, ran_at_us) in done?? {
            let due_us = due_of(start, i, n).0 as f64 * 1e3;
            lateness.push((ran_at_us - due_us) / 1e3);
            last_us = last_us.max(ran_at_us);
        }
    }
    let p = |q: f64| percentile(&lateness, q).unwrap_or(f64::NAN);
    let (p50, p99, max) = (p(50.0), p(99.0), p(100.0));
    let min = lateness.iter().copied().fold(f64::NAN, f64::min);
    report.info(
        METRIC,
        &[
            ("timers", n as f64),
            ("p50_ms", p50),
            ("p90_ms", p(90.0)),
            ("p99_ms", p99),
            ("max_ms", max),
            ("min_ms", min),
            (
                "elapsed_ms",
                (last_us - start.0 as f64 * 1e3) / 1e3, // window start → last step body
            ),
            (
                "over_target",
                lateness.iter().filter(|l| **l > TARGET).count() as f64,
            ),
        ],
    );
    report.info(
        METRIC,
        &[
            ("create_s", create_s),
            ("suspend_all_s", suspend_s),
            ("lead_ms", lead_ms),
            ("window_cpu_s", window_cpu_s),
            (
                "invocations",
                invoker.invocations.load(Ordering::Relaxed) as f64,
            ),
        ],
    );
    if min < 0.0 {
        return Err(format!("a timer fired {:.3} ms before it was due", -min).into());
    }
    if p99.is_nan() || p99 <= 0.0 {
        return Err(format!("the p99 lateness was {p99} ms: are the clocks right?").into());
    }
    Ok(p99)
}

/// CPU time this process has used (user + system), in seconds, from
/// `/proc/self/stat` (clock ticks of 1/100 s); NaN where there is none.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return f64::NAN;
    };
    // The fields after the command name (which may hold spaces) start at `)`.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return f64::NAN;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line: 12 and 13 after `)`.
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
    match (ticks(11), ticks(12)) {
        (Some(u), Some(s)) => (u + s) / 100.0,
        _ => f64::NAN,
    }
}
