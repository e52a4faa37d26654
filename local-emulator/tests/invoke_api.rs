//! The Lambda Invoke API, driven by the real `aws-sdk-lambda` client against
//! `durafn dev` (the real binary) and the order example's real handler.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

mod listening;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;

fn order_exe() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "-q", "-p", "order-example", "--bin", "order"])
        .status()
        .unwrap();
    assert!(status.success(), "building the order example failed");
    let exe = std::env::current_exe().unwrap();
    exe.parent().and_then(Path::parent).unwrap().join("order")
}

struct Dev(Child);

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn start_dev(state: &Path) -> (Dev, String) {
    let template = state.join("template.yaml");
    std::fs::write(
        &template,
        "Resources:\n  Order:\n    Type: AWS::Serverless::Function\n    Properties:\n      FunctionName: order\n      CodeUri: examples/order\n      Handler: order\n      Timeout: 30\n",
    )
    .unwrap();
    let (child, port) = listening::spawn(
        Command::new(env!("CARGO_BIN_EXE_durafn"))
            .args(["dev", "--port", "0"])
            .arg("--state")
            .arg(state.join(".durafn"))
            .arg("--template")
            .arg(&template)
            .arg("--exe")
            .arg(format!("order={}", order_exe().display()))
            .env("RUST_LOG", "warn"),
    );
    let url = format!("http://127.0.0.1:{port}");
    let client = durafn_emulator::client::ApiClient::new(&url, None);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !matches!(client.call("GET", "/healthz", None).await, Ok((200, _))) {
        assert!(Instant::now() < deadline, "durafn dev did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (Dev(child), url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_sdk_lambda_clients_invoke_functions_through_the_emulator() {
    let root = tempfile::tempdir().unwrap();
    let (_dev, url) = start_dev(root.path()).await;
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_lambda::config::Credentials::new(
            "x", "x", None, None, "test",
        ))
        .endpoint_url(&url)
        .load()
        .await;
    let lambda = aws_sdk_lambda::Client::new(&config);

    // RequestResponse: a direct invoke starts an execution (keyed by the
    // request id) and answers when its first invocation ends.
    let out = lambda
        .invoke()
        .function_name("order")
        .payload(Blob::new(r#"{"durafn_start": {"name": "sdk-1", "input": {"order_id": "sdk-1", "amount_cents": 500}}}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status_code(), 200);
    assert!(out.function_error().is_none());
    let body: serde_json::Value = serde_json::from_slice(out.payload().unwrap().as_ref()).unwrap();
    assert_eq!(body["execution_id"], "sdk-1");
    assert_eq!(
        body["status"], "SUSPENDED",
        "the order sleeps 10 s after charging: {body}"
    );

    // Event: accepted at once.
    let out = lambda
        .invoke()
        .function_name("order")
        .invocation_type(InvocationType::Event)
        .payload(Blob::new(r#"{"durafn_start": {"name": "sdk-2", "input": {"order_id": "sdk-2", "amount_cents": 500}}}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status_code(), 202);

    // Unknown functions are the SDK's ResourceNotFoundException.
    let err = lambda
        .invoke()
        .function_name("nope")
        .send()
        .await
        .unwrap_err();
    let service = err.into_service_error();
    assert!(service.is_resource_not_found_exception(), "{service:?}");

    // The execution the SDK client started finishes through the dispatcher.
    let client = durafn_emulator::client::ApiClient::new(&url, None);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, v) = client
            .call("GET", "/v1/executions/sdk-1", None)
            .await
            .unwrap();
        if v["status"] == "SUCCEEDED" {
            assert_eq!(v["output"]["charge_id"], "ch-sdk-1-1");
            break;
        }
        assert!(Instant::now() < deadline, "sdk-1 did not finish: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
