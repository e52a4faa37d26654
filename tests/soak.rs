//! `durafn-soak`: a steady load through `durafn dev` for a bounded time,
//! sampling every 10 s the emulator's RSS and open fds, the SQLite files'
//! size and the p99 start-to-finish latency of the window.
//!
//! ```sh
//! cargo build -p durafn-tests --bins
//! target/debug/durafn-soak --minutes 10 --rate 20
//! ```
//!
//! Each execution is `testfn` (three steps, one handler process round trip
//! each way), started with `wait` so the request returns when it finished.
//! Finished executions are kept `--retention S` seconds (default 60, passed
//! to `durafn dev` as `DURAFN_RETENTION_SECONDS`), so the store stays level.
//!
//! It exits non-zero unless, comparing the end of the run with the level
//! right after warm-up (the first fifth of the run, at most 2 minutes):
//! - no execution errored;
//! - RSS at the end ≤ 1.5 × RSS after warm-up;
//! - open fds at the end ≤ 1.5 × fds after warm-up + 8 (handler processes
//!   come and go);
//! - SQLite files at the end ≤ 2 × their size after warm-up;
//! - p99 of the last three windows (median) ≤ 3 × p99 of the three windows
//!   after warm-up (median) + 50 ms (the machine is shared);
//! - the first executions, finished longer than the retention ago, are gone
//!   (404), and the most recent one is still there.
//!
//! Figures: docs/reliability.md.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test tool: a panic is a failure

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use durafn_tests::procs::{Dev, DevSpec};
use serde_json::json;

const TEMPLATE: &str = r#"
Transform: AWS::Serverless-2016-10-31
Resources:
  TestFunction:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: testfn
      CodeUri: tests
      Handler: testfn
      Timeout: 30
"#;

fn arg(name: &str, default: f64) -> f64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

fn sqlite_bytes(state: &Path) -> u64 {
    std::fs::read_dir(state).map_or(0, |d| {
        d.flatten()
            .filter(|e| e.file_name().to_string_lossy().contains(".db"))
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum()
    })
}

