//! Runs the benchmark binary with `--quick --json` and checks its output's
//! format. It asserts nothing about timings: `--quick` figures mean nothing.

use std::process::Command;

use serde_json::Value;

#[test]
fn quick_json_run_prints_one_well_formed_figure_per_line() {
    let out = Command::new(env!("CARGO_BIN_EXE_durafn-bench"))
        .args(["--quick", "--json"])
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

    for expected in [
        "step_vs_sqlite_commit",
        "replay_10k_ms",
        "replay_growth_1k_to_10k",
        "step_group_commit_c20_per_s",
        "sqlite_commit_c1_per_s",
        "group_commit_speedup",
    ] {
        assert!(
            metrics.iter().any(|m| m == expected),
            "no figure for {expected}; got {metrics:?}\n{stderr}"
        );
    }
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
