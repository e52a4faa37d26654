//! Building the template's functions with `cargo build`.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::template::FunctionDef;

/// Why a function could not be built.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BuildError {
    /// `cargo` could not be run.
    #[error("cannot run cargo: {0}")]
    Cargo(String),
    /// The build failed.
    #[error("building function {function:?} ({manifest}) failed; cargo's errors are above")]
    Failed {
        /// The function.
        function: String,
        /// Its manifest.
        manifest: String,
    },
    /// The build succeeded but produced no binary of that name.
    #[error(
        "building function {function:?} produced no binary named {binary:?}: set the function's Handler to its binary name"
    )]
    NoBinary {
        /// The function.
        function: String,
        /// The binary looked for.
        binary: String,
    },
}

#[derive(Deserialize)]
struct Message {
    reason: String,
    #[serde(default)]
    executable: Option<PathBuf>,
    #[serde(default)]
    target: Option<Target>,
}

#[derive(Deserialize)]
struct Target {
    name: String,
}

/// Builds one function (`cargo build --bin <binary>` in its CodeUri) and
/// returns the path of its executable.
pub(crate) async fn build_function(
    root: &Path,
    f: &FunctionDef,
    release: bool,
) -> Result<PathBuf, BuildError> {
    let manifest = root.join(&f.code_uri).join("Cargo.toml");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = tokio::process::Command::new(cargo);
    cmd.arg("build")
        .arg("--message-format=json-render-diagnostics")
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--bin")
        .arg(&f.binary)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if release {
        cmd.arg("--release");
    }
    let mut child = cmd.spawn().map_err(|e| BuildError::Cargo(e.to_string()))?;
    let mut executable = None;
    if let Some(out) = child.stdout.take() {
        let mut lines = BufReader::new(out).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let Ok(msg) = serde_json::from_str::<Message>(&line) else {
                continue;
            };
            if msg.reason == "compiler-artifact"
                && msg.target.as_ref().is_some_and(|t| t.name == f.binary)
            {
                if let Some(exe) = msg.executable {
                    executable = Some(exe);
                }
            }
        }
    }
    let status = child
        .wait()
        .await
        .map_err(|e| BuildError::Cargo(e.to_string()))?;
    if !status.success() {
        return Err(BuildError::Failed {
            function: f.name.clone(),
            manifest: manifest.display().to_string(),
        });
    }
    executable.ok_or_else(|| BuildError::NoBinary {
        function: f.name.clone(),
        binary: f.binary.clone(),
    })
}
