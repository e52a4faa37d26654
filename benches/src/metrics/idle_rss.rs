//! `idle_rss_mb_100k`: the resident memory of `durafn dev` holding 100,000
//! suspended executions (DESIGN.md §8: suspended executions cost no memory;
//! 100,000 suspended, emulator RSS ≤ 64 MB).
//!
//! The executions are written straight into a SQLite state file with the
//! `Store` API: each is created, claimed and suspended on a timer 30 days
//! ahead, as an invocation that waits would leave it. The writes run
//! concurrently, so the store's writer groups them into few commits. Then
//! `durafn dev --state DIR` starts on that folder (its store is
//! `DIR/durafn.db`), its dispatcher polls the due index for a few seconds,
//! and the benchmark reads `VmRSS` from `/proc/<pid>/status` (Linux only).
//!
//! The floor is the same `durafn dev` on an empty state folder, measured the
//! same way in the same run; it and the cost per suspended execution are on
//! an `info` line. MB here are MiB (`VmRSS` kB / 1024).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use durafn_emulator::client::ApiClient;
use durafn_runtime::clock::{Clock, SystemClock};
use durafn_runtime::model::{ExecutionId, ExecutionStatus, NewExecution};
use durafn_runtime::store::{SqliteStore, Store, Transition};
use tokio::task::JoinSet;

use crate::Scale;
use crate::bins;
use crate::dev_server::expect_status;
use crate::measure::{BenchError, Result, scratch_dir};
use crate::report::{Figure, Report};

/// RSS of `durafn dev` with 100,000 suspended executions.
const METRIC: &str = "idle_rss_mb_100k";

/// The metrics this group reports.
pub(crate) const METRICS: &[&str] = &[METRIC];

/// DESIGN.md §8.
const TARGET: f64 = 64.0;

/// The function the executions belong to (a handler that never runs here).
const FUNCTION: &str = "idle-probe";

/// How far ahead the suspended executions' timers are.
const SLEEP: Duration = Duration::from_secs(30 * 24 * 3600);

/// How many executions the setup writes at once (the store groups them).
const WRITE_CONCURRENCY: usize = 1024;

/// How long `durafn dev` may take to answer `/healthz`.
const START_TIMEOUT: Duration = Duration::from_secs(60);

struct Sizes {
    executions: usize,
    /// How long `durafn dev` runs (its dispatcher polling) before the reading.
    settle: Duration,
}

impl Sizes {
    fn of(scale: Scale) -> Self {
        match scale {
            Scale::Full => Sizes {
                executions: 100_000,
                settle: Duration::from_secs(3),
            },
            Scale::Quick => Sizes {
                executions: 1_000,
                settle: Duration::from_millis(500),
            },
        }
    }
}

/// Measures and reports [`METRICS`].
pub(crate) async fn run(scale: Scale, report: &mut Report) {
    match measure(&Sizes::of(scale), report).await {
        Ok(mb) => report.figure(Figure {
            metric: METRIC,
            value: mb,
            unit: "MB",
            target: TARGET,
        }),
        Err(e) => report.error(METRIC, &e.to_string()),
    }
}

async fn measure(sizes: &Sizes, report: &mut Report) -> Result<f64> {
    if !Path::new("/proc/self/status").is_file() {
        return Err("needs /proc/<pid>/status (Linux) to read a process's RSS".into());
    }
    let bins = tokio::task::spawn_blocking(bins::locate).await??;

    // The floor: no executions at all.
    let empty = scratch_dir()?;
    let floor = {
        let dev = Dev::start(&bins.dev, &bins.resume, empty.path()).await?;
        tokio::time::sleep(sizes.settle).await;
        dev.memory()?
    };

    // The figure: the same, on a state folder holding N suspended executions.
    let dir = scratch_dir()?;
    let written = Instant::now();
    let first = write_suspended(&dir.path().join("state"), sizes.executions).await?;
    let write_s = written.elapsed().as_secs_f64();
    let db_bytes = std::fs::metadata(dir.path().join("state").join("durafn.db"))?.len();
    let dev = Dev::start(&bins.dev, &bins.resume, dir.path()).await?;
    tokio::time::sleep(sizes.settle).await;
    let loaded = dev.memory()?;
    // Read after the measurement: the emulator sees the executions as suspended.
    let v = expect_status(
        "describing a suspended execution",
        dev.client()
            .call("GET", &format!("/v1/executions/{first}"), None)
            .await?,
        &[200],
    )?;
    if v["status"] != "SUSPENDED" {
        return Err(format!("execution {first} should be SUSPENDED in durafn dev: {v}").into());
    }
    let warnings = dev.log_warnings();
    drop(dev);

    let mb = |kb: u64| kb as f64 / 1024.0;
    report.info(
        METRIC,
        &[
            ("executions", sizes.executions as f64),
            ("rss_mb", mb(loaded.rss_kb)),
            ("rss_anon_mb", mb(loaded.anon_kb)),
            ("rss_file_mb", mb(loaded.file_kb)),
            ("peak_rss_mb", mb(loaded.hwm_kb)),
            ("floor_rss_mb", mb(floor.rss_kb)),
            ("floor_peak_rss_mb", mb(floor.hwm_kb)),
            (
                "bytes_per_suspended",
                (loaded.rss_kb as f64 - floor.rss_kb as f64) * 1024.0
                    / sizes.executions.max(1) as f64,
            ),
        ],
    );
    report.info(
        METRIC,
        &[
            ("write_s", write_s),
            ("writes_per_s", 3.0 * sizes.executions as f64 / write_s),
            ("db_mb", db_bytes as f64 / (1024.0 * 1024.0)),
            ("settle_s", sizes.settle.as_secs_f64()),
            ("log_warnings", warnings as f64),
        ],
    );
    Ok(mb(loaded.rss_kb))
}

