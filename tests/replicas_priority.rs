//! Priority and fairness at a concurrency limit across two `durafn server`
//! replicas on one DynamoDB Local table (issue 17): `chaos` may run 2
//! executions at once; while two hold the slots, waiters started through
//! both replicas queue, and each freed slot goes — whichever replica frees
//! it — to the highest priority, then to the fairness key holding the
//! fewest slots, then to the oldest. The admission order is the order of
//! the workflows' first steps in the chaos ledger.
//!
//! Needs `DURAFN_DYNAMODB_ENDPOINT` (scripts/test-all.sh starts DynamoDB Local).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;

#[path = "replica_server.rs"]
mod replica_server;
use replica_server::{Replica, chaos_template, complete_callback, ddb_url, ran};

async fn wait_for(what: &str, secs: u64, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn status(r: &Replica, id: &str) -> String {
    let v = r.ok("GET", &format!("/v1/executions/{id}"), None).await;
    v["status"].as_str().unwrap_or("").to_string()
}

/// Completes `id`'s callback and waits until it has succeeded (its slot is free).
async fn release(replicas: &[Replica], work: &Path, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !complete_callback(&replicas[1], work, id).await {
        assert!(Instant::now() < deadline, "{id} left no callback");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    while status(&replicas[0], id).await != "SUCCEEDED" {
        assert!(Instant::now() < deadline, "{id} did not finish");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_freed_slot_goes_by_priority_then_fairness_across_two_replicas() {
    let root = tempfile::tempdir().unwrap();
    let (template, work) = chaos_template(root.path(), "", "      ReservedConcurrentExecutions: 2");
    let table = format!("prio{}", std::process::id());
    let store_url = ddb_url(&table);
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_chaosfn"));
    let mut replicas: Vec<Replica> = Vec::new();
    for i in 0..2 {
        replicas
            .push(Replica::start(&format!("q{i}"), root.path(), &store_url, &template, &exe).await);
    }
    for r in &replicas {
        r.wait_up().await;
    }
    let store = durafn_runtime::store::open_async(&store_url).await.unwrap();
    let input = json!({ "dir": work, "step_ms": 0 });
    let start = |i: usize, name: &'static str, priority: u8, key: &'static str| {
        let body =
            json!({ "name": name, "input": input, "priority": priority, "fairness_key": key });
        let r = &replicas[i % 2];
        async move {
            r.ok("POST", "/v1/functions/chaos/executions", Some(&body))
                .await;
        }
    };
    // Two holders take both slots and wait for their callbacks.
    start(0, "h-a", 3, "a").await;
    start(1, "h-x", 3, "x").await;
    wait_for("the holders to start", 60, || {
        ran(&work, "prepare").len() == 2
    })
    .await;
    // Waiters through both replicas: key a (older), key b, then a higher
    // priority, newest of all.
    start(0, "a-1", 3, "a").await;
    start(1, "a-2", 3, "a").await;
    start(0, "b-1", 3, "b").await;
    start(1, "top", 5, "a").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while store.list_leases("wait#chaos").await.unwrap().len() < 4 {
        assert!(Instant::now() < deadline, "the waiters did not queue");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // (The holders started on two replicas at once: in either order.)
    let mut holders = ran(&work, "prepare");
    holders.sort();
    assert_eq!(holders, ["h-a", "h-x"], "at the limit the rest wait");
    for id in ["a-1", "a-2", "b-1", "top"] {
        assert_eq!(status(&replicas[1], id).await, "PENDING");
    }

    // h-x ends: the highest priority goes first, although it came last.
    release(&replicas, &work, "h-x").await;
    wait_for("top to be admitted", 30, || {
        ran(&work, "prepare").len() == 3
    })
    .await;
    assert_eq!(ran(&work, "prepare")[2], "top");
    // top ends: key a holds a slot (h-a), key b none — b-1 goes before the
    // older a-1 and a-2.
    release(&replicas, &work, "top").await;
    wait_for("the next admission", 30, || {
        ran(&work, "prepare").len() == 4
    })
    .await;
    assert_eq!(ran(&work, "prepare")[3], "b-1");
    // h-a ends: key a holds none now — its oldest goes.
    release(&replicas, &work, "h-a").await;
    wait_for("the next admission", 30, || {
        ran(&work, "prepare").len() == 5
    })
    .await;
    assert_eq!(ran(&work, "prepare")[4], "a-1");
    release(&replicas, &work, "b-1").await;
    wait_for("the last admission", 30, || {
        ran(&work, "prepare").len() == 6
    })
    .await;
    release(&replicas, &work, "a-1").await;
    release(&replicas, &work, "a-2").await;
    let order = ran(&work, "prepare");
    let mut holders = order[..2].to_vec();
    holders.sort();
    assert_eq!(holders, ["h-a", "h-x"]);
    assert_eq!(order[2..], ["top", "b-1", "a-1", "a-2"]);
    assert!(store.list_leases("wait#chaos").await.unwrap().is_empty());
    println!(
        "priority: admission order across 2 replicas at a limit of 2: {:?}",
        ran(&work, "prepare")
    );
}
