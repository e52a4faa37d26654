//! The records every store keeps: executions, operations, and their statuses.
//!
//! These types are the data model of DESIGN.md §4. They are plain data: the
//! stores persist them, the SDK's replay core reads them, the REST API shows them.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Result, StoreError};

pub mod history;
mod schedule;

pub use history::{
    AttemptError, AttemptOutcome, AttemptRecord, DEFAULT_HISTORY_LIMIT, History, HistoryEntry,
    InvocationOutcome, InvocationRecord, history_limit,
};
pub use schedule::{
    CatchUp, MAX_SCHEDULE_INPUT_BYTES, Overlap, Schedule, validate_name as validate_schedule_name,
};

/// The largest payload (input, output, step result, error) one record may carry.
///
/// DynamoDB items are capped at 400 KB, so larger payloads are split across chunk
/// items; 4 MiB is the ceiling on every backend so that a workflow behaves the same
/// on SQLite and on DynamoDB. With a blob store configured
/// ([`crate::store::blob`]), larger payloads are offloaded to it, up to
/// [`MAX_OFFLOADED_PAYLOAD_BYTES`].
pub const MAX_PAYLOAD_BYTES: usize = 4 * 1024 * 1024;

/// The largest payload when a blob store holds the large ones
/// ([`crate::store::OffloadingStore`]): 64 MiB.
pub const MAX_OFFLOADED_PAYLOAD_BYTES: usize = 64 * 1024 * 1024;

/// How long finished executions are kept unless configured otherwise.
pub const DEFAULT_RETENTION: std::time::Duration = std::time::Duration::from_secs(14 * 24 * 3600);

/// How long finished executions are kept here: `DURAFN_RETENTION_SECONDS`
/// (whole seconds, at least 1) when set, else [`DEFAULT_RETENTION`]. `durafn
/// dev` reads it to purge, and its handler processes inherit it.
pub fn retention() -> std::time::Duration {
    std::env::var("DURAFN_RETENTION_SECONDS")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|s| *s > 0)
        .map_or(DEFAULT_RETENTION, std::time::Duration::from_secs)
}

/// How many shards the due index is split into. Dispatchers lease shards.
pub const DUE_SHARDS: u32 = 16;

/// Milliseconds since the Unix epoch. All times in records use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The timestamp `d` later (saturating).
    pub fn plus(self, d: std::time::Duration) -> Timestamp {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Timestamp(self.0.saturating_add(ms))
    }

    /// Milliseconds from `self` until `later` (zero if `later` is earlier).
    pub fn until(self, later: Timestamp) -> std::time::Duration {
        std::time::Duration::from_millis(u64::try_from(later.0.saturating_sub(self.0)).unwrap_or(0))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0)
    }
}

/// An execution's id: the user's execution name, or a generated UUIDv7.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ExecutionId(String);

