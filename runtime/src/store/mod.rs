//! The `Store` trait and its backends.
//!
//! Every backend keeps the same semantics, checked by one contract suite
//! ([`contract`], feature `testing`) run against each of them:
//! - creating an execution is idempotent by id and input;
//! - claiming is a conditional update that bumps the `epoch` and takes a lease;
//! - operation writes are conditional on the previous revision (first writer wins);
//! - suspending and finishing are conditional on the claimant's `epoch`;
//! - the due index answers "what is due at time T" per shard, without scans.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use crate::error::{Result, StoreError};
use crate::model::{
    ErrorObject, EventRecord, Execution, ExecutionId, ExecutionStatus, HistoryEntry, Journal,
    NewExecution, Operation, Timestamp,
};

pub mod attributes;
pub mod blob;
#[cfg(feature = "testing")]
pub mod contract;
#[cfg(feature = "dynamodb")]
pub mod dynamodb;
#[cfg(feature = "testing")]
mod faulty;
mod offload;
pub mod queue;
pub mod remote;
mod retrying;
pub mod sqlite;
mod waking;
mod wrapper;

pub use attributes::{AttributePage, AttributeQuery, SearchAttribute};
#[cfg(feature = "dynamodb")]
pub use dynamodb::DynamoStore;
#[cfg(feature = "testing")]
pub use faulty::FaultyStore;
pub use offload::{
    OFFLOAD_THRESHOLD_BYTES, OffloadingStore, REFERENCE_KEY, holds_references, with_blobs_from_env,
};
pub use queue::{Lease, LeaseRequest, LeaseTake, QueueMessage, QueueStats};
pub use remote::HttpStore;
pub use retrying::RetryingStore;
pub use sqlite::SqliteStore;
pub use waking::WakingStore;
pub use wrapper::{InnerCall, Wrapper};
// Schedule records are model types; re-exported where they were first.
pub use crate::model::{CatchUp, MAX_SCHEDULE_INPUT_BYTES, Overlap, Schedule};
pub use waking::WakeSink;

/// The answer to [`Store::create_execution`].
#[derive(Debug, Clone, PartialEq)]
pub enum Created {
    /// A new execution was created.
    New(Execution),
    /// An execution with the same id, function and input already existed.
    Existing(Execution),
}

impl Created {
    /// The execution, new or existing.
    pub fn execution(&self) -> &Execution {
        match self {
            Created::New(e) | Created::Existing(e) => e,
        }
    }
}

/// The answer to [`Store::put_operation`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
// The common variant is the small one, and conflicts are rare: no need to box.
#[allow(clippy::large_enum_variant)]
pub enum OpWrite {
    /// The record was written.
    Written,
    /// Another writer got there first; this is the record it wrote. First writer
    /// wins: the caller adopts it.
    Conflict(Operation),
}

impl OpWrite {
    /// The other writer's record when it differs from `mine`; `None` when
    /// `mine` is what the store holds (written now, or found as a retried
    /// write finds its own).
    pub fn theirs(self, mine: &Operation) -> Option<Operation> {
        match self {
            OpWrite::Conflict(current) if current != *mine => Some(current),
            _ => None,
        }
    }
}

/// The answer to an epoch-conditional update ([`Store::suspend`], [`Store::finish`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transition {
    /// Applied (or had already been applied by this same claimant).
    Done,
    /// A newer claim owns the execution, or it is no longer running: nothing changed.
    Stale,
}

/// The answer to [`Store::suspend_with`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(clippy::large_enum_variant)]
pub enum SuspendWrite {
    /// The operations were written and the execution suspended.
    Done,
    /// A newer claim owns the execution, or it is no longer running: it did
    /// not suspend (operations before this was found may have been written).
    Stale,
    /// Another writer had recorded this operation differently: nothing
    /// after it was written and the execution did not suspend.
    Conflict(Operation),
}

impl From<Transition> for SuspendWrite {
    fn from(t: Transition) -> Self {
        match t {
            Transition::Done => SuspendWrite::Done,
            Transition::Stale => SuspendWrite::Stale,
        }
    }
}

/// An entry of the due index.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DueItem {
    /// The execution that is due.
    pub id: ExecutionId,
    /// When it became due.
    pub due_at: Timestamp,
}

