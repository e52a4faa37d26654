//! `wf10_seq_p50_ms` and `wf10_c20_per_s`: whole workflows through the local
//! emulator (DESIGN.md §8: a 10-step workflow with a real handler process,
//! p50 ≤ 5 ms sequential; ≥ 800 workflows/s at 20 concurrent).
//!
//! `durafn dev` runs as its own process with the `wf10` handler (ten
//! sequential small steps, `src/bin/wf10.rs`) as a prebuilt executable and
//! SQLite state in a scratch folder. Each workflow is one
//! `POST /v1/functions/wf10/executions` with `"wait": 30`: the answer comes
//! when the workflow has finished, and it must be `SUCCEEDED` with the right
//! output. Sequential: one client, one workflow at a time, after a warm-up;
//! the figure is the p50 of the end-to-end latency. Concurrent: 20 clients,
//! each starting workflows one after another until a fixed number have run;
//! the figure is workflows completed per second of wall time.
//!
//! These targets are absolute, not ratios. For context, the group measures
//! in the same run what bounds them from below on this machine: one raw
//! SQLite commit (a 10-step workflow makes at least 13 commits: create,
//! claim, ten checkpoints, finish) and one HTTP round trip to the emulator
//! (`GET /healthz`). Each `wf10` step returns the time its body ran, which
//! splits a workflow's latency into "until the first step ran", "the steps"
//! and "after the last step".

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use durafn_emulator::client::ApiClient;
use serde_json::json;
use tokio::task::JoinSet;

use crate::Scale;
use crate::bins;
use crate::dev_server::{DevServer, FunctionDef, expect_status};
use crate::floor::{CommitFloor, due_scan_us};
use crate::measure::{Result, median, micros, millis, now_us, percentile};
use crate::report::{Figure, Report};

/// p50 of one workflow, sequentially.
const SEQ_P50: &str = "wf10_seq_p50_ms";
/// Workflows per second with 20 concurrent clients.
const C20: &str = "wf10_c20_per_s";

/// Store calls per workflow (sequential runs, from the emulator's `/metrics`).
const STORE_CALLS: &str = "store_calls_per_wf10";

/// CPU time per workflow (sequential runs), across `durafn dev` and its
/// handler processes.
const CPU: &str = "wf10_cpu_ms";

/// 800 workflows a second on 2 vCPUs leave each at most 2.5 ms of CPU.
const CPU_TARGET: f64 = 2.0 * 1000.0 / C20_TARGET;

/// The metrics this group reports.
pub(crate) const METRICS: &[&str] = &[SEQ_P50, C20, STORE_CALLS, CPU, super::cost::COST];

/// The key [`store_calls`] files the handlers' requests under.
const ROUND_TRIPS: &str = "(round trips)";

/// Issue #14: at most 11 store calls for a 10-step workflow.
const STORE_CALLS_TARGET: f64 = 11.0;

/// Store methods the emulator calls on its own schedule, not per workflow
/// (the dispatcher's scans, schedules, queue pollers, leases, expiry).
const BACKGROUND_CALLS: &[&str] = &[
    "due",
    "due_schedules",
    "receive_messages",
    "take_lease",
    "release_lease",
    "list_leases",
    "purge_expired",
    "list_schedules",
];

/// DESIGN.md §8: p50 ≤ 5 ms.
const SEQ_TARGET: f64 = 5.0;
/// DESIGN.md §8: ≥ 800 workflows/s.
const C20_TARGET: f64 = 800.0;

/// The function name in the template.
const FUNCTION: &str = "wf10";
/// How many steps a `wf10` runs (and the least number of SQLite commits one
/// workflow makes: create, claim, one per step, finish).
const STEPS: u64 = 10;
const MIN_COMMITS: u64 = STEPS + 3;
/// How many clients start workflows at once.
const CONCURRENCY: usize = 20;

struct Sizes {
    warmup: usize,
    sequential: usize,
    concurrent: usize,
    floor_commits: usize,
    rtts: usize,
}

impl Sizes {
    fn of(scale: Scale) -> Self {
        match scale {
            Scale::Full => Sizes {
                warmup: 30,
                sequential: 300,
                concurrent: 600,
                floor_commits: 300,
                rtts: 200,
            },
            Scale::Quick => Sizes {
                warmup: 3,
                sequential: 10,
                concurrent: 40,
                floor_commits: 20,
                rtts: 10,
            },
        }
    }
}

