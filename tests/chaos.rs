//! The chaos suite: "nothing lost", measured.
//!
//! N executions of a workload that mixes steps with side effects (an external
//! ledger file), an at-most-once step, a sleep, a retried step, a callback, a
//! child invoke and a map (`durafn_tests::chaos`) run on two `durafn dev`
//! emulators sharing one store, with real handler processes. While they run,
//! a seeded random schedule
//! - SIGKILLs handler processes (mid-step: every step body takes a while),
//! - SIGKILLs an emulator (with its handler processes, or leaving them
//!   orphaned) and restarts it on the same state and port,
//! - freezes a handler process in the middle of a step body — after its side
//!   effect, before its checkpoint: the test arms a freeze and the next step
//!   body to start stops itself (SIGSTOP) — together with its emulator and
//!   that emulator's other handler processes, past their leases, so the other
//!   emulator takes their executions over and re-runs the step; then it thaws
//!   the handlers (SIGCONT), and their emulator 1.5 s later: zombies, with a
//!   head start, racing the new invocations to record the step,
//! - on DynamoDB Local, kill -9s the database and restarts it on the same
//!   files (`-dbPath`) and port.
//!
//! When the chaos stops, every execution must finish within a deadline. The
//! test prints, and asserts to be 0: executions lost, steps recorded twice,
//! side effects applied twice for `at_most_once` steps, executions stuck
//! (plus executions failed).
//!
//! Short by default (≈ 1–2 min per backend). The long version:
//! `DURAFN_CHAOS_MINUTES=30 cargo test -p durafn-tests --test chaos -- --nocapture`
//! (`DURAFN_CHAOS_SEED` picks another schedule). See docs/reliability.md.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use durafn_tests::chaos::{CHILD_FUNCTION, FREEZE_ARM, FROZEN_PREFIX, Ledger, PARENT_STEPS, Rng};
use durafn_tests::procs::{self, Dev, DevSpec, DynamoLocal};
use serde_json::{Value, json};

const TEMPLATE: &str = r#"
Transform: AWS::Serverless-2016-10-31
Resources:
  ChaosFunction:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: chaos
      CodeUri: tests
      Handler: chaosfn
      Timeout: 3
  ChaosChildFunction:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: chaos-child
      CodeUri: tests
      Handler: chaosfn
      Timeout: 3
"#;

/// The lease of a claim: the function's timeout (3 s) + 5 s of grace.
const LEASE: Duration = Duration::from_secs(8);

/// How long thawed handler processes run before their emulator is thawed
/// (which would kill them for their timeout at once).
const HEAD_START: Duration = Duration::from_millis(1500);

/// How long an armed freeze waits for a step body to claim it.
const ARM_FOR: Duration = Duration::from_secs(4);

struct Config {
    executions: usize,
    chaos: Duration,
    drain: Duration,
    seed: u64,
    step_ms: u64,
}

impl Config {
    fn from_env(backend_seed: u64) -> Config {
        let minutes: Option<f64> = std::env::var("DURAFN_CHAOS_MINUTES")
            .ok()
            .and_then(|m| m.parse().ok())
            .filter(|m: &f64| *m > 0.0);
        let seed = std::env::var("DURAFN_CHAOS_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(backend_seed);
        match minutes {
            // Long: ~40 executions per minute of chaos, started evenly.
            Some(m) => Config {
                executions: ((m * 40.0) as usize).max(10),
                chaos: Duration::from_secs_f64(m * 60.0),
                drain: Duration::from_secs(180),
                seed,
                step_ms: 120,
            },
            None => Config {
                executions: 30,
                chaos: Duration::from_secs(45),
                drain: Duration::from_secs(120),
                seed,
                step_ms: 120,
            },
        }
    }
}

#[derive(Default, Debug)]
struct Faults {
    handler_kills: u32,
    emulator_kills: u32,
    orphaning_kills: u32,
    /// Mid-step freezes: a handler stopped inside a step body, its emulator frozen.
    freezes: u32,
    /// Of those, zombies still alive when thawed (they raced the new invocation).
    zombies_thawed: u32,
    /// Armed freezes that caught nothing usable (no step body in time, an
    /// orphaned handler, the other emulator down).
    freeze_misses: u32,
    store_restarts: u32,
}

/// A frozen emulator: its handler processes thaw at `until`, it at `until + HEAD_START`.
struct Freeze {
    until: Instant,
    emulator: u32,
    handlers: Vec<u32>,
    zombie: u32,
    handlers_thawed: bool,
}

/// One emulator of the pair: running, frozen until a time, or down.
struct Node {
    spec: DevSpec,
    dev: Option<Dev>,
    frozen: Option<Freeze>,
}

impl Node {
    fn live(&self) -> Option<&Dev> {
        if self.frozen.is_some() {
            None
        } else {
            self.dev.as_ref()
        }
    }
}

struct Cluster {
    nodes: Vec<Node>,
    store: Option<DynamoLocal>,
    chaosfn: PathBuf,
    pids: PathBuf,
    work: PathBuf,
    rng: Rng,
    faults: Faults,
    /// When the pending freeze was armed.
    armed: Option<Instant>,
}

/// The parent pid of `pid`.
fn ppid(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    after.split_whitespace().nth(1)?.parse().ok()
}

/// True once `pid` is stopped (state `T`), waiting at most 1 s.
async fn stopped(pid: u32) -> bool {
    for _ in 0..100 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        match stat
            .rsplit_once(')')
            .and_then(|(_, a)| a.split_whitespace().next())
        {
            Some("T" | "t") => return true,
            None => return false,
            _ => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    false
}

impl Cluster {
    /// A live emulator for an API call (a random one).
    fn any(&mut self) -> Option<&Dev> {
        let live: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].live().is_some())
            .collect();
        if live.is_empty() {
            return None;
        }
        let i = live[self.rng.below(live.len() as u64) as usize];
        self.nodes[i].live()
    }

