//! Shared pieces of the end-to-end tests: small workflows whose step bodies
//! log what they run, so a test can tell replayed steps from executed ones.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use durafn::prelude::*;
use serde::Deserialize;
use serde_json::{Value, json};

/// The names of the step bodies that ran, in order.
#[derive(Clone, Default)]
pub struct RunLog(Arc<Mutex<Vec<String>>>);

impl RunLog {
    pub fn push(&self, name: &str) {
        self.0.lock().unwrap().push(name.to_string());
    }
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

#[derive(Debug, Deserialize)]
pub struct PipelineInput {
    pub n: u64,
    #[serde(default)]
    pub flaky: bool,
}

/// fetch → 60 s wait → transform (retried) → store.
pub fn pipeline(log: RunLog) -> Handler {
    handler(move |ctx: DurableContext, input: PipelineInput| {
        let log = log.clone();
        async move {
            let l = log.clone();
            let fetched: u64 = ctx
                .step("fetch", |_| async move {
                    l.push("fetch");
                    Ok::<_, DurableError>(input.n * 2)
                })
                .await?;
            ctx.sleep("wait", Duration::from_secs(60)).await?;
            let l = log.clone();
            let transformed: u64 = ctx
                .step("transform", |s| async move {
                    l.push("transform");
                    if input.flaky && s.attempt() == 1 {
                        return Err(DurableError::new("Flaky", "first attempt fails"));
                    }
                    Ok(fetched + 1)
                })
                .retry(RetryPolicy::fixed(Duration::from_secs(5)))
                .await?;
            let l = log.clone();
            let stored: String = ctx
                .step("store", |_| async move {
                    l.push("store");
                    Ok::<_, DurableError>(format!("stored-{transformed}"))
                })
                .await?;
            Ok(json!({ "fetched": fetched, "stored": stored }))
        }
    })
}

/// Two steps and two timers joined, then a summary step.
pub fn fanout(log: RunLog) -> Handler {
    handler(move |ctx: DurableContext, _input: Value| {
        let log = log.clone();
        async move {
            let (la, lb, lc) = (log.clone(), log.clone(), log.clone());
            let a = ctx.step("a", |_| async move {
                la.push("a");
                Ok::<_, DurableError>(1u64)
            });
            let t1 = ctx.sleep("t1", Duration::from_secs(5));
            let b = ctx.step("b", |_| async move {
                lb.push("b");
                Ok::<_, DurableError>(2u64)
            });
            let t2 = ctx.sleep("t2", Duration::from_secs(30));
            let (a, t1, b, t2) = futures_join(a, t1, b, t2).await;
            t1?;
            t2?;
            let (a, b) = (a?, b?);
            ctx.step("sum", |_| async move {
                lc.push("sum");
                Ok::<_, DurableError>(a + b)
            })
            .await
        }
    })
}

async fn futures_join<A, B, C, D>(
    a: A,
    b: B,
    c: C,
    d: D,
) -> (A::Output, B::Output, C::Output, D::Output)
where
    A: std::future::Future,
    B: std::future::Future,
    C: std::future::Future,
    D: std::future::Future,
{
    tokio::join!(a, b, c, d)
}

/// A handler by fixture name.
pub fn workflow(name: &str, log: RunLog) -> Option<Handler> {
    match name {
        "pipeline" => Some(pipeline(log)),
        "fanout" => Some(fanout(log)),
        _ => None,
    }
}

/// Finding and building the binaries the end-to-end tests run as processes.
pub mod binaries {
    use std::collections::BTreeSet;
    use std::path::{Path, PathBuf};
    use std::process::Command;
    use std::sync::Mutex;

    /// The folder holding the workspace's built binaries (`target/<profile>`).
    pub fn bin_dir() -> PathBuf {
        let exe = std::env::current_exe().expect("test executable path");
        exe.parent()
            .and_then(Path::parent)
            .expect("target/<profile>")
            .to_path_buf()
    }

    /// The binary `bin` of the example package `package`, built (once per test
    /// process) if stale: cargo only builds the binaries of the package under
    /// test, and the examples live in `examples/`.
    pub fn example_exe(package: &str, bin: &str) -> PathBuf {
        static BUILT: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
        let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
        if !built.contains(package) {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = Command::new(cargo)
                .args(["build", "-q", "-p", package])
                .status()
                .expect("run cargo");
            assert!(status.success(), "building {package} failed");
            built.insert(package.to_string());
        }
        let p = bin_dir().join(bin);
        assert!(
            p.exists(),
            "{} is missing after building {package}",
            p.display()
        );
        p
    }

    /// A port nobody listens on right now.
    pub fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port")
    }
}
