//! A `durafn dev` process for the emulator benchmarks: a template written to
//! a scratch folder, prebuilt handler executables (`--exe`), SQLite state in
//! the same folder, a free port on 127.0.0.1. Killed when dropped, and its
//! handler processes with it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use durafn_emulator::client::ApiClient;
use serde_json::Value;

use crate::measure::{Result, scratch_dir};

/// How long `durafn dev` may take to answer `/healthz`.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A function the template declares.
#[derive(Debug, Clone)]
pub(crate) struct FunctionDef {
    /// Its `FunctionName` (the REST API's `{fn}`).
    pub(crate) name: &'static str,
    /// The prebuilt handler.
    pub(crate) exe: PathBuf,
    /// Its `Timeout`, in seconds.
    pub(crate) timeout_s: u32,
}

/// A running `durafn dev`.
pub(crate) struct DevServer {
    child: Child,
    url: String,
    log: PathBuf,
    // Dropped last: the state folder outlives the process.
    _dir: tempfile::TempDir,
}

impl DevServer {
    /// Starts `durafn dev` (the executable `dev`) serving `functions`, and
    /// waits until it answers `/healthz`.
    pub(crate) async fn start(dev: &Path, functions: &[FunctionDef]) -> Result<DevServer> {
        Self::start_with_env(dev, functions, &[]).await
    }

    /// [`Self::start`] with extra environment variables for `durafn dev`.
    pub(crate) async fn start_with_env(
        dev: &Path,
        functions: &[FunctionDef],
        env: &[(&str, &str)],
    ) -> Result<DevServer> {
        let dir = scratch_dir()?;
        let template = dir.path().join("template.yaml");
        std::fs::write(&template, template_yaml(functions))?;
        let log = dir.path().join("durafn-dev.log");
        let mut cmd = Command::new(dev);
        // Port 0: it picks a free one and prints it (read back from the log).
        cmd.args(["dev", "--port", "0"])
            .arg("--state")
            .arg(dir.path().join("state"))
            .arg("--template")
            .arg(&template);
        for f in functions {
            cmd.arg("--exe")
                .arg(format!("{}={}", f.name, f.exe.display()));
        }
        cmd.envs(env.iter().copied());
        let child = cmd
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", dev.display()))?;
        let mut server = DevServer {
            child,
            url: String::new(),
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if server.url.is_empty() {
                if let Some(port) = announced_port(&server.log) {
                    server.url = format!("http://127.0.0.1:{port}");
                }
            }
            if !server.url.is_empty() {
                if let Ok((200, _)) = server.client().call("GET", "/healthz", None).await {
                    return Ok(server);
                }
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!(
                    "durafn dev exited ({status}) before it answered: {}",
                    server.log_tail()
                )
                .into());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "durafn dev did not answer /healthz within {START_TIMEOUT:?}: {}",
                    server.log_tail()
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A new client of the server's REST API (its own connection pool).
    pub(crate) fn client(&self) -> ApiClient {
        ApiClient::new(&self.url, None)
    }

    /// The server's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The CPU time (user + system) the server and its handler processes
    /// have used so far: theirs, and that of children they have reaped
    /// (handler processes that exited). Linux `/proc` only.
    pub(crate) fn cpu_time(&self) -> Result<Duration> {
        let pid = self.pid();
        let mut total = process_cpu(pid, true)?;
        for child in children(pid) {
            // A handler can exit between the listing and the read: then its
            // time is in the server's reaped children (or about to be).
            total += process_cpu(child, true).unwrap_or_default();
        }
        Ok(total)
    }

    /// How many handler processes the server is running now.
    pub(crate) fn handler_processes(&self) -> usize {
        children(self.pid()).len()
    }

    /// How many warning and error lines `durafn dev` (and its handlers)
    /// have logged so far.
    pub(crate) fn log_warnings(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
            .count()
    }

    /// The last lines `durafn dev` (and its handlers) wrote to stderr.
    pub(crate) fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(8)..].join(" | ");
        if tail.is_empty() {
            "(it logged nothing)".into()
        } else {
            format!("its log ends: {tail}")
        }
    }

    /// Kills the server and the handler processes it started.
    fn kill(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let handlers = children(self.pid());
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The handlers usually exit by themselves once their Runtime API is
        // gone; kill any that is still there, by its id.
        for pid in handlers {
            if Path::new(&format!("/proc/{pid}")).exists() {
                let _ = Command::new("kill")
                    .args(["-9", &pid.to_string()])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
}

impl Drop for DevServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A SAM template declaring `functions`.
fn template_yaml(functions: &[FunctionDef]) -> String {
    let mut t = String::from("Transform: AWS::Serverless-2016-10-31\nResources:\n");
    for (i, f) in functions.iter().enumerate() {
        t.push_str(&format!(
            "  BenchFunction{i}:\n    Type: AWS::Serverless::Function\n    Properties:\n      \
             FunctionName: {}\n      CodeUri: benches\n      Handler: {}\n      Timeout: {}\n",
            f.name, f.name, f.timeout_s
        ));
    }
    t
}

/// The port `durafn dev` says it bound (`durafn dev: http://127.0.0.1:PORT …`)
/// in its log, once it has said it.
fn announced_port(log: &Path) -> Option<u16> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines().find_map(|l| {
        let rest = l.strip_prefix("durafn dev: http://127.0.0.1:")?;
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    })
}

/// The child processes of `pid` (Linux: `/proc/PID/task/*/children`; empty
/// elsewhere).
fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for task in tasks.flatten() {
        if let Ok(list) = std::fs::read_to_string(task.path().join("children")) {
            out.extend(
                list.split_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok()),
            );
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// A process's CPU time from `/proc/<pid>/stat` (`utime + stime`, and with
/// `reaped` its waited-for children's `cutime + cstime`), at Linux's
/// `USER_HZ` of 100 ticks a second.
pub(crate) fn process_cpu(pid: u32, reaped: bool) -> Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("cannot read /proc/{pid}/stat: {e}"))?;
    // The command name is in parentheses and may hold spaces: fields
    // start after the last ')'. There, field 3 (state) is index 0, so
    // utime (14) is index 11.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| format!("/proc/{pid}/stat has no command name"))?;
    let fields: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(4)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    if fields.len() < 4 {
        return Err(format!("/proc/{pid}/stat is too short").into());
    }
    let ticks = fields[0] + fields[1] + if reaped { fields[2] + fields[3] } else { 0 };
    Ok(Duration::from_millis(ticks * 10))
}

/// Reads an answer of the REST API: the status must be `want`.
pub(crate) fn expect_status(what: &str, got: (u16, Value), want: &[u16]) -> Result<Value> {
    let (status, body) = got;
    if want.contains(&status) {
        Ok(body)
    } else {
        Err(format!("{what}: HTTP {status}, expected {want:?}: {body}").into())
    }
}
