//! What travels between [`HttpStore`](super::HttpStore) and
//! [`serve`](super::serve): one JSON object per call, one per answer.
//!
//! A request is `{"call": "put_operation", "id": "...", "op": {...}}`; an
//! answer is `{"ok": <the method's result>}` or `{"err": {"kind": ..., ...}}`.
//! Requests borrow what the caller holds ([`Cow`]), so the client does not
//! copy payloads before encoding them.

use std::borrow::Cow;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::error::StoreError;
use crate::model::{
    EventRecord, Execution, ExecutionId, HistoryEntry, NewExecution, Operation, Timestamp,
};
use crate::store::{
    Created, ExecutionPage, LeaseRequest, ListFilter, Outcome, QueueMessage, Schedule,
};

/// One store call.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "call", rename_all = "snake_case")]
#[allow(missing_docs)] // each variant is the `Store` method of the same name
pub enum Call<'a> {
    CreateExecution {
        new: Cow<'a, NewExecution>,
    },
    CreateAndClaim {
        new: Cow<'a, NewExecution>,
        lease_until: Timestamp,
    },
    GetExecution {
        id: Cow<'a, ExecutionId>,
    },
    LoadJournal {
        id: Cow<'a, ExecutionId>,
    },
    Claim {
        id: Cow<'a, ExecutionId>,
        now: Timestamp,
        lease_until: Timestamp,
    },
    PutOperation {
        id: Cow<'a, ExecutionId>,
        op: Cow<'a, Operation>,
    },
    PutHistory {
        id: Cow<'a, ExecutionId>,
        entry: Cow<'a, HistoryEntry>,
        keep: u32,
    },
    LoadHistory {
        id: Cow<'a, ExecutionId>,
    },
    Suspend {
        id: Cow<'a, ExecutionId>,
        epoch: u64,
        seen_wakeups: u64,
        wake_at: Option<Timestamp>,
        now: Timestamp,
    },
    Finish {
        id: Cow<'a, ExecutionId>,
        epoch: u64,
        outcome: Cow<'a, Outcome>,
        now: Timestamp,
    },
    SuspendWith {
        id: Cow<'a, ExecutionId>,
        epoch: u64,
        seen_wakeups: u64,
        ops: Cow<'a, [Operation]>,
        wake_at: Option<Timestamp>,
        now: Timestamp,
    },
    Wake {
        id: Cow<'a, ExecutionId>,
        now: Timestamp,
    },
    Due {
        shard: u32,
        now: Timestamp,
        limit: usize,
    },
    PurgeExpired {
        now: Timestamp,
    },
    ListExecutions {
        filter: Cow<'a, ListFilter>,
    },
    SendEvent {
        id: Cow<'a, ExecutionId>,
        name: Cow<'a, str>,
        payload: Cow<'a, Value>,
        now: Timestamp,
    },
    Resume {
        id: Cow<'a, ExecutionId>,
        now: Timestamp,
    },
    Cancel {
        id: Cow<'a, ExecutionId>,
        now: Timestamp,
    },
    SetPaused {
        id: Cow<'a, ExecutionId>,
        paused: bool,
        now: Timestamp,
    },
    SetStartOptions {
        id: Cow<'a, ExecutionId>,
        options: Cow<'a, crate::model::StartOptions>,
        now: Timestamp,
    },
    CreateSchedule {
        schedule: Cow<'a, Schedule>,
    },
    UpdateSchedule {
        schedule: Cow<'a, Schedule>,
    },
    GetSchedule {
        name: Cow<'a, str>,
    },
    ListSchedules,
    DueSchedules {
        now: Timestamp,
        limit: usize,
    },
    SendMessage {
        message: Cow<'a, QueueMessage>,
    },
    ReceiveMessages {
        queue: Cow<'a, str>,
        now: Timestamp,
        hidden_until: Timestamp,
        max: usize,
    },
    DeleteMessage {
        queue: Cow<'a, str>,
        id: Cow<'a, str>,
        receipt: Cow<'a, str>,
    },
    ChangeMessageVisibility {
        queue: Cow<'a, str>,
        id: Cow<'a, str>,
        receipt: Cow<'a, str>,
        visible_at: Timestamp,
        now: Timestamp,
    },
    QueueStats {
        queue: Cow<'a, str>,
        now: Timestamp,
    },
    PurgeQueue {
        queue: Cow<'a, str>,
    },
    TakeLease {
        request: Cow<'a, LeaseRequest>,
        now: Timestamp,
    },
    ReleaseLease {
        group: Cow<'a, str>,
        name: Cow<'a, str>,
        owner: Cow<'a, str>,
    },
    ListLeases {
        group: Cow<'a, str>,
    },
    PutAttribute {
        id: Cow<'a, ExecutionId>,
        attr: Cow<'a, crate::store::SearchAttribute>,
    },
    FindByAttribute {
        query: Cow<'a, crate::store::AttributeQuery>,
    },
    /// History records the client deferred (best effort, see
    /// [`HttpStore`](super::HttpStore)'s `put_history`), written beside
    /// `then`, whose answer is the answer.
    Batched {
        history: Vec<DeferredHistory>,
        then: Box<Call<'a>>,
    },
}

/// One deferred `put_history` call.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeferredHistory {
    /// The execution.
    pub id: ExecutionId,
    /// The record.
    pub entry: HistoryEntry,
    /// How many records its series keeps.
    pub keep: u32,
}

