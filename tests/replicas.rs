//! Several `durafn server` replicas on one DynamoDB Local table (issue 12):
//! the due shards are leased, a SIGKILLed replica's shards are taken over,
//! schedules fire once per fire time from the holder of the schedules' shard,
//! and concurrency limits hold across replicas.
//!
//! `three_replicas_survive_a_kill_9`: 3 replicas run 300 chaos workflows
//! (steps, a 1 s sleep, retries with backoff, a callback, a child execution
//! with its own sleep, a map) while an every-minute schedule fires; the
//! replica holding the schedules' shard is SIGKILLed mid-run. Every execution must end SUCCEEDED with no
//! step recorded twice; the test prints the shards taken over, the takeover
//! time and the double dispatches (claims lost to another replica, from the
//! replicas' logs); each fire time must be fired by one replica only.
//!
//! Needs `DURAFN_DYNAMODB_ENDPOINT` (scripts/test-all.sh starts DynamoDB Local).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use durafn_emulator::client::ApiClient;
use durafn_runtime::clock::{Clock, SystemClock};
use durafn_runtime::dispatch::shards::{LEASE_GROUP, SCHEDULE_LEASE};
use durafn_runtime::store::Store;
use durafn_tests::chaos::{CHILD_FUNCTION, Ledger};
use durafn_tests::procs;
use durafn_tests::procs::{Lines, spawn_listening};
use serde_json::{Value, json};

const TOKEN: &str = "replicas-test-token";
const LEASE_TTL_MS: u64 = 3_000;

fn ddb_url(table: &str) -> String {
    let endpoint = std::env::var("DURAFN_DYNAMODB_ENDPOINT").unwrap_or_else(|_| {
        panic!("DURAFN_DYNAMODB_ENDPOINT is not set: run the tests with scripts/test-all.sh, which starts DynamoDB Local")
    });
    format!("dynamodb://{table}?endpoint={endpoint}&region=us-east-1")
}

struct Replica {
    id: String,
    child: Option<Child>,
    api: ApiClient,
    log: PathBuf,
}

