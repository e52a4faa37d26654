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
use std::time::{Duration, Instant};

use serde_json::json;

#[path = "replica_server.rs"]
mod replica_server;
use replica_server::{Replica, chaos_template, ddb_url};

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
    let (template, work) = chaos_template(root.path(), "", "");
    let store = ddb_url(&format!("pause{}", std::process::id()));
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_chaosfn"));
    let mut replicas: Vec<Replica> = Vec::new();
    for i in 0..2 {
        replicas.push(Replica::start(&format!("p{i}"), root.path(), &store, &template, &exe).await);
    }
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
    // The other replica learns of it within pause::REFRESH (its copy of
    // the paused functions is at most that old; docs/operations.md).
    tokio::time::sleep(durafn_runtime::dispatch::pause::REFRESH + Duration::from_millis(500)).await;
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