impl ExecutionId {
    /// Validates a user-supplied execution name: 1–128 characters of
    /// `[A-Za-z0-9._:-]`.
    pub fn new(name: impl Into<String>) -> Result<Self> {
        let name = name.into();
        let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-');
        if name.is_empty() || name.len() > 128 || !name.chars().all(ok_char) {
            return Err(StoreError::Invalid(format!(
                "execution name {name:?} is not valid: use 1-128 characters of letters, digits, '.', '_', ':' or '-'"
            )));
        }
        Ok(ExecutionId(name))
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The due-index shard this execution lives in (stable across processes).
    pub fn due_shard(&self) -> u32 {
        // FNV-1a: stable, tiny, good enough to spread ids over a handful of shards.
        let mut h: u32 = 0x811c_9dc5;
        for b in self.0.bytes() {
            h ^= u32::from(b);
            h = h.wrapping_mul(0x0100_0193);
        }
        h % DUE_SHARDS
    }
}

impl TryFrom<String> for ExecutionId {
    type Error = StoreError;
    fn try_from(s: String) -> Result<Self> {
        ExecutionId::new(s)
    }
}

impl From<ExecutionId> for String {
    fn from(id: ExecutionId) -> String {
        id.0
    }
}

impl fmt::Display for ExecutionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where an execution is in its life (DESIGN.md §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExecutionStatus {
    /// Created, not yet run.
    Pending,
    /// An invocation holds the lease.
    Running,
    /// Waiting; `due_at` says when to wake (or never, until a callback or event).
    Suspended,
    /// Finished with an output.
    Succeeded,
    /// Finished with an error.
    Failed,
    /// Cancelled by a user.
    Cancelled,
    /// Ran past its execution timeout.
    TimedOut,
    /// Stopped by non-determinism or a bug; can be resumed after a fix.
    Blocked,
}

impl ExecutionStatus {
    /// All statuses, in lifecycle order.
    pub const ALL: [ExecutionStatus; 8] = [
        ExecutionStatus::Pending,
        ExecutionStatus::Running,
        ExecutionStatus::Suspended,
        ExecutionStatus::Succeeded,
        ExecutionStatus::Failed,
        ExecutionStatus::Cancelled,
        ExecutionStatus::TimedOut,
        ExecutionStatus::Blocked,
    ];

    /// The upper-case name used in the API and the stores.
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionStatus::Pending => "PENDING",
            ExecutionStatus::Running => "RUNNING",
            ExecutionStatus::Suspended => "SUSPENDED",
            ExecutionStatus::Succeeded => "SUCCEEDED",
            ExecutionStatus::Failed => "FAILED",
            ExecutionStatus::Cancelled => "CANCELLED",
            ExecutionStatus::TimedOut => "TIMED_OUT",
            ExecutionStatus::Blocked => "BLOCKED",
        }
    }

    /// Parses an upper-case status name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// True once the execution will never run again on its own.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            ExecutionStatus::Succeeded
                | ExecutionStatus::Failed
                | ExecutionStatus::Cancelled
                | ExecutionStatus::TimedOut
        )
    }
}

impl fmt::Display for ExecutionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A recorded error: what failed, in a form that survives serialization and is
/// re-raised identically on replay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorObject {
    /// A short type name, e.g. `PaymentDeclined` or `NonDeterministic`.
    #[serde(rename = "type")]
    pub error_type: String,
    /// The human-readable message.
    pub message: String,
    /// Optional structured details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl ErrorObject {
    /// An error with a type and a message.
    pub fn new(error_type: impl Into<String>, message: impl Into<String>) -> Self {
        ErrorObject {
            error_type: error_type.into(),
            message: message.into(),
            data: None,
        }
    }
}

impl fmt::Display for ErrorObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.error_type, self.message)
    }
}

/// One execution's meta record (`sk = meta`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Execution {
    /// The execution id.
    pub id: ExecutionId,
    /// The durable function it runs.
    pub function: String,
    /// The function version it started on (and is re-invoked on).
    pub version: String,
    /// Where it is in its life.
    pub status: ExecutionStatus,
    /// The input it was started with.
    pub input: Value,
    /// The output, once `SUCCEEDED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    /// The error, once `FAILED`, `TIMED_OUT` or `BLOCKED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorObject>,
    /// Incremented by every claim; the final update is conditional on it.
    pub epoch: u64,
    /// Incremented by every wake signal (event, callback); a suspension that
    /// missed one is turned into an immediate re-run.
    pub wakeups: u64,
    /// When the due index should hand it to a dispatcher: the wake time while
    /// `SUSPENDED`, the creation time while `PENDING`, the lease expiry while
    /// `RUNNING`. `None` when nothing is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_at: Option<Timestamp>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When the meta record last changed.
    pub updated_at: Timestamp,
    /// When it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<Timestamp>,
    /// When the store may delete it (finished executions only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
    /// Paused by an operator ([`crate::store::Store::set_paused`]): not
    /// dispatched until unpaused, whatever its status (`PENDING`, `RUNNING`
    /// while its invocation winds down, `SUSPENDED`). Signals are still
    /// recorded; an unpause makes it due at once.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,
    /// Dispatch priority, 1 (lowest) to 5 (highest); see [`StartOptions`].
    #[serde(default = "default_priority")]
    pub priority: u8,
    /// The key capacity is shared fairly between when its function is at
    /// its concurrency limit; see [`StartOptions`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fairness_key: Option<String>,
    /// A random secret chosen by the store at creation; callback tokens are
    /// derived from it. Never shown by the API.
    #[serde(default, skip_serializing)]
    pub seed: String,
}

