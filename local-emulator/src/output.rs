//! Human-readable renderings of API answers for the CLI.

use serde_json::Value;

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn clip(s: String, n: usize) -> String {
    if s.chars().count() <= n {
        s
    } else {
        let mut out: String = s.chars().take(n.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| -> String {
        let mut s = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect::<Vec<_>>()
            .join("  ");
        s.truncate(s.trim_end().len());
        s + "\n"
    };
    let mut out = line(header.iter().map(|h| h.to_string()).collect());
    for r in rows {
        out.push_str(&line(r));
    }
    out
}

/// `durafn describe` / `start` / `cancel`.
pub(crate) fn describe(v: &Value) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "{}  {}  {}{}\n",
        text(&v["function"]),
        text(&v["id"]),
        text(&v["status"]),
        if v["paused"] == Value::Bool(true) {
            " (paused)"
        } else {
            ""
        }
    ));
    out.push_str(&format!("  created   {}\n", text(&v["created_at"])));
    if !v["ended_at"].is_null() {
        out.push_str(&format!("  ended     {}\n", text(&v["ended_at"])));
    }
    let cur = &v["current_operation"];
    if !cur.is_null() {
        out.push_str(&format!(
            "  at        {} {:?} ({}, op {})\n",
            text(&cur["type"]),
            text(&cur["name"]),
            text(&cur["status"]),
            text(&cur["op_id"])
        ));
    }
    let w = &v["waiting_on"];
    if !w.is_null() {
        out.push_str(&format!(
            "  waiting   {} {} until {}\n",
            text(&w["kind"]),
            w.get("name").map(text).unwrap_or_default(),
            text(&w["until"])
        ));
        if let Some(id) = w.get("callback_id").and_then(|v| v.as_str()) {
            out.push_str(&format!("  callback  {id}\n"));
        }
    }
    for (field, label) in [("reset_from", "reset of"), ("rerun_of", "rerun of")] {
        if let Some(from) = v[field].as_str() {
            out.push_str(&format!("  {label:<9} {from}\n"));
        }
    }
    if let Some(forks) = v["forks"].as_array().filter(|f| !f.is_empty()) {
        let ids: Vec<String> = forks.iter().map(text).collect();
        out.push_str(&format!("  forks     {}\n", ids.join(", ")));
    }
    out.push_str(&format!(
        "  input     {}\n",
        clip(v["input"].to_string(), 200)
    ));
    if !v["output"].is_null() {
        out.push_str(&format!(
            "  output    {}\n",
            clip(v["output"].to_string(), 400)
        ));
    }
    if !v["error"].is_null() {
        out.push_str(&format!(
            "  error     {}: {}\n",
            text(&v["error"]["type"]),
            text(&v["error"]["message"])
        ));
    }
    out.push_str(&cost(&v["cost"]));
    out
}

/// The cost lines of `durafn describe` (nothing when the answer has none).
fn cost(c: &Value) -> String {
    if c.is_null() {
        return String::new();
    }
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    let s = &c["store"];
    let e = &c["estimate_usd"];
    let mut out = format!(
        "  store     {} reads ({} B, {} RRU), {} writes ({} B, {} WRU)
",
        n(&s["reads"]),
        n(&s["read_bytes"]),
        n(&s["read_units"]),
        n(&s["writes"]),
        n(&s["write_bytes"]),
        n(&s["write_units"]),
    );
    out.push_str(&format!(
        "  lambda    {} invocations, {:.6} GB-s
",
        n(&c["invocations"]),
        c["lambda_gb_seconds"].as_f64().unwrap_or(0.0)
    ));
    if n(&c["invocations_uncounted"]) > 0 {
        out.push_str(&format!(
            "            (+{} invocations not counted: crashed, running or no longer kept)
",
            n(&c["invocations_uncounted"])
        ));
    }
    let usd = |k: &str| e[k].as_f64().unwrap_or(0.0);
    out.push_str(&format!(
        "  cost      ${:.8} (DynamoDB ${:.8} + Lambda ${:.8}; {})\n",
        usd("total_usd"),
        usd("dynamodb_writes_usd") + usd("dynamodb_reads_usd"),
        usd("lambda_requests_usd") + usd("lambda_duration_usd"),
        text(&c["prices"]["region"])
    ));
    out
}

