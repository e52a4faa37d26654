//! Replay-check, reset and rerun end to end, on SQLite and on DynamoDB: real
//! `durafn dev` processes, the real `durafn` CLI, and a v1/v2 pair of handler
//! binaries (`functions/forkfn_v1.rs`, `functions/forkfn_v2.rs`).
//!
//! v1 leaves three executions: `w` and `l` waiting for an event, `f` FAILED
//! by a bug in its step `reserve`. `durafn export` + `durafn replay-check
//! --exe v2` must report `l` (a renamed step) as would-be BLOCKED with its
//! diverging op, and pass `w` (v2's change there is guarded by
//! `ctx.patched`) and `f`, touching nothing. Then `durafn dev` restarts on
//! v2, and `f` reset to its failing op SUCCEEDS without running `charge`
//! again; a rerun runs everything again; the links show on both sides.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use durafn_emulator::client::ApiClient;
use durafn_tests::procs::{Dev, DevSpec};
use serde_json::{Value, json};

const TEMPLATE: &str = r#"
Transform: AWS::Serverless-2016-10-31
Resources:
  ForkFunction:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: forkfn
      CodeUri: tests
      Handler: forkfn
      Timeout: 10
"#;

const LIMIT: Duration = Duration::from_secs(60);

/// The REST API of a `durafn dev`.
struct Api {
    client: ApiClient,
}

impl Api {
    fn new(url: &str, token: Option<String>) -> Api {
        Api {
            client: ApiClient::new(url, token),
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.client.call(method, path, body.as_ref()).await.unwrap()
    }

    async fn start_exec(&self, function: &str, name: &str, input: Value) {
        let path = format!("/v1/functions/{function}/executions");
        let body = json!({ "name": name, "input": input });
        let (status, v) = self.call("POST", &path, Some(body)).await;
        assert!(status == 201 || status == 202, "{status} {v}");
    }

    async fn describe(&self, id: &str) -> Value {
        let (status, v) = self
            .call("GET", &format!("/v1/executions/{id}"), None)
            .await;
        assert_eq!(status, 200, "{v}");
        v
    }

    async fn wait_status(&self, id: &str, want: &str, limit: Duration) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let v = self.describe(id).await;
            if v["status"] == want {
                return v;
            }
            assert!(Instant::now() < deadline, "{id} did not reach {want}: {v}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn v1() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_forkfn-v1"))
}

fn v2() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_forkfn-v2"))
}

/// Runs the `durafn` CLI against `url`.
fn cli(url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_durafn-under-test"))
        .args(args)
        .env("DURAFN_URL", url)
        .env("RUST_LOG", "error")
        .output()
        .expect("run durafn")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "{}\n{}",
        stdout(&o),
        String::from_utf8_lossy(&o.stderr)
    );
    stdout(&o)
}

fn spec(root: &Path, store: Option<&str>, exe: PathBuf) -> DevSpec {
    let template = root.join("template.yaml");
    std::fs::write(&template, TEMPLATE).unwrap();
    DevSpec {
        durafn: PathBuf::from(env!("CARGO_BIN_EXE_durafn-under-test")),
        state: root.join(".durafn"),
        template,
        store: store.map(str::to_string),
        exes: vec![("forkfn".into(), exe)],
        env: Vec::new(),
        port: 0,
    }
}

async fn history(api: &Api, id: &str) -> Vec<Value> {
    let (status, v) = api
        .call("GET", &format!("/v1/executions/{id}/history"), None)
        .await;
    assert_eq!(status, 200, "{v}");
    v["operations"].as_array().cloned().unwrap_or_default()
}

async fn settled_waiting(api: &Api, id: &str) {
    let v = api.wait_status(id, "SUSPENDED", LIMIT).await;
    assert_eq!(v["waiting_on"]["kind"], "event", "{v}");
}