/// The priority of a start that names none.
pub const DEFAULT_PRIORITY: u8 = 3;

fn default_priority() -> u8 {
    DEFAULT_PRIORITY
}

/// How a start asks to be scheduled ([`crate::store::Store::set_start_options`]):
/// higher priorities are dispatched first, and executions of a function at
/// its concurrency limit share its capacity fairly between fairness keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartOptions {
    /// 1 (lowest) to 5 (highest); 3 by default.
    pub priority: u8,
    /// Executions with the same key share one fair share of capacity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fairness_key: Option<String>,
}

impl Default for StartOptions {
    fn default() -> Self {
        StartOptions {
            priority: DEFAULT_PRIORITY,
            fairness_key: None,
        }
    }
}

impl StartOptions {
    /// Checks a priority given by a user: an integer from 1 to 5.
    pub fn parse_priority(v: &Value) -> Result<u8> {
        match v.as_u64() {
            Some(p @ 1..=5) => Ok(p as u8),
            _ => Err(StoreError::Invalid(format!(
                "priority {v} is not valid: use an integer from 1 (lowest) to 5 (highest); the default is 3"
            ))),
        }
    }

    /// Checks a fairness key given by a user: 1–128 characters, no `#`.
    pub fn check_fairness_key(key: &str) -> Result<()> {
        if key.is_empty() || key.len() > 128 || key.contains('#') {
            return Err(StoreError::Invalid(format!(
                "fairness key {key:?} is not valid: use 1-128 characters without '#'"
            )));
        }
        Ok(())
    }

    /// True when these are the defaults (nothing to write).
    pub fn is_default(&self) -> bool {
        *self == StartOptions::default()
    }
}

/// A new random execution seed (128 bits, hex).
pub fn new_seed() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// An event sent to an execution (`sk = ev#<seq>`), delivered in `seq` order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    /// Sortable position among the execution's events.
    pub seq: String,
    /// The event's name (what `wait_for_event` waits for).
    pub name: String,
    /// The event's payload.
    pub payload: Value,
    /// When it was sent.
    pub sent_at: Timestamp,
}

/// What a caller asks for when it starts an execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewExecution {
    /// The id (user's name or generated).
    pub id: ExecutionId,
    /// The durable function.
    pub function: String,
    /// The function version.
    pub version: String,
    /// The input.
    pub input: Value,
    /// The creation time (also its first `due_at`).
    pub now: Timestamp,
}

/// The kind of a durable operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OpKind {
    /// `ctx.step`
    Step,
    /// `ctx.sleep` / `ctx.sleep_until`
    Sleep,
    /// `ctx.create_callback`
    Callback,
    /// `ctx.wait_for_event`
    Event,
    /// `ctx.wait_for_condition`
    Condition,
    /// `ctx.child`, and each branch of `parallel` / item of `map`
    /// (journals recorded before `PARALLEL` and `MAP` existed also used it
    /// for the batch itself)
    Child,
    /// `ctx.invoke`
    Invoke,
    /// `ctx.parallel`: its branches are `CHILD` operations under it
    Parallel,
    /// `ctx.map`: its items are `CHILD` operations under it
    Map,
}

impl OpKind {
    /// The upper-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            OpKind::Step => "STEP",
            OpKind::Sleep => "SLEEP",
            OpKind::Callback => "CALLBACK",
            OpKind::Event => "EVENT",
            OpKind::Condition => "CONDITION",
            OpKind::Child => "CHILD",
            OpKind::Invoke => "INVOKE",
            OpKind::Parallel => "PARALLEL",
            OpKind::Map => "MAP",
        }
    }
}

