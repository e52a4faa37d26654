//! The AWS path end to end, without AWS: `durafn dev --aws` runs the
//! template's own dispatcher and control functions as handler processes,
//! their Lambda `Invoke` (Event) and SQS calls go to the emulator, and the
//! table is DynamoDB Local. The emulator's own dispatcher, REST API and UI
//! are off: nothing finishes unless the dispatcher function does its job,
//! and the CLI talks to the control function.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use durafn_emulator::client::ApiClient;
use durafn_tests::binaries::example_exe;
use durafn_tests::e2e::{Api, count, kill_pid, trace, until, work_dir};
use durafn_tests::procs;
use serde_json::{Value, json};

/// The platform part of every template here: wake queue + DLQ, dispatcher
/// (wake queue + sweep) and control (HttpApi catch-all), as in template.yaml.
const PLATFORM: &str = r#"
  WakeQueue:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: durafn-wake
      VisibilityTimeout: 60
      RedrivePolicy:
        deadLetterTargetArn: !GetAtt WakeDeadLetterQueue.Arn
        maxReceiveCount: 5
  WakeDeadLetterQueue:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: durafn-wake-dlq
  ControlFunction:
    Type: AWS::Serverless::Function
    Metadata:
      BuildProperties:
        Binary: durafn-control
      DurafnRole: control
    Properties:
      FunctionName: durafn-control
      CodeUri: aws
      Handler: bootstrap
      Environment:
        Variables:
          DURAFN_FUNCTIONS: order,approval,testfn,testfn-lossy
      Events:
        Control:
          Type: HttpApi
          Properties:
            Path: /{proxy+}
            Method: ANY
"#;

const DISPATCHER: &str = r#"
  DispatcherFunction:
    Type: AWS::Serverless::Function
    Metadata:
      BuildProperties:
        Binary: durafn-dispatcher
      DurafnRole: dispatcher
    Properties:
      FunctionName: durafn-dispatcher
      CodeUri: aws
      Handler: bootstrap
      Timeout: 60
      Environment:
        Variables:
          DURAFN_WAKE_DLQ_URL: !Ref WakeDeadLetterQueue
          DURAFN_FUNCTION_TIMEOUT: "5"
      Events:
        Wake:
          Type: SQS
          Properties:
            Queue: !GetAtt WakeQueue.Arn
            BatchSize: 10
            FunctionResponseTypes:
              - ReportBatchItemFailures
        Sweep:
          Type: ScheduleV2
          Properties:
            ScheduleExpression: rate(1 minute)
            Input: '{"durafn_sweep": {}}'
"#;

const FUNCTIONS: &str = r#"
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
            Method: POST
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
        Soon:
          Type: ScheduleV2
          Properties:
            Name: soon
            ScheduleExpression: at(AT_TIME)
            Input: '{"durafn_schedule": {"name": "soon", "time": "<aws.scheduler.scheduled-time>", "input": {"dir": "SCHEDULE_DIR"}}}'
  # Every wake-up this function sends is lost (no such queue): only the
  # dispatcher's sweep can continue its executions.
  LossyFunction:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: testfn-lossy
      CodeUri: tests
      Handler: testfn
      Timeout: 3
      Environment:
        Variables:
          DURAFN_WAKE_QUEUE_URL: no-such-queue
"#;