/// Measures and reports [`METRICS`].
pub(crate) async fn run(scale: Scale, report: &mut Report) {
    let sizes = Sizes::of(scale);
    let server = match start_server().await {
        Ok(s) => s,
        Err(e) => {
            for metric in METRICS {
                report.error(metric, &format!("cannot start durafn dev: {e}"));
            }
            return;
        }
    };
    let calls_before = store_calls(&server).await;
    let cpu_before = cpu_now(&server);
    match sequential(&server, &sizes, report).await {
        Ok(p50) => report.figure(Figure {
            metric: SEQ_P50,
            value: p50,
            unit: "ms",
            target: SEQ_TARGET,
        }),
        Err(e) => report.error(SEQ_P50, &format!("{e} ({})", server.log_tail())),
    }
    let workflows = (sizes.warmup + sizes.sequential) as f64;
    report_cpu(
        report,
        cpu_before,
        cpu_now(&server),
        workflows,
        "sequential",
    );
    match (calls_before, store_calls(&server).await) {
        (Ok(before), Ok(after)) => {
            let workflows = (sizes.warmup + sizes.sequential) as f64;
            let delta = |k: &str| {
                after.get(k).copied().unwrap_or(0.0) - before.get(k).copied().unwrap_or(0.0)
            };
            let round_trips = delta(ROUND_TRIPS) / workflows;
            let mut per_method: Vec<(String, f64)> = after
                .iter()
                .filter(|(m, _)| !BACKGROUND_CALLS.contains(&m.as_str()) && *m != ROUND_TRIPS)
                .map(|(m, n)| {
                    (
                        m.clone(),
                        (n - before.get(m).copied().unwrap_or(0.0)) / workflows,
                    )
                })
                .filter(|(_, n)| *n > 0.0)
                .collect();
            per_method.sort_by(|a, b| b.1.total_cmp(&a.1));
            // History records ride along with other calls (over HTTP, in
            // the same request and commit): shown, not counted.
            let total: f64 = per_method
                .iter()
                .filter(|(m, _)| m != "put_history")
                .map(|(_, n)| n)
                .sum();
            let fields: Vec<(&str, f64)> =
                per_method.iter().map(|(m, n)| (m.as_str(), *n)).collect();
            report.info(STORE_CALLS, &fields);
            report.info(
                STORE_CALLS,
                &[
                    ("handler_round_trips", round_trips),
                    ("history_records", delta("put_history") / workflows),
                ],
            );
            report.figure(Figure {
                metric: STORE_CALLS,
                value: total,
                unit: "calls",
                target: STORE_CALLS_TARGET,
            });
        }
        (Err(e), _) | (_, Err(e)) => {
            report.error(STORE_CALLS, &format!("cannot read /metrics: {e}"))
        }
    }
    // What those sequential workflows cost at AWS prices.
    super::cost::report_cost(&server.client(), FUNCTION, report).await;
    transports(&server, &sizes, report).await;
    let cpu_before = cpu_now(&server);
    match concurrent(&server, &sizes, report).await {
        Ok(per_s) => {
            report.figure(Figure {
                metric: C20,
                value: per_s,
                unit: "workflows/s",
                target: C20_TARGET,
            });
            report_cpu(
                report,
                cpu_before,
                cpu_now(&server),
                sizes.concurrent as f64,
                "c20",
            );
        }
        Err(e) => report.error(C20, &format!("{e} ({})", server.log_tail())),
    }
    drop(server);
}

/// CPU used so far by the server and its handlers, and by this process (the
/// benchmark's clients).
fn cpu_now(server: &DevServer) -> Result<(Duration, Duration)> {
    Ok((
        server.cpu_time()?,
        crate::dev_server::process_cpu(std::process::id(), false)?,
    ))
}