impl Replica {
    async fn start(
        id: &str,
        root: &Path,
        store: &str,
        template: &Path,
        exes: &[(&str, PathBuf)],
    ) -> Replica {
        let token_file = root.join("token");
        let log = root.join(format!("{id}.log"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_durafn-under-test"));
        cmd.args(["server", "--store", store, "--bind", "127.0.0.1:0"])
            .arg("--token-file")
            .arg(&token_file)
            .arg("--template")
            .arg(template);
        for (name, path) in exes {
            cmd.arg("--exe").arg(format!("{name}={}", path.display()));
        }
        cmd.env("DURAFN_REPLICA_ID", id)
            .env("NO_COLOR", "1")
            .env("DURAFN_SHARD_LEASE_TTL_MS", LEASE_TTL_MS.to_string())
            .env(
                "RUST_LOG",
                "warn,durafn_runtime::dispatch=info,durafn_emulator::schedules=info",
            );
        let lines = Lines::File(std::fs::File::create(&log).unwrap());
        let (child, port) = spawn_listening(&mut cmd, "server", lines).await.unwrap();
        Replica {
            id: id.into(),
            child: Some(child),
            api: ApiClient::new(&format!("http://127.0.0.1:{port}"), Some(TOKEN.into())),
            log,
        }
    }

    fn alive(&self) -> bool {
        self.child.is_some()
    }

    async fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Option<(u16, Value)> {
        if !self.alive() {
            return None;
        }
        tokio::time::timeout(Duration::from_secs(10), self.api.call(method, path, body))
            .await
            .ok()
            .and_then(Result::ok)
    }

    async fn wait_up(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !matches!(self.call("GET", "/healthz", None).await, Some((200, _))) {
            assert!(
                Instant::now() < deadline,
                "replica {} did not come up",
                self.id
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let handlers = procs::children(c.id());
            let _ = c.kill();
            let _ = c.wait();
            for pid in handlers {
                procs::signal(pid, "KILL");
            }
        }
    }

    fn log_lines(&self, needle: &str) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(strip_ansi)
            .filter(|l| l.contains(needle))
            .collect()
    }
}

/// A log line without its terminal colour codes.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// `shard → owner` of the live shard leases, and the schedules' holder.
async fn lease_map(store: &Arc<dyn Store>) -> (BTreeMap<String, String>, Option<String>) {
    let now = SystemClock.now();
    let leases = store.list_leases(LEASE_GROUP).await.unwrap();
    let live = leases.iter().filter(|l| l.until >= now);
    let shards = live
        .clone()
        .filter(|l| l.name.starts_with("shard#"))
        .map(|l| (l.name.clone(), l.owner.clone()))
        .collect();
    let sched = live
        .filter(|l| l.name == SCHEDULE_LEASE)
        .map(|l| l.owner.clone())
        .next();
    (shards, sched)
}

fn per_owner(shards: &BTreeMap<String, String>) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for o in shards.values() {
        *out.entry(o.clone()).or_insert(0) += 1;
    }
    out
}

/// Completes every callback whose id a workflow left in `callbacks/`.
async fn complete_callbacks(replicas: &[Replica], work: &Path, done: &mut BTreeSet<String>) {
    let Ok(entries) = std::fs::read_dir(work.join("callbacks")) else {
        return;
    };
    let live: Vec<&Replica> = replicas.iter().filter(|r| r.alive()).collect();
    for (n, e) in entries.flatten().enumerate() {
        let exec = e.file_name().to_string_lossy().to_string();
        if exec.starts_with('.') || done.contains(&exec) {
            continue;
        }
        let Ok(token) = std::fs::read_to_string(e.path()) else {
            continue;
        };
        let r = live[n % live.len()];
        match r
            .call(
                "POST",
                &format!("/v1/callbacks/{token}/succeed"),
                Some(&json!({ "approved_for": exec })),
            )
            .await
        {
            Some((200..=204, _)) => {
                done.insert(exec);
            }
            Some((409, v)) if v["error"]["code"] == "CallbackAlreadyCompleted" => {
                done.insert(exec);
            }
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_survive_a_kill_9() {
    let started = Instant::now();
    let root = tempfile::tempdir().unwrap();
    let work = root.path().join("work");
    std::fs::create_dir_all(work.join("callbacks")).unwrap();
    std::fs::write(root.path().join("token"), TOKEN).unwrap();
    let template = root.path().join("template.yaml");
    let sched_input = json!({ "dir": work, "step_ms": 0 }).to_string();
    std::fs::write(
        &template,
        format!(
            r#"
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
      FunctionName: {CHILD_FUNCTION}
      CodeUri: tests
      Handler: chaosfn
      Timeout: 3
      Events:
        Tick:
          Type: ScheduleV2
          Properties:
            Name: replicas-tick
            ScheduleExpression: cron(* * * * ? *)
            Input: '{sched_input}'
"#
        ),
    )
    .unwrap();
    let table = format!("replicas{}", std::process::id());
    let store_url = ddb_url(&table);
    let store = durafn_runtime::store::open_async(&store_url).await.unwrap();
    let chaosfn = PathBuf::from(env!("CARGO_BIN_EXE_chaosfn"));
    let exes = [("chaos", chaosfn.clone()), (CHILD_FUNCTION, chaosfn)];
    let mut replicas: Vec<Replica> = Vec::new();
    for i in 0..3 {
        replicas.push(
            Replica::start(&format!("r{i}"), root.path(), &store_url, &template, &exes).await,
        );
    }
    for r in &replicas {
        r.wait_up().await;
    }

    // The leases settle: every shard held, by 3 replicas, at most 6 each.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (shards, sched) = lease_map(&store).await;
        let owners = per_owner(&shards);
        if shards.len() == 16
            && owners.len() == 3
            && owners.values().all(|n| *n <= 6)
            && sched.is_some()
        {
            println!(
                "leases settled in {:.1}s: {owners:?}, schedules on {sched:?}",
                started.elapsed().as_secs_f64()
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "leases did not settle: {owners:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // 300 workflows, started round-robin; the replica holding the schedules' shard
    // is SIGKILLed once 100 are started.
    let total = 300;
    let input = json!({ "dir": work, "step_ms": 0 });
    let mut callbacks_done = BTreeSet::new();
    let mut victim_shards = 0;
    let mut killed_at: Option<Instant> = None;
    let mut takeover = None;
    let mut victim = String::new();
    for i in 0..total {
        if i == 100 {
            // The victim: the holder of the schedules' shard, so the
            // scheduler moves too.
            let (shards, sched) = lease_map(&store).await;
            victim = sched.unwrap_or_else(|| "r0".into());
            victim_shards = per_owner(&shards).get(&victim).copied().unwrap_or(0);
            let v: usize = victim[1..].parse().unwrap();
            replicas[v].kill9();
            let at = Instant::now();
            killed_at = Some(at);
            println!("SIGKILLed {victim} (the scheduler) holding {victim_shards} shards");
            let gone = victim.clone();
            // Watch the takeover while the run goes on.
            let store = store.clone();
            takeover = Some(tokio::spawn(async move {
                loop {
                    let (shards, _) = lease_map(&store).await;
                    if shards.len() == 16 && !shards.values().any(|o| *o == gone) {
                        return at.elapsed();
                    }
                    assert!(
                        at.elapsed() < Duration::from_secs(30),
                        "{gone}'s shards were not taken over: {shards:?}"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }));
        }
        let name = format!("x{i:03}");
        let body = json!({ "name": name, "input": input });
        loop {
            let live: Vec<&Replica> = replicas.iter().filter(|r| r.alive()).collect();
            let r = live[i % live.len()];
            match r
                .call("POST", "/v1/functions/chaos/executions", Some(&body))
                .await
            {
                Some((200..=202, _)) => break,
                other => {
                    println!("start {name} on {} answered {other:?}; retrying", r.id);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        if i % 20 == 0 {
            complete_callbacks(&replicas, &work, &mut callbacks_done).await;
        }
    }
    assert!(killed_at.is_some());
    let takeover = takeover.unwrap().await.unwrap();

    // Every execution ends SUCCEEDED.
    // About 70 s alone; the margin is for a loaded machine (the whole suite).
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut pending: Vec<String> = (0..total).map(|i| format!("x{i:03}")).collect();
    let mut failed = Vec::new();
    while !pending.is_empty() {
        complete_callbacks(&replicas, &work, &mut callbacks_done).await;
        let mut still = Vec::new();
        for (n, id) in pending.iter().enumerate() {
            let live: Vec<&Replica> = replicas.iter().filter(|r| r.alive()).collect();
            let r = live[n % live.len()];
            match r.call("GET", &format!("/v1/executions/{id}"), None).await {
                Some((200, v)) if v["status"] == "SUCCEEDED" => {}
                Some((200, v))
                    if ["FAILED", "BLOCKED", "CANCELLED", "TIMED_OUT"]
                        .contains(&v["status"].as_str().unwrap_or("")) =>
                {
                    failed.push(format!("{id}: {}", v["status"]));
                }
                _ => still.push(id.clone()),
            }
        }
        pending = still;
        if pending.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} executions did not finish, e.g. {:?}",
            pending.len(),
            &pending[..pending.len().min(5)]
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(failed.is_empty(), "executions did not succeed: {failed:?}");
    let ledger = Ledger::read(&work);
    let twice = ledger.recorded_twice();
    assert!(twice.is_empty(), "steps recorded twice: {twice:?}");

    // At least one schedule fire (every minute), from one replica each.
    let fire_deadline = started + Duration::from_secs(75);
    while replicas
        .iter()
        .all(|r| r.log_lines("schedule fired").is_empty())
    {
        assert!(
            Instant::now() < fire_deadline,
            "the every-minute schedule never fired"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let taken_over: usize = replicas
        .iter()
        .map(|r| r.log_lines("took over a shard").len())
        .sum();
    let double: usize = replicas
        .iter()
        .map(|r| r.log_lines("claim lost").len())
        .sum();
    // Schedules: each fire time fired once, by one replica.
    let mut fires: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in &replicas {
        for l in r.log_lines("schedule fired") {
            let at = l
                .split_whitespace()
                .find_map(|w| w.strip_prefix("fire_at="))
                .unwrap_or("?")
                .to_string();
            fires.entry(at).or_default().push(r.id.clone());
        }
    }
    for (at, by) in &fires {
        assert_eq!(by.len(), 1, "fire {at} fired by {by:?}");
    }
    println!(
        "replicas: {total} executions SUCCEEDED in {:.1}s, none recorded a step twice; \
         {victim} SIGKILLed holding {victim_shards} shards; shards taken over: {taken_over}; \
         takeover time: {:.2}s (lease TTL {:.1}s); double dispatches (claims lost): {double}; \
         schedule fires: {} ({:?})",
        started.elapsed().as_secs_f64(),
        takeover.as_secs_f64(),
        LEASE_TTL_MS as f64 / 1000.0,
        fires.len(),
        fires
    );
    assert!(
        taken_over >= victim_shards,
        "{taken_over} takeovers logged for {victim_shards} shards"
    );
}

/// Per-function and keyed concurrency across 2 replicas: `chaos` allows 3
/// executions in progress (`ReservedConcurrentExecutions: 3`) and one per
/// `customer_id` (`Metadata.Durafn`). Executions over the limit wait as
/// PENDING (visible in the API) and all finish once slots free up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_limits_hold_across_two_replicas() {
    let root = tempfile::tempdir().unwrap();
    let work = root.path().join("work");
    std::fs::create_dir_all(work.join("callbacks")).unwrap();
    std::fs::write(root.path().join("token"), TOKEN).unwrap();
    let template = root.path().join("template.yaml");
    std::fs::write(
        &template,
        format!(
            r#"
Transform: AWS::Serverless-2016-10-31
Resources:
  ChaosFunction:
    Type: AWS::Serverless::Function
    Metadata:
      Durafn:
        ConcurrencyKey: input.customer_id
        MaxPerKey: 1
    Properties:
      FunctionName: chaos
      CodeUri: tests
      Handler: chaosfn
      Timeout: 3
      ReservedConcurrentExecutions: 3
  ChaosChildFunction:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: {CHILD_FUNCTION}
      CodeUri: tests
      Handler: chaosfn
      Timeout: 3
"#
        ),
    )
    .unwrap();
    let store_url = ddb_url(&format!("limits{}", std::process::id()));
    let chaosfn = PathBuf::from(env!("CARGO_BIN_EXE_chaosfn"));
    let exes = [("chaos", chaosfn.clone()), (CHILD_FUNCTION, chaosfn)];
    let mut replicas: Vec<Replica> = Vec::new();
    for i in 0..2 {
        replicas.push(
            Replica::start(&format!("l{i}"), root.path(), &store_url, &template, &exes).await,
        );
    }
    for r in &replicas {
        r.wait_up().await;
    }
    let customers = ["c0", "c0", "c0", "c1", "c2", "c3", "c4", "c5"];
    let ids: Vec<String> = (0..customers.len()).map(|i| format!("lim{i}")).collect();
    for (i, (id, customer)) in ids.iter().zip(customers).enumerate() {
        let body = json!({
            "name": id,
            "input": { "dir": work, "step_ms": 0, "customer_id": customer },
        });
        let (status, v) = replicas[i % 2]
            .call("POST", "/v1/functions/chaos/executions", Some(&body))
            .await
            .unwrap();
        assert!((200..=202).contains(&status), "{status} {v}");
    }

    let deadline = Instant::now() + Duration::from_secs(120);
    let mut max_active = 0;
    let mut saw_waiting_at_limit = false;
    let mut max_c0 = 0;
    let mut callbacks_done = BTreeSet::new();
    let mut last_callback = Instant::now();
    loop {
        let mut statuses = BTreeMap::new();
        for (n, id) in ids.iter().enumerate() {
            let (code, v) = replicas[n % 2]
                .call("GET", &format!("/v1/executions/{id}"), None)
                .await
                .unwrap();
            assert_eq!(code, 200, "{v}");
            statuses.insert(id.clone(), v["status"].as_str().unwrap_or("").to_string());
        }
        let active: Vec<&String> = statuses
            .iter()
            .filter(|(_, s)| *s == "RUNNING" || *s == "SUSPENDED")
            .map(|(id, _)| id)
            .collect();
        let c0 = active
            .iter()
            .filter(|id| ["lim0", "lim1", "lim2"].contains(&id.as_str()))
            .count();
        let pending = statuses.values().filter(|s| *s == "PENDING").count();
        max_active = max_active.max(active.len());
        max_c0 = max_c0.max(c0);
        assert!(active.len() <= 3, "more than 3 in progress: {statuses:?}");
        assert!(
            c0 <= 1,
            "two executions of customer c0 in progress: {statuses:?}"
        );
        if active.len() == 3 && pending > 0 {
            saw_waiting_at_limit = true;
        }
        let bad: Vec<_> = statuses
            .iter()
            .filter(|(_, s)| {
                !["PENDING", "RUNNING", "SUSPENDED", "SUCCEEDED"].contains(&s.as_str())
            })
            .collect();
        assert!(bad.is_empty(), "{bad:?}");
        if statuses.values().all(|s| s == "SUCCEEDED") {
            break;
        }
        assert!(Instant::now() < deadline, "not all finished: {statuses:?}");
        // Let the slots turn over slowly: one callback per round, and only
        // once the freed slot has been taken again (or nothing waits, or the
        // waiters are all held back by the key) so a slow machine cannot
        // drain the executions faster than they are admitted.
        let settled =
            active.len() == 3 || pending == 0 || last_callback.elapsed() > Duration::from_secs(5);
        if !settled {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        let before = callbacks_done.len();
        let mut one = BTreeSet::new();
        complete_one_callback(&replicas, &work, &callbacks_done, &mut one).await;
        callbacks_done.extend(one);
        if callbacks_done.len() == before {
            tokio::time::sleep(Duration::from_millis(200)).await;
        } else {
            last_callback = Instant::now();
            tokio::time::sleep(Duration::from_millis(600)).await;
        }
    }
    println!(
        "limits: {} executions SUCCEEDED across 2 replicas; at most {max_active} in progress (limit 3), at most {max_c0} of customer c0 (limit 1); over-limit executions waited as PENDING: {saw_waiting_at_limit}",
        ids.len()
    );
    assert_eq!(
        max_active, 3,
        "the limit was never reached: the test proves nothing"
    );
    assert!(saw_waiting_at_limit);
}

/// Completes one callback not yet completed.
async fn complete_one_callback(
    replicas: &[Replica],
    work: &Path,
    done: &BTreeSet<String>,
    now_done: &mut BTreeSet<String>,
) {
    let Ok(entries) = std::fs::read_dir(work.join("callbacks")) else {
        return;
    };
    for e in entries.flatten() {
        let exec = e.file_name().to_string_lossy().to_string();
        if exec.starts_with('.') || done.contains(&exec) {
            continue;
        }
        let Ok(token) = std::fs::read_to_string(e.path()) else {
            continue;
        };
        if let Some((200..=204, _)) = replicas[0]
            .call(
                "POST",
                &format!("/v1/callbacks/{token}/succeed"),
                Some(&json!({ "approved_for": exec })),
            )
            .await
        {
            now_done.insert(exec);
            return;
        }
    }
}
