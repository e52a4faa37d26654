//! Per-execution logs: what handler processes log inside an execution,
//! captured from their stdout, kept in memory (bounded), served at
//! `GET /v1/executions/{id}/logs` and shown by `durafn logs ID [--follow]`.
//!
//! The SDK (with `DURAFN_LOG_CAPTURE=stdout`, which the emulator sets for its
//! handler processes) writes each `ctx.logger()` line and `tracing` event of
//! a handler as a `@@durafn {"kind": "log", ...}` line carrying a key that is
//! the same on every replay (see `durafn::capture`); the book keeps the first
//! line of each key, so replays add nothing. `{"kind": "attempt"}` lines feed
//! the step latency histogram.
//!
//! Bounds: the last [`MAX_LINES`] lines per execution (older ones are counted
//! as `dropped`), for the [`MAX_EXECUTIONS`] executions that logged last.
//! Lines live as long as the emulator process (they are not in the store).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Mutex, MutexGuard};

use axum::Json;
use axum::extract::{Path, Query};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Lines kept per execution.
pub(crate) const MAX_LINES: usize = 1000;
/// Executions whose lines are kept.
pub(crate) const MAX_EXECUTIONS: usize = 1000;
/// The prefix of the SDK's captured lines on a handler's stdout.
pub(crate) const LINE_PREFIX: &str = "@@durafn ";

/// One captured line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct LogLine {
    /// Its position in the execution's log, from 1.
    pub seq: u64,
    /// When it was logged (ms since the epoch, the handler's clock).
    pub time: i64,
    /// `ERROR`, `WARN`, `INFO`, `DEBUG`, `TRACE`.
    pub level: String,
    /// The `tracing` target (the module that logged it).
    pub target: String,
    /// The text, with the event's other fields as `key=value`.
    pub message: String,
    /// The step it was logged in, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub op_id: Option<String>,
    /// The attempt of that step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// The epoch of the invocation that logged it.
    pub epoch: u64,
    /// The function.
    pub function: String,
}

#[derive(Default)]
struct ExecutionLog {
    lines: VecDeque<LogLine>,
    keys: HashSet<String>,
    next_seq: u64,
    dropped: u64,
    touched: u64,
}

#[derive(Default)]
struct LogBook {
    executions: HashMap<String, ExecutionLog>,
    clock: u64,
}

static BOOK: Mutex<Option<LogBook>> = Mutex::new(None);

fn book() -> MutexGuard<'static, Option<LogBook>> {
    BOOK.lock().unwrap_or_else(|p| p.into_inner())
}

/// What the SDK writes for a captured line.
#[derive(Deserialize)]
struct Captured {
    execution_id: String,
    key: String,
    #[serde(default)]
    epoch: u64,
    #[serde(default)]
    op_id: Option<String>,
    #[serde(default)]
    attempt: Option<u32>,
    #[serde(default)]
    time: i64,
    #[serde(default)]
    level: String,
    #[serde(default)]
    target: String,
    #[serde(default)]
    message: String,
}

/// Reads one line of a handler process of `function`: true if it was a
/// captured record (taken), false if it is ordinary output.
pub(crate) fn ingest(function: &str, line: &str) -> bool {
    let Some(json) = line.strip_prefix(LINE_PREFIX) else {
        return false;
    };
    let Ok(v) = serde_json::from_str::<Value>(json) else {
        return false;
    };
    match v["kind"].as_str() {
        Some("log") => {
            if let Ok(c) = serde_json::from_value::<Captured>(v) {
                record(function, c);
            }
        }
        Some("attempt") => {
            let outcome = v["outcome"].as_str().unwrap_or("unknown");
            let ms = v["ms"].as_u64().unwrap_or(0);
            crate::metrics::step_attempt(function, outcome, ms);
        }
        _ => {}
    }
    true
}

fn record(function: &str, c: Captured) {
    let mut guard = book();
    let book = guard.get_or_insert_with(LogBook::default);
    book.clock += 1;
    let now = book.clock;
    if !book.executions.contains_key(&c.execution_id) && book.executions.len() >= MAX_EXECUTIONS {
        // Forget the execution that logged least recently.
        if let Some(oldest) = book
            .executions
            .iter()
            .min_by_key(|(_, e)| e.touched)
            .map(|(k, _)| k.clone())
        {
            book.executions.remove(&oldest);
        }
    }
    let log = book.executions.entry(c.execution_id).or_default();
    log.touched = now;
    if !log.keys.insert(c.key) {
        return; // a replay's copy
    }
    log.next_seq += 1;
    log.lines.push_back(LogLine {
        seq: log.next_seq,
        time: c.time,
        level: c.level,
        target: c.target,
        message: c.message,
        op_id: c.op_id,
        attempt: c.attempt,
        epoch: c.epoch,
        function: function.to_string(),
    });
    if log.lines.len() > MAX_LINES {
        log.lines.pop_front();
        log.dropped += 1;
    }
    metrics::counter!("durafn_log_lines_total", "function" => function.to_string()).increment(1);
}

