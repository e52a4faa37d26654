//! End to end through `durafn dev`: the real `durafn` binary (as its own
//! process), real handler binaries on `lambda_runtime`, SQLite state on disk.
//! Processes are killed with SIGKILL to prove nothing is lost.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use durafn_emulator::client::ApiClient;
use durafn_tests::e2e::{Api, count, kill_pid, pids, trace, until, work_dir};
use durafn_tests::procs;
use serde_json::{Value, json};

fn example_exe(bin: &str) -> PathBuf {
    durafn_tests::binaries::example_exe(&format!("{bin}-example"), bin)
}

fn order_exe() -> PathBuf {
    example_exe("order")
}

const TEMPLATE: &str = r#"
Transform: AWS::Serverless-2016-10-31
Resources:
  OrderFunction:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: order
      CodeUri: examples/order
      Handler: order
      Timeout: 30
      Events:
        Orders:
          Type: HttpApi
          Properties:
            Path: /orders
            Method: post
  ApprovalFunction:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: approval
      CodeUri: examples/approval
      Handler: approval
      Timeout: 30
  TestFunction:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: testfn
      CodeUri: tests
      Handler: testfn
      Timeout: 3
      Events:
        Runs:
          Type: HttpApi
          Properties:
            Path: /runs/{kind}
            Method: post
"#;

/// A `durafn dev` process.
struct Dev {
    child: Child,
    api: Api,
}

impl std::ops::Deref for Dev {
    type Target = Api;
    fn deref(&self) -> &Api {
        &self.api
    }
}

impl Dev {
    async fn start(state: &Path) -> Dev {
        Dev::start_with(state, None).await
    }

    async fn start_with(state: &Path, store: Option<&str>) -> Dev {
        Dev::start_custom(state, store, TEMPLATE, &[]).await
    }

    async fn start_custom(
        state: &Path,
        store: Option<&str>,
        template_text: &str,
        extra: &[&str],
    ) -> Dev {
        Dev::start_env(state, store, template_text, extra, &[]).await
    }

