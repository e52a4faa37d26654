//! The per-attempt history of an execution: every attempt of a step and every
//! invocation, kept beside the journal (which holds only each operation's
//! latest revision).
//!
//! Entries are extra records of the execution (DynamoDB `sk = h#…` items in
//! its partition, SQLite rows of `history`), each one write of its own
//! ([`crate::store::Store::put_history`]), never read by replay. A series
//! (the attempts of one operation, the invocations of the execution) keeps
//! its last [`history_limit`] entries: writing entry `n` deletes entry
//! `n - limit`, so a series' numbers have no gaps and a kept series starting
//! above 1 is a truncated one ([`assemble`] says so).
//!
//! What is written, and when (see the SDK): a step attempt that failed, was
//! interrupted, or was not the first, is recorded when it ends (a first
//! attempt that succeeded is its operation record already); an invocation is
//! recorded when it starts and again when it ends. An invocation with no end
//! recorded under a newer claim, or under an execution no longer running,
//! crashed or timed out ([`InvocationOutcome::Crashed`], `TimedOut`).

use serde::{Deserialize, Serialize};

use super::{ErrorObject, ExecutionStatus, OpKind, Operation, Timestamp};

/// How many entries a series keeps unless configured otherwise.
pub const DEFAULT_HISTORY_LIMIT: u32 = 100;

/// The longest error message or trace an attempt keeps (bytes); longer ones
/// are cut and end with [`TRUNCATED`].
pub const MAX_HISTORY_TEXT: usize = 2048;

/// What a cut text ends with.
pub const TRUNCATED: &str = " …(truncated)";

/// How many entries each series keeps here: `DURAFN_HISTORY_LIMIT` (at least
/// 1) when set, else [`DEFAULT_HISTORY_LIMIT`]. Handler processes inherit it.
pub fn history_limit() -> u32 {
    std::env::var("DURAFN_HISTORY_LIMIT")
        .ok()
        .and_then(|v| v.trim().parse::<u32>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(DEFAULT_HISTORY_LIMIT)
}

/// One history record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum HistoryEntry {
    /// One invocation (keyed by its claim's epoch).
    Invocation(InvocationRecord),
    /// One attempt of an operation (keyed by op id and attempt number).
    Attempt(AttemptRecord),
}

impl HistoryEntry {
    /// The series this entry belongs to: `inv`, or `att#<op id>`.
    pub fn series(&self) -> String {
        match self {
            HistoryEntry::Invocation(_) => "inv".to_string(),
            HistoryEntry::Attempt(a) => format!("att#{}", a.op_id),
        }
    }

    /// The entry's number in its series (epoch, attempt), from 1.
    pub fn seq(&self) -> u64 {
        match self {
            HistoryEntry::Invocation(i) => i.epoch,
            HistoryEntry::Attempt(a) => u64::from(a.attempt),
        }
    }

    /// The entry's key, unique within the execution and sorting by series,
    /// then number: `inv#<epoch, 20 digits>`, `att#<op id>#<attempt, 10 digits>`.
    pub fn key(&self) -> String {
        match self {
            HistoryEntry::Invocation(i) => format!("inv#{:020}", i.epoch),
            HistoryEntry::Attempt(a) => format!("att#{}#{:010}", a.op_id, a.attempt),
        }
    }

    /// The key of the entry `keep` places before this one in its series,
    /// which writing this one deletes (`None` when there is none).
    pub fn evicted_key(&self, keep: u32) -> Option<String> {
        let old = self.seq().checked_sub(u64::from(keep.max(1)))?;
        if old == 0 {
            return None;
        }
        Some(match self {
            HistoryEntry::Invocation(_) => format!("inv#{old:020}"),
            HistoryEntry::Attempt(a) => format!("att#{}#{old:010}", a.op_id),
        })
    }

    /// When the store may delete it, if the writer knew (an invocation that
    /// finished the execution).
    pub fn expires_at(&self) -> Option<Timestamp> {
        match self {
            HistoryEntry::Invocation(i) => i.expires_at,
            HistoryEntry::Attempt(_) => None,
        }
    }
}

/// How an invocation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InvocationOutcome {
    /// Ended with a suspension (a timer, a backoff, an outside wait, a yield).
    Suspended,
    /// Ended the execution (`SUCCEEDED`, `FAILED`, …) or blocked it.
    Finished,
    /// Its final update found a newer claim, or the execution cancelled.
    Superseded,
    /// Stopped by a store failure; the next invocation replays.
    Aborted,
    /// Recorded no end, and the next claim came before its deadline (the
    /// process died or the invoker gave up on it). Derived, never written.
    Crashed,
    /// Recorded no end, and was still unended at its deadline. Derived.
    TimedOut,
}