/// `durafn list`.
pub(crate) fn list(v: &Value) -> String {
    let rows = v["executions"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    vec![
                        text(&e["id"]),
                        text(&e["function"]),
                        text(&e["status"]),
                        text(&e["created_at"]),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    let mut out = table(&["ID", "FUNCTION", "STATUS", "CREATED"], rows);
    if let Some(c) = v["next_cursor"].as_str() {
        out.push_str(&format!("more: --cursor {c}\n"));
    }
    out
}

/// `durafn history`.
pub(crate) fn history(v: &Value) -> String {
    let rows = v["operations"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|o| {
                    let outcome = if o["error"].is_null() {
                        clip(o["result"].to_string(), 60)
                    } else {
                        clip(
                            format!(
                                "{}: {}",
                                text(&o["error"]["type"]),
                                text(&o["error"]["message"])
                            ),
                            60,
                        )
                    };
                    vec![
                        text(&o["id"]),
                        text(&o["type"]),
                        text(&o["name"]),
                        text(&o["status"]),
                        text(&o["attempt"]),
                        text(&o["started_at"]),
                        outcome,
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    let mut out = table(
        &[
            "OP",
            "TYPE",
            "NAME",
            "STATUS",
            "ATTEMPT",
            "STARTED",
            "RESULT / ERROR",
        ],
        rows,
    );
    out.push_str(&attempts(v));
    out.push_str(&invocations(v));
    out
}

fn error_text(e: &Value) -> String {
    if e.is_null() {
        return "-".into();
    }
    clip(format!("{}: {}", text(&e["type"]), text(&e["message"])), 80)
}

fn ms(v: &Value) -> String {
    v.as_i64().map_or_else(|| "-".into(), |n| format!("{n}ms"))
}

/// The attempts section of `durafn history` (steps that had any).
fn attempts(v: &Value) -> String {
    let ops = v["operations"].as_array().cloned().unwrap_or_default();
    let mut rows = Vec::new();
    let mut notes = String::new();
    for o in &ops {
        let list = o["attempts"].as_array().cloned().unwrap_or_default();
        if o["attempts_truncated"].as_bool() == Some(true) {
            notes.push_str(&format!(
                "op {} ({}): {} earlier attempt(s) not kept (history keeps the last {})\n",
                text(&o["id"]),
                text(&o["name"]),
                text(&o["attempts_dropped"]),
                text(&v["history_limit"]),
            ));
        }
        for a in list {
            rows.push(vec![
                text(&o["id"]),
                text(&o["name"]),
                text(&a["attempt"]),
                text(&a["outcome"]),
                text(&a["started_at"]),
                ms(&a["duration_ms"]),
                text(&a["epoch"]),
                error_text(&a["error"]),
            ]);
        }
    }
    if rows.is_empty() && notes.is_empty() {
        return String::new();
    }
    let mut out = String::from("\nATTEMPTS\n");
    out.push_str(&notes);
    out.push_str(&table(
        &[
            "OP",
            "NAME",
            "ATTEMPT",
            "OUTCOME",
            "STARTED",
            "DURATION",
            "INVOCATION",
            "ERROR",
        ],
        rows,
    ));
    out
}

/// The invocations section of `durafn history`.
fn invocations(v: &Value) -> String {
    let list = v["invocations"].as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        return String::new();
    }
    let mut out = String::from("\nINVOCATIONS\n");
    if v["invocations_truncated"].as_bool() == Some(true) {
        out.push_str(&format!(
            "{} earlier invocation(s) not kept (history keeps the last {})\n",
            text(&v["invocations_dropped"]),
            text(&v["history_limit"]),
        ));
    }
    let rows = list
        .iter()
        .map(|i| {
            let outcome = match i["outcome"].as_str() {
                Some(o) => o.to_string(),
                None => "RUNNING".into(),
            };
            vec![
                text(&i["epoch"]),
                text(&i["started_at"]),
                ms(&i["duration_ms"]),
                outcome,
                text(&i["status"]),
                text(&i["process"]),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "INVOCATION",
            "STARTED",
            "DURATION",
            "OUTCOME",
            "STATUS",
            "PROCESS",
        ],
        rows,
    ));
    out
}

/// `durafn schedules`: a table of schedules, one schedule, or a trigger's result.
pub(crate) fn schedules(v: &Value) -> String {
    if let Some(id) = v.get("execution_id") {
        let verb = if v["new"].as_bool() == Some(false) {
            "found"
        } else {
            "started"
        };
        return format!(
            "{} fired: {verb} execution {}\n",
            text(&v["schedule"]),
            text(id)
        );
    }
    let one = [v.clone()];
    let list: &[Value] = match v.get("schedules").and_then(Value::as_array) {
        Some(all) => all,
        None => &one,
    };
    if list.is_empty() {
        return "no schedules\n".into();
    }
    let rows = list
        .iter()
        .map(|s| {
            let expr = match s["timezone"].as_str() {
                Some(tz) => format!("{} {tz}", text(&s["expression"])),
                None => text(&s["expression"]),
            };
            vec![
                text(&s["name"]),
                text(&s["function"]),
                clip(expr, 40),
                text(&s["state"]),
                text(&s["next_fire_at"]),
                text(&s["last_execution_id"]),
            ]
        })
        .collect();
    table(
        &[
            "NAME",
            "FUNCTION",
            "EXPRESSION",
            "STATE",
            "NEXT FIRE",
            "LAST EXECUTION",
        ],
        rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn history_lists_attempts_invocations_and_truncation() {
        let v = json!({
            "history_limit": 2,
            "operations": [{
                "id": "1", "type": "STEP", "name": "flaky", "status": "SUCCEEDED",
                "attempt": 4, "started_at": "t0", "result": "ok", "error": null,
                "attempts_truncated": true, "attempts_dropped": 2,
                "attempts": [
                    {"attempt": 3, "outcome": "RETRYING", "started_at": "t3", "duration_ms": 7,
                     "epoch": 3, "error": {"type": "Flaky", "message": "boom 3"}},
                    {"attempt": 4, "outcome": "SUCCEEDED", "started_at": "t4", "duration_ms": 1,
                     "epoch": 4, "error": null}
                ]
            }],
            "invocations": [
                {"epoch": 4, "started_at": "t4", "duration_ms": 20, "outcome": "FINISHED",
                 "status": "SUCCEEDED", "process": "testfn/1 (pid 9)"},
                {"epoch": 5, "started_at": "t5", "duration_ms": null, "outcome": null,
                 "status": null, "process": null}
            ],
            "invocations_truncated": true,
            "invocations_dropped": 3,
        });
        let out = history(&v);
        assert!(out.contains("ATTEMPTS"), "{out}");
        assert!(
            out.contains("op 1 (flaky): 2 earlier attempt(s) not kept (history keeps the last 2)"),
            "{out}"
        );
        assert!(out.contains("Flaky: boom 3"), "{out}");
        assert!(out.contains("RETRYING") && out.contains("7ms"), "{out}");
        assert!(out.contains("3 earlier invocation(s) not kept"), "{out}");
        assert!(
            out.contains("testfn/1 (pid 9)") && out.contains("RUNNING"),
            "{out}"
        );
    }
}