    async fn start_env(
        state: &Path,
        store: Option<&str>,
        template_text: &str,
        extra: &[&str],
        envs: &[(&str, &str)],
    ) -> Dev {
        let template = state.join("template.yaml");
        std::fs::write(&template, template_text).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_durafn-under-test"));
        cmd.args(["dev", "--port", "0"])
            .arg("--state")
            .arg(state.join(".durafn"))
            .arg("--template")
            .arg(&template)
            .args(
                store
                    .map(|s| vec!["--store".to_string(), s.to_string()])
                    .unwrap_or_default(),
            )
            .arg("--exe")
            .arg(format!("order={}", order_exe().display()))
            .arg("--exe")
            .arg(format!("testfn={}", env!("CARGO_BIN_EXE_testfn")))
            .arg("--exe")
            .arg(format!("approval={}", example_exe("approval").display()))
            .arg("--exe")
            .arg(format!(
                "backup-verify={}",
                example_exe("backup-verify").display()
            ))
            .args(extra)
            .envs(envs.iter().copied())
            .env("RUST_LOG", "warn");
        let (child, port) =
            procs::spawn_listening(&mut cmd, "dev", durafn_tests::procs::Lines::Echo)
                .await
                .unwrap();
        let dev = Dev {
            child,
            api: Api::new(&format!("http://127.0.0.1:{port}"), None),
        };
        dev.wait_healthy(Duration::from_secs(60), "durafn dev")
            .await;
        dev
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        self.kill9();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_order_workflow_runs_through_durafn_dev_with_its_real_binary() {
    let root = tempfile::tempdir().unwrap();
    let dev = Dev::start(root.path()).await;
    let (status, v) = dev
        .call(
            "POST",
            "/v1/functions/order/executions",
            Some(json!({
                "name": "o-e2e",
                "input": {"order_id": "o-e2e", "amount_cents": 1999},
                "wait": 60
            })),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["status"], "SUCCEEDED", "{v}");
    assert_eq!(v["output"]["charge_id"], "ch-o-e2e-1");
    let (_, h) = dev.call("GET", "/v1/executions/o-e2e/history", None).await;
    let names: Vec<_> = h["operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["name"].as_str().unwrap().to_string(),
                o["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            ("charge", "SUCCEEDED"),
            ("cool-off", "SUCCEEDED"),
            ("reserve", "SUCCEEDED"),
            ("email", "SUCCEEDED")
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    // Its cost: every invocation's store calls (the dispatcher's claims, the
    // handler's calls over the store API), summed from the history records.
    let (_, d) = dev.call("GET", "/v1/executions/o-e2e", None).await;
    let cost = &d["cost"];
    let invocations = h["invocations"].as_array().map_or(0, Vec::len) as u64;
    assert!(invocations >= 2, "the 10 s sleep suspends it once: {h}");
    assert_eq!(cost["invocations"], invocations, "{cost}");
    assert_eq!(cost["invocations_uncounted"], 0, "{cost}");
    let store = &cost["store"];
    let n = |k: &str| store[k].as_u64().unwrap_or(0);
    // 4 checkpoints, a claim + a suspend or finish and 2 records per invocation.
    assert!(n("writes") >= 4 + 4 * invocations, "{cost}");
    assert!(n("reads") >= 1 && n("write_units") >= n("writes"), "{cost}");
    assert!(n("write_bytes") > 0 && n("read_bytes") > 0, "{cost}");
    assert!(
        cost["lambda_gb_seconds"].as_f64().unwrap_or(0.0) > 0.0,
        "{cost}"
    );
    assert!(
        cost["estimate_usd"]["total_usd"].as_f64().unwrap_or(0.0) > 0.0,
        "{cost}"
    );
    // The CLI speaks the same API.
    let out = Command::new(env!("CARGO_BIN_EXE_durafn-under-test"))
        .args(["describe", "o-e2e", "--url", &dev.url])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("SUCCEEDED"), "{text}");
    assert!(
        text.contains(&format!("{} writes", n("writes"))) && text.contains("cost      $"),
        "{text}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_durafn-under-test"))
        .args(["history", "o-e2e", "--url", &dev.url])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("cool-off") && text.contains("email"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_killed_mid_step_is_reinvoked_and_recorded_steps_do_not_run_again() {
    let root = tempfile::tempdir().unwrap();
    let dev = Dev::start(root.path()).await;
    let dir = work_dir(root.path(), "killed");
    dev.start_exec(
        "testfn",
        "kill-handler",
        json!({ "dir": dir, "block": true }),
    )
    .await;
    until(Duration::from_secs(30), "the slow step to start", || {
        count(&trace(&dir), "slow-start-1") == 1
    })
    .await;
    let first_pid = pids(&trace(&dir))[0].clone();
    kill_pid(&first_pid);
    // The emulator sees the process die, fails that invocation and re-invokes.
    until(
        Duration::from_secs(30),
        "the step to restart in a new process",
        || count(&trace(&dir), "slow-start-1") == 2,
    )
    .await;
    std::fs::write(dir.join("release"), "").unwrap();
    let v = dev
        .wait_status("kill-handler", "SUCCEEDED", Duration::from_secs(30))
        .await;
    assert_eq!(
        v["output"],
        json!({ "slow_attempt": 1 }),
        "at-least-once: the same attempt ran again"
    );
    let lines = trace(&dir);
    assert_eq!(count(&lines, "before"), 1, "{lines:?}");
    assert_eq!(count(&lines, "slow-end"), 1, "{lines:?}");
    assert_eq!(count(&lines, "after"), 1, "{lines:?}");
    let second_pid = pids(&lines)[1].clone();
    assert_ne!(first_pid, second_pid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emulator_killed_and_restarted_finishes_every_execution() {
    let root = tempfile::tempdir().unwrap();
    let mut dev = Dev::start(root.path()).await;
    let dirs: Vec<PathBuf> = (0..3)
        .map(|i| work_dir(root.path(), &format!("x{i}")))
        .collect();
    for (i, dir) in dirs.iter().enumerate() {
        dev.start_exec(
            "testfn",
            &format!("restart-{i}"),
            json!({ "dir": dir, "block": true }),
        )
        .await;
    }
    for dir in &dirs {
        until(Duration::from_secs(30), "every slow step to start", || {
            count(&trace(dir), "slow-start") == 1
        })
        .await;
    }
    // Three blocked invocations at once: three processes of the same function.
    let mut first_pids: Vec<String> = dirs.iter().map(|d| pids(&trace(d))[0].clone()).collect();
    first_pids.sort();
    first_pids.dedup();
    assert_eq!(
        first_pids.len(),
        3,
        "several instances per function under load"
    );
    // The machine dies: the emulator and every handler process, at once.
    dev.kill9();
    for dir in &dirs {
        for pid in pids(&trace(dir)) {
            let _ = Command::new("kill").args(["-9", &pid]).status();
        }
    }
    drop(dev);
    let dev = Dev::start(root.path()).await;
    for dir in &dirs {
        std::fs::write(dir.join("release"), "").unwrap();
    }
    for i in 0..3 {
        // The dead invocations' leases (3 s timeout + 5 s grace) expire first.
        dev.wait_status(
            &format!("restart-{i}"),
            "SUCCEEDED",
            Duration::from_secs(60),
        )
        .await;
    }
    for dir in &dirs {
        let lines = trace(dir);
        assert_eq!(
            count(&lines, "before"),
            1,
            "recorded before the crash: {lines:?}"
        );
        assert_eq!(
            count(&lines, "slow-start"),
            2,
            "interrupted, then run again: {lines:?}"
        );
        assert_eq!(count(&lines, "after"), 1, "{lines:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_emulators_on_one_store_dispatch_each_execution_once() {
    let root = tempfile::tempdir().unwrap();
    let a = Dev::start(root.path()).await;
    let b = Dev::start(root.path()).await;
    let dirs: Vec<PathBuf> = (0..16)
        .map(|i| work_dir(root.path(), &format!("d{i}")))
        .collect();
    for (i, dir) in dirs.iter().enumerate() {
        let dev = if i % 2 == 0 { &a } else { &b };
        dev.start_exec("testfn", &format!("shared-{i}"), json!({ "dir": dir }))
            .await;
    }
    for i in 0..dirs.len() {
        a.wait_status(&format!("shared-{i}"), "SUCCEEDED", Duration::from_secs(60))
            .await;
    }
    for dir in &dirs {
        let lines = trace(dir);
        assert_eq!(count(&lines, "before"), 1, "{lines:?}");
        assert_eq!(
            count(&lines, "slow-start"),
            1,
            "never dispatched twice: {lines:?}"
        );
        assert_eq!(count(&lines, "after"), 1, "{lines:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_errors_and_a_panicking_step_is_retried() {
    let root = tempfile::tempdir().unwrap();
    let dev = Dev::start(root.path()).await;

    let (status, v) = dev
        .call("POST", "/v1/functions/nope/executions", Some(json!({})))
        .await;
    assert_eq!(status, 404, "{v}");
    assert_eq!(v["error"]["code"], "FunctionNotFound");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("order, testfn"),
        "{v}"
    );

    let raw = |body: &'static str| {
        let url = format!("{}/v1/functions/order/executions", dev.url);
        async move {
            let out = Command::new("curl")
                .args([
                    "-s",
                    "-o",
                    "-",
                    "-w",
                    "\n%{http_code}",
                    "-X",
                    "POST",
                    &url,
                    "--data-binary",
                    body,
                ])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).to_string()
        }
    };
    let answer = raw("{\"input\": {\"order_id\": ").await;
    assert!(answer.ends_with("400"), "{answer}");
    assert!(
        answer.contains("InvalidJson") && answer.contains("line 1"),
        "{answer}"
    );

    // Over the payload limit: 64 MiB, `durafn dev` having its blob store
    // (docs/payloads.md).
    let big = root.path().join("big.json");
    std::fs::write(
        &big,
        json!({ "input": "x".repeat(65 * 1024 * 1024) }).to_string(),
    )
    .unwrap();
    let out = Command::new("curl")
        .args(["-s", "-o", "-", "-w", "\n%{http_code}", "-X", "POST"])
        .arg(format!("{}/v1/functions/order/executions", dev.url))
        .arg("--data-binary")
        .arg(format!("@{}", big.display()))
        .output()
        .unwrap();
    let answer = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(answer.ends_with("413"), "{answer}");
    assert!(answer.contains("PayloadTooLarge"), "{answer}");

    let dir = work_dir(root.path(), "conflict");
    dev.start_exec("testfn", "same-name", json!({ "dir": dir }))
        .await;
    let (status, v) = dev
        .call(
            "POST",
            "/v1/functions/testfn/executions",
            Some(json!({ "name": "same-name", "input": { "dir": "elsewhere" } })),
        )
        .await;
    assert_eq!(status, 409, "{v}");

    let (status, v) = dev.call("GET", "/v1/executions/no-such-id", None).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (404, Some("ExecutionNotFound"))
    );
    let (status, v) = dev
        .call("GET", "/v1/executions?status=SLEEPING", None)
        .await;
    assert_eq!(status, 400, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("SUSPENDED"),
        "{v}"
    );

    let dir = work_dir(root.path(), "panic");
    dev.start_exec(
        "testfn",
        "panics-once",
        json!({ "dir": dir, "panic_once": true }),
    )
    .await;
    let v = dev
        .wait_status("panics-once", "SUCCEEDED", Duration::from_secs(30))
        .await;
    assert_eq!(v["output"], json!({ "slow_attempt": 2 }));
    let (_, h) = dev
        .call("GET", "/v1/executions/panics-once/history", None)
        .await;
    let slow = &h["operations"][1];
    assert_eq!(slow["attempt"], 2, "{h}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_hanging_past_its_timeout_is_killed_and_the_execution_reinvoked() {
    let root = tempfile::tempdir().unwrap();
    let dev = Dev::start(root.path()).await;
    let dir = work_dir(root.path(), "hang");
    dev.start_exec(
        "testfn",
        "hangs-once",
        json!({ "dir": dir, "hang_once": true }),
    )
    .await;
    // testfn's timeout is 3 s: the emulator kills the hung process, the
    // dispatcher re-invokes, and the step runs again in a new process.
    let v = dev
        .wait_status("hangs-once", "SUCCEEDED", Duration::from_secs(30))
        .await;
    assert_eq!(v["output"], json!({ "slow_attempt": 1 }));
    let lines = trace(&dir);
    assert_eq!(count(&lines, "slow-start-1"), 2, "{lines:?}");
    assert_eq!(count(&lines, "before"), 1, "{lines:?}");
    let p = pids(&lines);
    assert_ne!(p[0], p[1], "a new process took over");
    let status = Command::new("kill").args(["-0", &p[0]]).status().unwrap();
    assert!(!status.success(), "the hung process was killed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durafn_server_requires_its_api_token() {
    let root = tempfile::tempdir().unwrap();
    let template = root.path().join("template.yaml");
    std::fs::write(&template, TEMPLATE).unwrap();
    let token_file = root.path().join("token");
    std::fs::write(&token_file, "s3cret-token-0123456789\n").unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_durafn-under-test"));
    cmd.args(["server", "--bind", "127.0.0.1:0"])
        .arg("--store")
        .arg(format!(
            "sqlite://{}",
            root.path().join("server.db").display()
        ))
        .arg("--token-file")
        .arg(&token_file)
        .arg("--template")
        .arg(&template)
        .arg("--exe")
        .arg(format!("order={}", order_exe().display()))
        .arg("--exe")
        .arg(format!("testfn={}", env!("CARGO_BIN_EXE_testfn")))
        .arg("--exe")
        .arg(format!("approval={}", example_exe("approval").display()))
        .env("RUST_LOG", "warn");
    let (mut child, port) =
        procs::spawn_listening(&mut cmd, "server", durafn_tests::procs::Lines::Echo)
            .await
            .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let anonymous = ApiClient::new(&url, None);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !matches!(anonymous.call("GET", "/healthz", None).await, Ok((200, _))) {
        assert!(Instant::now() < deadline, "durafn server did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, v) = anonymous.call("GET", "/v1/executions", None).await.unwrap();
    assert_eq!(status, 401, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("token"),
        "{v}"
    );
    let wrong = ApiClient::new(&url, Some("s3cret-token-0123456788".into()));
    assert_eq!(
        wrong.call("GET", "/v1/executions", None).await.unwrap().0,
        401
    );
    let right = ApiClient::new(&url, Some("s3cret-token-0123456789".into()));
    let (status, v) = right.call("GET", "/v1/executions", None).await.unwrap();
    assert_eq!(status, 200, "{v}");
    // The Invoke API needs the token too; the Runtime API only answers the
    // emulator's own processes (each has a secret in its base path).
    let (status, _) = anonymous
        .call(
            "POST",
            "/2015-03-31/functions/order/invocations",
            Some(&json!({})),
        )
        .await
        .unwrap();
    assert_eq!(status, 401);
    let (status, _) = anonymous
        .call(
            "GET",
            "/fn/order/1-guess/2018-06-01/runtime/invocation/next",
            None,
        )
        .await
        .unwrap();
    assert_eq!(status, 403);
    let _ = child.kill();
    let _ = child.wait();

    // A missing or short token refuses to start.
    std::fs::write(&token_file, "short").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_durafn-under-test"))
        .args([
            "server",
            "--bind",
            "127.0.0.1:0",
            "--store",
            "sqlite://x.db",
        ])
        .arg("--token-file")
        .arg(&token_file)
        .arg("--template")
        .arg(&template)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("too short"));
}

fn curl(args: &[&str]) -> (u16, Value) {
    let out = Command::new("curl")
        .args(["-s", "-o", "-", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (
        code.parse().unwrap(),
        serde_json::from_str(body).unwrap_or(Value::String(body.into())),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_api_routes_start_executions_idempotently() {
    let root = tempfile::tempdir().unwrap();
    let dev = Dev::start(root.path()).await;
    let orders = format!("{}/orders", dev.url);

    // The order sleeps 10 s: the first invocation suspends, the route answers 202.
    let body = r#"{"order_id": "o-http", "amount_cents": 1999}"#;
    let (status, v) = curl(&[
        "-X",
        "POST",
        &orders,
        "-H",
        "Idempotency-Key: k-1",
        "--data",
        body,
    ]);
    assert_eq!(status, 202, "{v}");
    assert_eq!(v["status"], "SUSPENDED", "{v}");
    let id = v["execution_id"].as_str().unwrap().to_string();
    assert_eq!(id, "http-k-1");
    // The same key again: the same execution, not a second one.
    let (status, v) = curl(&[
        "-X",
        "POST",
        &orders,
        "-H",
        "Idempotency-Key: k-1",
        "--data",
        body,
    ]);
    assert!(status == 202 || status == 200, "{status} {v}");
    assert_eq!(v["execution_id"], id.as_str());
    // The same key with another body is a conflict.
    let (status, v) = curl(&[
        "-X",
        "POST",
        &orders,
        "-H",
        "Idempotency-Key: k-1",
        "--data",
        "{}",
    ]);
    assert_eq!(status, 409, "{v}");
    // A malformed body never starts anything.
    let (status, v) = curl(&["-X", "POST", &orders, "--data", "{nope"]);
    assert_eq!(status, 400, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not valid JSON"),
        "{v}"
    );

    // A workflow that finishes in its first invocation answers 200 with its output;
    // path parameters reach the function's event.
    let dir = work_dir(root.path(), "http");
    let runs = format!("{}/runs/quick", dev.url);
    let (status, v) = curl(&[
        "-X",
        "POST",
        &runs,
        "--data",
        &json!({ "dir": dir }).to_string(),
    ]);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["output"], json!({ "slow_attempt": 1 }));

    // `Prefer: wait=N` waits for a suspended execution to finish.
    let dir = work_dir(root.path(), "http-wait");
    let (status, v) = curl(&[
        "-X",
        "POST",
        &runs,
        "-H",
        "Prefer: wait=30",
        "--data",
        &json!({ "dir": dir, "panic_once": true }).to_string(),
    ]);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["status"], "SUCCEEDED", "{v}");
    assert_eq!(v["output"], json!({ "slow_attempt": 2 }));

    // Unknown routes are the emulator's 404, not a function call.
    let (status, _) = curl(&["-X", "POST", &format!("{}/nowhere", dev.url)]);
    assert_eq!(status, 404);
    dev.wait_status(&id, "SUCCEEDED", Duration::from_secs(30))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_sent_through_the_rest_api_resumes_the_execution() {
    let root = tempfile::tempdir().unwrap();
    let dev = Dev::start(root.path()).await;
    dev.start_exec(
        "approval",
        "deploy-1",
        json!({"request": "deploy", "approver": "ops"}),
    )
    .await;
    let v = dev
        .wait_status("deploy-1", "SUSPENDED", Duration::from_secs(30))
        .await;
    assert_eq!(v["waiting_on"]["kind"], "callback", "{v}");
    let callback_id = v["waiting_on"]["callback_id"].as_str().unwrap().to_string();

    // A forged or tampered id is refused without revealing anything.
    let last = if callback_id.ends_with('0') { "1" } else { "0" };
    let forged = format!("{}{last}", &callback_id[..callback_id.len() - 1]);
    let (status, e) = dev
        .call(
            "POST",
            &format!("/v1/callbacks/{forged}/succeed"),
            Some(json!({"approved": true})),
        )
        .await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (404, Some("CallbackNotFound")),
        "{e}"
    );

    // The approver answers with the CLI.
    let out = Command::new(env!("CARGO_BIN_EXE_durafn-under-test"))
        .args([
            "callback",
            "succeed",
            &callback_id,
            r#"{"approved": true, "by": "ops"}"#,
            "--url",
            &dev.url,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = dev
        .wait_status("deploy-1", "SUCCEEDED", Duration::from_secs(30))
        .await;
    assert_eq!(v["output"]["status"], "approved");
    assert_eq!(v["output"]["decided_by"], "ops");

    // Completing it again is a clear 409, never a second result.
    let (status, e) = dev
        .call(
            "POST",
            &format!("/v1/callbacks/{callback_id}/succeed"),
            Some(json!({"approved": false})),
        )
        .await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (409, Some("CallbackAlreadyCompleted")),
        "{e}"
    );
    let (_, h) = dev
        .call("GET", "/v1/executions/deploy-1/history", None)
        .await;
    let cb = h["operations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "approval")
        .unwrap();
    assert_eq!(cb["callback_id"], callback_id.as_str());
    assert_eq!(cb["result"]["by"], "ops");

    // Events reach a running execution through the API, and an ended one refuses them.
    let (status, e) = dev
        .call(
            "POST",
            "/v1/executions/deploy-1/events/late",
            Some(json!(1)),
        )
        .await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (409, Some("ExecutionEnded")),
        "{e}"
    );
}

/// The same platform on the DynamoDB store (DynamoDB Local, started by
/// scripts/test-all.sh): handler processes write the table directly.
/// Starts three `testfn` executions with search attributes and finds them by
/// `attr.` (and `input.`) conditions through the API and the CLI.
async fn search_by_attributes(dev: &Dev, root: &Path, prefix: &str) {
    for (i, customer) in [42, 7, 42].into_iter().enumerate() {
        let dir = work_dir(root, &format!("{prefix}attr{i}"));
        dev.start_exec(
            "testfn",
            &format!("{prefix}attr-{i}"),
            json!({ "dir": dir, "attributes": { "customer": customer, "tier": "gold" } }),
        )
        .await;
    }
    for i in 0..3 {
        dev.wait_status(
            &format!("{prefix}attr-{i}"),
            "SUCCEEDED",
            Duration::from_secs(60),
        )
        .await;
    }
    let ids = |v: &Value| -> Vec<String> {
        v["executions"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e["id"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (status, v) = dev
        .call(
            "GET",
            "/v1/executions?function=testfn&where=attr.customer%3D42",
            None,
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        ids(&v),
        [format!("{prefix}attr-2"), format!("{prefix}attr-0")],
        "{v}"
    );
    assert_eq!(v["scanned"], 2, "only the index's matches are read: {v}");
    // An attribute with an input condition; a string is not the number.
    let (_, v) = dev
        .call("GET", &format!("/v1/executions?where=attr.tier%3Dgold%3Binput.attributes.customer%3D7&q={prefix}attr"), None)
        .await;
    assert_eq!(ids(&v), [format!("{prefix}attr-1")], "{v}");
    let (_, v) = dev
        .call("GET", "/v1/executions?where=attr.customer%3D%2242%22", None)
        .await;
    assert_eq!(ids(&v), Vec::<String>::new(), "{v}");
    for bad in [
        "nonsense",
        "attr.customer",
        "other.x%3D1",
        "attr.a%3D1%3Battr.b%3D2",
    ] {
        let (status, e) = dev
            .call("GET", &format!("/v1/executions?where={bad}"), None)
            .await;
        assert_eq!(
            (status, e["error"]["code"].as_str()),
            (400, Some("InvalidWhere")),
            "{bad}: {e}"
        );
    }
    let out = Command::new(env!("CARGO_BIN_EXE_durafn-under-test"))
        .args([
            "list",
            "--where",
            "attr.customer=7",
            "--json",
            "--url",
            &dev.url,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let listed: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(ids(&listed), [format!("{prefix}attr-1")], "{text}");
    let out = Command::new(env!("CARGO_BIN_EXE_durafn-under-test"))
        .args(["list", "--where", "nonsense", "--url", &dev.url])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("attr."), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executions_are_found_by_search_attributes_through_the_api_and_cli() {
    let root = tempfile::tempdir().unwrap();
    let dev = Dev::start(root.path()).await;
    search_by_attributes(&dev, root.path(), "sq-").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durafn_dev_runs_on_the_dynamodb_store_too() {
    let endpoint = std::env::var("DURAFN_DYNAMODB_ENDPOINT").unwrap_or_else(|_| {
        panic!("DURAFN_DYNAMODB_ENDPOINT is not set: run the tests with scripts/test-all.sh, which starts DynamoDB Local")
    });
    let root = tempfile::tempdir().unwrap();
    let table = format!("e2e-{}", std::process::id());
    let url = format!("dynamodb://{table}?endpoint={endpoint}&region=us-east-1");
    let dev = Dev::start_with(root.path(), Some(&url)).await;
    let dirs: Vec<PathBuf> = (0..3)
        .map(|i| work_dir(root.path(), &format!("ddb{i}")))
        .collect();
    for (i, dir) in dirs.iter().enumerate() {
        dev.start_exec(
            "testfn",
            &format!("ddb-{i}"),
            json!({ "dir": dir, "panic_once": i == 0 }),
        )
        .await;
    }
    for i in 0..3 {
        dev.wait_status(&format!("ddb-{i}"), "SUCCEEDED", Duration::from_secs(60))
            .await;
    }
    for dir in &dirs {
        let lines = trace(dir);
        assert_eq!(count(&lines, "before"), 1, "{lines:?}");
        assert_eq!(count(&lines, "after"), 1, "{lines:?}");
    }
    let (status, v) = dev
        .call("GET", "/v1/executions?function=testfn", None)
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["executions"].as_array().map(Vec::len), Some(3), "{v}");
    let (_, h) = dev.call("GET", "/v1/executions/ddb-0/history", None).await;
    assert_eq!(
        h["operations"][1]["attempt"], 2,
        "the panicking attempt was retried: {h}"
    );
    // Counted on the table's own requests (the handler writes it directly).
    let (_, one) = dev.call("GET", "/v1/executions/ddb-1", None).await;
    let writes = |v: &Value| v["cost"]["store"]["writes"].as_u64().unwrap_or(0);
    assert!(writes(&one) >= 4, "{one}");
    assert!(
        one["cost"]["store"]["read_units"].as_u64().unwrap_or(0) >= 1,
        "{one}"
    );
    assert_eq!(one["cost"]["invocations_uncounted"], 0, "{one}");
    // Search attributes through the table's index items.
    search_by_attributes(&dev, root.path(), "dd-").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_handler_processes_are_reaped() {
    let root = tempfile::tempdir().unwrap();
    let dev = Dev::start_custom(root.path(), None, TEMPLATE, &["--idle-timeout", "1"]).await;
    let dir = work_dir(root.path(), "idle");
    dev.start_exec("testfn", "idle-1", json!({ "dir": dir }))
        .await;
    dev.wait_status("idle-1", "SUCCEEDED", Duration::from_secs(30))
        .await;
    let pid = pids(&trace(&dir))[0].clone();
    until(
        Duration::from_secs(20),
        "the idle process to be reaped",
        || {
            !Command::new("kill")
                .args(["-0", &pid])
                .status()
                .unwrap()
                .success()
        },
    )
    .await;
    // A new invocation simply starts a new process.
    let dir2 = work_dir(root.path(), "idle2");
    dev.start_exec("testfn", "idle-2", json!({ "dir": dir2 }))
        .await;
    dev.wait_status("idle-2", "SUCCEEDED", Duration::from_secs(30))
        .await;
    assert_ne!(pids(&trace(&dir2))[0], pid);
}

const SCHEDULE_TEMPLATE: &str = r#"
Transform: AWS::Serverless-2016-10-31
Resources:
  BackupVerifyFunction:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: backup-verify
      CodeUri: examples/backup-verify
      Handler: backup-verify
      Timeout: 30
      Events:
        Nightly:
          Type: ScheduleV2
          Properties:
            Name: nightly
            ScheduleExpression: cron(0 3 * * ? *)
            ScheduleExpressionTimezone: Europe/Paris
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_are_listed_paused_resumed_and_triggered_through_the_api_and_cli() {
    let root = tempfile::tempdir().unwrap();
    let dev = Dev::start_custom(root.path(), None, SCHEDULE_TEMPLATE, &[]).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let listed = loop {
        let (status, v) = dev.call("GET", "/v1/schedules", None).await;
        assert_eq!(status, 200, "{v}");
        if v["schedules"].as_array().is_some_and(|a| !a.is_empty()) {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "the template's schedule was not registered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let s = &listed["schedules"][0];
    assert_eq!(
        (s["name"].as_str(), s["function"].as_str()),
        (Some("nightly"), Some("backup-verify"))
    );
    assert_eq!(s["timezone"], "Europe/Paris");

    let (status, v) = dev.call("POST", "/v1/schedules/nightly/pause", None).await;
    assert_eq!(status, 200, "{v}");
    let (_, v) = dev.call("GET", "/v1/schedules/nightly", None).await;
    assert_eq!(v["state"], "PAUSED", "{v}");
    let (status, v) = dev.call("POST", "/v1/schedules/nightly/resume", None).await;
    assert_eq!(status, 200, "{v}");

    let out = Command::new(env!("CARGO_BIN_EXE_durafn-under-test"))
        .args(["schedules", "trigger", "nightly", "--url", &dev.url])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = text.split("execution ").nth(1).unwrap().trim().to_string();
    assert!(id.starts_with("nightly:"), "{text}");
    let v = dev
        .wait_status(&id, "SUCCEEDED", Duration::from_secs(30))
        .await;
    assert_eq!(v["function"], "backup-verify");
    let (status, v) = dev.call("POST", "/v1/schedules/nope/trigger", None).await;
    assert_eq!(status, 404, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_failing_three_times_shows_four_attempts_through_the_api_and_the_cli() {
    let root = tempfile::tempdir().unwrap();
    let dev = Dev::start(root.path()).await;
    let dir = work_dir(root.path(), "flaky");
    dev.start_exec("testfn", "flaky-1", json!({ "dir": dir, "fail_times": 3 }))
        .await;
    let v = dev
        .wait_status("flaky-1", "SUCCEEDED", Duration::from_secs(30))
        .await;
    assert_eq!(v["output"]["flaky_attempt"], 4, "{v}");

    // The REST API: four attempts of "flaky", three failed with their errors.
    // (The last invocation writes its end just after it ends the execution.)
    let deadline = Instant::now() + Duration::from_secs(10);
    let h = loop {
        let (status, h) = dev
            .call("GET", "/v1/executions/flaky-1/history", None)
            .await;
        assert_eq!(status, 200, "{h}");
        let ended = h["invocations"]
            .as_array()
            .and_then(|a| a.last())
            .is_some_and(|i| !i["outcome"].is_null());
        if ended || Instant::now() > deadline {
            break h;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let flaky = h["operations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "flaky")
        .unwrap_or_else(|| panic!("no flaky step in {h}"));
    let attempts = flaky["attempts"].as_array().unwrap();
    let outcomes: Vec<&str> = attempts
        .iter()
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        ["RETRYING", "RETRYING", "RETRYING", "SUCCEEDED"],
        "{flaky}"
    );
    for (i, a) in attempts.iter().enumerate() {
        let n = i as u64 + 1;
        assert_eq!(a["attempt"], n, "{a}");
        assert!(
            a["started_at"].is_string() && a["ended_at"].is_string(),
            "{a}"
        );
        if n < 4 {
            assert_eq!(a["error"]["type"], "Flaky", "{a}");
            assert_eq!(
                a["error"]["message"],
                format!("attempt {n} failed: <b>boom</b> & \"quotes\""),
                "{a}"
            );
            assert!(a["retry_at"].is_string(), "{a}");
        } else {
            assert!(a["error"].is_null(), "{a}");
        }
    }
    assert_eq!(flaky["attempts_truncated"], false);
    // A step that succeeded at once has its one attempt, from its record.
    let before = &h["operations"][0];
    assert_eq!(
        before["attempts"].as_array().map(Vec::len),
        Some(1),
        "{before}"
    );
    // Each retry was its own invocation: at least 4, all ended, none lost.
    let invocations = h["invocations"].as_array().unwrap();
    assert!(invocations.len() >= 4, "{h}");
    let last = invocations.last().unwrap();
    assert_eq!(
        (last["outcome"].as_str(), last["status"].as_str()),
        (Some("FINISHED"), Some("SUCCEEDED")),
        "{last}"
    );
    for i in invocations {
        assert!(
            ["SUSPENDED", "FINISHED"].contains(&i["outcome"].as_str().unwrap_or("")),
            "{i}"
        );
        assert!(
            i["process"].as_str().is_some_and(|p| p.contains("testfn/")),
            "{i}"
        );
    }
    let epochs: Vec<u64> = invocations
        .iter()
        .map(|i| i["epoch"].as_u64().unwrap())
        .collect();
    assert!(epochs.windows(2).all(|w| w[0] < w[1]), "{epochs:?}");
    assert_eq!(h["invocations_truncated"], false);

    // The CLI: the attempts table lists every error; --json is the whole answer.
    let cli = |json: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_durafn-under-test"));
        cmd.args(["history", "flaky-1", "--url", &dev.url]);
        if json {
            cmd.arg("--json");
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let text = cli(false);
    assert!(
        text.contains("ATTEMPTS") && text.contains("INVOCATIONS"),
        "{text}"
    );
    for n in 1..=3 {
        assert!(
            text.contains(&format!("Flaky: attempt {n} failed: <b>boom</b>")),
            "{text}"
        );
    }
    let flaky_rows = text
        .lines()
        .filter(|l| l.split_whitespace().nth(1) == Some("flaky"))
        .count();
    assert_eq!(flaky_rows, 4, "one row per attempt:\n{text}");
    let whole: Value = serde_json::from_str(&cli(true)).unwrap();
    assert_eq!(whole, h, "--json prints the API's answer whole");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_route_starts_of_a_throttled_function_wait_for_the_dispatcher() {
    // A throttled function's HTTP starts only create the execution (the
    // handler gets DURAFN_DISPATCHED_STARTS=1); the dispatcher lets one a
    // minute begin, the other waits as PENDING — nothing runs inline.
    let template = r#"
Transform: AWS::Serverless-2016-10-31
Resources:
  TestFunction:
    Type: AWS::Serverless::Function
    Metadata:
      Durafn:
        Throttle:
          Limit: 1
          Period: 60
    Properties:
      FunctionName: testfn
      CodeUri: tests
      Handler: testfn
      Timeout: 3
      Events:
        Runs:
          Type: HttpApi
          Properties:
            Path: /runs/{kind}
            Method: post
"#;
    let root = tempfile::tempdir().unwrap();
    let dev = Dev::start_custom(root.path(), None, template, &[]).await;
    let runs = format!("{}/runs/quick", dev.url);
    let mut ids = Vec::new();
    let mut dirs = Vec::new();
    for name in ["t1", "t2"] {
        let dir = work_dir(root.path(), name);
        let (status, v) = curl(&[
            "-X",
            "POST",
            &runs,
            "-H",
            &format!("Idempotency-Key: {name}"),
            "--data",
            &json!({ "dir": dir }).to_string(),
        ]);
        assert_eq!(status, 202, "{v}");
        assert_eq!(v["status"], "PENDING", "{v}");
        ids.push(v["execution_id"].as_str().unwrap().to_string());
        dirs.push(dir);
    }
    // One of them runs (through the dispatcher), the other waits.
    let deadline = Instant::now() + Duration::from_secs(30);
    let first = loop {
        let mut done = Vec::new();
        for id in &ids {
            if dev.describe(id).await["status"] == "SUCCEEDED" {
                done.push(id.clone());
            }
        }
        if !done.is_empty() {
            break done;
        }
        assert!(Instant::now() < deadline, "neither ran");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(first.len(), 1, "{first:?}");
    tokio::time::sleep(Duration::from_millis(800)).await;
    let other = ids.iter().find(|id| **id != first[0]).unwrap();
    let v = dev.describe(other).await;
    assert_eq!(v["status"], "PENDING", "throttled: {v}");
    let ran = |d: &PathBuf| std::fs::read_to_string(d.join("trace")).unwrap_or_default();
    assert_eq!(
        dirs.iter().filter(|d| ran(d).contains("before")).count(),
        1,
        "exactly one step body ran"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_pause_on_failure_an_execution_out_of_retries_pauses_until_unpaused() {
    let template = r#"
Transform: AWS::Serverless-2016-10-31
Resources:
  TestFunction:
    Type: AWS::Serverless::Function
    Metadata:
      Durafn:
        PauseOnFailure: true
    Properties:
      FunctionName: testfn
      CodeUri: tests
      Handler: testfn
      Timeout: 3
"#;
    let root = tempfile::tempdir().unwrap();
    let dev = Dev::start_custom(root.path(), None, template, &[]).await;
    let dir = work_dir(root.path(), "pof");
    // `flaky` fails attempts 1-3 and has 2: its retries run out.
    let body =
        json!({ "name": "pof-1", "input": { "dir": dir, "fail_times": 3, "max_attempts": 2 } });
    let (status, v) = dev
        .call("POST", "/v1/functions/testfn/executions", Some(body))
        .await;
    assert!(status == 201 || status == 202, "{status} {v}");
    let paused = |v: &Value| v["paused"] == json!(true) && v["status"] == "SUSPENDED";
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut v = dev.describe("pof-1").await;
    while !paused(&v) {
        assert_ne!(v["status"], "FAILED", "failed instead of pausing: {v}");
        assert!(Instant::now() < deadline, "not paused: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
        v = dev.describe("pof-1").await;
    }
    // Unpaused (before a fix): attempt 3 fails, paused again; unpaused once
    // more: attempt 4 succeeds.
    for _ in 0..2 {
        let (status, v) = dev.call("POST", "/v1/executions/pof-1/unpause", None).await;
        assert_eq!(status, 200, "{v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let v = dev.describe("pof-1").await;
            if paused(&v) || v["status"] == "SUCCEEDED" {
                break;
            }
            assert_ne!(v["status"], "FAILED", "{v}");
            assert!(Instant::now() < deadline, "{v}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let v = dev
        .wait_status("pof-1", "SUCCEEDED", Duration::from_secs(30))
        .await;
    assert_eq!(v["output"]["flaky_attempt"], 4, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_unix_socket_transport_handlers_reach_the_store_on_it() {
    let root = tempfile::tempdir().unwrap();
    let transport = [("DURAFN_STORE_TRANSPORT", "unix")];
    let dev = Dev::start_env(root.path(), None, TEMPLATE, &[], &transport).await;
    let (status, v) = dev
        .call(
            "POST",
            "/v1/functions/order/executions",
            Some(json!({
                "name": "o-unix",
                "input": {"order_id": "o-unix", "amount_cents": 500},
                "wait": 60
            })),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["status"], "SUCCEEDED", "{v}");
    assert_eq!(v["output"]["charge_id"], "ch-o-unix-1");
    // The handler process that ran it was given the socket's URL, and the
    // socket is there (mode 0600) while the emulator runs.
    let stores: Vec<String> = durafn_tests::procs::children(dev.child.id())
        .into_iter()
        .filter_map(|pid| std::fs::read(format!("/proc/{pid}/environ")).ok())
        .flat_map(|env| {
            env.split(|b| *b == 0)
                .filter_map(|kv| std::str::from_utf8(kv).ok()?.strip_prefix("DURAFN_STORE="))
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(!stores.is_empty(), "no handler process is running");
    let url = &stores[0];
    let socket = url
        .strip_prefix("http+unix://")
        .and_then(|rest| rest.split('/').next())
        .map(|s| s.replace("%2F", "/"))
        .unwrap_or_else(|| panic!("not a Unix-socket store URL: {url:?}"));
    let meta = std::fs::metadata(&socket).unwrap();
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    assert!(meta.file_type().is_socket(), "{socket}");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{socket}");
}

#[tokio::test]
async fn an_unknown_store_transport_is_a_clear_error_at_start() {
    let root = tempfile::tempdir().unwrap();
    let template = root.path().join("template.yaml");
    std::fs::write(&template, TEMPLATE).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_durafn-under-test"))
        .args(["dev", "--port", "0", "--state"])
        .arg(root.path().join(".durafn"))
        .arg("--template")
        .arg(&template)
        .arg("--exe")
        .arg(format!("order={}", order_exe().display()))
        .env("DURAFN_STORE_TRANSPORT", "udp")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("DURAFN_STORE_TRANSPORT=\"udp\": use tcp (the default) or unix"),
        "{stderr}"
    );
}