    fn handler_pids(&self, dev: &Dev) -> Vec<u32> {
        procs::children(dev.pid())
            .into_iter()
            .filter(|&p| procs::runs(p, &self.chaosfn))
            .collect()
    }

    /// Thaws frozen handlers whose freeze is over, and their emulators after
    /// the zombies' head start.
    fn thaw_due(&mut self) {
        let now = Instant::now();
        for n in &mut self.nodes {
            let Some(f) = n.frozen.as_mut() else { continue };
            if now >= f.until && !f.handlers_thawed {
                if procs::runs(f.zombie, &self.chaosfn) {
                    self.faults.zombies_thawed += 1;
                }
                for &p in &f.handlers {
                    procs::signal(p, "CONT");
                }
                f.handlers_thawed = true;
            }
            if now >= f.until + HEAD_START {
                procs::signal(f.emulator, "CONT");
                n.frozen = None;
            }
        }
    }

    /// Asks the next step body to stop itself (see `durafn_tests::chaos`).
    fn arm_freeze(&mut self) {
        let both_live = self.nodes.iter().all(|n| n.live().is_some());
        if self.armed.is_none()
            && both_live
            && std::fs::write(self.work.join(FREEZE_ARM), b"").is_ok()
        {
            self.armed = Some(Instant::now());
        }
    }