/// Reports CPU per workflow between two [`cpu_now`] readings: the
/// sequential runs give the figure, the concurrent ones an `info` line.
fn report_cpu(
    report: &mut Report,
    before: Result<(Duration, Duration)>,
    after: Result<(Duration, Duration)>,
    workflows: f64,
    phase: &str,
) {
    let (before, after) = match (before, after) {
        (Ok(b), Ok(a)) => (b, a),
        (Err(e), _) | (_, Err(e)) => {
            if phase == "sequential" {
                report.error(CPU, &format!("cannot read CPU times: {e}"));
            }
            return;
        }
    };
    let platform = millis(after.0.saturating_sub(before.0)) / workflows;
    let clients = millis(after.1.saturating_sub(before.1)) / workflows;
    report.info(
        CPU,
        &[
            (&format!("{phase}_platform_ms") as &str, platform),
            (&format!("{phase}_bench_clients_ms") as &str, clients),
        ],
    );
    if phase == "sequential" {
        report.figure(Figure {
            metric: CPU,
            value: platform,
            unit: "ms",
            target: CPU_TARGET,
        });
    }
}

async fn start_server() -> Result<DevServer> {
    start_server_with(&[]).await
}

async fn start_server_with(env: &[(&str, &str)]) -> Result<DevServer> {
    let bins = tokio::task::spawn_blocking(bins::locate).await??;
    DevServer::start_with_env(
        &bins.dev,
        &[FunctionDef {
            name: FUNCTION,
            exe: bins.wf10,
            timeout_s: 30,
        }],
        env,
    )
    .await
}

/// Issue #14 point 2, the store's transport: the same sequential workflows
/// on `server` (handlers reach its store on its TCP port, the default) and
/// on a second `durafn dev` whose handlers use a Unix domain socket
/// (`DURAFN_STORE_TRANSPORT=unix`), in alternating chunks so both see the
/// same machine. An `info` line of `wf10_seq_p50_ms`.
async fn transports(server: &DevServer, sizes: &Sizes, report: &mut Report) {
    let unix_server = match start_server_with(&[("DURAFN_STORE_TRANSPORT", "unix")]).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("bench: the Unix-socket durafn dev did not start: {e}");
            return;
        }
    };
    let tcp_server = server;
    let (unix_client, tcp_client) = (unix_server.client(), tcp_server.client());
    let measured: Result<(Vec<f64>, Vec<f64>, f64, f64)> = async {
        for _ in 0..sizes.warmup {
            run_one(&unix_client).await?;
        }
        const CHUNKS: usize = 6;
        let per_chunk = (sizes.sequential / CHUNKS).max(1);
        let (mut unix, mut tcp) = (Vec::new(), Vec::new());
        // CPU of each platform (server and handlers) over its own chunks.
        let (mut unix_cpu, mut tcp_cpu) = (Duration::ZERO, Duration::ZERO);
        for _ in 0..CHUNKS {
            let before = unix_server.cpu_time()?;
            for _ in 0..per_chunk {
                unix.push(millis(run_one(&unix_client).await?.latency));
            }
            unix_cpu += unix_server.cpu_time()?.saturating_sub(before);
            let before = tcp_server.cpu_time()?;
            for _ in 0..per_chunk {
                tcp.push(millis(run_one(&tcp_client).await?.latency));
            }
            tcp_cpu += tcp_server.cpu_time()?.saturating_sub(before);
        }
        let n = (CHUNKS * per_chunk) as f64;
        Ok((unix, tcp, millis(unix_cpu) / n, millis(tcp_cpu) / n))
    }
    .await;
    match measured {
        Ok((unix, tcp_ms, unix_cpu, tcp_cpu)) => {
            let u = percentile(&unix, 50.0).unwrap_or(f64::NAN);
            let t = percentile(&tcp_ms, 50.0).unwrap_or(f64::NAN);
            report.info(
                SEQ_P50,
                &[
                    ("store_over_unix_socket_p50_ms", u),
                    ("store_over_tcp_p50_ms", t),
                    ("tcp_over_unix", t / u),
                    ("unix_cpu_ms", unix_cpu),
                    ("tcp_cpu_ms", tcp_cpu),
                ],
            );
        }
        Err(e) => eprintln!(
            "bench: comparing store transports failed: {e} ({})",
            unix_server.log_tail()
        ),
    }
}