/// An answer: the method's result or its error.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer<T> {
    /// The method's result.
    Ok(T),
    /// The method's error.
    Err(WireError),
}

/// A [`StoreError`] on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireError {
    /// `not_found`, `conflict`, `payload_too_large`, `invalid`, `transient` or `backend`.
    pub kind: String,
    /// The error's message (for `not_found` and `conflict`: the execution id).
    pub message: String,
    /// `conflict`: what differs (`input` or `function`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub what: Option<String>,
    /// `payload_too_large`: its size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<usize>,
    /// `payload_too_large`: the limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

impl From<&StoreError> for WireError {
    fn from(e: &StoreError) -> Self {
        let plain = |kind: &str, message: &str| WireError {
            kind: kind.into(),
            message: message.into(),
            what: None,
            size: None,
            limit: None,
        };
        match e {
            StoreError::NotFound(id) => plain("not_found", id),
            StoreError::Conflict { id, what } => WireError {
                what: Some((*what).into()),
                ..plain("conflict", id)
            },
            StoreError::PayloadTooLarge { what, size, limit } => WireError {
                size: Some(*size),
                limit: Some(*limit),
                ..plain("payload_too_large", what)
            },
            StoreError::Invalid(m) => plain("invalid", m),
            StoreError::Transient(m) => plain("transient", m),
            StoreError::Backend(m) => plain("backend", m),
        }
    }
}

impl From<WireError> for StoreError {
    fn from(e: WireError) -> Self {
        match e.kind.as_str() {
            "not_found" => StoreError::NotFound(e.message),
            "conflict" => StoreError::Conflict {
                id: e.message,
                what: if e.what.as_deref() == Some("function") {
                    "function"
                } else {
                    "input"
                },
            },
            "payload_too_large" => StoreError::PayloadTooLarge {
                what: e.message,
                size: e.size.unwrap_or(0),
                limit: e.limit.unwrap_or(0),
            },
            "invalid" => StoreError::Invalid(e.message),
            "transient" => StoreError::Transient(e.message),
            _ => StoreError::Backend(e.message),
        }
    }
}

/// An [`Execution`] with its secret seed, which its own `Serialize` leaves
/// out (so the public API never shows it). The seed must cross this wire: a
/// handler derives callback tokens from it.
#[derive(Debug, Clone, PartialEq)]
pub struct SeededExecution(pub Execution);

#[derive(Serialize)]
struct SeededOut<'a> {
    #[serde(flatten)]
    execution: &'a Execution,
    seed: &'a str,
}

#[derive(Deserialize)]
struct SeededIn {
    #[serde(flatten)]
    execution: Execution,
    #[serde(default)]
    seed: String,
}

impl Serialize for SeededExecution {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        SeededOut {
            execution: &self.0,
            seed: &self.0.seed,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for SeededExecution {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let SeededIn {
            mut execution,
            seed,
        } = SeededIn::deserialize(d)?;
        execution.seed = seed;
        Ok(SeededExecution(execution))
    }
}

/// [`Created`] on the wire.
#[derive(Debug, Serialize, Deserialize)]
pub struct WireCreated {
    /// True for [`Created::New`].
    pub new: bool,
    /// The execution.
    pub execution: SeededExecution,
}

impl From<Created> for WireCreated {
    fn from(c: Created) -> Self {
        match c {
            Created::New(e) => WireCreated {
                new: true,
                execution: SeededExecution(e),
            },
            Created::Existing(e) => WireCreated {
                new: false,
                execution: SeededExecution(e),
            },
        }
    }
}

impl From<WireCreated> for Created {
    fn from(c: WireCreated) -> Self {
        if c.new {
            Created::New(c.execution.0)
        } else {
            Created::Existing(c.execution.0)
        }
    }
}

/// A [`Journal`](crate::model::Journal) on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireJournal {
    /// The meta record.
    pub execution: SeededExecution,
    /// The operations, in start order.
    pub operations: Vec<Operation>,
    /// The events.
    pub events: Vec<EventRecord>,
}

impl From<crate::model::Journal> for WireJournal {
    fn from(j: crate::model::Journal) -> Self {
        WireJournal {
            execution: SeededExecution(j.execution),
            operations: j.operations,
            events: j.events,
        }
    }
}

impl From<WireJournal> for crate::model::Journal {
    fn from(j: WireJournal) -> Self {
        crate::model::Journal {
            execution: j.execution.0,
            operations: j.operations,
            events: j.events,
        }
    }
}

/// An [`ExecutionPage`] on the wire.
#[derive(Debug, Serialize, Deserialize)]
pub struct WirePage {
    /// The executions.
    pub executions: Vec<SeededExecution>,
    /// The next page's cursor.
    pub next_cursor: Option<String>,
}

impl From<ExecutionPage> for WirePage {
    fn from(p: ExecutionPage) -> Self {
        WirePage {
            executions: p.executions.into_iter().map(SeededExecution).collect(),
            next_cursor: p.next_cursor,
        }
    }
}

impl From<WirePage> for ExecutionPage {
    fn from(p: WirePage) -> Self {
        ExecutionPage {
            executions: p.executions.into_iter().map(|e| e.0).collect(),
            next_cursor: p.next_cursor,
        }
    }
}