/// How an invocation ends an execution.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Outcome {
    /// `SUCCEEDED`, `FAILED`, `CANCELLED`, `TIMED_OUT` or `BLOCKED`.
    pub status: ExecutionStatus,
    /// The output, when `SUCCEEDED`.
    pub output: Option<Value>,
    /// The error otherwise.
    pub error: Option<ErrorObject>,
    /// When the store may delete the execution (`None`: keep it).
    pub expires_at: Option<Timestamp>,
}

/// Durable storage for executions and their journals.
///
/// Every method is one conditional single-item write or one query, so the
/// DynamoDB backend needs no transactions (ScyllaDB Alternator has none).
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// A short name for logs (`sqlite`, `dynamodb`).
    fn backend(&self) -> &'static str;

    /// Whether [`Store::create_and_claim`] is one atomic write (SQLite: one
    /// commit). A backend without transactions (DynamoDB, Alternator) creates
    /// and then claims, and says so here; the contract suite holds each
    /// backend to what it declares.
    fn atomic_create_and_claim(&self) -> bool;

    /// The largest payload (execution input or output, operation result,
    /// event payload) this store takes, as serialized JSON:
    /// [`crate::model::MAX_PAYLOAD_BYTES`] for a backend, more for a store
    /// that offloads large payloads to a blob store ([`OffloadingStore`]).
    /// The SDK checks values against it before it writes them.
    fn payload_limit(&self) -> usize;

    /// Creates an execution in `PENDING`, due at once. Idempotent: the same id
    /// with the same function and input returns the existing execution; a
    /// different input or function is [`StoreError::Conflict`].
    async fn create_execution(&self, new: &NewExecution) -> Result<Created>;

    /// Reads an execution's meta record.
    async fn get_execution(&self, id: &ExecutionId) -> Result<Option<Execution>>;

    /// Loads an execution with all its operations, in start order, in one query.
    async fn load_journal(&self, id: &ExecutionId) -> Result<Option<Journal>>;

    /// Claims an execution for one invocation if it is due: `PENDING` or
    /// `SUSPENDED` with `due_at <= now`, or `RUNNING` with an expired lease.
    /// Bumps the epoch, sets `RUNNING` and the lease (`due_at = lease_until`).
    /// Returns the claimed execution, or `None` when it is not claimable.
    async fn claim(
        &self,
        id: &ExecutionId,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Option<Execution>>;

    /// Creates an execution (as [`Store::create_execution`]) and claims it at
    /// once for the caller (as [`Store::claim`] at `new.now`), for a starter
    /// that runs what it starts (an HTTP route, a queue message, a direct
    /// invoke). The claim is `None` when the execution existed and is not due.
    /// Where [`Store::atomic_create_and_claim`] is true, no other claimer can
    /// take the new execution in between.
    async fn create_and_claim(
        &self,
        new: &NewExecution,
        lease_until: Timestamp,
    ) -> Result<(Created, Option<Execution>)>;

    /// [`Store::claim`], answering with the claimed execution's journal too
    /// when the store reads it in the same call (SQLite: in the claim's own
    /// transaction). `None` for the journal means the caller reads it
    /// ([`Store::load_journal`]); a backend whose claim and query are two
    /// requests (DynamoDB) leaves it to the caller, so a dispatcher does not
    /// read what a handler may not need.
    async fn claim_with_journal(
        &self,
        id: &ExecutionId,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Option<(Execution, Option<Journal>)>> {
        Ok(self
            .claim(id, now, lease_until)
            .await?
            .map(|claimed| (claimed, None)))
    }

    /// Writes an operation record. `op.rev == 1` creates it if absent; a higher
    /// `rev` replaces revision `rev - 1`. If another writer got there first, the
    /// stored record is returned as [`OpWrite::Conflict`].
    async fn put_operation(&self, id: &ExecutionId, op: &Operation) -> Result<OpWrite>;

    /// Writes a history record of an execution (an attempt, an invocation;
    /// see [`crate::model::history`]), replacing the one with its key, and
    /// deletes the record `keep` places before it in its series. Not
    /// conditional and never read by replay; an entry of an execution that
    /// does not exist is still written (it expires or is purged with nothing).
    async fn put_history(&self, id: &ExecutionId, entry: &HistoryEntry, keep: u32) -> Result<()>;

    /// Every history record of an execution, in key order (one query).
    async fn load_history(&self, id: &ExecutionId) -> Result<Vec<HistoryEntry>>;

    /// Ends an invocation by suspending: conditional on `epoch` and `RUNNING`.
    /// `due_at` becomes `wake_at` — or `now` if a wake signal arrived since the
    /// claim (`wakeups != seen_wakeups`), so no event is missed.
    async fn suspend(
        &self,
        id: &ExecutionId,
        epoch: u64,
        seen_wakeups: u64,
        wake_at: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<Transition>;

    /// Ends an execution (or blocks it): conditional on `epoch` and `RUNNING`.
    async fn finish(
        &self,
        id: &ExecutionId,
        epoch: u64,
        outcome: &Outcome,
        now: Timestamp,
    ) -> Result<Transition>;

    /// Writes `ops` (each as [`Store::put_operation`]) and then suspends
    /// the execution (as [`Store::suspend`]), in one call: the records of
    /// the operations the invocation parks on (a timer, a retry's backoff)
    /// travel with its suspension. Stops at the first operation another
    /// writer recorded differently ([`SuspendWrite::Conflict`]; an identical
    /// record counts as written, as a retried write finds its own). SQLite
    /// does it in one commit; the default makes the calls one by one.
    async fn suspend_with(
        &self,
        id: &ExecutionId,
        epoch: u64,
        seen_wakeups: u64,
        ops: &[Operation],
        wake_at: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<SuspendWrite> {
        for op in ops {
            if let Some(theirs) = self.put_operation(id, op).await?.theirs(op) {
                return Ok(SuspendWrite::Conflict(theirs));
            }
        }
        Ok(self
            .suspend(id, epoch, seen_wakeups, wake_at, now)
            .await?
            .into())
    }

    /// Signals that something the execution may wait for has arrived: bumps
    /// `wakeups` and, if `SUSPENDED`, makes it due now. Returns false if the
    /// execution does not exist.
    async fn wake(&self, id: &ExecutionId, now: Timestamp) -> Result<bool>;

    /// Up to `limit` executions of `shard` due at or before `now`, earliest first.
    async fn due(&self, shard: u32, now: Timestamp, limit: usize) -> Result<Vec<DueItem>>;

    /// Deletes finished executions whose `expires_at` has passed. Returns how
    /// many were deleted (backends with native TTL may return 0).
    async fn purge_expired(&self, now: Timestamp) -> Result<u64>;

    /// Lists executions, newest first, filtered, one page at a time.
    async fn list_executions(&self, filter: &ListFilter) -> Result<ExecutionPage>;

    /// Sends an event to an execution: stores it (delivered in order, consumed
    /// at most once by `wait_for_event`) and wakes the execution.
    async fn send_event(
        &self,
        id: &ExecutionId,
        name: &str,
        payload: &Value,
        now: Timestamp,
    ) -> Result<SentEvent>;

    /// Resumes a `FAILED` or `BLOCKED` execution from its last checkpoint: it
    /// becomes `SUSPENDED` and due now, its error cleared. Other statuses are
    /// left alone. Returns the execution as it is afterwards.
    async fn resume(&self, id: &ExecutionId, now: Timestamp) -> Result<Option<Execution>>;

    /// Cancels an execution that has not finished: it becomes `CANCELLED` and
    /// leaves the due index; a running invocation's final update then finds it
    /// stale. Returns the execution as it is afterwards (`None`: no such id).
    async fn cancel(&self, id: &ExecutionId, now: Timestamp) -> Result<Option<Execution>>;

    /// Pauses (`paused`) or unpauses an execution. A paused execution is not
    /// claimed and leaves the due index; its signals (events, callbacks,
    /// timers) are still recorded, and a running invocation may still
    /// suspend or finish it (finishing clears the pause). Only `PENDING`,
    /// `RUNNING` and `SUSPENDED` executions can be paused. Unpausing makes a
    /// `PENDING` or `SUSPENDED` one due now (so it catches up on what
    /// arrived meanwhile); a `RUNNING` one is due again at its lease's end.
    /// Returns the execution as it is afterwards (`None`: no such id).
    async fn set_paused(
        &self,
        id: &ExecutionId,
        paused: bool,
        now: Timestamp,
    ) -> Result<Option<Execution>>;

    /// Records a start's priority and fairness key
    /// ([`crate::model::StartOptions`]) on an unfinished execution (one
    /// conditional write; a start with the defaults needs none). Returns
    /// the execution as it is afterwards (`None`: no such id).
    async fn set_start_options(
        &self,
        id: &ExecutionId,
        options: &crate::model::StartOptions,
        now: Timestamp,
    ) -> Result<Option<Execution>>;

    /// Creates a schedule record (`rev` 1) if none has its name; otherwise
    /// answers [`ScheduleWrite::Conflict`] with the stored one.
    async fn create_schedule(&self, schedule: &Schedule) -> Result<ScheduleWrite>;

    /// Replaces revision `schedule.rev - 1` of a schedule with `schedule`
    /// (first writer wins: on a newer revision the stored record comes back
    /// as [`ScheduleWrite::Conflict`]).
    async fn update_schedule(&self, schedule: &Schedule) -> Result<ScheduleWrite>;

    /// Reads a schedule record.
    async fn get_schedule(&self, name: &str) -> Result<Option<Schedule>>;

    /// Every schedule record, by name (without scanning executions).
    async fn list_schedules(&self) -> Result<Vec<Schedule>>;

    /// Up to `limit` schedules whose `due_at` is at or before `now`, earliest
    /// first: the schedules' part of the due index.
    async fn due_schedules(&self, now: Timestamp, limit: usize) -> Result<Vec<Schedule>>;

    /// Stores a queue message (`receipt` `None`, `receive_count` 0). Idempotent
    /// by `(queue, id)`: false when a message with that id was already there.
    async fn send_message(&self, message: &QueueMessage) -> Result<bool>;

    /// Receives up to `max` messages of `queue` visible at `now`, earliest
    /// visible first: each is claimed with a write conditional on its
    /// `visible_at` and receipt as read (so two receivers never share a
    /// receive), its `receive_count` bumped, a new `receipt` set and hidden
    /// until `hidden_until`.
    async fn receive_messages(
        &self,
        queue: &str,
        now: Timestamp,
        hidden_until: Timestamp,
        max: usize,
    ) -> Result<Vec<QueueMessage>>;

    /// Deletes a message if `receipt` is its latest receive's. False otherwise.
    async fn delete_message(&self, queue: &str, id: &str, receipt: &str) -> Result<bool>;

    /// Makes a received message visible at `visible_at`, if `receipt` is its
    /// latest receive's and it is still hidden at `now`. False otherwise.
    async fn change_message_visibility(
        &self,
        queue: &str,
        id: &str,
        receipt: &str,
        visible_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool>;

    /// A queue's counts at `now`.
    async fn queue_stats(&self, queue: &str, now: Timestamp) -> Result<QueueStats>;

    /// Deletes every message of `queue`; returns how many.
    async fn purge_queue(&self, queue: &str) -> Result<u64>;

    /// Takes or renews a lease: written when absent, expired at `now`, already
    /// the requester's, or held by `steal_from`. Otherwise answers the holder's.
    async fn take_lease(&self, request: &LeaseRequest, now: Timestamp) -> Result<LeaseTake>;

    /// Deletes a lease if `owner` holds it. False otherwise.
    async fn release_lease(&self, group: &str, name: &str, owner: &str) -> Result<bool>;

    /// Every lease of `group` (live or expired), by name.
    async fn list_leases(&self, group: &str) -> Result<Vec<Lease>>;

    /// Sets a search attribute of an execution (replacing its value, if it
    /// had one) and indexes it ([`attributes`]). Not conditional.
    async fn put_attribute(&self, id: &ExecutionId, attr: &SearchAttribute) -> Result<()>;

    /// Executions whose attribute has a value, newest first, one page at a
    /// time, from the index (no scan of executions).
    async fn find_by_attribute(&self, query: &AttributeQuery) -> Result<AttributePage>;
}

/// The answer to [`Store::send_event`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SentEvent {
    /// Stored and the execution woken.
    Delivered(EventRecord),
    /// No such execution.
    NotFound,
    /// The execution has ended; nothing was stored.
    Ended(ExecutionStatus),
}

/// What [`Store::list_executions`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ListFilter {
    /// Only executions of this function.
    pub function: Option<String>,
    /// Only executions in this status.
    pub status: Option<ExecutionStatus>,
    /// Only executions created at or after this time.
    pub created_after: Option<Timestamp>,
    /// Only executions created before this time.
    pub created_before: Option<Timestamp>,
    /// Only executions whose id contains this text.
    pub id_contains: Option<String>,
    /// Page size (at most 1000; 0 means 100).
    pub limit: usize,
    /// Where the previous page stopped.
    pub cursor: Option<String>,
}

/// One page of executions.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionPage {
    /// The executions, newest first.
    pub executions: Vec<Execution>,
    /// Pass this as `cursor` for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// The answer to [`Store::create_schedule`] and [`Store::update_schedule`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
// Conflicts are rare and the record is small enough: no need to box.
#[allow(clippy::large_enum_variant)]
pub enum ScheduleWrite {
    /// The record was written.
    Written,
    /// Another writer got there first; this is the stored record.
    Conflict(Schedule),
    /// No such schedule (update only).
    Missing,
}

/// Checks a schedule record before it is written.
pub(crate) fn validate_schedule(s: &Schedule) -> Result<()> {
    crate::model::validate_schedule_name(&s.name)?;
    if s.rev == 0 {
        return Err(StoreError::Invalid(format!(
            "schedule {} has revision 0; revisions start at 1",
            s.name
        )));
    }
    let size = crate::model::json_len(&s.input);
    if size > MAX_SCHEDULE_INPUT_BYTES {
        return Err(StoreError::PayloadTooLarge {
            what: format!("schedule {} input", s.name),
            size,
            limit: MAX_SCHEDULE_INPUT_BYTES,
        });
    }
    Ok(())
}

/// Opens a store from a URL, without any I/O:
/// - `sqlite://PATH`: a file, created if missing;
/// - `dynamodb://TABLE?endpoint=URL&region=REGION` (feature `dynamodb`;
///   `endpoint` and `region` optional): see [`DynamoStore::open`]. The client
///   is configured at once when an endpoint is given (credentials from the
///   environment, else `x`/`x` for DynamoDB Local), otherwise from the default
///   AWS chain on first use; the table is created on first use if missing;
/// - `http://HOST:PORT/PATH`: another process's store, served over HTTP
///   ([`remote`]; the emulator gives its handler processes such a URL);
/// - `http+unix://SOCKET/PATH`: the same on a Unix domain socket (the
///   socket's path percent-encoded; the emulator's `DURAFN_STORE_TRANSPORT=unix`).
///
/// [`open_async`] does the same but also connects (and creates the table) before
/// it returns, so configuration and connection errors surface at once.
pub fn open(url: &str) -> Result<Arc<dyn Store>> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        if path.is_empty() {
            return Err(StoreError::Invalid(
                "store URL sqlite:// needs a file path, e.g. sqlite://.durafn/durafn.db".into(),
            ));
        }
        return Ok(Arc::new(SqliteStore::open(path)?));
    }
    if url.starts_with("dynamodb://") {
        #[cfg(feature = "dynamodb")]
        return Ok(Arc::new(DynamoStore::open(url)?));
        #[cfg(not(feature = "dynamodb"))]
        return Err(StoreError::Invalid(format!(
            "store URL {url:?} needs the DynamoDB backend: build durafn-runtime with feature \"dynamodb\""
        )));
    }
    if url.starts_with("http://") || url.starts_with(remote::UNIX_SCHEME) {
        return Ok(Arc::new(HttpStore::open(url)?));
    }
    Err(StoreError::Invalid(format!(
        "unsupported store URL {url:?}: use sqlite://PATH, dynamodb://TABLE?endpoint=URL&region=REGION, http://HOST:PORT/PATH or http+unix://SOCKET/PATH"
    )))
}