fn id_of(i: usize) -> Result<ExecutionId> {
    Ok(ExecutionId::new(format!("idle-{i:06}"))?)
}

/// Writes `n` executions into a store at `state/durafn.db`, each suspended
/// on a far timer. Returns the id of the first.
async fn write_suspended(state: &Path, n: usize) -> Result<ExecutionId> {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(state.join("durafn.db"))?);
    let clock = SystemClock;
    let mut tasks = JoinSet::new();
    for worker in 0..WRITE_CONCURRENCY.min(n) {
        let store = store.clone();
        tasks.spawn(async move {
            for i in (worker..n).step_by(WRITE_CONCURRENCY) {
                let id = id_of(i)?;
                let now = clock.now();
                store
                    .create_execution(&NewExecution {
                        id: id.clone(),
                        function: FUNCTION.into(),
                        version: "1".into(),
                        input: serde_json::json!({ "n": i }),
                        now,
                    })
                    .await?;
                let claimed = store
                    .claim(&id, now, now.plus(Duration::from_secs(60)))
                    .await?
                    .ok_or_else(|| format!("could not claim the new execution {id}"))?;
                let t = store
                    .suspend(
                        &id,
                        claimed.epoch,
                        claimed.wakeups,
                        Some(now.plus(SLEEP)),
                        now,
                    )
                    .await?;
                if t != Transition::Done {
                    return Err(format!("could not suspend {id}: {t:?}").into());
                }
            }
            Ok::<_, BenchError>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let first = id_of(0)?;
    let e = store
        .get_execution(&first)
        .await?
        .ok_or("the first execution was not written")?;
    if e.status != ExecutionStatus::Suspended {
        return Err(format!("{first} is {}, not SUSPENDED", e.status).into());
    }
    drop(store);
    // Move the WAL into the database file, as a long-idle emulator has it.
    let path = state.join("durafn.db");
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
    .map_err(|e| format!("the checkpoint's thread failed: {e}"))??;
    Ok(first)
}

/// A process's memory, from `/proc/<pid>/status`, in kB.
#[derive(Debug, Clone, Copy, Default)]
struct Memory {
    rss_kb: u64,
    anon_kb: u64,
    file_kb: u64,
    hwm_kb: u64,
}

impl Memory {
    fn of(pid: u32) -> Result<Memory> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .map_err(|e| format!("cannot read /proc/{pid}/status: {e}"))?;
        let field = |name: &str| -> Option<u64> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        };
        Ok(Memory {
            rss_kb: field("VmRSS:").ok_or_else(|| format!("no VmRSS for process {pid}"))?,
            anon_kb: field("RssAnon:").unwrap_or(0),
            file_kb: field("RssFile:").unwrap_or(0),
            hwm_kb: field("VmHWM:").unwrap_or(0),
        })
    }
}

/// `durafn dev` on a given state folder (`dir/state`), serving [`FUNCTION`]
/// with a prebuilt handler. Killed when dropped.
///
/// `DevServer` (`dev_server.rs`) makes its own state folder; this benchmark
/// needs one written before the server starts.
struct Dev {
    child: Child,
    url: String,
    log: PathBuf,
}

impl Dev {
    async fn start(dev: &Path, handler: &Path, dir: &Path) -> Result<Dev> {
        let template = dir.join("template.yaml");
        std::fs::write(
            &template,
            format!(
                "Transform: AWS::Serverless-2016-10-31\nResources:\n  IdleProbe:\n    \
                 Type: AWS::Serverless::Function\n    Properties:\n      FunctionName: {FUNCTION}\n      \
                 CodeUri: benches\n      Handler: {FUNCTION}\n      Timeout: 30\n"
            ),
        )?;
        let log = dir.join("durafn-dev.log");
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new(dev)
            .args(["dev", "--port", &port.to_string()])
            .arg("--state")
            .arg(dir.join("state"))
            .arg("--template")
            .arg(&template)
            .arg("--exe")
            .arg(format!("{FUNCTION}={}", handler.display()))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", dev.display()))?;
        let mut server = Dev {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
        };
        let client = server.client();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok((200, _)) = client.call("GET", "/healthz", None).await {
                return Ok(server);
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!(
                    "durafn dev exited ({status}) before it answered: {}",
                    server.log_tail()
                )
                .into());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "durafn dev did not answer /healthz within {START_TIMEOUT:?}: {}",
                    server.log_tail()
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn client(&self) -> ApiClient {
        ApiClient::new(&self.url, None)
    }

    fn memory(&self) -> Result<Memory> {
        Memory::of(self.child.id())
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn log_warnings(&self) -> usize {
        self.log_text()
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
            .count()
    }

    fn log_tail(&self) -> String {
        let text = self.log_text();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(8)..].join(" | ");
        if tail.is_empty() {
            "(it logged nothing)".into()
        } else {
            format!("its log ends: {tail}")
        }
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        // No handler process runs: nothing is ever due.
        if !matches!(self.child.try_wait(), Ok(Some(_))) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Memory;

    #[test]
    fn reads_this_process_memory() {
        if !std::path::Path::new("/proc/self/status").is_file() {
            return;
        }
        let m = Memory::of(std::process::id()).unwrap();
        assert!(m.rss_kb > 0);
        assert!(m.hwm_kb >= m.rss_kb);
    }
}