/// One invocation of an execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InvocationRecord {
    /// The epoch of its claim.
    pub epoch: u64,
    /// When the handler process began it.
    pub started_at: Timestamp,
    /// When it ended; `None` while running (or if it never recorded an end).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<Timestamp>,
    /// How it ended (`None` as for `ended_at`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<InvocationOutcome>,
    /// The status it left the execution in (`SUSPENDED`, `SUCCEEDED`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ExecutionStatus>,
    /// When a suspension asked to wake.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wake_at: Option<Timestamp>,
    /// The time by which it had to end (the Lambda deadline), if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<Timestamp>,
    /// The process that ran it (`<host>/<pid>`), if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<String>,
    /// The error of an aborted invocation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When the store may delete it (set by the invocation that finished the
    /// execution, so a record written after the execution ended expires too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
    /// The store calls the invocation made (on its end record; see
    /// [`crate::cost`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<crate::cost::StoreUsage>,
    /// The memory the function ran with (MB), if it knew
    /// (`AWS_LAMBDA_FUNCTION_MEMORY_SIZE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u32>,
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AttemptOutcome {
    /// Returned a result.
    Succeeded,
    /// Failed; another attempt follows at `retry_at`.
    Retrying,
    /// Failed for good (terminal error or no attempts left).
    Failed,
    /// An at-most-once attempt that started and recorded no outcome.
    Interrupted,
}

/// An attempt's error, cut to [`MAX_HISTORY_TEXT`] per field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptError {
    /// The error type.
    #[serde(rename = "type")]
    pub error_type: String,
    /// The message.
    pub message: String,
    /// The error's details (its `data`, as JSON text), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
}

impl AttemptError {
    /// The bounded form of a recorded error.
    pub fn of(e: &ErrorObject) -> AttemptError {
        AttemptError {
            error_type: clip_text(&e.error_type, 256),
            message: clip_text(&e.message, MAX_HISTORY_TEXT),
            trace: e
                .data
                .as_ref()
                .map(|d| clip_text(&d.to_string(), MAX_HISTORY_TEXT)),
        }
    }
}

/// One attempt of an operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptRecord {
    /// The operation.
    pub op_id: String,
    /// Its kind.
    #[serde(rename = "type")]
    pub kind: OpKind,
    /// Its name.
    pub name: String,
    /// The attempt number (1-based).
    pub attempt: u32,
    /// The invocation (epoch) that ran it.
    pub epoch: u64,
    /// When the attempt began.
    pub started_at: Timestamp,
    /// When it ended.
    pub ended_at: Timestamp,
    /// How it ended.
    pub outcome: AttemptOutcome,
    /// Its error, unless it succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<AttemptError>,
    /// When the next attempt is due (`RETRYING` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<Timestamp>,
}

/// `s` cut to at most `max` bytes (on a character boundary), ending with
/// [`TRUNCATED`] when cut.
pub fn clip_text(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut cut = max.saturating_sub(TRUNCATED.len());
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{TRUNCATED}", &s[..cut])
}

/// The attempts of one operation, as shown.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpAttempts {
    /// The operation's id.
    pub op_id: String,
    /// Its attempts, oldest first.
    pub attempts: Vec<AttemptRecord>,
    /// How many earlier attempts are no longer kept (0: none dropped).
    pub dropped: u64,
}

/// An execution's history, assembled from its journal and history records.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct History {
    /// Every operation's attempts, in operation order (operations without
    /// attempts, such as timers, are left out).
    pub operations: Vec<OpAttempts>,
    /// The invocations, oldest first, outcomes of unended ones derived.
    pub invocations: Vec<InvocationRecord>,
    /// How many earlier invocations are no longer kept.
    pub invocations_dropped: u64,
}