/// The lines of `execution` after `after` (a `seq`), at most `limit`; the
/// number of lines dropped by the bound.
pub(crate) fn lines(execution: &str, after: u64, limit: usize) -> (Vec<LogLine>, u64) {
    let guard = book();
    match guard.as_ref().and_then(|b| b.executions.get(execution)) {
        Some(log) => (
            log.lines
                .iter()
                .filter(|l| l.seq > after)
                .take(limit)
                .cloned()
                .collect(),
            log.dropped,
        ),
        None => (Vec::new(), 0),
    }
}

/// Query of `GET /v1/executions/{id}/logs`.
#[derive(Debug, Deserialize)]
pub(crate) struct LogsQuery {
    /// Only lines after this `seq` (for following).
    #[serde(default)]
    pub after: u64,
    /// At most this many lines (default and maximum [`MAX_LINES`]).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// `GET /v1/executions/{id}/logs?after=N&limit=M`:
/// `{"execution_id", "lines": [...], "next": <seq to pass as after>, "dropped"}`.
pub(crate) async fn logs(Path(id): Path<String>, Query(q): Query<LogsQuery>) -> Json<Value> {
    let limit = q.limit.unwrap_or(MAX_LINES).clamp(1, MAX_LINES);
    let (lines, dropped) = lines(&id, q.after, limit);
    let next = lines.last().map_or(q.after, |l| l.seq);
    Json(json!({
        "execution_id": id,
        "lines": lines,
        "next": next,
        "dropped": dropped,
    }))
}

/// Prints a `/logs` answer (one line per log line, or JSON lines with
/// `json`); returns the `seq` to ask after next.
pub(crate) fn print(v: &Value, json: bool, after: u64) -> u64 {
    let empty = Vec::new();
    let lines = v["lines"].as_array().unwrap_or(&empty);
    if after == 0 {
        if let Some(n) = v["dropped"].as_u64().filter(|n| *n > 0) {
            eprintln!("({n} earlier lines were dropped: the emulator keeps the last {MAX_LINES})");
        }
    }
    for l in lines {
        if json {
            println!("{l}");
        } else {
            println!("{}", human(l));
        }
    }
    v["next"].as_u64().unwrap_or(after)
}

/// `09:00:01.250 INFO  [op 3 #2] message`.
fn human(l: &Value) -> String {
    let time = jiff::Timestamp::from_millisecond(l["time"].as_i64().unwrap_or(0))
        .map(|t| t.strftime("%H:%M:%S%.3f").to_string())
        .unwrap_or_default();
    let place = match (l["op_id"].as_str(), l["attempt"].as_u64()) {
        (Some(op), Some(a)) => format!(" [op {op} #{a}]"),
        _ => String::new(),
    };
    format!(
        "{time} {:<5}{place} {}",
        l["level"].as_str().unwrap_or(""),
        l["message"].as_str().unwrap_or("")
    )
}

/// True if a described execution has ended (nothing more will be logged).
pub(crate) fn ended(execution: &Value) -> bool {
    !matches!(
        execution["status"].as_str(),
        Some("PENDING" | "RUNNING" | "SUSPENDED")
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn line(exec: &str, key: &str, msg: &str) -> String {
        format!(
            "{LINE_PREFIX}{}",
            json!({"kind": "log", "execution_id": exec, "key": key, "epoch": 1,
                   "time": 5, "level": "INFO", "target": "t", "message": msg})
        )
    }

    #[test]
    fn replays_copies_are_dropped_and_ordinary_output_passes() {
        assert!(!ingest("f", "plain output"));
        assert!(ingest("f", &line("logs-t1", "p:1:1", "one")));
        assert!(ingest("f", &line("logs-t1", "p:1:1", "one")));
        assert!(ingest("f", &line("logs-t1", "a:2:1:1", "two")));
        let (l, dropped) = lines("logs-t1", 0, 10);
        assert_eq!(
            l.iter().map(|l| l.message.as_str()).collect::<Vec<_>>(),
            ["one", "two"]
        );
        assert_eq!(dropped, 0);
        assert_eq!(lines("logs-t1", 1, 10).0.len(), 1);
    }

    #[test]
    fn an_execution_keeps_its_last_lines() {
        for n in 0..MAX_LINES + 5 {
            ingest("f", &line("logs-t2", &format!("p:1:{n}"), &n.to_string()));
        }
        let (l, dropped) = lines("logs-t2", 0, MAX_LINES);
        assert_eq!(l.len(), MAX_LINES);
        assert_eq!(dropped, 5);
        assert_eq!(l[0].message, "5");
    }
}
