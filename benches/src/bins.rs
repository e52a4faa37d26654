//! The helper executables the emulator benchmarks run as processes: the
//! `durafn` command and the handlers. They are binaries of this crate
//! (`src/bin/`), built into the same folder as `durafn-bench` itself.
//!
//! `cargo run -p durafn-bench` builds only `durafn-bench`, not its other
//! binaries. So, when the benchmark was started by cargo (`CARGO` is set),
//! it runs `cargo build -p durafn-bench --bins` once with its own profile
//! (a no-op when they are fresh) before using them. `DURAFN_BENCH_BIN_DIR`
//! names a folder that already holds them and skips the build (the smoke
//! test sets it: cargo has built them for the test).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::measure::Result;

/// The `durafn` command (`durafn_emulator::cli::main_entry`).
const DEV: &str = "durafn-bench-dev";
/// Handler: ten sequential steps.
const WF10: &str = "durafn-bench-wf10";
/// Handler: waits for an event, then records when it resumed.
const RESUME: &str = "durafn-bench-resume";

/// The paths of the helper executables.
#[derive(Debug, Clone)]
pub(crate) struct Bins {
    /// `durafn` (run as `durafn dev`).
    pub(crate) dev: PathBuf,
    /// The `wf10` handler.
    pub(crate) wf10: PathBuf,
    /// The `resume-probe` handler.
    pub(crate) resume: PathBuf,
}

/// Finds (building them first if needed) the helper executables. The work
/// is done once per process; later calls return the same answer.
pub(crate) fn locate() -> Result<Bins> {
    static BINS: OnceLock<Result<Bins, String>> = OnceLock::new();
    BINS.get_or_init(|| find().map_err(|e| e.to_string()))
        .clone()
        .map_err(Into::into)
}

fn find() -> Result<Bins> {
    let dir = match std::env::var_os("DURAFN_BENCH_BIN_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let exe = std::env::current_exe()
                .map_err(|e| format!("cannot tell where durafn-bench is: {e}"))?;
            let dir = exe
                .parent()
                .ok_or("durafn-bench has no parent folder")?
                .to_path_buf();
            if let Some(cargo) = std::env::var_os("CARGO") {
                build(Path::new(&cargo), &dir)?;
            }
            dir
        }
    };
    let path = |name: &str| -> Result<PathBuf> {
        let p = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
        if p.is_file() {
            Ok(p)
        } else {
            Err(format!(
                "{} is missing: build the benchmark's helper binaries first \
                 (`cargo build --release -p durafn-bench --bins`)",
                p.display()
            )
            .into())
        }
    };
    Ok(Bins {
        dev: path(DEV)?,
        wf10: path(WF10)?,
        resume: path(RESUME)?,
    })
}

/// `cargo build -p durafn-bench --bins` with the profile `dir` belongs to
/// (`target/release` → `--release`, `target/debug` → none, else `--profile`).
fn build(cargo: &Path, dir: &Path) -> Result<()> {
    let profile = dir
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or("the benchmark's folder has no name")?;
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet", "--manifest-path", manifest])
        .args(["-p", "durafn-bench", "--bins"]);
    match profile {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.args(["--profile", other]);
        }
    }
    let out = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", cargo.display()))?;
    if !out.status.success() {
        return Err(format!(
            "building the helper binaries failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )
        .into());
    }
    Ok(())
}