/// Builds the history shown for an execution now at `epoch` and `status`,
/// from its operations (start order) and history records (any order), at
/// `now`. The latest invocation, unended, is still running (or writing its
/// end) until its deadline has passed; older unended ones crashed or timed out.
///
/// A step's last attempt, when no record of it exists (a first attempt that
/// succeeded, or one whose record was lost), is taken from its operation.
pub fn assemble(
    ops: &[Operation],
    entries: Vec<HistoryEntry>,
    epoch: u64,
    status: ExecutionStatus,
    now: Timestamp,
) -> History {
    let mut invocations = Vec::new();
    let mut attempts: std::collections::HashMap<String, Vec<AttemptRecord>> =
        std::collections::HashMap::new();
    for e in entries {
        match e {
            HistoryEntry::Invocation(i) => invocations.push(i),
            HistoryEntry::Attempt(a) => attempts.entry(a.op_id.clone()).or_default().push(a),
        }
    }
    invocations.sort_by_key(|i| i.epoch);
    let starts: Vec<(u64, Timestamp)> = invocations
        .iter()
        .map(|i| (i.epoch, i.started_at))
        .collect();
    for inv in &mut invocations {
        if inv.outcome.is_some() {
            continue;
        }
        let past_deadline = inv.deadline.is_none_or(|d| d < now);
        let superseded = inv.epoch < epoch || (status != ExecutionStatus::Running && past_deadline);
        if !superseded {
            continue;
        }
        let next_start = starts.iter().find(|(e, _)| *e > inv.epoch).map(|(_, t)| *t);
        inv.outcome = Some(match (inv.deadline, next_start) {
            (Some(d), Some(n)) if n < d => InvocationOutcome::Crashed,
            (Some(_), _) => InvocationOutcome::TimedOut,
            (None, _) => InvocationOutcome::Crashed,
        });
    }
    let invocations_dropped = invocations.first().map_or(0, |i| i.epoch.saturating_sub(1));
    let mut operations = Vec::new();
    for op in ops {
        let mut list = attempts.remove(&op.id).unwrap_or_default();
        list.sort_by_key(|a| a.attempt);
        if let Some(last) = from_operation(op) {
            if list.last().is_none_or(|a| a.attempt < last.attempt) {
                list.push(last);
            }
        }
        if list.is_empty() {
            continue;
        }
        let dropped = list
            .first()
            .map_or(0, |a| u64::from(a.attempt.saturating_sub(1)));
        operations.push(OpAttempts {
            op_id: op.id.clone(),
            attempts: list,
            dropped,
        });
    }
    History {
        operations,
        invocations,
        invocations_dropped,
    }
}