async fn scenario(store: Option<&str>) {
    let root = tempfile::tempdir().unwrap();
    let p = id_prefix(store);
    let (w, l, f) = (format!("{p}w"), format!("{p}l"), format!("{p}f"));
    let fe = format!("{p}e");

    // v1 leaves two waiting executions and a failed one.
    let dev = Dev::start_retrying(&spec(root.path(), store, v1())).await;
    let api = Api::new(&dev.url, None);
    for (id, mode) in [(&w, "wait"), (&l, "legacy"), (&f, "fail")] {
        api.start_exec("forkfn", id, json!({ "mode": mode })).await;
    }
    settled_waiting(&api, &w).await;
    settled_waiting(&api, &l).await;
    // `e` fails after consuming an event.
    api.start_exec("forkfn", &fe, json!({ "mode": "event" }))
        .await;
    settled_waiting(&api, &fe).await;
    let (status, v) = api
        .call(
            "POST",
            &format!("/v1/executions/{fe}/events/go"),
            Some(json!({ "n": 7 })),
        )
        .await;
    assert_eq!(status, 202, "{v}");
    api.wait_status(&fe, "FAILED", LIMIT).await;
    let failed = api.wait_status(&f, "FAILED", LIMIT).await;
    assert_eq!(failed["error"]["type"], "BugInV1", "{failed}");
    let before_w = history(&api, &w).await;

    // Search by data: conditions on the input, through the API and the CLI.
    let (status, v) = api
        .call(
            "GET",
            "/v1/executions?function=forkfn&where=input.mode%3Dlegacy",
            None,
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let found: Vec<&Value> = v["executions"].as_array().unwrap().iter().collect();
    assert_eq!(found.len(), 1, "{v}");
    assert_eq!(found[0]["id"], l.as_str(), "{v}");
    assert!(v["scanned"].as_u64().unwrap() >= 3, "{v}");
    let out = ok(cli(
        &dev.url,
        &[
            "list",
            "--function",
            "forkfn",
            "--where",
            "input.mode=fail",
            "--json",
        ],
    ));
    let listed: Value = serde_json::from_str(&out).unwrap();
    let listed: Vec<&str> = listed["executions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [f.as_str()]);
    let (status, e) = api.call("GET", "/v1/executions?where=mode%3D1", None).await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (400, Some("InvalidWhere")),
        "{e}"
    );

    // Export, by id and by function + status.
    let by_id = ok(cli(&dev.url, &["export", &w, &l, &f]));
    assert_eq!(by_id.lines().count(), 3, "{by_id}");
    let line: Value = serde_json::from_str(by_id.lines().next().unwrap()).unwrap();
    assert_eq!(line["execution"]["id"], w.as_str(), "{line}");
    assert!(
        line["execution"].get("seed").is_none(),
        "the seed stays secret"
    );
    assert_eq!(line["operations"][0]["name"], "charge", "{line}");
    let suspended = ok(cli(
        &dev.url,
        &["export", "--function", "forkfn", "--status", "SUSPENDED"],
    ));
    let mut ids: Vec<String> = suspended
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["execution"]["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    ids.sort();
    assert!(
        ids.contains(&w) && ids.contains(&l) && !ids.contains(&f),
        "{ids:?}"
    );
    let journals = root.path().join("journals.jsonl");
    std::fs::write(&journals, &by_id).unwrap();
    let jpath = journals.to_str().unwrap();

    // Replay-check against v2: `l` would block at its renamed step.
    let v2_exe = v2();
    let checked = cli(
        &dev.url,
        &["replay-check", "--exe", v2_exe.to_str().unwrap(), jpath],
    );
    let text = stdout(&checked);
    assert!(
        !checked.status.success(),
        "a blocking change must fail the check: {text}"
    );
    assert!(text.contains(&format!("BLOCKED      {l}")), "{text}");
    assert!(
        text.contains("at op 2: expected STEP \"legacy\", actual STEP \"legacy-v2\""),
        "{text}"
    );
    assert!(text.contains(&format!("OK           {w}")), "{text}");
    assert!(text.contains(&format!("OK           {f}")), "{text}");
    assert!(text.contains("3 checked, 1 would become BLOCKED"), "{text}");
    let json_report = cli(
        &dev.url,
        &[
            "replay-check",
            "--json",
            "--exe",
            v2_exe.to_str().unwrap(),
            jpath,
        ],
    );
    let report: Value = serde_json::from_str(&stdout(&json_report)).unwrap();
    assert_eq!(report["blocked"], 1, "{report}");
    let blocked = &report["executions"][1];
    assert_eq!(blocked["divergence"]["op_id"], "2", "{report}");
    assert_eq!(
        blocked["divergence"]["expected"]["name"], "legacy",
        "{report}"
    );
    assert_eq!(
        blocked["divergence"]["actual"]["name"], "legacy-v2",
        "{report}"
    );
    // The code the journals came from passes.
    let v1_exe = v1();
    ok(cli(
        &dev.url,
        &["replay-check", "--exe", v1_exe.to_str().unwrap(), jpath],
    ));
    // No side effects: the live executions did not move.
    assert_eq!(history(&api, &w).await, before_w);
    assert_eq!(api.describe(&l).await["status"], "SUSPENDED");
    drop(dev);

    // v2 deployed: reset the failed execution to its failing op.
    let dev = Dev::start_retrying(&spec(root.path(), store, v2())).await;
    let api = Api::new(&dev.url, None);
    let original = history(&api, &f).await;
    assert_eq!(original.len(), 2, "{original:?}");
    let charge = original[0]["result"].clone();
    let (status, fork) = api
        .call(
            "POST",
            &format!("/v1/executions/{f}/reset"),
            Some(json!({ "to_op": "2" })),
        )
        .await;
    assert_eq!(status, 201, "{fork}");
    let fork_id = format!("{f}:reset-1");
    assert_eq!(fork["id"], fork_id.as_str(), "{fork}");
    assert_eq!(fork["kept_operations"], 1, "{fork}");
    assert_eq!(fork["reset_from"], f.as_str(), "{fork}");
    let done = api.wait_status(&fork_id, "SUCCEEDED", LIMIT).await;
    assert_eq!(done["output"]["version"], 2, "{done}");
    assert_eq!(
        done["output"]["charged"], charge,
        "charge must not run again: {done}"
    );
    let fork_ops = history(&api, &fork_id).await;
    assert_eq!(fork_ops.len(), 2, "{fork_ops:?}");
    assert_eq!(fork_ops[1]["status"], "SUCCEEDED", "{fork_ops:?}");
    // The original keeps its history and links to the fork.
    let orig = api.describe(&f).await;
    assert_eq!(orig["status"], "FAILED", "{orig}");
    assert_eq!(orig["forks"], json!([fork_id]), "{orig}");
    assert_eq!(history(&api, &f).await, original);

    // The same through the CLI: a second reset and a rerun.
    let out = ok(cli(&dev.url, &["reset", &f, "--to-op", "2", "--json"]));
    let second: Value = serde_json::from_str(&out).unwrap();
    let second_id = format!("{f}:reset-2");
    assert_eq!(second["id"], second_id.as_str(), "{second}");
    api.wait_status(&second_id, "SUCCEEDED", LIMIT).await;
    let out = ok(cli(&dev.url, &["rerun", &f, "--json"]));
    let rerun: Value = serde_json::from_str(&out).unwrap();
    let rerun_id = format!("{f}:rerun-1");
    assert_eq!(rerun["id"], rerun_id.as_str(), "{rerun}");
    assert_eq!(rerun["rerun_of"], f.as_str(), "{rerun}");
    let rerun_done = api.wait_status(&rerun_id, "SUCCEEDED", LIMIT).await;
    assert_ne!(
        rerun_done["output"]["charged"], charge,
        "a rerun starts fresh: {rerun_done}"
    );
    assert_eq!(
        rerun_done["input"],
        json!({ "mode": "fail" }),
        "{rerun_done}"
    );
    let described = ok(cli(&dev.url, &["describe", &f]));
    assert!(
        described.contains(&format!("forks     {fork_id}, {second_id}, {rerun_id}")),
        "{described}"
    );
    // Output conditions: the successful forks, not the failed original.
    let out = ok(cli(
        &dev.url,
        &[
            "list",
            "--function",
            "forkfn",
            "--where",
            "output.version=2;input.mode=fail",
            "--json",
        ],
    ));
    let listed: Value = serde_json::from_str(&out).unwrap();
    let mut listed: Vec<&str> = listed["executions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    listed.sort_unstable();
    let mut want = [fork_id.as_str(), second_id.as_str(), rerun_id.as_str()];
    want.sort_unstable();
    assert_eq!(listed, want);
    let described = ok(cli(&dev.url, &["describe", &fork_id]));
    assert!(described.contains(&format!("reset of  {f}")), "{described}");

    // Events: a reset past the wait keeps the consumed event in its journal;
    // a reset to the wait sends the event again, so the fork gets it.
    for (to_op, resent) in [("3", 0), ("2", 1)] {
        let (status, fork) = api
            .call(
                "POST",
                &format!("/v1/executions/{fe}/reset"),
                Some(json!({ "to_op": to_op })),
            )
            .await;
        assert_eq!(status, 201, "{fork}");
        assert_eq!(fork["events_resent"], resent, "{fork}");
        let id = fork["id"].as_str().unwrap().to_string();
        let done = api.wait_status(&id, "SUCCEEDED", LIMIT).await;
        assert_eq!(done["output"]["go"], json!({ "n": 7 }), "{done}");
    }

    // Errors name what to do.
    let (status, e) = api
        .call(
            "POST",
            &format!("/v1/executions/{f}/reset"),
            Some(json!({ "to_op": "9" })),
        )
        .await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (404, Some("OperationNotFound")),
        "{e}"
    );
    let (status, e) = api.call("POST", "/v1/executions/nope/rerun", None).await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (404, Some("ExecutionNotFound")),
        "{e}"
    );
    let (status, e) = api
        .call(
            "POST",
            &format!("/v1/executions/{f}/reset"),
            Some(json!({})),
        )
        .await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (400, Some("InvalidRequest")),
        "{e}"
    );
    let failed = cli(&dev.url, &["reset", &f, "--to-op", "9"]);
    assert!(!failed.status.success());
    assert!(
        String::from_utf8_lossy(&failed.stderr).contains("durafn history"),
        "{failed:?}"
    );
}