/// Store calls so far by method: the counts of the emulator's
/// `durafn_store_call_duration_seconds` histogram (its own calls and those
/// of handler processes through the store over HTTP).
async fn store_calls(server: &DevServer) -> Result<std::collections::BTreeMap<String, f64>> {
    let answer = server.client().call("GET", "/metrics", None).await?;
    let v = expect_status("GET /metrics", answer, &[200])?;
    let text = v.as_str().ok_or("/metrics did not answer with text")?;
    let mut calls = std::collections::BTreeMap::new();
    for line in text.lines() {
        // Requests from handler processes (round trips), under a key no
        // store method has.
        if let Some(n) = line.strip_prefix("durafn_store_requests_total ") {
            if let Ok(n) = n.trim().parse::<f64>() {
                calls.insert(ROUND_TRIPS.to_string(), n);
            }
            continue;
        }
        let Some(rest) = line.strip_prefix("durafn_store_call_duration_seconds_count{") else {
            continue;
        };
        let Some((labels, value)) = rest.split_once("} ") else {
            continue;
        };
        let method = labels
            .split(',')
            .find_map(|l| l.strip_prefix("method=\""))
            .map(|m| m.trim_end_matches('"').to_string());
        if let (Some(method), Ok(n)) = (method, value.trim().parse::<f64>()) {
            *calls.entry(method).or_default() += n;
        }
    }
    Ok(calls)
}

/// One finished workflow, as the client saw it.
struct Run {
    /// From sending the request to reading the whole answer.
    latency: Duration,
    /// Wall-clock µs: request sent, first and last step bodies, answer read.
    sent_us: f64,
    first_us: f64,
    last_us: f64,
    done_us: f64,
}

/// Starts one `wf10` with `"wait": 30` and checks it succeeded.
async fn run_one(client: &ApiClient) -> Result<Run> {
    let body = json!({ "input": null, "wait": 30 });
    let path = format!("/v1/functions/{FUNCTION}/executions");
    let sent_us = now_us();
    let started = Instant::now();
    let answer = client.call("POST", &path, Some(&body)).await?;
    let latency = started.elapsed();
    let done_us = now_us();
    let v = expect_status("starting wf10", answer, &[201])?;
    if v["status"] != "SUCCEEDED" {
        return Err(format!("a wf10 workflow did not succeed within 30 s: {v}").into());
    }
    let out = &v["output"];
    if out["sum"] != json!(STEPS * (STEPS + 1) / 2) {
        return Err(format!("a wf10 workflow returned {out}, expected sum 55").into());
    }
    let us = |k: &str| out[k].as_f64().ok_or_else(|| format!("no {k} in {out}"));
    Ok(Run {
        latency,
        sent_us,
        first_us: us("first_us")?,
        last_us: us("last_us")?,
        done_us,
    })
}

/// The sequential figure: p50 over `sizes.sequential` workflows, one at a
/// time. Interleaved with chunks of raw commits and HTTP round trips, so
/// the floors come from the same minutes as the figure.
async fn sequential(server: &DevServer, sizes: &Sizes, report: &mut Report) -> Result<f64> {
    let client = server.client();
    for _ in 0..sizes.warmup {
        run_one(&client).await?;
    }
    const CHUNKS: usize = 5;
    let mut runs = Vec::with_capacity(sizes.sequential);
    let mut commit_us = Vec::new();
    let mut rtt_us = Vec::new();
    for chunk in 0..CHUNKS {
        let n = sizes.sequential / CHUNKS + usize::from(chunk < sizes.sequential % CHUNKS);
        for _ in 0..n {
            runs.push(run_one(&client).await?);
        }
        let commits = (sizes.floor_commits / CHUNKS).max(1);
        let t = CommitFloor::measure(commits).await?;
        commit_us.push(micros(t) / commits as f64);
        for _ in 0..(sizes.rtts / CHUNKS).max(1) {
            let started = Instant::now();
            expect_status(
                "GET /healthz",
                client.call("GET", "/healthz", None).await?,
                &[200],
            )?;
            rtt_us.push(micros(started.elapsed()));
        }
    }
    let ms: Vec<f64> = runs.iter().map(|r| millis(r.latency)).collect();
    let until_first: Vec<f64> = runs
        .iter()
        .map(|r| (r.first_us - r.sent_us) / 1e3)
        .collect();
    let steps: Vec<f64> = runs
        .iter()
        .map(|r| (r.last_us - r.first_us) / 1e3)
        .collect();
    let after_last: Vec<f64> = runs.iter().map(|r| (r.done_us - r.last_us) / 1e3).collect();
    let p = |v: &[f64], q: f64| percentile(v, q).unwrap_or(f64::NAN);
    let commit = median(&commit_us).unwrap_or(f64::NAN);
    let rtt = median(&rtt_us).unwrap_or(f64::NAN);
    let p50 = percentile(&ms, 50.0).ok_or("no workflows were run")?;
    let scan_us = due_scan_us(sizes.rtts / 4).await?;
    report.info(
        SEQ_P50,
        &[
            ("n", ms.len() as f64),
            ("warmup", sizes.warmup as f64),
            ("p50_ms", p50),
            ("p90_ms", p(&ms, 90.0)),
            ("p99_ms", p(&ms, 99.0)),
            ("max_ms", p(&ms, 100.0)),
        ],
    );
    // Where a workflow's time goes (medians; wall clocks of two processes on
    // one machine).
    report.info(
        SEQ_P50,
        &[
            ("until_first_step_ms", p(&until_first, 50.0)),
            ("first_to_last_step_ms", p(&steps, 50.0)),
            ("per_step_ms", p(&steps, 50.0) / (STEPS - 1) as f64),
            ("after_last_step_ms", p(&after_last, 50.0)),
        ],
    );
    report.info(
        SEQ_P50,
        &[
            ("floor_sqlite_commit_us", commit),
            ("floor_min_commits", MIN_COMMITS as f64),
            ("floor_commits_ms", commit * MIN_COMMITS as f64 / 1e3),
            ("floor_http_rtt_us", rtt),
            ("due_scan_us", scan_us),
            ("p50_in_commits", p50 * 1e3 / commit),
        ],
    );
    Ok(p50)
}