/// The attempt a step's record itself describes, when it has ended one.
fn from_operation(op: &Operation) -> Option<AttemptRecord> {
    if op.kind != OpKind::Step || op.attempt == 0 {
        return None;
    }
    let outcome = match op.status {
        super::OpStatus::Succeeded => AttemptOutcome::Succeeded,
        super::OpStatus::Failed | super::OpStatus::TimedOut | super::OpStatus::Cancelled => {
            AttemptOutcome::Failed
        }
        super::OpStatus::Pending => AttemptOutcome::Retrying,
        super::OpStatus::Started => return None,
    };
    // Only a first attempt's start is known from the record.
    let started_at = if op.attempt == 1 {
        op.started_at
    } else {
        op.ended_at.unwrap_or(op.started_at)
    };
    Some(AttemptRecord {
        op_id: op.id.clone(),
        kind: op.kind,
        name: op.name.clone(),
        attempt: op.attempt,
        epoch: 0,
        started_at,
        ended_at: op.ended_at.unwrap_or(started_at),
        outcome,
        error: op.error.as_ref().map(AttemptError::of),
        retry_at: op.wake_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::OpStatus;

    fn attempt(op: &str, n: u32, outcome: AttemptOutcome) -> HistoryEntry {
        HistoryEntry::Attempt(AttemptRecord {
            op_id: op.into(),
            kind: OpKind::Step,
            name: "charge".into(),
            attempt: n,
            epoch: u64::from(n),
            started_at: Timestamp(i64::from(n) * 10),
            ended_at: Timestamp(i64::from(n) * 10 + 5),
            outcome,
            error: Some(AttemptError::of(&ErrorObject::new("E", format!("no {n}")))),
            retry_at: None,
        })
    }

    fn invocation(epoch: u64, start: i64, outcome: Option<InvocationOutcome>) -> HistoryEntry {
        HistoryEntry::Invocation(InvocationRecord {
            epoch,
            started_at: Timestamp(start),
            ended_at: outcome.map(|_| Timestamp(start + 1)),
            outcome,
            status: None,
            wake_at: None,
            deadline: Some(Timestamp(start + 100)),
            process: None,
            error: None,
            expires_at: None,
            usage: None,
            memory_mb: None,
        })
    }

    fn step(id: &str, attempt: u32, status: OpStatus) -> Operation {
        Operation {
            id: id.into(),
            kind: OpKind::Step,
            name: "charge".into(),
            status,
            attempt,
            result: None,
            error: None,
            started_at: Timestamp(10),
            ended_at: Some(Timestamp(45)),
            wake_at: None,
            rev: 4,
        }
    }

    #[test]
    fn keys_sort_by_series_then_number_and_eviction_keeps_the_last_n() {
        let a = attempt("3.1", 7, AttemptOutcome::Failed);
        assert_eq!(a.key(), "att#3.1#0000000007");
        assert_eq!(a.series(), "att#3.1");
        assert_eq!(a.evicted_key(5).as_deref(), Some("att#3.1#0000000002"));
        assert_eq!(a.evicted_key(7), None);
        assert_eq!(a.evicted_key(100), None);
        let i = invocation(12, 0, None);
        assert_eq!(i.key(), "inv#00000000000000000012");
        assert_eq!(
            i.evicted_key(10).as_deref(),
            Some("inv#00000000000000000002")
        );
        assert!(
            attempt("1", 9, AttemptOutcome::Failed).key()
                < attempt("1", 10, AttemptOutcome::Failed).key()
        );
    }

    #[test]
    fn long_errors_are_cut_with_a_marker() {
        let e = ErrorObject {
            error_type: "Big".into(),
            message: "é".repeat(5000),
            data: Some(serde_json::json!({"trace": "x".repeat(9000)})),
        };
        let a = AttemptError::of(&e);
        assert!(a.message.len() <= MAX_HISTORY_TEXT, "{}", a.message.len());
        assert!(a.message.ends_with(TRUNCATED));
        let trace = a.trace.unwrap_or_default();
        assert!(trace.len() <= MAX_HISTORY_TEXT && trace.ends_with(TRUNCATED));
        assert_eq!(clip_text("short", 10), "short");
    }

    #[test]
    fn attempts_are_merged_with_the_record_and_truncation_is_counted() {
        let entries = vec![
            attempt("1", 3, AttemptOutcome::Retrying),
            attempt("1", 2, AttemptOutcome::Retrying),
            attempt("1", 4, AttemptOutcome::Succeeded),
        ];
        let ops = [
            step("1", 4, OpStatus::Succeeded),
            step("2", 1, OpStatus::Succeeded),
        ];
        let h = assemble(&ops, entries, 1, ExecutionStatus::Succeeded, Timestamp(0));
        assert_eq!(h.operations.len(), 2);
        let one = &h.operations[0];
        let numbers: Vec<u32> = one.attempts.iter().map(|a| a.attempt).collect();
        assert_eq!(numbers, vec![2, 3, 4]);
        assert_eq!(one.dropped, 1, "attempt 1 is no longer kept");
        let two = &h.operations[1];
        assert_eq!(two.attempts.len(), 1);
        assert_eq!(two.dropped, 0);
        assert_eq!(two.attempts[0].outcome, AttemptOutcome::Succeeded);
        assert_eq!(two.attempts[0].started_at, Timestamp(10));
    }

    #[test]
    fn unended_invocations_are_crashed_or_timed_out() {
        let entries = vec![
            invocation(2, 0, None),  // next start at 50 < 100
            invocation(3, 50, None), // next start at 400 > 150
            invocation(4, 400, Some(InvocationOutcome::Suspended)),
            invocation(5, 500, None), // running now
        ];
        let h = assemble(
            &[],
            entries.clone(),
            5,
            ExecutionStatus::Running,
            Timestamp(550),
        );
        let outcomes: Vec<_> = h.invocations.iter().map(|i| i.outcome).collect();
        assert_eq!(
            outcomes,
            vec![
                Some(InvocationOutcome::Crashed),
                Some(InvocationOutcome::TimedOut),
                Some(InvocationOutcome::Suspended),
                None
            ]
        );
        assert_eq!(h.invocations_dropped, 1);
        // Ended without its end written: still ending until its deadline.
        let h = assemble(
            &[],
            entries.clone(),
            5,
            ExecutionStatus::Suspended,
            Timestamp(550),
        );
        assert_eq!(h.invocations[3].outcome, None);
        let h = assemble(&[], entries, 5, ExecutionStatus::Suspended, Timestamp(700));
        assert_eq!(h.invocations[3].outcome, Some(InvocationOutcome::TimedOut));
    }
}
