//! Pause and unpause across two `durafn server` replicas on one DynamoDB
//! Local table (issue 17): executions paused through one replica are not
//! dispatched by either (the ones running finish their current step and
//! suspend), a paused function's new starts wait as `PENDING` on both, and
//! everything catches up and succeeds once unpaused — each step's side
//! effect recorded once per attempt, nothing run while paused.
//!
//! Needs `DURAFN_DYNAMODB_ENDPOINT` (scripts/test-all.sh starts DynamoDB Local).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use durafn_emulator::client::ApiClient;
use durafn_tests::binaries::free_port;
use durafn_tests::chaos::CHILD_FUNCTION;
use durafn_tests::procs;
use serde_json::{Value, json};

const TOKEN: &str = "replicas-pause-token";

fn ddb_url(table: &str) -> String {
    let endpoint = std::env::var("DURAFN_DYNAMODB_ENDPOINT").unwrap_or_else(|_| {
        panic!("DURAFN_DYNAMODB_ENDPOINT is not set: run the tests with scripts/test-all.sh, which starts DynamoDB Local")
    });
    format!("dynamodb://{table}?endpoint={endpoint}&region=us-east-1")
}

/// One `durafn server` process.
struct Replica {
    child: Option<Child>,
    api: ApiClient,
}

impl Replica {
    fn start(id: &str, root: &Path, store: &str, template: &Path, exe: &Path) -> Replica {
        let port = free_port();
        let log = root.join(format!("{id}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_durafn-under-test"))
            .args([
                "server",
                "--store",
                store,
                "--bind",
                &format!("127.0.0.1:{port}"),
            ])
            .arg("--token-file")
            .arg(root.join("token"))
            .arg("--template")
            .arg(template)
            .arg("--exe")
            .arg(format!("chaos={}", exe.display()))
            .arg("--exe")
            .arg(format!("{CHILD_FUNCTION}={}", exe.display()))
            .env("DURAFN_REPLICA_ID", id)
            .env("NO_COLOR", "1")
            .env("DURAFN_SHARD_LEASE_TTL_MS", "3000")
            .env("RUST_LOG", "warn,durafn_runtime::dispatch=info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn durafn server");
        Replica {
            child: Some(child),
            api: ApiClient::new(&format!("http://127.0.0.1:{port}"), Some(TOKEN.into())),
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        tokio::time::timeout(Duration::from_secs(10), self.api.call(method, path, body))
            .await
            .expect("the replica answered in time")
            .expect("the replica answered")
    }

    async fn ok(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let (status, v) = self.call(method, path, body).await;
        assert!(
            (200..=202).contains(&status),
            "{method} {path}: {status} {v}"
        );
        v
    }

    async fn wait_up(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Ok((200, _))) = tokio::time::timeout(
                Duration::from_secs(5),
                self.api.call("GET", "/healthz", None),
            )
            .await
            {
                return;
            }
            assert!(Instant::now() < deadline, "a replica did not come up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let handlers = procs::children(c.id());
            let _ = c.kill();
            let _ = c.wait();
            for pid in handlers {
                procs::signal(pid, "KILL");
            }
        }
    }
}

/// Step side effects (`E` lines of the chaos ledger) per execution.
fn effects(work: &Path) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    let ledger = std::fs::read_to_string(work.join("ledger")).unwrap_or_default();
    for line in ledger.lines() {
        let mut f = line.split('\t');
        if f.next() == Some("E") {
            if let Some(exec) = f.next() {
                *out.entry(exec.to_string()).or_default() += 1;
            }
        }
    }
    out
}

/// Each execution's (status, paused), read through `r`.
async fn states(r: &Replica, ids: &[String]) -> BTreeMap<String, (String, bool)> {
    let mut out = BTreeMap::new();
    for id in ids {
        let v = r.ok("GET", &format!("/v1/executions/{id}"), None).await;
        let status = v["status"].as_str().unwrap_or("").to_string();
        out.insert(id.clone(), (status, v["paused"] == json!(true)));
    }
    out
}