    /// Handles claimed freezes: freezes the claimer's emulator and its other
    /// handlers (or, when that cannot make a zombie, or `freeze` is false,
    /// thaws the claimer). Disarms a freeze nobody claimed in time.
    async fn take_claims(&mut self, freeze: bool) {
        let mut claims = Vec::new();
        if let Ok(entries) = std::fs::read_dir(&self.work) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                if let Some(pid) = name
                    .strip_prefix(FROZEN_PREFIX)
                    .and_then(|p| p.parse().ok())
                {
                    let _ = std::fs::remove_file(e.path());
                    claims.push(pid);
                }
            }
        }
        for pid in claims {
            self.armed = None;
            let is_stopped = stopped(pid).await;
            let parent = ppid(pid);
            let node = (0..self.nodes.len()).find(|&i| {
                self.nodes[i]
                    .live()
                    .is_some_and(|d| Some(d.pid()) == parent)
            });
            let usable = freeze
                && is_stopped
                && node.is_some_and(|i| self.nodes[(i + 1) % self.nodes.len()].live().is_some());
            match node {
                Some(i) if usable => {
                    let dev = self.nodes[i].dev.as_ref().expect("a live node");
                    let emulator = dev.pid();
                    procs::signal(emulator, "STOP");
                    let mut handlers = self.handler_pids(dev);
                    for &p in &handlers {
                        procs::signal(p, "STOP");
                    }
                    if !handlers.contains(&pid) {
                        handlers.push(pid);
                    }
                    let hold = LEASE + Duration::from_millis(1000 + self.rng.below(2000));
                    self.nodes[i].frozen = Some(Freeze {
                        until: Instant::now() + hold,
                        emulator,
                        handlers,
                        zombie: pid,
                        handlers_thawed: false,
                    });
                    self.faults.freezes += 1;
                }
                _ => {
                    procs::signal(pid, "CONT");
                    if freeze {
                        self.faults.freeze_misses += 1;
                    }
                }
            }
        }
        if self.armed.is_some_and(|t| t.elapsed() >= ARM_FOR) || (!freeze && self.armed.is_some()) {
            // Nobody claimed it in time (or the chaos is over): disarm, unless a body claims it right now.
            if std::fs::remove_file(self.work.join(FREEZE_ARM)).is_ok() {
                self.armed = None;
                if freeze {
                    self.faults.freeze_misses += 1;
                }
            }
        }
    }

    async fn fault(&mut self) {
        let ddb = self.store.is_some();
        let mut roll = self.rng.below(100);
        let node = self.rng.below(self.nodes.len() as u64) as usize;
        let (handler, emulator, freeze) = if ddb { (35, 50, 80) } else { (55, 80, 100) };
        // The first faults are one of each kind, so every run has them all
        // (whatever the timing does to the random ones): a mid-step freeze,
        // an emulator kill, a store restart (DynamoDB), a handler kill.
        let f = &self.faults;
        if f.freezes + f.freeze_misses == 0 && self.armed.is_none() {
            roll = emulator;
        } else if f.emulator_kills == 0 {
            roll = handler;
        } else if ddb && f.store_restarts == 0 {
            roll = freeze;
        } else if f.handler_kills == 0 {
            roll = 0;
        } else if f.zombies_thawed == 0 && self.armed.is_none() {
            // Until one freeze has made a zombie.
            roll = emulator;
        }
        if self.nodes[node].frozen.is_some() {
            return;
        }
        if roll < handler {
            let Some(dev) = self.nodes[node].dev.as_ref() else {
                return;
            };
            let pids = self.handler_pids(dev);
            if !pids.is_empty() {
                let p = pids[self.rng.below(pids.len() as u64) as usize];
                if procs::signal(p, "KILL") {
                    self.faults.handler_kills += 1;
                }
            }
        } else if roll < emulator {
            let Some(mut dev) = self.nodes[node].dev.take() else {
                return;
            };
            let handlers = self.handler_pids(&dev);
            dev.kill9();
            if self.rng.chance(0.5) {
                // The machine died: its handler processes too.
                for p in handlers {
                    procs::signal(p, "KILL");
                }
            } else {
                // Only the emulator died: its handlers live on as orphans.
                self.faults.orphaning_kills += 1;
            }
            drop(dev);
            self.faults.emulator_kills += 1;
            tokio::time::sleep(Duration::from_millis(self.rng.below(1000))).await;
            let spec = self.nodes[node].spec.clone();
            self.nodes[node].dev = Some(Dev::start_retrying(&spec).await);
        } else if roll < freeze {
            // Freeze a handler mid-step, and its emulator, past their leases.
            self.arm_freeze();
        } else if let Some(store) = self.store.as_mut() {
            store.kill9();
            tokio::time::sleep(Duration::from_millis(self.rng.below(2000))).await;
            tokio::task::block_in_place(|| store.restart());
            self.faults.store_restarts += 1;
        }
    }

    /// Every frozen emulator thawed, every node running.
    async fn heal(&mut self) {
        self.take_claims(false).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        self.take_claims(false).await;
        for n in &mut self.nodes {
            if let Some(f) = n.frozen.take() {
                for &p in &f.handlers {
                    procs::signal(p, "CONT");
                }
                procs::signal(f.emulator, "CONT");
            }
        }
        for i in 0..self.nodes.len() {
            if self.nodes[i].dev.is_none() {
                let spec = self.nodes[i].spec.clone();
                self.nodes[i].dev = Some(Dev::start_retrying(&spec).await);
            }
        }
    }
}

/// Completes every callback whose id the workflow left in `callbacks/`.
async fn complete_callbacks(cluster: &mut Cluster, work: &Path, done: &mut BTreeSet<String>) {
    let Ok(entries) = std::fs::read_dir(work.join("callbacks")) else {
        return;
    };
    let mut todo = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with('.') || done.contains(&name) {
            continue;
        }
        if let Ok(token) = std::fs::read_to_string(e.path()) {
            todo.push((name, token));
        }
    }
    for (exec, token) in todo {
        let Some(dev) = cluster.any() else { return };
        let body = json!({ "approved_for": exec });
        match dev
            .call(
                "POST",
                &format!("/v1/callbacks/{token}/succeed"),
                Some(&body),
            )
            .await
        {
            Some((200 | 202 | 204, _)) => {
                done.insert(exec);
            }
            Some((409, v)) if v["error"]["code"] == "CallbackAlreadyCompleted" => {
                done.insert(exec);
            }
            _ => {}
        }
    }
}

