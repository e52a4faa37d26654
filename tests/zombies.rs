//! Zombies: an invocation frozen (SIGSTOP) past its lease while a new one
//! takes the execution over, then resumed (SIGCONT). It runs on — its step
//! bodies even run again — but it can neither record a step (first writer
//! wins: it gets the new invocation's results back) nor suspend or complete
//! the execution (its epoch is stale).
//!
//! On DynamoDB the zombie writes the table directly, as on AWS. On SQLite a
//! handler process reaches the store through its own emulator, so the whole
//! emulator is frozen with it and thawed after the zombie (it may then kill
//! the zombie for its timeout; either way nothing may change).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use durafn_tests::chaos::{CHILD_FUNCTION, FREEZE_ARM, FROZEN_PREFIX, Ledger};
use durafn_tests::procs::{self, Dev, DevSpec};
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

fn dynamodb_endpoint() -> String {
    match std::env::var("DURAFN_DYNAMODB_ENDPOINT") {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "DURAFN_DYNAMODB_ENDPOINT is not set{}: the DynamoDB zombie test needs DynamoDB Local. \
             Run scripts/test-all.sh, or `eval \"$(scripts/dynamodb-local.sh start)\"` first.",
            if std::env::var_os("CI").is_some() {
                " (in CI)"
            } else {
                ""
            }
        ),
    }
}

fn spec(root: &Path, store: Option<String>) -> DevSpec {
    let template = root.join("template.yaml");
    std::fs::write(&template, TEMPLATE).unwrap();
    let chaosfn = PathBuf::from(env!("CARGO_BIN_EXE_chaosfn"));
    DevSpec {
        durafn: PathBuf::from(env!("CARGO_BIN_EXE_durafn-under-test")),
        state: root.join("state"),
        template,
        store,
        exes: vec![
            ("chaos".into(), chaosfn.clone()),
            (CHILD_FUNCTION.into(), chaosfn),
        ],
        env: vec![("CHAOS_PIDS".into(), root.join("pids").display().to_string())],
        port: 0,
    }
}