async fn complete_callbacks(r: &Replica, work: &Path, done: &mut BTreeSet<String>) {
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
        let path = format!("/v1/callbacks/{token}/succeed");
        if let (200..=204, _) = r.call("POST", &path, Some(&json!({"ok": exec}))).await {
            done.insert(exec);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_and_unpause_hold_across_two_replicas() {
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
    Properties:
      FunctionName: chaos
      CodeUri: tests
      Handler: chaosfn
      Timeout: 5
  ChaosChildFunction:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: {CHILD_FUNCTION}
      CodeUri: tests
      Handler: chaosfn
      Timeout: 5
"#
        ),
    )
    .unwrap();
    let store = ddb_url(&format!("pause{}", std::process::id()));
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_chaosfn"));
    let replicas: Vec<Replica> = (0..2)
        .map(|i| Replica::start(&format!("p{i}"), root.path(), &store, &template, &exe))
        .collect();
    for r in &replicas {
        r.wait_up().await;
    }
    let input = json!({ "dir": work, "step_ms": 300 });

    // Four executions, started through both replicas, paused through the
    // other one as soon as each has run its first step's side effect.
    let ids: Vec<String> = (0..4).map(|i| format!("pz{i}")).collect();
    for (i, id) in ids.iter().enumerate() {
        let body = json!({ "name": id, "input": input });
        replicas[i % 2]
            .ok("POST", "/v1/functions/chaos/executions", Some(&body))
            .await;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ids.iter().all(|id| effects(&work).contains_key(id)) {
        assert!(
            Instant::now() < deadline,
            "not all started: {:?}",
            effects(&work)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for (i, id) in ids.iter().enumerate() {
        let v = replicas[(i + 1) % 2]
            .ok("POST", &format!("/v1/executions/{id}/pause"), None)
            .await;
        assert_eq!(v["paused"], true, "{v}");
    }
    // The running invocations wind down: each suspends, still paused.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let st = states(&replicas[0], &ids).await;
        assert!(st.values().all(|(_, paused)| *paused), "{st:?}");
        if st.values().all(|(s, _)| s == "SUSPENDED" || s == "PENDING") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still running while paused: {st:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A paused function: its new starts are accepted and wait.
    let v = replicas[0]
        .ok("POST", "/v1/functions/chaos/pause", None)
        .await;
    assert_eq!(v["paused"], true);
    let late: Vec<String> = (0..2).map(|i| format!("fz{i}")).collect();
    for id in &late {
        let body = json!({ "name": id, "input": input });
        let v = replicas[1]
            .ok("POST", "/v1/functions/chaos/executions", Some(&body))
            .await;
        assert_eq!(v["status"], "PENDING", "{v}");
    }
    // Nothing runs anywhere while paused (the sleep is the point: a window
    // in which the 1 s timers, the retries and both replicas' scans fire).
    let before = effects(&work);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(effects(&work), before, "a step ran while paused");
    for r in &replicas {
        let st = states(r, &ids).await;
        assert!(
            st.values()
                .all(|(s, p)| *p && (s == "SUSPENDED" || s == "PENDING")),
            "{st:?}"
        );
        let st = states(r, &late).await;
        assert!(st.values().all(|(s, _)| s == "PENDING"), "{st:?}");
    }

    // Unpause everything, through both replicas: all of it catches up.
    for (i, id) in ids.iter().enumerate() {
        let v = replicas[i % 2]
            .ok("POST", &format!("/v1/executions/{id}/unpause"), None)
            .await;
        assert_eq!(v["paused"], false, "{v}");
    }
    let v = replicas[1]
        .ok("POST", "/v1/functions/chaos/unpause", None)
        .await;
    assert_eq!(v["paused"], false);
    let all: Vec<String> = ids.iter().chain(&late).cloned().collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut done = BTreeSet::new();
    loop {
        complete_callbacks(&replicas[0], &work, &mut done).await;
        let st = states(&replicas[1], &all).await;
        if st.values().all(|(s, _)| s == "SUCCEEDED") {
            break;
        }
        assert!(
            st.values().all(|(s, _)| s != "FAILED" && s != "BLOCKED"),
            "{st:?}"
        );
        assert!(Instant::now() < deadline, "not all finished: {st:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // prepare, charge, flaky ×3, 3 items, done: 9 effects each, none run twice.
    let counts = effects(&work);
    for id in &all {
        assert_eq!(counts.get(id), Some(&9), "{id}: {counts:?}");
    }
    println!(
        "pause: {} executions paused mid-run and {} started under a paused function across 2 replicas; nothing ran while paused; all SUCCEEDED after unpause",
        ids.len(),
        late.len()
    );
}