/// The concurrent figure: [`CONCURRENCY`] clients run `sizes.concurrent`
/// workflows between them; workflows per second of wall time.
async fn concurrent(server: &DevServer, sizes: &Sizes, report: &mut Report) -> Result<f64> {
    // Warm up as many handler processes as the load will use.
    let mut warm = JoinSet::new();
    for _ in 0..CONCURRENCY {
        let client = server.client();
        warm.spawn(async move { run_one(&client).await.map(|_| ()) });
    }
    while let Some(r) = warm.join_next().await {
        r??;
    }
    let floor = CommitFloor::measure(sizes.floor_commits).await?;
    let left = Arc::new(AtomicUsize::new(sizes.concurrent));
    let started = Instant::now();
    let mut clients = JoinSet::new();
    for _ in 0..CONCURRENCY {
        let client = server.client();
        let left = left.clone();
        clients.spawn(async move {
            let mut latencies = Vec::new();
            while left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                latencies.push(millis(run_one(&client).await?.latency));
            }
            Ok::<_, crate::measure::BenchError>(latencies)
        });
    }
    let mut latencies = Vec::with_capacity(sizes.concurrent);
    let mut failure = None;
    while let Some(joined) = clients.join_next().await {
        match joined {
            Ok(Ok(l)) => latencies.extend(l),
            Ok(Err(e)) => failure = failure.or(Some(e.to_string())),
            Err(e) => failure = failure.or(Some(e.to_string())),
        }
    }
    let elapsed = started.elapsed();
    if let Some(e) = failure {
        return Err(e.into());
    }
    let handlers = server.handler_processes();
    let per_s = latencies.len() as f64 / elapsed.as_secs_f64();
    let commits_per_s = sizes.floor_commits as f64 / floor.as_secs_f64();
    let p = |q: f64| percentile(&latencies, q).unwrap_or(f64::NAN);
    report.info(
        C20,
        &[
            ("workflows", latencies.len() as f64),
            ("clients", CONCURRENCY as f64),
            ("elapsed_s", elapsed.as_secs_f64()),
            ("latency_p50_ms", p(50.0)),
            ("latency_p99_ms", p(99.0)),
            ("handler_processes", handlers as f64),
            ("log_warnings", server.log_warnings() as f64),
        ],
    );
    report.info(
        C20,
        &[
            ("floor_sqlite_commits_per_s", commits_per_s),
            ("floor_min_commits_per_workflow", MIN_COMMITS as f64),
            (
                "ungrouped_ceiling_per_s",
                commits_per_s / MIN_COMMITS as f64,
            ),
            ("store_commits_per_s_at_least", per_s * MIN_COMMITS as f64),
        ],
    );
    Ok(per_s)
}