async fn until<T>(limit: Duration, what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// E lines of the ledger for `step`: (attempt, pid, token).
fn effects(work: &Path, step: &str) -> Vec<(String, u32, String)> {
    std::fs::read_to_string(work.join("ledger"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            match f.as_slice() {
                ["E", _, name, attempt, pid, token] if *name == step => {
                    Some(((*attempt).into(), pid.parse().ok()?, (*token).into()))
                }
                _ => None,
            }
        })
        .collect()
}

/// Every value any invocation saw for `exec`'s `step`.
fn seen(work: &Path, exec: &str, step: &str) -> Vec<String> {
    let l = Ledger::read(work);
    l.observed
        .get(&(exec.to_string(), step.to_string()))
        .map(|s| s.iter().cloned().collect())
        .unwrap_or_default()
}

/// The operations of a history answer as the journal records them, without
/// the per-attempt history (which keeps what every invocation did).
fn journal_of(history: &Value) -> Vec<Value> {
    let mut ops = history["operations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for op in &mut ops {
        if let Some(o) = op.as_object_mut() {
            o.retain(|k, _| !k.starts_with("attempts"));
        }
    }
    ops
}

async fn state(dev: &Dev, id: &str) -> (Value, Value) {
    let (_, d) = dev
        .call("GET", &format!("/v1/executions/{id}"), None)
        .await
        .unwrap();
    let (_, h) = dev
        .call("GET", &format!("/v1/executions/{id}/history"), None)
        .await
        .unwrap();
    (d, h)
}

/// The scenario on a store shared by emulators `a` and `b`. `freeze_emulator`:
/// SIGSTOP emulator `a` with its handler (SQLite) instead of killing it
/// (DynamoDB, where the zombie needs no emulator to reach the store).
async fn zombie_cannot_record_or_end(store: Option<String>, freeze_emulator: bool) {
    let root = tempfile::tempdir().unwrap();
    let work = root.path().join("work");
    std::fs::create_dir_all(work.join("callbacks")).unwrap();
    let spec_a = spec(root.path(), store.clone());
    let mut a = Dev::start(&spec_a).await;
    let id = "zombie-1";
    // Each step body takes 1.5 s: long enough to freeze the invocation mid-step.
    let input = json!({ "dir": work, "step_ms": 1500 });
    std::fs::write(work.join(FREEZE_ARM), b"").unwrap();
    let (status, v) = a
        .call(
            "POST",
            "/v1/functions/chaos/executions",
            Some(&json!({ "name": id, "input": input })),
        )
        .await
        .unwrap();
    assert!(matches!(status, 201 | 202), "{status} {v}");

    // The first step's body runs and stops its own process mid-step (after
    // its side effect, before its checkpoint: the armed freeze), so the
    // freeze cannot land after the step was recorded, however slow the test.
    let zombie: u32 = until(
        Duration::from_secs(30),
        "the first step to freeze itself",
        async || {
            std::fs::read_dir(&work).ok()?.flatten().find_map(|e| {
                e.file_name()
                    .to_str()?
                    .strip_prefix(FROZEN_PREFIX)?
                    .parse()
                    .ok()
            })
        },
    )
    .await;
    let (_, pid, zombie_token) = effects(&work, "prepare")
        .into_iter()
        .next()
        .expect("the frozen step's side effect is in the ledger");
    assert_eq!(pid, zombie, "the frozen process ran the first step");
    if freeze_emulator {
        assert!(procs::signal(a.pid(), "STOP"));
    } else {
        a.kill9();
    }
    let frozen_at = Instant::now();

    // A second emulator takes over once the lease (3 s + 5 s) has expired.
    let b = Dev::start(&spec(root.path(), store.clone())).await;
    let suspended = until(
        Duration::from_secs(60),
        "the new invocation to reach the callback",
        async || {
            // Settled on the callback: its submitter has run (an invocation
            // that yields at its deadline can suspend on the callback before
            // that, and the next one runs the submitter).
            let (d, h) = state(&b, id).await;
            let submitted = h["operations"].as_array().is_some_and(|ops| {
                ops.iter()
                    .any(|o| o["name"] == "approval:submit" && o["status"] == "SUCCEEDED")
            });
            (h["status"] == "SUSPENDED"
                && submitted
                && d["status"] == "SUSPENDED"
                && d["waiting_on"]["kind"] == "callback")
                .then_some(d)
        },
    )
    .await;
    assert!(
        frozen_at.elapsed() >= Duration::from_secs(5),
        "taken over only after the lease"
    );
    let (_, history_before) = state(&b, id).await;
    let recorded = seen(&work, id, "prepare");
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    assert_ne!(
        recorded[0],
        json!(zombie_token).to_string(),
        "the new invocation recorded its own run of the step"
    );

    // Thaw the zombie (and then its emulator), and give it time to try.
    assert!(procs::signal(zombie, "CONT"));
    let zombie_went_on = tokio::time::timeout(Duration::from_secs(8), async {
        loop {
            // The zombie's step body finished and it tried to checkpoint it:
            // it got a result back for the step.
            let l = Ledger::read(&work);
            if let Some(v) = l
                .observed_by
                .get(&(id.to_string(), "prepare".to_string(), zombie))
            {
                return Some(v.clone());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    if freeze_emulator {
        // Its store calls go through its emulator: let it answer them.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(procs::signal(a.pid(), "CONT"));
    }
    let zombie_saw = zombie_went_on.await.ok().flatten();
    let went_on = zombie_saw.is_some();
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Nothing it did counts.
    let (after, history_after) = state(&b, id).await;
    let (journal_after, journal_before) = (journal_of(&history_after), journal_of(&history_before));
    assert_eq!(
        journal_after, journal_before,
        "the zombie recorded nothing; history before: {history_before:#}\nhistory after: {history_after:#}"
    );
    // Its invocation is in the history (the per-attempt history keeps every
    // invocation), and none but the current one ended the execution.
    let invocations = history_after["invocations"].as_array().unwrap();
    assert!(invocations.len() >= 2, "{history_after}");
    assert!(
        invocations.iter().all(|i| i["outcome"] != "FINISHED"),
        "{history_after}"
    );
    assert_eq!(
        after["status"], "SUSPENDED",
        "the zombie did not end or re-suspend it: {after}"
    );
    assert_eq!(after["waiting_on"], suspended["waiting_on"], "{after}");
    let values = seen(&work, id, "prepare");
    assert_eq!(
        values, recorded,
        "the zombie got the winner's result back, not its own"
    );
    if let Some(v) = &zombie_saw {
        assert_eq!(
            v.iter().cloned().collect::<Vec<_>>(),
            recorded,
            "the zombie's own run of the step lost to the recorded one"
        );
    }
    if !freeze_emulator {
        assert!(
            went_on,
            "on DynamoDB the zombie ran on and tried to checkpoint"
        );
    }

    // The execution finishes normally, with the new invocation's results.
    let token = std::fs::read_to_string(work.join("callbacks").join(id)).unwrap();
    let (status, v) = b
        .call(
            "POST",
            &format!("/v1/callbacks/{token}/succeed"),
            Some(&json!({ "ok": true })),
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{v}");
    let done = until(
        Duration::from_secs(60),
        "the execution to finish",
        async || {
            let (d, _) = state(&b, id).await;
            (d["status"] == "SUCCEEDED").then_some(d)
        },
    )
    .await;
    assert_eq!(done["output"]["prepare"].to_string(), recorded[0]);
    let ledger = Ledger::read(&work);
    assert!(
        ledger.recorded_twice().is_empty(),
        "{:?}",
        ledger.recorded_twice()
    );
    assert!(ledger.at_most_once_doubles("charge").is_empty());
    println!(
        "zombie[{}]: the zombie ran on after SIGCONT: {went_on}; history unchanged, status unchanged",
        if store.is_some() {
            "dynamodb"
        } else {
            "sqlite"
        }
    );
    drop(a);
    procs::reap_listed(
        &root.path().join("pids"),
        Path::new(env!("CARGO_BIN_EXE_chaosfn")),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zombie_on_dynamodb_can_neither_record_a_step_nor_end_the_execution() {
    let table = format!("zombie-{}", std::process::id());
    let url = format!(
        "dynamodb://{table}?endpoint={}&region=us-east-1",
        dynamodb_endpoint()
    );
    zombie_cannot_record_or_end(Some(url), false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zombie_on_sqlite_can_neither_record_a_step_nor_end_the_execution() {
    zombie_cannot_record_or_end(None, true).await;
}
