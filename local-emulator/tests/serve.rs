//! `server::serve` in process, on a listener the test bound (no port race)
//! and the clock the test gave it: what the platform stamps follows that
//! clock, not the machine's.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::sync::Arc;

use durafn_emulator::client::ApiClient;
use durafn_emulator::server::{ServerConfig, serve};
use durafn_runtime::clock::{Clock, ManualClock};
use durafn_runtime::model::Timestamp;
use serde_json::json;

const TEMPLATE: &str = r#"
Transform: AWS::Serverless-2016-10-31
Resources:
  F:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: f
      CodeUri: f
      Handler: f
      Timeout: 3
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_stamps_executions_with_the_clock_it_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("template.yaml");
    std::fs::write(&template, TEMPLATE).unwrap();
    let store = format!("sqlite://{}", dir.path().join("durafn.db").display());
    let mut config = ServerConfig::new(template, store);
    // A function that never runs (its process exits at once): only the
    // records the platform writes are looked at.
    config.executables.insert("f".into(), "/bin/true".into());
    // 2030-01-01T00:00:00Z, far from the machine's clock.
    let start = Timestamp(1_893_456_000_000);
    let clock = ManualClock::new(start);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(serve(
        config,
        Arc::new(clock.clone()) as Arc<dyn Clock>,
        listener,
        async move {
            let _ = stopped.await;
        },
    ));

    let client = ApiClient::new(&url, None);
    let (status, v) = client
        .call(
            "POST",
            "/v1/functions/f/executions",
            Some(&json!({ "name": "c-1", "input": {} })),
        )
        .await
        .unwrap();
    assert!(matches!(status, 201 | 202), "{status} {v}");
    let (status, v) = client
        .call("GET", "/v1/executions/c-1", None)
        .await
        .unwrap();
    assert_eq!(status, 200, "{v}");
    let created = v["created_at"].as_str().unwrap();
    assert!(
        created.starts_with("2030-01-01T00:00:00"),
        "created at the given clock's time, not the machine's: {v}"
    );

    let _ = stop.send(());
    served.await.unwrap().unwrap();
}