impl fmt::Display for OpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an operation is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OpStatus {
    /// An attempt has started (at-most-once steps record this before running).
    Started,
    /// Waiting until `wake_at`: a timer, or a retry backoff after a failed attempt.
    Pending,
    /// Finished with a result.
    Succeeded,
    /// Finished with an error (retries exhausted or terminal).
    Failed,
    /// Cancelled.
    Cancelled,
    /// Timed out.
    TimedOut,
}

impl OpStatus {
    /// The upper-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            OpStatus::Started => "STARTED",
            OpStatus::Pending => "PENDING",
            OpStatus::Succeeded => "SUCCEEDED",
            OpStatus::Failed => "FAILED",
            OpStatus::Cancelled => "CANCELLED",
            OpStatus::TimedOut => "TIMED_OUT",
        }
    }

    /// True once the operation has its final result.
    pub fn is_final(self) -> bool {
        !matches!(self, OpStatus::Started | OpStatus::Pending)
    }
}

impl fmt::Display for OpStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One operation's record (`sk = op#<op id>`): its latest state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Operation {
    /// Deterministic id within the execution: `1`, `2`, `3.1`, ...
    pub id: String,
    /// What kind of operation.
    #[serde(rename = "type")]
    pub kind: OpKind,
    /// The name the handler gave it.
    pub name: String,
    /// Where it is in its life.
    pub status: OpStatus,
    /// The attempt this record describes (1-based; 0 for operations without attempts).
    pub attempt: u32,
    /// The result, once `SUCCEEDED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// The error of the last failed attempt, or the final error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorObject>,
    /// When the operation (its first attempt) started.
    pub started_at: Timestamp,
    /// When it reached its final status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<Timestamp>,
    /// When a `PENDING` operation is due: the timer's fire time or the next attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wake_at: Option<Timestamp>,
    /// Revision, starting at 1; every write is conditional on the previous one.
    pub rev: u64,
}

impl Operation {
    /// Size in bytes of the payloads this record carries, as serialized JSON.
    pub fn payload_bytes(&self) -> usize {
        let result = self.result.as_ref().map_or(0, json_len);
        let error = self.error.as_ref().map_or(0, |e| {
            e.message.len() + e.error_type.len() + e.data.as_ref().map_or(0, json_len)
        });
        result + error
    }
}

/// Sorts operation ids in start order within each context: `1 < 2 < 2.1 < 3 < 10`.
pub fn op_id_order(a: &str, b: &str) -> std::cmp::Ordering {
    // Compare segment by segment without allocating: this runs n·log n times
    // when a journal of thousands of operations is loaded.
    let mut x = a.split('.').map(|p| p.parse::<u64>().unwrap_or(u64::MAX));
    let mut y = b.split('.').map(|p| p.parse::<u64>().unwrap_or(u64::MAX));
    loop {
        match (x.next(), y.next()) {
            (None, None) => return std::cmp::Ordering::Equal,
            (None, Some(_)) => return std::cmp::Ordering::Less,
            (Some(_), None) => return std::cmp::Ordering::Greater,
            (Some(p), Some(q)) if p != q => return p.cmp(&q),
            _ => {}
        }
    }
}

/// Sorts operations into start order (see [`op_id_order`]), parsing each id once.
pub fn sort_operations(ops: &mut [Operation]) {
    ops.sort_by_cached_key(|o| {
        o.id.split('.')
            .map(|p| p.parse::<u64>().unwrap_or(u64::MAX))
            .collect::<Vec<_>>()
    });
}

/// An execution with every operation it has recorded, as loaded by one query.
#[derive(Debug, Clone, PartialEq)]
pub struct Journal {
    /// The meta record.
    pub execution: Execution,
    /// The operations, in start order.
    pub operations: Vec<Operation>,
    /// The events sent to it, in `seq` order (consumed or not).
    pub events: Vec<EventRecord>,
}