/// Execution names unique per run (a DynamoDB Local table may be shared).
fn id_prefix(store: Option<&str>) -> String {
    match store {
        None => String::new(),
        Some(_) => format!("p{}-", std::process::id()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_check_reset_and_rerun_on_sqlite() {
    scenario(None).await;
}

/// The same on the DynamoDB store (DynamoDB Local, started by
/// scripts/test-all.sh or `eval "$(scripts/dynamodb-local.sh start)"`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_check_reset_and_rerun_on_dynamodb() {
    let endpoint = std::env::var("DURAFN_DYNAMODB_ENDPOINT").unwrap_or_else(|_| {
        panic!("DURAFN_DYNAMODB_ENDPOINT is not set: run the tests with scripts/test-all.sh, or eval \"$(scripts/dynamodb-local.sh start)\" first")
    });
    let table = format!("forks-{}", std::process::id());
    let url = format!("dynamodb://{table}?endpoint={endpoint}&region=us-east-1");
    scenario(Some(&url)).await;
}

/// The CI recipe offline: a checked-in export (`tests/journals/`, written by
/// `durafn export` from forkfn v1) replayed against both builds, no server.
#[test]
fn checked_in_journals_pass_v1_and_block_under_v2() {
    let export = Path::new(env!("CARGO_MANIFEST_DIR")).join("journals/forkfn_v1_export.jsonl");
    let export = export.to_str().unwrap();
    let journals =
        durafn::replay_check::parse_export(&std::fs::read_to_string(export).unwrap()).unwrap();
    assert_eq!(journals.len(), 3);
    let v1_exe = v1();
    let text = ok(cli(
        "http://127.0.0.1:9",
        &["replay-check", "--exe", v1_exe.to_str().unwrap(), export],
    ));
    assert!(
        text.contains("3 checked, 0 would become BLOCKED, 0 inconclusive"),
        "{text}"
    );
    let v2_exe = v2();
    let out = cli(
        "http://127.0.0.1:9",
        &[
            "replay-check",
            "--json",
            "--exe",
            v2_exe.to_str().unwrap(),
            export,
        ],
    );
    assert!(!out.status.success());
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let verdicts: Vec<(&str, &str)> = report["executions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["execution_id"].as_str().unwrap(),
                e["verdict"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        verdicts,
        [
            ("fixture-wait", "OK"),
            ("fixture-legacy", "BLOCKED"),
            ("fixture-fail", "OK")
        ]
    );
    // A file that is not an export is refused with the line it failed on.
    let bad = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(bad.path(), "{\"execution\": 1}\n").unwrap();
    let out = cli(
        "http://127.0.0.1:9",
        &[
            "replay-check",
            "--exe",
            v2_exe.to_str().unwrap(),
            bad.path().to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 1"), "{err}");
}
