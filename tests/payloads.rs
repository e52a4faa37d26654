//! Large payloads end to end through `durafn dev` (docs/payloads.md): the
//! real `durafn` binary, a real handler binary (`payloadfn`), its default
//! blob store under the state folder (or S3). A 20 MiB step result and a
//! 20 MiB start input round-trip through the REST API, on SQLite and on
//! DynamoDB Local (`DURAFN_DYNAMODB_ENDPOINT`), and with S3 blobs on a local
//! S3 server (`DURAFN_S3_TEST_ENDPOINT`); scripts/test-all.sh starts both,
//! and a case fails without its server.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use durafn_tests::e2e::Api;
use durafn_tests::procs;
use serde_json::{Value, json};

const MIB: usize = 1024 * 1024;

const TEMPLATE: &str = r#"
Transform: AWS::Serverless-2016-10-31
Resources:
  PayloadFunction:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: payloadfn
      CodeUri: tests
      Handler: payloadfn
      Timeout: 60
"#;

/// A `durafn dev` process, killed when dropped.
struct Dev {
    child: Child,
    api: Api,
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn dev(state: &Path, store: Option<String>, blobs: Option<&str>) -> Dev {
    let template = state.join("template.yaml");
    std::fs::write(&template, TEMPLATE).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_durafn-under-test"));
    cmd.args(["dev", "--port", "0"])
        .arg("--state")
        .arg(state.join(".durafn"))
        .arg("--template")
        .arg(&template)
        .arg("--exe")
        .arg(format!("payloadfn={}", env!("CARGO_BIN_EXE_payloadfn")));
    if let Some(s) = store {
        cmd.args(["--store", &s]);
    }
    if let Some(b) = blobs {
        cmd.args(["--blobs", b]);
    }
    cmd.env_remove("DURAFN_BLOBS").env("RUST_LOG", "warn");
    let (child, port) = procs::spawn_listening(&mut cmd, "dev", durafn_tests::procs::Lines::Echo)
        .await
        .unwrap();
    let dev = Dev {
        child,
        api: Api::new(&format!("http://127.0.0.1:{port}"), None),
    };
    dev.api
        .wait_healthy(Duration::from_secs(60), "durafn dev")
        .await;
    dev
}

fn str_len(v: &Value) -> usize {
    v.as_str().map_or(0, str::len)
}

fn blob_files(folder: &Path) -> usize {
    std::fs::read_dir(folder).map_or(0, |d| {
        d.flatten()
            .map(|e| {
                if e.path().is_dir() {
                    blob_files(&e.path())
                } else {
                    1
                }
            })
            .sum()
    })
}

/// Starts `name` with `input` and waits for it; the answer of the start.
async fn run(api: &Api, name: &str, input: Value) -> Value {
    let (status, v) = api
        .call(
            "POST",
            "/v1/functions/payloadfn/executions",
            Some(json!({ "name": name, "input": input, "wait": 90 })),
        )
        .await;
    assert!(status == 200 || status == 201, "{status}: {}", short(&v));
    assert_eq!(v["status"], "SUCCEEDED", "{}", short(&v));
    v
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    s.chars().take(600).collect()
}

/// Where `durafn dev` keeps the blobs: its default folder, or S3.
enum Blobs {
    Folder,
    S3(Box<durafn_runtime::store::blob::S3BlobStore>, String),
}

async fn large_payloads_round_trip(state: &Path, store: Option<String>, blobs: Blobs) {
    let url = match &blobs {
        Blobs::Folder => None,
        Blobs::S3(_, url) => Some(url.as_str()),
    };
    let dev = dev(state, store, url).await;
    let api = &dev.api;

    // A step returning 20 MiB: the start's answer, describe and history
    // all show it whole.
    let v = run(api, "big-result", json!({ "result_bytes": 20 * MIB })).await;
    assert_eq!(str_len(&v["output"]["result"]), 20 * MIB);
    assert_eq!(v["output"]["measured"], 20 * MIB, "replayed whole");
    let d = api.describe("big-result").await;
    assert_eq!(str_len(&d["output"]["result"]), 20 * MIB);
    let (status, h) = api
        .call("GET", "/v1/executions/big-result/history", None)
        .await;
    assert_eq!(status, 200, "{}", short(&h));
    let produce = h["operations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "produce")
        .cloned()
        .unwrap();
    assert_eq!(str_len(&produce["result"]), 20 * MIB);

    // A 20 MiB start input reaches the handler whole.
    let pad = "i".repeat(20 * MIB);
    let v = run(api, "big-input", json!({ "result_bytes": 10, "pad": pad })).await;
    assert_eq!(v["output"]["pad_len"], 20 * MIB);
    let d = api.describe("big-input").await;
    assert_eq!(str_len(&d["input"]["pad"]), 20 * MIB);

    // The payloads are blobs, not parts of the records.
    if let Blobs::S3(bucket, _) = &blobs {
        use durafn_runtime::store::blob::BlobStore;
        let listed: Vec<String> = bucket
            .executions(None, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|f| f.execution.to_string())
            .collect();
        assert_eq!(listed, ["big-input", "big-result"]);
        assert!(!state.join(".durafn").join("blobs").exists());
        return;
    }
    let blobs = state.join(".durafn").join("blobs");
    assert!(
        blob_files(&blobs.join("x-big-result")) >= 2,
        "result and output"
    );
    assert_eq!(
        blob_files(&blobs.join("x-big-input")),
        1,
        "the input (its output is small)"
    );
    let db = state.join(".durafn").join("durafn.db");
    if let Ok(meta) = std::fs::metadata(&db) {
        assert!(
            meta.len() < 8 * MIB as u64,
            "the database holds references only: {} bytes",
            meta.len()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_payloads_round_trip_through_durafn_dev_on_sqlite() {
    let root = tempfile::tempdir().unwrap();
    large_payloads_round_trip(root.path(), None, Blobs::Folder).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_payloads_round_trip_through_durafn_dev_on_dynamodb() {
    let endpoint = std::env::var("DURAFN_DYNAMODB_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "DURAFN_DYNAMODB_ENDPOINT is not set: run the tests with scripts/test-all.sh, or \
             eval \"$(scripts/dynamodb-local.sh start)\" first"
        )
    });
    let table = format!("payloads-{}", std::process::id());
    let root = tempfile::tempdir().unwrap();
    let url = format!("dynamodb://{table}?endpoint={endpoint}&region=us-east-1");
    large_payloads_round_trip(root.path(), Some(url), Blobs::Folder).await;
}

/// The same with `--blobs s3://…` against a local S3 server (s3rver, which
/// scripts/test-all.sh starts: `DURAFN_S3_TEST_ENDPOINT`): handler
/// processes write and read the bucket themselves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_payloads_round_trip_through_durafn_dev_on_s3() {
    let endpoint = std::env::var("DURAFN_S3_TEST_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "DURAFN_S3_TEST_ENDPOINT is not set: run the tests with scripts/test-all.sh, or \
             eval \"$(scripts/s3-local.sh start)\" first"
        )
    });
    let url = format!(
        "s3://e2e-{}/payloads?endpoint={endpoint}",
        std::process::id()
    );
    let bucket = durafn_runtime::store::blob::S3BlobStore::open(&url)
        .unwrap()
        .with_keys("S3RVER", "S3RVER");
    bucket.create_bucket_if_missing().await.unwrap();
    let root = tempfile::tempdir().unwrap();
    large_payloads_round_trip(root.path(), None, Blobs::S3(Box::new(bucket), url)).await;
}