/// Serialized length of a JSON value.
pub fn json_len(v: &Value) -> usize {
    serialized_len(v)
}

/// Serialized JSON length of anything serializable (0 if it cannot be).
pub fn serialized_len<T: Serialize + ?Sized>(v: &T) -> usize {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Counter(0);
    match serde_json::to_writer(&mut c, v) {
        Ok(()) => c.0,
        Err(_) => 0,
    }
}

/// Checks a payload against [`MAX_PAYLOAD_BYTES`]; `what` names it in the error.
pub fn check_payload(what: &str, v: &Value) -> Result<()> {
    check_payload_within(what, v, MAX_PAYLOAD_BYTES)
}

/// Checks a payload against `limit` (a store's
/// [`payload_limit`](crate::store::Store::payload_limit)); `what` names it in
/// the error.
pub fn check_payload_within(what: &str, v: &Value, limit: usize) -> Result<()> {
    let size = json_len(v);
    if size > limit {
        return Err(StoreError::PayloadTooLarge {
            what: what.to_string(),
            size,
            limit,
        });
    }
    Ok(())
}

/// What to do about a payload over `limit`, for error messages: configure a
/// blob store where there is none, else keep large data elsewhere.
pub fn payload_limit_hint(limit: usize) -> &'static str {
    if limit < MAX_OFFLOADED_PAYLOAD_BYTES {
        "configure a blob store (DURAFN_BLOBS, see docs/payloads.md) to allow payloads \
         up to 64 MiB, or store large data elsewhere and pass a reference"
    } else {
        "payloads are offloaded to the blob store up to this limit; store larger data \
         elsewhere (e.g. S3) and pass a reference"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn op_ids_sort_in_start_order() {
        let mut ids = vec!["10", "2.1", "1", "2", "3", "2.10", "2.2"];
        ids.sort_by(|a, b| op_id_order(a, b));
        assert_eq!(ids, vec!["1", "2", "2.1", "2.2", "2.10", "3", "10"]);
    }

    #[test]
    fn execution_names_are_validated() {
        assert!(ExecutionId::new("order-1:retry_2.a").is_ok());
        assert!(ExecutionId::new("").is_err());
        assert!(ExecutionId::new("has space").is_err());
        assert!(ExecutionId::new("x".repeat(129)).is_err());
        let err = ExecutionId::new("a/b").unwrap_err().to_string();
        assert!(err.contains("a/b"), "{err}");
    }

    #[test]
    fn statuses_round_trip_by_name() {
        for st in ExecutionStatus::ALL {
            assert_eq!(ExecutionStatus::parse(st.as_str()), Some(st));
            let json = serde_json::to_string(&st).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", st.as_str()));
        }
    }

    #[test]
    fn batch_kinds_have_their_own_names() {
        for (kind, name) in [(OpKind::Parallel, "PARALLEL"), (OpKind::Map, "MAP")] {
            assert_eq!(kind.as_str(), name);
            let json = serde_json::to_string(&kind).unwrap_or_default();
            assert_eq!(json, format!("\"{name}\""));
            let back: OpKind = serde_json::from_str(&json).unwrap_or(OpKind::Step);
            assert_eq!(back, kind);
        }
    }

    #[test]
    fn payload_limit_is_enforced_with_a_clear_message() {
        let big = Value::String("x".repeat(MAX_PAYLOAD_BYTES + 1));
        let err = check_payload("step \"charge\" result", &big)
            .unwrap_err()
            .to_string();
        assert!(err.contains("step \"charge\" result"), "{err}");
        assert!(err.contains("4194304"), "{err}");
        assert!(check_payload("x", &Value::String("small".into())).is_ok());
    }

    #[test]
    fn due_shards_are_stable_and_in_range() {
        let id = ExecutionId::new("o-1").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(id.due_shard(), id.clone().due_shard());
        assert!(id.due_shard() < DUE_SHARDS);
    }
}