/// When the `soon` schedule fires: `yyyy-mm-ddThh:mm:ss` (UTC), 30 s from
/// now (the emulator must be up by then, or the one-shot is in its past).
fn soon() -> (String, durafn_runtime::model::Timestamp) {
    let at = durafn_runtime::model::Timestamp(now_ms() + 30_000);
    let at = durafn_runtime::model::Timestamp(at.0 - at.0 % 1000);
    let text = durafn_runtime::trigger::schedule::fire_time_rfc3339(at);
    (text.trim_end_matches('Z').to_string(), at)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn template_text(with_dispatcher: bool) -> String {
    let mut t = String::from(
        "Transform: AWS::Serverless-2016-10-31\nGlobals:\n  Function:\n    Environment:\n      Variables:\n        DURAFN_WAKE_QUEUE_URL: !Ref WakeQueue\nResources:",
    );
    t.push_str(PLATFORM);
    if with_dispatcher {
        t.push_str(DISPATCHER);
    }
    t.push_str(FUNCTIONS);
    t
}

/// Invokes a function through the emulator's Lambda Invoke API
/// (RequestResponse), as EventBridge Scheduler or any AWS caller would.
async fn invoke(dev: &AwsDev, function: &str, payload: Value) -> Value {
    let client = ApiClient::new(&dev.url, None);
    let (status, v) = client
        .call(
            "POST",
            &format!("/2015-03-31/functions/{function}/invocations"),
            Some(&payload),
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{v}");
    v
}

fn ddb_url(table: &str) -> String {
    let endpoint = std::env::var("DURAFN_DYNAMODB_ENDPOINT").unwrap_or_else(|_| {
        panic!("DURAFN_DYNAMODB_ENDPOINT is not set: run the tests with scripts/test-all.sh, which starts DynamoDB Local")
    });
    format!("dynamodb://{table}?endpoint={endpoint}&region=us-east-1")
}

/// A `durafn dev --aws` process.
struct AwsDev {
    /// When the template's `soon` schedule fires.
    soon: durafn_runtime::model::Timestamp,
    child: Child,
    api: Api,
    token: String,
}

impl std::ops::Deref for AwsDev {
    type Target = Api;
    fn deref(&self) -> &Api {
        &self.api
    }
}

impl Drop for AwsDev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl AwsDev {
    async fn start(root: &Path, store: &str, with_dispatcher: bool) -> AwsDev {
        // Build (or find) every binary first: the schedule's fire time is
        // counted from the spawn, and a build can wait on cargo's lock.
        let exe = |name: &str, path: PathBuf| format!("{name}={}", path.display());
        let testfn = env!("CARGO_BIN_EXE_testfn");
        let exes = [
            exe("order", example_exe("order-example", "order")),
            exe("approval", example_exe("approval-example", "approval")),
            format!("testfn={testfn}"),
            format!("testfn-lossy={testfn}"),
            exe(
                "durafn-dispatcher",
                example_exe("durafn-aws", "durafn-dispatcher"),
            ),
            exe(
                "durafn-control",
                example_exe("durafn-aws", "durafn-control"),
            ),
        ];
        let template = root.join("template.yaml");
        let schedule_dir = work_dir(root, "scheduled");
        let (at_text, soon) = soon();
        let text = template_text(with_dispatcher)
            .replace("AT_TIME", &at_text)
            .replace("SCHEDULE_DIR", &schedule_dir.display().to_string());
        std::fs::write(&template, text).unwrap();
        let token = "test-token-0123456789abcdef".to_string();
        let token_file = root.join("token");
        std::fs::write(&token_file, &token).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_durafn-under-test"));
        command.args(["dev", "--aws", "--port", "0"]);
        for e in &exes {
            command.arg("--exe").arg(e);
        }
        command
            .args(["--sweep-interval", "1", "--store", store])
            .arg("--state")
            .arg(root.join(".durafn"))
            .arg("--template")
            .arg(&template)
            .arg("--token-file")
            .arg(&token_file)
            .env("RUST_LOG", "warn");
        let (child, port) = procs::spawn_listening(&mut command, "dev", procs::Lines::Echo)
            .await
            .unwrap();
        let dev = AwsDev {
            soon,
            child,
            api: Api::new(&format!("http://127.0.0.1:{port}"), Some(token.clone())),
            token,
        };
        // /healthz is the control function's, through the HttpApi route.
        dev.wait_healthy(Duration::from_secs(90), "durafn dev --aws")
            .await;
        dev
    }

    /// Runs the `durafn` CLI against the control function.
    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_durafn-under-test"))
            .args(args)
            .args(["--endpoint", &self.url, "--token", &self.token])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "durafn {args:?}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }
}

async fn sqs(dev: &AwsDev) -> aws_sdk_sqs::Client {
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
        .region(aws_sdk_sqs::config::Region::new("us-east-1"))
        .endpoint_url(&dev.url)
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "x", "x", None, None, "test",
        ))
        .build();
    aws_sdk_sqs::Client::from_conf(config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aws_path_runs_workflows_through_the_dispatcher_and_control_functions() {
    let root = tempfile::tempdir().unwrap();
    let table = format!("aws-{}", std::process::id());
    let url = ddb_url(&table);
    let dev = AwsDev::start(root.path(), &url, true).await;

    // The order sleeps 10 s: its wake-up is a delayed wake message.
    dev.start_exec(
        "order",
        "o-aws",
        json!({"order_id": "o-aws", "amount_cents": 1999}),
    )
    .await;
    // Approval waits for a callback sent through the control function with the CLI.
    dev.start_exec(
        "approval",
        "ap-aws",
        json!({"request": "deploy", "approver": "ops"}),
    )
    .await;
    let v = dev
        .wait_status("ap-aws", "SUSPENDED", Duration::from_secs(60))
        .await;
    let callback_id = v["waiting_on"]["callback_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no callback id: {v}"))
        .to_string();
    dev.cli(&[
        "callback",
        "succeed",
        &callback_id,
        r#"{"approved": true, "by": "ops"}"#,
    ]);
    let v = dev
        .wait_status("ap-aws", "SUCCEEDED", Duration::from_secs(60))
        .await;
    assert_eq!(v["output"]["decided_by"], "ops", "{v}");

    // A handler killed mid-step: its lease expires and the sweep re-runs it.
    let dir = work_dir(root.path(), "killed");
    dev.start_exec("testfn", "kill-aws", json!({"dir": dir, "block": true}))
        .await;
    until(Duration::from_secs(60), "the slow step to start", || {
        count(&trace(&dir), "slow-start-1") == 1
    })
    .await;
    let line = trace(&dir)
        .into_iter()
        .find(|l| l.starts_with("slow-start-1"))
        .unwrap();
    kill_pid(line.rsplit("pid=").next().unwrap());
    until(Duration::from_secs(60), "the step to run again", || {
        count(&trace(&dir), "slow-start-1") == 2
    })
    .await;
    std::fs::write(dir.join("release"), "").unwrap();
    dev.wait_status("kill-aws", "SUCCEEDED", Duration::from_secs(60))
        .await;
    let lines = trace(&dir);
    assert_eq!(count(&lines, "before"), 1, "{lines:?}");
    assert_eq!(count(&lines, "after"), 1, "{lines:?}");

    // Every wake-up of testfn-lossy is lost: its retry backoff is found by the sweep.
    let lossy = work_dir(root.path(), "lossy");
    dev.start_exec(
        "testfn-lossy",
        "lossy-1",
        json!({"dir": lossy, "panic_once": true}),
    )
    .await;
    let v = dev
        .wait_status("lossy-1", "SUCCEEDED", Duration::from_secs(60))
        .await;
    assert_eq!(v["output"]["slow_attempt"], 2, "{v}");

    // The order finished after its sleep, every step once.
    let v = dev
        .wait_status("o-aws", "SUCCEEDED", Duration::from_secs(60))
        .await;
    assert_eq!(v["output"]["charge_id"], "ch-o-aws-1", "{v}");

    // An execution pinned to a version that does not exist fails clearly.
    let store = durafn_runtime::store::open_async(&url).await.unwrap();
    store
        .create_execution(&durafn_runtime::model::NewExecution {
            id: durafn_runtime::model::ExecutionId::new("v42").unwrap(),
            function: "testfn".into(),
            version: "42".into(),
            input: json!({"dir": dir}),
            now: durafn_runtime::model::Timestamp(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_millis() as i64,
            ),
        })
        .await
        .unwrap();
    let v = dev
        .wait_status("v42", "FAILED", Duration::from_secs(60))
        .await;
    assert_eq!(v["error"]["type"], "UnknownFunction", "{v}");
    let message = v["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("version 42"), "{v}");
    // Resumed through the control function, it is dispatched again (and,
    // its version still missing, fails again with the same clear error).
    let resumed = dev.cli(&["resume", "v42", "--json"]);
    let resumed: Value = serde_json::from_str(&resumed).unwrap();
    assert_ne!(resumed["status"], "FAILED", "{resumed}");
    let v = dev
        .wait_status("v42", "FAILED", Duration::from_secs(60))
        .await;
    assert_eq!(v["error"]["type"], "UnknownFunction", "{v}");

    // A message that is not a wake-up is dead-lettered at once, not retried.
    let sqs = sqs(&dev).await;
    let queue_url = |name: &str| format!("{}/000000000000/{name}", dev.url);
    let wake = sqs
        .get_queue_url()
        .queue_name("durafn-wake")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap_or_else(|| queue_url("durafn-wake"));
    let dlq = sqs
        .get_queue_url()
        .queue_name("durafn-wake-dlq")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap_or_else(|| queue_url("durafn-wake-dlq"));
    sqs.send_message()
        .queue_url(&wake)
        .message_body("{not a wake-up")
        .send()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let dead = loop {
        let got = sqs
            .receive_message()
            .queue_url(&dlq)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        if let Some(m) = got.messages.unwrap_or_default().into_iter().next() {
            break m;
        }
        assert!(
            Instant::now() < deadline,
            "the bad message never reached the DLQ"
        );
    };
    assert_eq!(dead.body.as_deref(), Some("{not a wake-up"));

    // Schedule fires, as EventBridge Scheduler delivers them: the fire's
    // execution starts once, and not while an earlier fire still runs.
    let ov = work_dir(root.path(), "overlap");
    let fire = |time: &str, block: bool| json!({"durafn_schedule": {"name": "ov", "time": time, "input": {"dir": ov, "block": block}}});
    // The first fire blocks in its step (past the function's 3 s timeout,
    // so its invocation is killed and re-run until released).
    {
        let url = dev.url.clone();
        let payload = fire("2026-01-01T00:00:00Z", true);
        tokio::spawn(async move {
            ApiClient::new(&url, None)
                .call(
                    "POST",
                    "/2015-03-31/functions/testfn/invocations",
                    Some(&payload),
                )
                .await
        });
    }
    until(Duration::from_secs(60), "the first fire to run", || {
        count(&trace(&ov), "slow-start-1") == 1
    })
    .await;
    let skipped = invoke(&dev, "testfn", fire("2026-01-01T00:01:00Z", false)).await;
    assert_eq!(skipped["status"], "SKIPPED", "{skipped}");
    assert_eq!(skipped["execution_id"], "ov:20260101T000100Z", "{skipped}");
    let (status, _) = dev
        .call("GET", "/v1/executions/ov:20260101T000100Z", None)
        .await;
    assert_eq!(status, 404, "a skipped fire starts nothing");
    std::fs::write(ov.join("release"), "").unwrap();
    dev.wait_status("ov:20260101T000000Z", "SUCCEEDED", Duration::from_secs(60))
        .await;
    // The same fire delivered again starts nothing new; the next one runs.
    let again = invoke(&dev, "testfn", fire("2026-01-01T00:00:00Z", true)).await;
    assert_eq!(again["status"], "SUCCEEDED", "{again}");
    assert_eq!(count(&trace(&ov), "before"), 1);
    let next = invoke(&dev, "testfn", fire("2026-01-01T00:02:00Z", false)).await;
    assert_eq!(next["status"], "SUCCEEDED", "{next}");
    let v = dev.describe("ov:20260101T000200Z").await;
    assert_eq!(v["input"]["schedule"], "ov", "{v}");
    assert_eq!(v["input"]["scheduled_time"], "2026-01-01T00:02:00Z", "{v}");

    // The template's own schedule (at(...), 25 s after the start), fired by
    // the emulator as EventBridge Scheduler would: its execution ran.
    let fired = durafn_runtime::trigger::schedule::fire_id("soon", dev.soon)
        .unwrap()
        .as_str()
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, v) = dev
            .call("GET", &format!("/v1/executions/{fired}"), None)
            .await;
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the at() schedule never fired ({status}: {v}); due at {}, now {}",
            dev.soon.0,
            now_ms()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(fired.starts_with("soon:"), "{fired}");
    dev.wait_status(&fired, "SUCCEEDED", Duration::from_secs(30))
        .await;

    // The CLI works against the control function: list, describe, history, cancel.
    let listed = dev.cli(&["list", "--json"]);
    let listed: Value = serde_json::from_str(&listed).unwrap();
    let ids: Vec<&str> = listed["executions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["id"].as_str())
        .collect();
    for id in ["o-aws", "ap-aws", "kill-aws", "lossy-1", "v42"] {
        assert!(ids.contains(&id), "{id} not listed: {listed}");
    }
    assert!(dev.cli(&["describe", "o-aws"]).contains("SUCCEEDED"));
    let history = dev.cli(&["history", "o-aws"]);
    assert!(
        history.contains("cool-off") && history.contains("email"),
        "{history}"
    );
    let blocked = work_dir(root.path(), "cancelled");
    dev.start_exec(
        "testfn",
        "cancel-aws",
        json!({"dir": blocked, "block": true}),
    )
    .await;
    until(Duration::from_secs(60), "the step to start", || {
        count(&trace(&blocked), "slow-start-1") == 1
    })
    .await;
    dev.cli(&["cancel", "cancel-aws"]);
    dev.wait_status("cancel-aws", "CANCELLED", Duration::from_secs(10))
        .await;
    std::fs::write(blocked.join("release"), "").unwrap();

    // Without the token the control API answers 401.
    let anonymous = ApiClient::new(&dev.url, None);
    let (status, _) = anonymous.call("GET", "/v1/executions", None).await.unwrap();
    assert_eq!(status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_dispatcher_function_nothing_continues() {
    let root = tempfile::tempdir().unwrap();
    let table = format!("aws-nodisp-{}", std::process::id());
    let dev = AwsDev::start(root.path(), &ddb_url(&table), false).await;
    // An order started through its HttpApi route runs its first invocation
    // at once and suspends on its 10 s cool-off...
    let out = Command::new("curl")
        .args(["-s", "-X", "POST", "-H", "Idempotency-Key: o-stuck"])
        .args(["-d", r#"{"order_id": "o-stuck", "amount_cents": 5}"#])
        .arg(format!("{}/orders", dev.url))
        .output()
        .unwrap();
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert_eq!(answer["status"], "SUSPENDED", "{answer}");
    // ...and a start through the control API is only recorded.
    let dir = work_dir(root.path(), "idle");
    dev.start_exec("testfn", "never-runs", json!({"dir": dir}))
        .await;
    // Well past the cool-off: with no dispatcher function nothing re-invokes them.
    tokio::time::sleep(Duration::from_secs(13)).await;
    let v = dev.describe("http-o-stuck").await;
    assert_eq!(v["status"], "SUSPENDED", "{v}");
    let (_, h) = dev
        .call("GET", "/v1/executions/http-o-stuck/history", None)
        .await;
    let ops = h["operations"].as_array().cloned().unwrap_or_default();
    assert_eq!(ops.len(), 2, "charge done, cool-off waiting: {h}");
    assert_eq!(ops[1]["name"], "cool-off", "{h}");
    assert_ne!(ops[1]["status"], "SUCCEEDED", "{h}");
    // An event sent with the CLI through the control function is stored,
    // but nothing runs the execution.
    dev.cli(&["send-event", "never-runs", "ping", r#"{"n": 1}"#]);
    let v = dev.describe("never-runs").await;
    assert_eq!(v["status"], "PENDING", "{v}");
    assert!(trace(&dir).is_empty(), "no step may have run");
}
