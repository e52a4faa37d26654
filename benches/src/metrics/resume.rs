//! `resume_p50_ms` and `resume_p99_ms`: how long from sending an event to the
//! handler running again (DESIGN.md §8: p50 ≤ 2 ms, p99 ≤ 10 ms, in one
//! process), measured through the local emulator.
//!
//! `durafn dev` runs as its own process with the `resume-probe` handler
//! (`src/bin/resume.rs`): it waits for the event `go`, then a step records
//! the wall-clock time its body ran. For each of N executions, one after
//! another: start it with `"wait"` (the answer comes once it is suspended on
//! the event), note the time, `POST /v1/executions/{id}/events/go`, then
//! poll until it has succeeded and read the recorded time. The latency is
//! the recorded time minus the send time: the event's HTTP request and
//! commit, the dispatcher's wake-up, scan and claim, the invocation handed
//! to the (warm) handler process, its journal load and replay, up to the
//! first line of the step body. Both clocks are the same machine's.
//!
//! For context the group also reports how long the send itself took (the
//! `202` of the events endpoint) and one raw SQLite commit.

use std::time::{Duration, Instant};

use durafn_emulator::client::ApiClient;
use serde_json::json;

use crate::Scale;
use crate::bins;
use crate::dev_server::{DevServer, FunctionDef, expect_status};
use crate::floor::{CommitFloor, due_scan_us};
use crate::measure::{Result, micros, millis, now_us, percentile};
use crate::report::{Figure, Report};

/// p50 of the resume latency.
const P50: &str = "resume_p50_ms";
/// p99 of the resume latency.
const P99: &str = "resume_p99_ms";

/// The metrics this group reports.
pub(crate) const METRICS: &[&str] = &[P50, P99];

/// DESIGN.md §8.
const P50_TARGET: f64 = 2.0;
const P99_TARGET: f64 = 10.0;

/// The function name in the template.
const FUNCTION: &str = "resume-probe";

/// How long to leave the emulator alone after sending the event, before
/// polling for the result (polls would compete for the CPU with the resume
/// being measured).
const QUIET: Duration = Duration::from_millis(25);

struct Sizes {
    warmup: usize,
    executions: usize,
    floor_commits: usize,
}

impl Sizes {
    fn of(scale: Scale) -> Self {
        match scale {
            Scale::Full => Sizes {
                warmup: 10,
                executions: 300,
                floor_commits: 300,
            },
            Scale::Quick => Sizes {
                warmup: 2,
                executions: 10,
                floor_commits: 20,
            },
        }
    }
}

/// Measures and reports [`METRICS`].
pub(crate) async fn run(scale: Scale, report: &mut Report) {
    let sizes = Sizes::of(scale);
    let measured = match start_server().await {
        Ok(server) => {
            let r = measure(&server, &sizes, report).await;
            r.map_err(|e| format!("{e} ({})", server.log_tail()))
        }
        Err(e) => Err(format!("cannot start durafn dev: {e}")),
    };
    match measured {
        Ok((p50, p99)) => {
            report.figure(Figure {
                metric: P50,
                value: p50,
                unit: "ms",
                target: P50_TARGET,
            });
            report.figure(Figure {
                metric: P99,
                value: p99,
                unit: "ms",
                target: P99_TARGET,
            });
        }
        Err(e) => {
            report.error(P50, &e);
            report.error(P99, &e);
        }
    }
}

async fn start_server() -> Result<DevServer> {
    let bins = tokio::task::spawn_blocking(bins::locate).await??;
    DevServer::start(
        &bins.dev,
        &[FunctionDef {
            name: FUNCTION,
            exe: bins.resume,
            timeout_s: 30,
        }],
    )
    .await
}

/// One resume.
struct Resume {
    /// Event sent → handler running again (wall clock).
    latency_ms: f64,
    /// Event sent → `202` read.
    send_ms: f64,
}

/// Starts one execution, waits until it is suspended on the event, sends
/// the event and reads when the handler resumed.
async fn resume_one(client: &ApiClient) -> Result<Resume> {
    let started = expect_status(
        "starting resume-probe",
        client
            .call(
                "POST",
                &format!("/v1/functions/{FUNCTION}/executions"),
                Some(&json!({ "input": null, "wait": 30 })),
            )
            .await?,
        &[201, 202],
    )?;
    if started["status"] != "SUSPENDED" || started["waiting_on"]["kind"] != "event" {
        return Err(format!("expected an execution suspended on its event, got {started}").into());
    }
    let id = started["id"]
        .as_str()
        .ok_or_else(|| format!("no execution id in {started}"))?
        .to_string();
    let sent_us = now_us();
    let sent = Instant::now();
    expect_status(
        "sending the event",
        client
            .call(
                "POST",
                &format!("/v1/executions/{id}/events/go"),
                Some(&json!({})),
            )
            .await?,
        &[202],
    )?;
    let send_ms = millis(sent.elapsed());
    tokio::time::sleep(QUIET).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = expect_status(
            "describing the execution",
            client
                .call("GET", &format!("/v1/executions/{id}"), None)
                .await?,
            &[200],
        )?;
        match v["status"].as_str() {
            Some("SUCCEEDED") => {
                let at = v["output"]["resumed_at_us"]
                    .as_f64()
                    .ok_or_else(|| format!("no resumed_at_us in {v}"))?;
                return Ok(Resume {
                    latency_ms: (at - sent_us) / 1e3,
                    send_ms,
                });
            }
            Some("SUSPENDED" | "PENDING" | "RUNNING") if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            _ => return Err(format!("execution {id} did not resume and succeed: {v}").into()),
        }
    }
}

async fn measure(server: &DevServer, sizes: &Sizes, report: &mut Report) -> Result<(f64, f64)> {
    let client = server.client();
    for _ in 0..sizes.warmup {
        resume_one(&client).await?;
    }
    let commit = CommitFloor::measure(sizes.floor_commits).await?;
    let scan_us = due_scan_us(sizes.floor_commits / 10).await?;
    let mut latency = Vec::with_capacity(sizes.executions);
    let mut send = Vec::with_capacity(sizes.executions);
    for _ in 0..sizes.executions {
        let r = resume_one(&client).await?;
        latency.push(r.latency_ms);
        send.push(r.send_ms);
    }
    let p = |v: &[f64], q: f64| percentile(v, q).unwrap_or(f64::NAN);
    let (p50, p99) = (p(&latency, 50.0), p(&latency, 99.0));
    report.info(
        P50,
        &[
            ("n", latency.len() as f64),
            ("warmup", sizes.warmup as f64),
            ("p50_ms", p50),
            ("p90_ms", p(&latency, 90.0)),
            ("p99_ms", p99),
            ("max_ms", p(&latency, 100.0)),
            ("min_ms", latency.iter().copied().fold(f64::NAN, f64::min)),
        ],
    );
    report.info(
        P50,
        &[
            ("send_p50_ms", p(&send, 50.0)),
            ("after_send_p50_ms", p50 - p(&send, 50.0)),
            (
                "floor_sqlite_commit_us",
                micros(commit) / sizes.floor_commits as f64,
            ),
            ("due_scan_us", scan_us),
        ],
    );
    if !(p50 > 0.0 && p99 > 0.0) {
        return Err(format!(
            "a resume latency was not positive (p50 {p50} ms, p99 {p99} ms): are the clocks right?"
        )
        .into());
    }
    Ok((p50, p99))
}
