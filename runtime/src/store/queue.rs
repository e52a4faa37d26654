//! Queue messages and leases: the records behind durable SQS queues, shard
//! leases and concurrency slots. Both are single-item conditional writes, like
//! everything else in the store.
//!
//! A **queue message** is one record per message (`q#<queue>` / `m#<id>` in
//! DynamoDB, with its `visible_at` in the `due` GSI under partition
//! `q#<queue>`); a receive is a conditional claim of each visible message
//! (its `visible_at` and receipt as read), so two receivers never both get
//! the same receive.
//!
//! A **lease** is one record per `(group, name)` held by an `owner` until a
//! time: taken when absent, expired, already the taker's, or held by the
//! owner the taker names as gone ([`LeaseRequest::steal_from`]).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Result, StoreError};
use crate::model::Timestamp;

/// One message of a durable queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueMessage {
    /// The queue's name.
    pub queue: String,
    /// The message id (unique in its queue).
    pub id: String,
    /// What the queue's owner stores: body, attributes, digests.
    pub body: Value,
    /// When it was sent.
    pub sent_at: Timestamp,
    /// When it can be received (next).
    pub visible_at: Timestamp,
    /// How many times it has been received.
    pub receive_count: u32,
    /// When it was first received.
    pub first_received_at: Option<Timestamp>,
    /// The latest receive's receipt (`None` until received).
    pub receipt: Option<String>,
}

/// A queue's counts (`GetQueueAttributes`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueStats {
    /// Messages that can be received now (`ApproximateNumberOfMessages`).
    pub visible: u64,
    /// Messages received and hidden (`ApproximateNumberOfMessagesNotVisible`).
    pub in_flight: u64,
    /// Messages sent with a delay that has not passed.
    pub delayed: u64,
    /// When the next hidden message becomes visible.
    pub next_visible_at: Option<Timestamp>,
}

/// The largest queue message body the store accepts, in bytes of JSON.
pub const MAX_QUEUE_MESSAGE_BYTES: usize = 300_000;

/// A lease record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The group (`dispatch`, `limit#<function>`): one partition, listed together.
    pub group: String,
    /// The lease's name in its group (`shard#03`, `member#<replica>`).
    pub name: String,
    /// Who holds it.
    pub owner: String,
    /// Until when (it is free afterwards).
    pub until: Timestamp,
}

/// What [`Store::take_lease`](super::Store::take_lease) asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRequest {
    /// The lease's group.
    pub group: String,
    /// The lease's name.
    pub name: String,
    /// The taker.
    pub owner: String,
    /// Held until then.
    pub until: Timestamp,
    /// Take it also from this owner, known to be gone (a slot held by an
    /// execution that has ended).
    pub steal_from: Option<String>,
}

/// The answer to [`Store::take_lease`](super::Store::take_lease).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaseTake {
    /// The taker holds it now (taken or renewed).
    Taken(Lease),
    /// Someone else holds it: this is their lease.
    Held(Lease),
}

impl LeaseTake {
    /// Whether the taker holds it.
    pub fn is_taken(&self) -> bool {
        matches!(self, LeaseTake::Taken(_))
    }
}

/// Checks a queue message before it is written.
pub(crate) fn validate_message(m: &QueueMessage) -> Result<()> {
    if m.queue.is_empty() || m.id.is_empty() || m.queue.contains('#') {
        return Err(StoreError::Invalid(format!(
            "queue message needs a queue name without '#' and an id (queue {:?}, id {:?})",
            m.queue, m.id
        )));
    }
    let size = crate::model::json_len(&m.body);
    if size > MAX_QUEUE_MESSAGE_BYTES {
        return Err(StoreError::PayloadTooLarge {
            what: format!("queue {} message {}", m.queue, m.id),
            size,
            limit: MAX_QUEUE_MESSAGE_BYTES,
        });
    }
    Ok(())
}

/// Checks a lease request before it is written.
pub(crate) fn validate_lease(r: &LeaseRequest) -> Result<()> {
    if r.group.is_empty() || r.name.is_empty() || r.owner.is_empty() {
        return Err(StoreError::Invalid(format!(
            "a lease needs a group, a name and an owner (got {:?} / {:?} / {:?})",
            r.group, r.name, r.owner
        )));
    }
    Ok(())
}

/// A fresh receipt for a receive.
pub(crate) fn new_receipt() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Whether a lease record lets `r` take it at `now`.
pub(crate) fn lease_free_for(current: &Lease, r: &LeaseRequest, now: Timestamp) -> bool {
    current.until < now
        || current.owner == r.owner
        || r.steal_from.as_deref() == Some(&current.owner)
}
