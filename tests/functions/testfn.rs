//! A handler binary for the emulator's end-to-end tests.
//!
//! Its steps leave a trace in a folder given in the input, so a test can tell
//! which step bodies really ran (and in which process), block a step until
//! the test releases it, or panic once.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use durafn::prelude::*;
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Debug, Deserialize)]
struct Input {
    dir: PathBuf,
    #[serde(default)]
    block: bool,
    #[serde(default)]
    panic_once: bool,
    #[serde(default)]
    hang_once: bool,
    /// A last step, `flaky`, fails this many attempts before it succeeds.
    #[serde(default)]
    fail_times: u32,
    /// `flaky`'s attempts (default `fail_times + 1`: it succeeds).
    #[serde(default)]
    max_attempts: Option<u32>,
    /// Search attributes set after the `after` step (`ctx.set_attribute`).
    #[serde(default)]
    attributes: serde_json::Map<String, Value>,
}

fn trace(dir: &Path, line: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("trace"))?;
    writeln!(f, "{line}")
}

/// True the first time only: the trace has one `slow-start` line.
fn count_hangs(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("trace"))
        .map(|t| t.lines().filter(|l| l.starts_with("slow-start")).count() == 1)
        .unwrap_or(false)
}

async fn workflow(ctx: DurableContext, input: Input) -> Result<Value, DurableError> {
    let dir = input.dir.clone();
    ctx.step("before", |_| async move { trace(&dir, "before") })
        .await?;
    let dir = input.dir.clone();
    let attempt: u32 = ctx
        .step("slow", |s| async move {
            trace(
                &dir,
                &format!("slow-start-{} pid={}", s.attempt(), std::process::id()),
            )?;
            if input.panic_once && s.attempt() == 1 {
                panic!("the handler hit a bug on attempt 1");
            }
            if input.hang_once && std::fs::write(dir.join("hung"), "").is_ok() && count_hangs(&dir)
            {
                // Hang past the function's timeout, once.
                std::future::pending::<()>().await;
            }
            while input.block && !dir.join("release").exists() {
                // A slow call to the outside world, not a durable wait.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            trace(&dir, "slow-end")?;
            Ok::<_, DurableError>(s.attempt())
        })
        .retry(RetryPolicy::fixed(Duration::from_millis(100)))
        .await?;
    let dir = input.dir.clone();
    ctx.step("after", |_| async move { trace(&dir, "after") })
        .await?;
    for (name, value) in &input.attributes {
        ctx.set_attribute(name, value).await?;
    }
    if input.fail_times > 0 {
        let fail_times = input.fail_times;
        let max_attempts = input.max_attempts;
        let flaky: u32 = ctx
            .step("flaky", |s| async move {
                if s.attempt() <= fail_times {
                    // Markup and quotes, which every view must show as text.
                    return Err(DurableError::new(
                        "Flaky",
                        format!("attempt {} failed: <b>boom</b> & \"quotes\"", s.attempt()),
                    ));
                }
                Ok(s.attempt())
            })
            .retry(
                RetryPolicy::fixed(Duration::from_millis(100))
                    .max_attempts(max_attempts.unwrap_or(fail_times + 1)),
            )
            .await?;
        return Ok(json!({ "slow_attempt": attempt, "flaky_attempt": flaky }));
    }
    Ok(json!({ "slow_attempt": attempt }))
}

#[tokio::main]
async fn main() -> Result<(), durafn::Error> {
    durafn::run(durafn::handler(workflow)).await
}
