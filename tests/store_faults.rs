//! Store faults on both backends: the chaos workload (`durafn_tests::chaos`:
//! steps with side effects, an at-most-once step, a sleep, a retried step, a
//! callback, a child invoke, a map) runs in process through a store that
//! fails 20 % of calls — half of them *ambiguously*, after the write landed —
//! and delays every call by up to 5 ms, behind the retrying wrapper. Every
//! execution must finish with the same journal shape as on a healthy store,
//! no step recorded twice and no at-most-once side effect applied twice.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::sync::Arc;
use std::time::{Duration, Instant};

use durafn::prelude::*;
use durafn::testing::{TestExecution, TestRuntime};
use durafn_runtime::store::{DynamoStore, FaultyStore, RetryingStore, SqliteStore, Store};
use durafn_tests::chaos::{self, CHILD_FUNCTION, Ledger, PARENT_STEPS};
use serde_json::{Value, json};

const EXECUTIONS: usize = 8;

fn runtime(store: Arc<dyn Store>) -> TestRuntime {
    let rt = TestRuntime::with_store(store);
    rt.register(CHILD_FUNCTION, handler(chaos::child));
    rt
}

/// Runs `exec` to the end, completing its callback when it waits on it.
/// Store errors that outlive the retrying wrapper's attempts are retried
/// here (a fresh invocation), a bounded number of times.
async fn drive(exec: &TestExecution) -> (Status, usize) {
    let mut harness_retries = 0;
    for _ in 0..50 {
        match exec.run_until_settled().await {
            Ok(Status::Suspended) => {
                if let Err(e) = exec
                    .callback_succeed("approval", json!({ "ok": true }))
                    .await
                {
                    let msg = e.to_string();
                    assert!(
                        msg.contains("injected") || msg.contains("already") || msg.contains("409"),
                        "completing the callback: {msg}"
                    );
                    harness_retries += 1;
                }
            }
            Ok(status) => return (status, harness_retries),
            Err(e) => {
                assert!(
                    e.to_string().contains("injected"),
                    "only injected faults may surface: {e}"
                );
                harness_retries += 1;
            }
        }
    }
    panic!("{} did not finish", exec.id());
}

fn shape(ops: Vec<durafn_runtime::model::Operation>) -> Vec<(String, String, String)> {
    ops.into_iter()
        .map(|o| (o.id, o.name, format!("{:?}", o.status)))
        .collect()
}

async fn workload_through_faults(inner: Arc<dyn Store>, backend: &str) {
    let work = tempfile::tempdir().unwrap();
    let healthy_dir = tempfile::tempdir().unwrap();
    let faulty = Arc::new(FaultyStore::new(inner, 0.2, 7).with_latency(Duration::from_millis(5)));
    let rt = runtime(Arc::new(RetryingStore::new(faulty.clone())));
    let healthy = runtime(Arc::new(
        SqliteStore::open(healthy_dir.path().join("healthy.db")).unwrap(),
    ));
    let started = Instant::now();
    let mut retries = 0;
    for i in 0..EXECUTIONS {
        let name = format!("faults-{i}");
        let input = json!({ "dir": work.path(), "step_ms": 0 });
        let exec = loop {
            match rt.start_named(&name, handler(chaos::parent), &input).await {
                Ok(e) => break e,
                Err(e) => {
                    assert!(e.to_string().contains("injected"), "{e}");
                    retries += 1;
                }
            }
        };
        let (status, r) = drive(&exec).await;
        retries += r;
        assert_eq!(
            status,
            Status::Succeeded,
            "{name}: {:?}",
            exec.error().await
        );

        let reference = healthy
            .start_named(
                &name,
                handler(chaos::parent),
                json!({ "dir": healthy_dir.path() }),
            )
            .await
            .unwrap();
        let (ref_status, _) = drive(&reference).await;
        assert_eq!(ref_status, Status::Succeeded);
        assert_eq!(
            shape(exec.operations().await.unwrap()),
            shape(reference.operations().await.unwrap()),
            "{name}: the same journal as on a healthy store"
        );
        let out: Value = exec.result().await.unwrap();
        let ledger = Ledger::read(work.path());
        for step in PARENT_STEPS {
            assert_eq!(
                ledger.value(&name, step),
                Some(&out[*step].to_string()),
                "{name}/{step}: what every invocation saw is the output"
            );
        }
    }
    let ledger = Ledger::read(work.path());
    let twice = ledger.recorded_twice();
    let doubles = ledger.at_most_once_doubles("charge");
    let report = format!(
        "store-faults[{backend}]: {EXECUTIONS} executions, {} faults injected ({} ambiguous), \
         {retries} surfaced past the retrying store; steps recorded twice={}, at_most_once side \
         effects applied twice={}, diverging journals=0; {:.1}s",
        faulty.injected(),
        faulty.ambiguous(),
        twice.len(),
        doubles.len(),
        started.elapsed().as_secs_f64()
    );
    println!("{report}");
    assert!(twice.is_empty(), "{report}: {twice:?}");
    assert!(doubles.is_empty(), "{report}: {doubles:?}");
    assert!(faulty.injected() > 60, "{report}");
    assert!(faulty.ambiguous() > 20, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chaos_workload_survives_store_faults_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path().join("s.db")).unwrap());
    workload_through_faults(sqlite, "sqlite").await;
}

fn dynamodb_endpoint() -> String {
    match std::env::var("DURAFN_DYNAMODB_ENDPOINT") {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "DURAFN_DYNAMODB_ENDPOINT is not set{}: this test needs DynamoDB Local. Run \
             scripts/test-all.sh, or `eval \"$(scripts/dynamodb-local.sh start)\"` first.",
            if std::env::var_os("CI").is_some() {
                " (in CI)"
            } else {
                ""
            }
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chaos_workload_survives_store_faults_on_dynamodb_local() {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let url = format!(
        "dynamodb://faults-{}-{nanos}?endpoint={}&region=us-east-1",
        std::process::id(),
        dynamodb_endpoint()
    );
    let store: Arc<dyn Store> = Arc::new(DynamoStore::connect(&url).await.unwrap());
    workload_through_faults(store, "dynamodb").await;
}
