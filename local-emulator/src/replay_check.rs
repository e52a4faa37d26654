//! `durafn export` and `durafn replay-check`: journals out of a running
//! platform, replayed against a newly built handler binary.
//!
//! `export` writes one JSON line per execution (`GET
//! /v1/executions/{id}/journal`); `replay-check` runs the handler binary with
//! `DURAFN_REPLAY_CHECK=FILE` (the SDK's replay-check mode: no Lambda runtime,
//! no step bodies, a scratch store) and reads the report it writes to
//! `DURAFN_REPLAY_CHECK_REPORT`. See docs/replay-check.md.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, bail};
use serde_json::Value;

use crate::client::ApiClient;

/// What `durafn export` exports.
#[derive(Debug, Clone, Default)]
pub(crate) struct ExportSelection {
    /// These executions.
    pub ids: Vec<String>,
    /// Or every execution of this function ...
    pub function: Option<String>,
    /// ... in this status.
    pub status: Option<String>,
    /// At most this many (with `function` / `status`).
    pub limit: usize,
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn get(client: &ApiClient, path: &str) -> anyhow::Result<Value> {
    let (status, v) = client.call("GET", path, None).await?;
    if status >= 400 {
        let msg = v["error"]["message"].as_str().unwrap_or("request failed");
        bail!(
            "{} ({status}): {msg}",
            v["error"]["code"].as_str().unwrap_or("Error")
        );
    }
    Ok(v)
}

/// The ids `sel` names: its ids, or a listing's (all pages, up to the limit).
async fn selected_ids(client: &ApiClient, sel: &ExportSelection) -> anyhow::Result<Vec<String>> {
    if !sel.ids.is_empty() {
        if sel.function.is_some() || sel.status.is_some() {
            bail!("give execution ids or --function/--status, not both");
        }
        return Ok(sel.ids.clone());
    }
    if sel.function.is_none() && sel.status.is_none() {
        bail!("name the executions to export: IDs, or --function F and/or --status S");
    }
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    while ids.len() < sel.limit {
        let mut q = format!("?limit={}", (sel.limit - ids.len()).min(100));
        if let Some(f) = &sel.function {
            q.push_str(&format!("&function={}", encode(f)));
        }
        if let Some(s) = &sel.status {
            q.push_str(&format!("&status={}", encode(s)));
        }
        if let Some(c) = &cursor {
            q.push_str(&format!("&cursor={}", encode(c)));
        }
        let page = get(client, &format!("/v1/executions{q}")).await?;
        for e in page["executions"].as_array().into_iter().flatten() {
            if let Some(id) = e["id"].as_str() {
                ids.push(id.to_string());
            }
        }
        match page["next_cursor"].as_str() {
            Some(c) if !c.is_empty() => cursor = Some(c.to_string()),
            _ => break,
        }
    }
    Ok(ids)
}

/// Writes the selected executions' journals to `out`, one JSON line each;
/// returns how many.
pub(crate) async fn export(
    client: &ApiClient,
    sel: &ExportSelection,
    out: &mut dyn Write,
) -> anyhow::Result<usize> {
    let ids = selected_ids(client, sel).await?;
    for id in &ids {
        let j = get(client, &format!("/v1/executions/{}/journal", encode(id)))
            .await
            .with_context(|| format!("exporting {id}"))?;
        writeln!(out, "{}", serde_json::to_string(&j)?)?;
    }
    out.flush()?;
    Ok(ids.len())
}

/// Runs `exe` in replay-check mode on `journals` and returns its report.
pub(crate) async fn run_check(exe: &Path, journals: &Path) -> anyhow::Result<Value> {
    if !journals.is_file() {
        bail!(
            "{} is not a file; write one with `durafn export ... > {}`",
            journals.display(),
            journals.display()
        );
    }
    let dir = std::env::temp_dir().join(format!("durafn-replay-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let report_path = dir.join("report.json");
    let result = tokio::process::Command::new(exe)
        .env("DURAFN_REPLAY_CHECK", journals)
        .env("DURAFN_REPLAY_CHECK_REPORT", &report_path)
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .with_context(|| format!("running {}", exe.display()));
    let report = std::fs::read_to_string(&report_path);
    let _ = std::fs::remove_dir_all(&dir);
    let output = result?;
    let report = report.map_err(|_| {
        anyhow::anyhow!(
            "{} wrote no replay report (exit {}): is it a Durafn handler built with this SDK (durafn::run)?\n{}",
            exe.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
    })?;
    serde_json::from_str(&report).context("the handler's replay report is not JSON")
}

/// The report as a table: one row per execution, the diverging op of each
/// that would block.
pub(crate) fn render(report: &Value) -> String {
    let mut out = String::new();
    for e in report["executions"].as_array().into_iter().flatten() {
        let id = e["execution_id"].as_str().unwrap_or("?");
        let verdict = e["verdict"].as_str().unwrap_or("?");
        let recorded = e["recorded_status"].as_str().unwrap_or("?");
        out.push_str(&format!("{verdict:<12} {id}  (recorded {recorded})\n"));
        let d = &e["divergence"];
        if d.is_object() {
            out.push_str(&format!(
                "             at op {}: expected {} {:?}, actual {} {:?}\n",
                d["op_id"].as_str().unwrap_or("?"),
                d["expected"]["type"].as_str().unwrap_or("?"),
                d["expected"]["name"].as_str().unwrap_or("?"),
                d["actual"]["type"].as_str().unwrap_or("?"),
                d["actual"]["name"].as_str().unwrap_or("?"),
            ));
        } else if verdict != "OK" {
            if let Some(m) = e["message"].as_str() {
                out.push_str(&format!("             {m}\n"));
            }
        }
    }
    out.push_str(&format!(
        "{} checked, {} would become BLOCKED, {} inconclusive\n",
        report["checked"], report["blocked"], report["inconclusive"]
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_report_names_the_diverging_op() {
        let r = json!({"checked": 2, "blocked": 1, "inconclusive": 0, "executions": [
            {"execution_id": "a", "verdict": "OK", "recorded_status": "SUSPENDED"},
            {"execution_id": "b", "verdict": "BLOCKED", "recorded_status": "SUSPENDED",
             "divergence": {"op_id": "2", "expected": {"type": "STEP", "name": "reserve"},
                            "actual": {"type": "STEP", "name": "hold"}}}]});
        let text = render(&r);
        assert!(text.contains("BLOCKED      b"), "{text}");
        assert!(
            text.contains("at op 2: expected STEP \"reserve\", actual STEP \"hold\""),
            "{text}"
        );
        assert!(text.contains("2 checked, 1 would become BLOCKED"), "{text}");
    }
}