async fn try_start(cluster: &mut Cluster, name: &str, input: &Value) -> bool {
    let Some(dev) = cluster.any() else {
        return false;
    };
    matches!(
        dev.call(
            "POST",
            "/v1/functions/chaos/executions",
            Some(&json!({ "name": name, "input": input })),
        )
        .await,
        Some((200..=202, _))
    )
}

#[derive(Debug, Default)]
struct Figures {
    lost: Vec<String>,
    recorded_twice: Vec<String>,
    at_most_once_twice: Vec<String>,
    stuck: Vec<String>,
    failed: Vec<String>,
}

async fn run_chaos(backend: &str, seed: u64) {
    let cfg = Config::from_env(seed);
    let root = tempfile::tempdir().unwrap();
    let work = root.path().join("work");
    std::fs::create_dir_all(work.join("callbacks")).unwrap();
    let template = root.path().join("template.yaml");
    std::fs::write(&template, TEMPLATE).unwrap();
    let chaosfn = PathBuf::from(env!("CARGO_BIN_EXE_chaosfn"));
    let pids = root.path().join("pids");

    let store = (backend == "dynamodb").then(|| DynamoLocal::start(&root.path().join("ddb")));
    let store_url = store.as_ref().map(|s| {
        format!(
            "dynamodb://chaos?endpoint={}&region=us-east-1",
            s.endpoint()
        )
    });
    let spec = |name: &str| DevSpec {
        durafn: PathBuf::from(env!("CARGO_BIN_EXE_durafn-under-test")),
        state: root.path().join("state"),
        template: template.clone(),
        store: store_url.clone(),
        exes: vec![
            ("chaos".into(), chaosfn.clone()),
            (CHILD_FUNCTION.into(), chaosfn.clone()),
        ],
        env: vec![
            ("CHAOS_PIDS".into(), pids.display().to_string()),
            ("CHAOS_NODE".into(), name.into()),
        ],
        port: 0,
    };
    let mut nodes = Vec::new();
    for name in ["a", "b"] {
        let mut s = spec(name);
        let dev = Dev::start_retrying(&s).await;
        // Restarts come back on the port it picked.
        s.port = dev.port;
        nodes.push(Node {
            spec: s,
            dev: Some(dev),
            frozen: None,
        });
    }
    let mut cluster = Cluster {
        nodes,
        store,
        chaosfn: chaosfn.clone(),
        pids: pids.clone(),
        work: work.clone(),
        rng: Rng::new(cfg.seed),
        faults: Faults::default(),
        armed: None,
    };

    let names: Vec<String> = (0..cfg.executions).map(|i| format!("chaos-{i}")).collect();
    let input = json!({ "dir": work, "step_ms": cfg.step_ms });
    let mut started = vec![false; names.len()];
    let mut callbacks_done = BTreeSet::new();
    let t0 = Instant::now();
    let mut next_fault = t0 + Duration::from_millis(500 + cluster.rng.below(1000));
    // Starts are spread over the first 85 % of the chaos.
    let start_window = cfg.chaos.mul_f64(0.85);
    while t0.elapsed() < cfg.chaos {
        cluster.thaw_due();
        cluster.take_claims(true).await;
        let due = ((t0.elapsed().as_secs_f64() / start_window.as_secs_f64()) * names.len() as f64)
            .ceil() as usize;
        for i in 0..due.min(names.len()) {
            if !started[i] {
                started[i] = try_start(&mut cluster, &names[i], &input).await;
            }
        }
        complete_callbacks(&mut cluster, &work, &mut callbacks_done).await;
        if Instant::now() >= next_fault {
            cluster.fault().await;
            next_fault = Instant::now() + Duration::from_millis(400 + cluster.rng.below(1200));
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }

    // The chaos stops: everything comes back, and every execution must finish.
    cluster.heal().await;
    let chaos_over = Instant::now();
    for i in 0..names.len() {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !started[i] && Instant::now() < deadline {
            started[i] = try_start(&mut cluster, &names[i], &input).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(started[i], "could not start {} after the chaos", names[i]);
    }
    let mut finished: BTreeMap<String, Value> = BTreeMap::new();
    let mut last: BTreeMap<String, Value> = BTreeMap::new();
    while chaos_over.elapsed() < cfg.drain && finished.len() < names.len() {
        complete_callbacks(&mut cluster, &work, &mut callbacks_done).await;
        for n in &names {
            if finished.contains_key(n) {
                continue;
            }
            let Some(dev) = cluster.any() else { break };
            if let Some((status, v)) = dev.call("GET", &format!("/v1/executions/{n}"), None).await {
                let terminal = matches!(
                    v["status"].as_str(),
                    Some("SUCCEEDED" | "FAILED" | "CANCELLED" | "TIMED_OUT" | "BLOCKED")
                );
                if status == 200 && terminal {
                    finished.insert(n.clone(), v.clone());
                }
                last.insert(n.clone(), json!({ "http": status, "body": v }));
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let settled_after = chaos_over.elapsed();

    // The verdict.
    let ledger = Ledger::read(&work);
    let mut fig = Figures::default();
    fig.recorded_twice.extend(ledger.recorded_twice());
    fig.at_most_once_twice
        .extend(ledger.at_most_once_doubles("charge"));
    let dev = cluster.any().expect("an emulator after healing");
    for n in &names {
        let Some(v) = finished.get(n) else {
            match last.get(n) {
                Some(l) if l["http"] == 404 => fig.lost.push(format!("{n}: {l}")),
                Some(l) => fig.stuck.push(format!("{n}: {}", l["body"]["status"])),
                None => fig.stuck.push(format!("{n}: never described")),
            }
            continue;
        };
        if v["status"] != "SUCCEEDED" {
            fig.failed.push(format!("{n}: {v}"));
            continue;
        }
        // The output is what every invocation saw, and those values came from
        // step bodies that really ran.
        for step in PARENT_STEPS {
            let out = v["output"][*step].to_string();
            match ledger.value(n, step) {
                Some(seen) if *seen == out => {}
                other => fig.recorded_twice.push(format!(
                    "{n}/{step}: output {out}, invocations saw {other:?}"
                )),
            }
            if let Some(t) = v["output"][*step].as_str() {
                if !ledger.tokens.contains(t) {
                    fig.recorded_twice
                        .push(format!("{n}/{step}: {t} was never produced by a step body"));
                }
            }
        }
        // One operation per name in the history.
        let (_, h) = dev
            .call("GET", &format!("/v1/executions/{n}/history"), None)
            .await
            .expect("history");
        let mut per_name: BTreeMap<String, usize> = BTreeMap::new();
        let mut child_id = None;
        for op in h["operations"].as_array().cloned().unwrap_or_default() {
            let name = op["name"].as_str().unwrap_or("").to_string();
            if name == "child" {
                child_id = op["id"].as_str().map(str::to_string);
            }
            *per_name.entry(name).or_default() += 1;
        }
        for (name, c) in &per_name {
            if *c > 1 {
                fig.recorded_twice
                    .push(format!("{n}: {c} operations named {name}"));
            }
        }
        // The child ran to the end once, with the values it returned.
        let Some(op) = child_id else {
            fig.recorded_twice.push(format!("{n}: no child operation"));
            continue;
        };
        let child = format!("{n}::{op}");
        match dev
            .call("GET", &format!("/v1/executions/{child}"), None)
            .await
        {
            Some((200, c)) if c["status"] == "SUCCEEDED" => {
                for (k, step) in [("work", "child-work"), ("done", "child-done")] {
                    let out = c["output"][k].to_string();
                    if ledger.value(&child, step) != Some(&out) {
                        fig.recorded_twice.push(format!("{child}/{step}: {out}"));
                    }
                }
            }
            Some((404, _)) => fig.lost.push(child),
            other => fig.failed.push(format!("{child}: {other:?}")),
        }
    }

    let diagnosis = if fig.stuck.is_empty() {
        String::new()
    } else {
        diagnose(&mut cluster, store_url.as_deref(), &names, &finished).await
    };
    let reaped = procs::reap_listed(&cluster.pids, &chaosfn);
    let f = &cluster.faults;
    let report = format!(
        "chaos[{backend}] seed={} executions={} chaos={:?} step_ms={} | faults: handler kills={} \
         emulator kills={} (orphaning {}) mid-step freezes={} (zombies thawed {}, misses {}) \
         store restarts={} | executions lost={} \
         steps recorded twice={} at_most_once side effects applied twice={} executions stuck={} \
         (failed={}) | settled {:.1}s after the chaos; {} callbacks completed; {} handler processes reaped at the end",
        cfg.seed,
        names.len(),
        cfg.chaos,
        cfg.step_ms,
        f.handler_kills,
        f.emulator_kills,
        f.orphaning_kills,
        f.freezes,
        f.zombies_thawed,
        f.freeze_misses,
        f.store_restarts,
        fig.lost.len(),
        fig.recorded_twice.len(),
        fig.at_most_once_twice.len(),
        fig.stuck.len(),
        fig.failed.len(),
        settled_after.as_secs_f64(),
        callbacks_done.len(),
        reaped,
    );
    println!("{report}");
    eprintln!("{report}");
    if !diagnosis.is_empty() {
        eprintln!("{diagnosis}");
    }
    if let Ok(path) = std::env::var("DURAFN_CHAOS_REPORT") {
        use std::io::Write;
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(file, "{report}");
        }
    }
    assert!(
        fig.lost.is_empty()
            && fig.recorded_twice.is_empty()
            && fig.at_most_once_twice.is_empty()
            && fig.stuck.is_empty()
            && fig.failed.is_empty(),
        "{report}\n{diagnosis}\n{fig:#?}"
    );
    // The chaos really happened.
    assert!(f.handler_kills > 0 && f.emulator_kills > 0, "{report}");
    // At least one zombie: a handler frozen mid-step, thawed after the takeover.
    assert!(f.zombies_thawed > 0, "{report}");
    if backend == "dynamodb" {
        assert!(
            f.store_restarts > 0 || cfg.chaos < Duration::from_secs(20),
            "{report}"
        );
    }
}

/// What the cluster looks like when executions are stuck: each emulator's
/// due backlog and store errors (`/metrics`), the dispatch shard leases, and
/// the records of a few stuck executions, so a failed run says where it
/// stopped.
async fn diagnose(
    cluster: &mut Cluster,
    store_url: Option<&str>,
    names: &[String],
    finished: &BTreeMap<String, Value>,
) -> String {
    let mut out = String::from("diagnosis (executions stuck):\n");
    for (i, node) in cluster.nodes.iter().enumerate() {
        let Some(dev) = node.live() else {
            out.push_str(&format!("  emulator {i}: down or frozen\n"));
            continue;
        };
        let metrics = dev.get_text("/metrics").await.unwrap_or_default();
        for line in metrics.lines().filter(|l| {
            [
                "durafn_due_backlog",
                "durafn_due_oldest_age_seconds",
                "durafn_store_errors_total",
                "durafn_invocations_total",
                "durafn_lease_expiries_total",
                "durafn_claims_lost_total",
            ]
            .iter()
            .any(|m| l.starts_with(m))
        }) {
            out.push_str(&format!("  emulator {i}: {line}\n"));
        }
    }
    let url = store_url.map_or_else(
        || {
            format!(
                "sqlite://{}",
                cluster.nodes[0].spec.state.join("durafn.db").display()
            )
        },
        str::to_string,
    );
    match durafn_runtime::store::open_async(&url).await {
        Ok(store) => {
            match store.list_leases("dispatch").await {
                Ok(leases) => {
                    for l in leases {
                        out.push_str(&format!(
                            "  lease {} owner={} until={:?}\n",
                            l.name, l.owner, l.until
                        ));
                    }
                }
                Err(e) => out.push_str(&format!("  leases: {e}\n")),
            }
            let stuck = names.iter().filter(|n| !finished.contains_key(*n)).take(8);
            for n in stuck {
                let Ok(id) = durafn_runtime::model::ExecutionId::new(n.as_str()) else {
                    continue;
                };
                match store.get_execution(&id).await {
                    Ok(Some(e)) => out.push_str(&format!(
                        "  {n}: status={:?} epoch={} wakeups={} due_at={:?} updated_at={:?}\n",
                        e.status, e.epoch, e.wakeups, e.due_at, e.updated_at
                    )),
                    other => out.push_str(&format!("  {n}: {other:?}\n")),
                }
            }
        }
        Err(e) => out.push_str(&format!("  store {url}: {e}\n")),
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_on_sqlite_loses_nothing() {
    run_chaos("sqlite", 13).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_on_dynamodb_local_loses_nothing() {
    run_chaos("dynamodb", 31).await;
}
