//! One `durafn server` replica for the multi-replica tests on DynamoDB
//! Local (`replicas_pause.rs`, `replicas_priority.rs`), serving one
//! `chaos` function and its child from the chaos handler binary.

#![allow(dead_code)] // each test binary uses part of it

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use durafn_emulator::client::ApiClient;
use durafn_tests::chaos::CHILD_FUNCTION;
use durafn_tests::procs::{self, Lines, spawn_listening};
use serde_json::Value;

pub(crate) const TOKEN: &str = "replicas-pause-token";

pub(crate) fn ddb_url(table: &str) -> String {
    let endpoint = std::env::var("DURAFN_DYNAMODB_ENDPOINT").unwrap_or_else(|_| {
        panic!("DURAFN_DYNAMODB_ENDPOINT is not set: run the tests with scripts/test-all.sh, which starts DynamoDB Local")
    });
    format!("dynamodb://{table}?endpoint={endpoint}&region=us-east-1")
}

/// Writes `template.yaml` in `root` (with the token file and `work/callbacks/`)
/// serving `chaos` and its child from the chaos handler: `metadata` is YAML
/// for `chaos`'s `Metadata` (indented 6), `properties` extra lines for its
/// `Properties` (indented 6). Returns the template and the work folder.
pub(crate) fn chaos_template(
    root: &Path,
    metadata: &str,
    properties: &str,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let work = root.join("work");
    std::fs::create_dir_all(work.join("callbacks")).expect("work folder");
    std::fs::write(root.join("token"), TOKEN).expect("token file");
    let metadata = match metadata {
        "" => String::new(),
        m => format!("    Metadata:\n{m}\n"),
    };
    let properties = match properties {
        "" => String::new(),
        p => format!("{p}\n"),
    };
    let text = format!(
        r#"
Transform: AWS::Serverless-2016-10-31
Resources:
  ChaosFunction:
    Type: AWS::Serverless::Function
{metadata}    Properties:
      FunctionName: chaos
      CodeUri: tests
      Handler: chaosfn
      Timeout: 5
{properties}  ChaosChildFunction:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: {CHILD_FUNCTION}
      CodeUri: tests
      Handler: chaosfn
      Timeout: 5
"#
    );
    let template = root.join("template.yaml");
    std::fs::write(&template, text).expect("template");
    (template, work)
}

/// One `durafn server` process.
pub(crate) struct Replica {
    child: Option<Child>,
    api: ApiClient,
}

impl Replica {
    pub(crate) async fn start(
        id: &str,
        root: &Path,
        store: &str,
        template: &Path,
        exe: &Path,
    ) -> Replica {
        let log = root.join(format!("{id}.log"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_durafn-under-test"));
        cmd.args(["server", "--store", store, "--bind", "127.0.0.1:0"])
            .arg("--token-file")
            .arg(root.join("token"))
            .arg("--template")
            .arg(template)
            .arg("--exe")
            .arg(format!("chaos={}", exe.display()))
            .arg("--exe")
            .arg(format!("{CHILD_FUNCTION}={}", exe.display()))
            .env("DURAFN_REPLICA_ID", id)
            .env("NO_COLOR", "1")
            .env("DURAFN_SHARD_LEASE_TTL_MS", "3000")
            .env("RUST_LOG", "warn,durafn_runtime::dispatch=info");
        let lines = Lines::File(std::fs::File::create(&log).unwrap());
        let (child, port) = spawn_listening(&mut cmd, "server", lines).await.unwrap();
        Replica {
            child: Some(child),
            api: ApiClient::new(&format!("http://127.0.0.1:{port}"), Some(TOKEN.into())),
        }
    }

    pub(crate) async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        tokio::time::timeout(Duration::from_secs(10), self.api.call(method, path, body))
            .await
            .expect("the replica answered in time")
            .expect("the replica answered")
    }

    pub(crate) async fn ok(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let (status, v) = self.call(method, path, body).await;
        assert!(
            (200..=202).contains(&status),
            "{method} {path}: {status} {v}"
        );
        v
    }

    pub(crate) async fn wait_up(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Ok((200, _))) = tokio::time::timeout(
                Duration::from_secs(5),
                self.api.call("GET", "/healthz", None),
            )
            .await
            {
                return;
            }
            assert!(Instant::now() < deadline, "a replica did not come up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let handlers = procs::children(c.id());
            let _ = c.kill();
            let _ = c.wait();
            for pid in handlers {
                procs::signal(pid, "KILL");
            }
        }
    }
}

/// Completes the callback `exec` left in `work/callbacks/`; false if it has
/// not left one yet (or the completion was refused).
pub(crate) async fn complete_callback(r: &Replica, work: &Path, exec: &str) -> bool {
    let Ok(token) = std::fs::read_to_string(work.join("callbacks").join(exec)) else {
        return false;
    };
    let path = format!("/v1/callbacks/{token}/succeed");
    matches!(
        r.call("POST", &path, Some(&serde_json::json!({"ok": exec})))
            .await,
        (200..=204, _)
    )
}

/// The executions whose `step` ran, in the order the ledger recorded them.
pub(crate) fn ran(work: &Path, step: &str) -> Vec<String> {
    let ledger = std::fs::read_to_string(work.join("ledger")).unwrap_or_default();
    let mut out = Vec::new();
    for line in ledger.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() > 2 && f[0] == "E" && f[2] == step && !out.iter().any(|e| e == f[1]) {
            out.push(f[1].to_string());
        }
    }
    out
}
