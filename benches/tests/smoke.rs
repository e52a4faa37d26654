//! Runs the benchmark binary with `--quick --json` and checks its output's
//! format. It asserts nothing about timings: `--quick` figures mean nothing.
//!
//! The `ddb` group runs only when `DURAFN_DYNAMODB_ENDPOINT` names a running
//! DynamoDB Local (as in `scripts/test-all.sh`): without it the benchmark
//! would try to start one, and that needs Java.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// Every group but `ddb`.
const LOCAL_GROUPS: &str = "step_cost,replay,group_commit,emulator,resume,timers,idle_rss";

fn ddb_local_is_running() -> bool {
    std::env::var("DURAFN_DYNAMODB_ENDPOINT").is_ok_and(|e| !e.is_empty())
}

#[test]
fn quick_json_run_prints_one_well_formed_figure_per_line() {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_durafn-bench"));
    cmd.args(["--quick", "--json"]);
    if !ddb_local_is_running() {
        cmd.args(["--only", LOCAL_GROUPS]);
    }
    // Cargo has built the helper binaries for this test: use them as they are.
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_durafn-bench-wf10"))
        .parent()
        .expect("the binaries' folder");
    assert_eq!(
        Path::new(env!("CARGO_BIN_EXE_durafn-bench-dev")).parent(),
        Some(bin_dir)
    );
    assert_eq!(
        Path::new(env!("CARGO_BIN_EXE_durafn-bench-resume")).parent(),
        Some(bin_dir)
    );
    let out = cmd
        .env("DURAFN_BENCH_BIN_DIR", bin_dir)
        .output()
        .expect("the benchmark binary should start");
    let stdout = String::from_utf8(out.stdout).expect("stdout should be UTF-8");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "durafn-bench --quick --json failed ({}):\n{stderr}\n{stdout}",
        out.status
    );

    let mut metrics = Vec::new();
    for line in stdout.lines() {
        let fig: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}"));
        let obj = fig
            .as_object()
            .unwrap_or_else(|| panic!("not a JSON object: {line:?}"));
        let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["metric", "target", "unit", "value"], "{line}");
        let metric = obj["metric"].as_str().expect("metric should be a string");
        assert!(!metric.is_empty(), "{line}");
        assert!(
            obj["unit"].as_str().is_some_and(|u| !u.is_empty()),
            "{line}"
        );
        let value = obj["value"].as_f64().expect("value should be a number");
        assert!(value.is_finite() && value > 0.0, "{line}");
        let target = obj["target"].as_f64().expect("target should be a number");
        assert!(target.is_finite() && target >= 0.0, "{line}");
        metrics.push(metric.to_string());
    }

    let mut expected = vec![
        "step_vs_sqlite_commit",
        "replay_10k_ms",
        "replay_growth_1k_to_10k",
        "replay_100k_ms",
        "replay_growth_10k_to_100k",
        "step_group_commit_c20_per_s",
        "sqlite_commit_c1_per_s",
        "group_commit_speedup",
        "wf10_seq_p50_ms",
        "wf10_c20_per_s",
        "store_calls_per_wf10",
        "wf10_cpu_ms",
        "cost_per_1000_wf10_usd",
        "resume_p50_ms",
        "resume_p99_ms",
        "timers_10k_lateness_p99_ms",
        "idle_rss_mb_100k",
    ];
    if ddb_local_is_running() {
        expected.push("step_vs_ddb_put");
    }
    for expected in expected {
        assert!(
            metrics.iter().any(|m| m == expected),
            "no figure for {expected}; got {metrics:?}\n{stderr}"
        );
    }
}

#[test]
fn unknown_groups_are_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_durafn-bench"))
        .args(["--only", "replay,nonsense"])
        .output()
        .expect("the benchmark binary should start");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nonsense"));
}

#[test]
fn unknown_arguments_are_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_durafn-bench"))
        .arg("--frobnicate")
        .output()
        .expect("the benchmark binary should start");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--frobnicate"));
}
