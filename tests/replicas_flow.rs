//! Flow control across two `durafn server` replicas on one DynamoDB Local
//! table (issue 17): a throttled function's starts, made through both
//! replicas at once, begin at most `Limit` per `Period` across the cluster
//! (the rest wait as `PENDING`, none dropped); a debounced function runs only
//! the last start of a key; a batched one runs its starts together, each in
//! exactly one batch.
//!
//! Needs `DURAFN_DYNAMODB_ENDPOINT` (scripts/test-all.sh starts DynamoDB Local).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

#[path = "replica_server.rs"]
mod replica_server;
use replica_server::{Replica, chaos_template, ddb_url, ran};

/// Two replicas serving `chaos` with this `Metadata.Durafn` (YAML, indented
/// for its place), and the work folder.
async fn cluster(root: &Path, table: &str, durafn: &str) -> (Vec<Replica>, PathBuf) {
    let (template, work) = chaos_template(root, &format!("      Durafn:\n{durafn}"), "");
    let store = ddb_url(&format!("{table}{}", std::process::id()));
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_chaosfn"));
    let mut replicas: Vec<Replica> = Vec::new();
    for i in 0..2 {
        replicas.push(Replica::start(&format!("{table}{i}"), root, &store, &template, &exe).await);
    }
    for r in &replicas {
        r.wait_up().await;
    }
    (replicas, work)
}

async fn start(r: &Replica, name: &str, input: &Value) {
    let body = json!({ "name": name, "input": input });
    r.ok("POST", "/v1/functions/chaos/executions", Some(&body))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttle_holds_across_two_replicas() {
    let root = tempfile::tempdir().unwrap();
    let period = Duration::from_secs(5);
    let (replicas, work) = cluster(
        root.path(),
        "throttle",
        "        Throttle:\n          Limit: 2\n          Period: 5",
    )
    .await;
    let input = json!({ "dir": work, "step_ms": 10 });
    let ids: Vec<String> = (0..6).map(|i| format!("th{i}")).collect();
    let t0 = Instant::now();
    for (i, id) in ids.iter().enumerate() {
        start(&replicas[i % 2], id, &input).await;
    }
    // When each execution's first step first shows in the ledger.
    let mut began: BTreeMap<String, Duration> = BTreeMap::new();
    let deadline = t0 + Duration::from_secs(60);
    while began.len() < ids.len() {
        assert!(Instant::now() < deadline, "not all began: {began:?}");
        for id in ran(&work, "prepare") {
            began.entry(id).or_insert_with(|| t0.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let mut times: Vec<Duration> = began.values().copied().collect();
    times.sort();
    // Two per period: any three starts span at least the period, and the six
    // take at least two periods — less the slack of what is observed here (a
    // cold handler process takes up to a second to show its first step;
    // unthrottled, all six show within about that).
    let slack = Duration::from_millis(1500);
    for w in times.windows(3) {
        assert!(
            w[2] - w[0] >= period - slack,
            "three starts within one period: {began:?}"
        );
    }
    assert!(times[5] >= 2 * period - slack, "{began:?}");
    // Nothing was dropped: every one is known and not failed.
    for id in &ids {
        let v = replicas[1]
            .ok("GET", &format!("/v1/executions/{id}"), None)
            .await;
        assert_ne!(v["status"], "FAILED", "{v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_debounce_runs_the_last_start_of_a_key_across_two_replicas() {
    let root = tempfile::tempdir().unwrap();
    let (replicas, work) = cluster(
        root.path(),
        "debounce",
        "        Debounce:\n          Period: 2\n          Key: input.user",
    )
    .await;
    let input = |user: &str| json!({ "dir": work, "step_ms": 10, "user": user });
    // Three starts of user a through alternating replicas, 300 ms apart,
    // and one of user b.
    for i in 0..3 {
        start(&replicas[i % 2], &format!("da{i}"), &input("a")).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    start(&replicas[1], "db0", &input("b")).await;
    // A start without the key is refused, saying which field is missing.
    let (status, v) = replicas[0]
        .call(
            "POST",
            "/v1/functions/chaos/executions",
            Some(&json!({ "input": { "dir": work } })),
        )
        .await;
    assert_eq!(status, 400, "{v}");
    assert!(v.to_string().contains("input.user"), "{v}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ran = ran(&work, "prepare");
        if ran.contains(&"da2".to_string()) && ran.contains(&"db0".to_string()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the last starts did not run: {ran:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for id in ["da0", "da1"] {
        let v = replicas[0]
            .ok("GET", &format!("/v1/executions/{id}"), None)
            .await;
        assert_eq!(v["status"], "CANCELLED", "{v}");
        assert!(!ran(&work, "prepare").contains(&id.to_string()), "{id} ran");
    }
    let found = replicas[1]
        .ok("GET", "/v1/executions?where=attr.debounced_by=da2", None)
        .await;
    assert_eq!(
        found["executions"].as_array().map(Vec::len),
        Some(2),
        "{found}"
    );
}

/// Each member's `batched` side effects: (batch, count).
fn batched(work: &Path) -> BTreeMap<String, (String, usize)> {
    let ledger = std::fs::read_to_string(work.join("ledger")).unwrap_or_default();
    let mut out: BTreeMap<String, (String, usize)> = BTreeMap::new();
    for line in ledger.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() > 5 && f[0] == "E" && f[2] == "batched" {
            let e = out.entry(f[1].to_string()).or_insert((f[5].to_string(), 0));
            e.1 += 1;
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_form_across_two_replicas_each_start_in_exactly_one() {
    let root = tempfile::tempdir().unwrap();
    let (replicas, work) = cluster(
        root.path(),
        "batch",
        "        Batch:\n          MaxSize: 3\n          Timeout: 2",
    )
    .await;
    let input = json!({ "dir": work, "step_ms": 10 });
    let ids: Vec<String> = (0..8).map(|i| format!("bm{i}")).collect();
    for (i, id) in ids.iter().enumerate() {
        start(&replicas[i % 2], id, &input).await;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let b = batched(&work);
        if ids.iter().all(|id| b.contains_key(id)) {
            break;
        }
        assert!(Instant::now() < deadline, "not all batched: {b:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let b = batched(&work);
    let mut sizes: BTreeMap<&str, usize> = BTreeMap::new();
    for (id, (batch, count)) in &b {
        assert_eq!(*count, 1, "{id} processed {count} times");
        assert!(batch.starts_with("_durafn.batch."), "{batch}");
        *sizes.entry(batch).or_default() += 1;
        // The member itself never ran the workflow, and names its batch.
        assert!(!ran(&work, "prepare").contains(id));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let v = replicas[0]
                .ok("GET", &format!("/v1/executions/{id}"), None)
                .await;
            if v["status"] == "SUCCEEDED" {
                assert_eq!(v["output"]["batched_into"], json!(batch), "{v}");
                break;
            }
            assert!(Instant::now() < deadline, "{v}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert!(sizes.values().all(|n| *n <= 3), "{sizes:?}");
    // The batches succeed, with the list of their members.
    for (batch, n) in sizes {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let v = replicas[1]
                .ok("GET", &format!("/v1/executions/{batch}"), None)
                .await;
            if v["status"] == "SUCCEEDED" {
                assert_eq!(v["output"]["members"], json!(n), "{v}");
                break;
            }
            assert!(Instant::now() < deadline, "{v}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