/// Opens a store like [`open`], and for `dynamodb://` also connects and creates
/// the table if it is missing before returning.
pub async fn open_async(url: &str) -> Result<Arc<dyn Store>> {
    #[cfg(feature = "dynamodb")]
    if url.starts_with("dynamodb://") {
        return Ok(Arc::new(DynamoStore::connect(url).await?));
    }
    open(url)
}

/// Checks the parts of a create request every backend validates the same way.
pub(crate) fn validate_new(new: &NewExecution) -> Result<()> {
    if new.function.is_empty() {
        return Err(StoreError::Invalid(
            "function name must not be empty".into(),
        ));
    }
    crate::model::check_payload("execution input", &new.input)
}

/// Checks an operation record before it is written.
pub(crate) fn validate_op(op: &Operation) -> Result<()> {
    if op.rev == 0 {
        return Err(StoreError::Invalid(format!(
            "operation {} has revision 0; revisions start at 1",
            op.id
        )));
    }
    let size = op.payload_bytes();
    if size > crate::model::MAX_PAYLOAD_BYTES {
        return Err(StoreError::PayloadTooLarge {
            what: format!("{} {:?} (operation {}) payload", op.kind, op.name, op.id),
            size,
            limit: crate::model::MAX_PAYLOAD_BYTES,
        });
    }
    Ok(())
}

/// Checks an outcome's payloads before it is written.
pub(crate) fn validate_outcome(outcome: &Outcome) -> Result<()> {
    if let Some(out) = &outcome.output {
        crate::model::check_payload("execution output", out)?;
    }
    Ok(())
}
