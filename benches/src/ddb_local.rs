//! DynamoDB Local for the `ddb` benchmarks: the endpoint in
//! `DURAFN_DYNAMODB_ENDPOINT`, or one started here with
//! `scripts/dynamodb-local.sh start` and stopped again when dropped.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::measure::Result;

/// The environment variable naming a running DynamoDB Local.
pub(crate) const ENDPOINT_VAR: &str = "DURAFN_DYNAMODB_ENDPOINT";

/// A DynamoDB Local to talk to.
pub(crate) struct DynamoLocal {
    /// Its endpoint, e.g. `http://127.0.0.1:8000`.
    pub(crate) endpoint: String,
    /// The JVM's pid when this process started it (and must stop it).
    started: Option<u32>,
}

fn script() -> PathBuf {
    let path = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scripts/dynamodb-local.sh"
    ));
    std::fs::canonicalize(&path).unwrap_or(path)
}

impl DynamoLocal {
    /// The running one named by [`ENDPOINT_VAR`], else a new one (blocking:
    /// starting the JVM takes seconds).
    pub(crate) fn find_or_start() -> Result<DynamoLocal> {
        if let Some(endpoint) = std::env::var(ENDPOINT_VAR).ok().filter(|e| !e.is_empty()) {
            return Ok(DynamoLocal {
                endpoint,
                started: None,
            });
        }
        let script = script();
        let out = Command::new("bash")
            .arg(&script)
            .arg("start")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let var = |name: &str| {
            stdout.lines().find_map(|l| {
                l.trim()
                    .strip_prefix("export ")
                    .and_then(|l| l.strip_prefix(name))
                    .and_then(|l| l.strip_prefix('='))
                    .map(str::to_string)
            })
        };
        let pid = var("DDB_LOCAL_PID").and_then(|p| p.parse::<u32>().ok());
        let started = DynamoLocal {
            endpoint: var(ENDPOINT_VAR).unwrap_or_default(),
            started: pid,
        };
        if !out.status.success() || started.endpoint.is_empty() || pid.is_none() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let tail: Vec<&str> = stderr.lines().rev().take(4).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            return Err(format!(
                "{ENDPOINT_VAR} is not set and DynamoDB Local could not be started \
                 ({} start: {}; {})",
                script.display(),
                out.status,
                tail.join(" | ")
            )
            .into());
        }
        Ok(started)
    }

    /// The pid of the DynamoDB Local this process started, if it did.
    pub(crate) fn started_pid(&self) -> Option<u32> {
        self.started
    }

    /// Stops DynamoDB Local if this process started it.
    pub(crate) fn stop(&mut self) {
        if let Some(pid) = self.started.take() {
            let _ = Command::new("bash")
                .arg(script())
                .arg("stop")
                .arg(pid.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Drop for DynamoLocal {
    fn drop(&mut self) {
        self.stop();
    }
}