fn p(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() {
    let minutes = arg("--minutes", 10.0);
    let rate = arg("--rate", 20.0).max(0.1);
    let retention = arg("--retention", 60.0).max(1.0) as u64;
    let bin = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let root = tempfile::tempdir().unwrap();
    let template = root.path().join("template.yaml");
    std::fs::write(&template, TEMPLATE).unwrap();
    let work = root.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let state = root.path().join("state");
    let spec = DevSpec {
        durafn: bin.join("durafn-under-test"),
        state: state.clone(),
        template,
        store: None,
        exes: vec![("testfn".into(), bin.join("testfn"))],
        env: vec![("DURAFN_RETENTION_SECONDS".into(), retention.to_string())],
        port: 0,
    };
    let dev = Arc::new(Dev::start(&spec).await);
    let pid = dev.pid();
    let window: Arc<Mutex<(Vec<f64>, u64)>> = Arc::default();
    let total = Duration::from_secs_f64(minutes * 60.0);
    let t0 = Instant::now();
    let mut next_sample = t0 + Duration::from_secs(10);
    let mut n: u64 = 0;
    let mut rows = Vec::new();
    println!("t_s\trss_mb\tfds\tsqlite_mb\tdone\terrors\tp50_ms\tp99_ms");
    let interval = Duration::from_secs_f64(1.0 / rate);
    let mut tick = tokio::time::interval(interval);
    while t0.elapsed() < total {
        tick.tick().await;
        n += 1;
        let (dev, win, dir) = (dev.clone(), window.clone(), work.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let body = json!({ "name": format!("soak-{n}"), "input": { "dir": dir }, "wait": 30 });
            let ok = matches!(
                dev.call("POST", "/v1/functions/testfn/executions", Some(&body)).await,
                Some((200 | 201, v)) if v["status"] == "SUCCEEDED"
            );
            let mut w = win.lock().unwrap();
            if ok {
                w.0.push(started.elapsed().as_secs_f64() * 1000.0);
            } else {
                w.1 += 1;
            }
        });
        if Instant::now() >= next_sample {
            next_sample += Duration::from_secs(10);
            let (mut lat, errors) = std::mem::take(&mut *window.lock().unwrap());
            lat.sort_by(f64::total_cmp);
            let row = (
                t0.elapsed().as_secs(),
                rss_kb(pid) as f64 / 1024.0,
                fds(pid),
                sqlite_bytes(&state) as f64 / 1e6,
                lat.len(),
                errors,
                p(&lat, 0.5),
                p(&lat, 0.99),
            );
            println!(
                "{}\t{:.1}\t{}\t{:.2}\t{}\t{}\t{:.1}\t{:.1}",
                row.0, row.1, row.2, row.3, row.4, row.5, row.6, row.7
            );
            rows.push(row);
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let errors: u64 = rows.iter().map(|r| r.5).sum();
    let mut failures = Vec::new();
    if errors > 0 {
        failures.push(format!("{errors} executions errored"));
    }
    // Warm-up: the first fifth of the run, at most 2 minutes (12 windows), at least one window.
    let warm = (rows.len() / 5).clamp(1, 12);
    if rows.len() < warm + 4 {
        failures.push(format!(
            "only {} windows: run longer than a minute",
            rows.len()
        ));
    } else {
        let (after, last) = (&rows[warm - 1], &rows[rows.len() - 1]);
        let median_p99 = |w: &[Row]| {
            let mut v: Vec<f64> = w.iter().map(|r| r.7).collect();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let p99_after = median_p99(&rows[warm..warm + 3]);
        let p99_end = median_p99(&rows[rows.len() - 3..]);
        let worst_p99 = rows.iter().map(|r| r.7).fold(0.0, f64::max);
        println!(
            "soak: {minutes:.0} min at {rate}/s, retention {retention} s, {n} executions, {errors} errors; \
             after warm-up ({} s) -> end: RSS {:.1} -> {:.1} MB, fds {} -> {}, SQLite {:.2} -> {:.2} MB, \
             p99 {p99_after:.1} -> {p99_end:.1} ms (worst window {worst_p99:.1} ms)",
            after.0, after.1, last.1, after.2, last.2, after.3, last.3
        );
        if last.1 > 1.5 * after.1 {
            failures.push(format!(
                "RSS grew {:.1} -> {:.1} MB (bound 1.5x)",
                after.1, last.1
            ));
        }
        if last.2 as f64 > 1.5 * after.2 as f64 + 8.0 {
            failures.push(format!(
                "fds grew {} -> {} (bound 1.5x + 8)",
                after.2, last.2
            ));
        }
        if last.3 > 2.0 * after.3 {
            failures.push(format!(
                "SQLite grew {:.2} -> {:.2} MB (bound 2x)",
                after.3, last.3
            ));
        }
        if p99_end > 3.0 * p99_after + 50.0 {
            failures.push(format!(
                "p99 grew {p99_after:.1} -> {p99_end:.1} ms (bound 3x + 50 ms)"
            ));
        }
    }
    // Retention: the first executions finished long ago and must be purged; the last is kept.
    if t0.elapsed().as_secs() > retention + 70 {
        let mut kept = Vec::new();
        for i in 1..=5u64 {
            match dev
                .call("GET", &format!("/v1/executions/soak-{i}"), None)
                .await
            {
                Some((404, _)) => {}
                other => kept.push(format!("soak-{i}: {:?}", other.map(|o| o.0))),
            }
        }
        let recent = dev
            .call(
                "GET",
                &format!("/v1/executions/soak-{}", n.saturating_sub(rate as u64 * 3)),
                None,
            )
            .await;
        println!(
            "retention: soak-1..5 purged: {}; a recent execution: {:?}",
            kept.is_empty(),
            recent.as_ref().map(|r| r.0)
        );
        if !kept.is_empty() {
            failures.push(format!(
                "finished executions not purged after {retention} s: {kept:?}"
            ));
        }
        if !matches!(recent, Some((200, _))) {
            failures.push(format!(
                "a recent execution is missing: {:?}",
                recent.map(|r| r.0)
            ));
        }
    }
    if failures.is_empty() {
        println!("soak: PASSED");
    } else {
        println!("soak: FAILED: {}", failures.join("; "));
        std::process::exit(1);
    }
}

type Row = (u64, f64, usize, f64, usize, u64, f64, f64);
