//! Flow control per function (template `Metadata.Durafn`): **throttle**,
//! **debounce** and **batching**, applied by the dispatcher when an
//! execution is first claimed, through lease records in the store (single-item
//! conditional writes), so they hold across replicas.
//!
//! - **Throttle** (`Throttle: {Limit, Period, Key?}`): at most `Limit`
//!   executions of the function (per key value) start in any `Period`. Each
//!   start takes one of `Limit` slots (`throttle#<function>[#<key>]`,
//!   `slot#<n>`), held for `Period` from the moment it started; a start that
//!   finds none free waits as `PENDING` until the earliest slot frees.
//!   Nothing is dropped.
//! - **Debounce** (`Debounce: {Period, Key?}`): a start waits `Period`; a
//!   later start of the same key within that time replaces it. The latest
//!   start holds the record `debounce#<function>[#<key>]` / `last` (its
//!   `until` is its creation time + `Period`, which orders starts); an
//!   earlier one, at the end of its wait, finds it is not the latest and
//!   ends `CANCELLED` with the attribute `debounced_by` = the latest.
//! - **Batching** (`Batch: {MaxSize, Timeout, Key?}`): starts are collected
//!   and run as one **batch execution** whose input is the list
//!   `[{"id": <start>, "input": <its input>}, …]`, oldest first, when
//!   `MaxSize` have gathered or `Timeout` after the oldest. Each start is a
//!   **member** record (`batch#<function>[#<key>]` / `<created>#<id>`, owned
//!   by the start while open, then by its batch); the batch's id is derived
//!   from its oldest member (`_durafn.batch.<hash>`), so whoever forms it —
//!   any replica, after any crash — forms the same one, and the batch's
//!   recorded input decides its members. A member ends `SUCCEEDED` with the
//!   output `{"batched_into": <batch id>, "index": <i>}` (and the attribute
//!   `batched_into`) once its batch exists; the batch runs like any start.
//!
//! The order is batch, then debounce, then throttle: a throttle limits what
//! runs (batches, the last of a debounce).

use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::StoreError;
use crate::model::{ErrorObject, Execution, ExecutionId, ExecutionStatus, NewExecution, Timestamp};
use crate::store::{Created, Lease, LeaseRequest, LeaseTake, Outcome, SearchAttribute, Store};

/// The prefix of ids the platform makes (batch executions); starts may not use it.
pub const RESERVED_PREFIX: &str = "_durafn.";

/// Largest `Throttle.Limit` and `Batch.MaxSize`.
pub const MAX_COUNT: u32 = 10_000;

/// Longest `Period` / `Timeout`.
pub const MAX_PERIOD: Duration = Duration::from_secs(7 * 24 * 3600);

/// A batch's input stays this many bytes of JSON under the store's payload
/// limit (4 MiB, or 64 MiB with a blob store); members beyond it go to the
/// next batch.
pub const BATCH_INPUT_MARGIN: usize = 64 * 1024;

/// A function's flow control (all optional).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FlowControl {
    /// At most `limit` starts per `period`.
    pub throttle: Option<Throttle>,
    /// Only the last start within `period` runs.
    pub debounce: Option<Debounce>,
    /// Starts run together as one execution with a list input.
    pub batch: Option<Batch>,
}

impl FlowControl {
    /// Flow control made of these parts.
    pub fn new(
        throttle: Option<Throttle>,
        debounce: Option<Debounce>,
        batch: Option<Batch>,
    ) -> Self {
        FlowControl {
            throttle,
            debounce,
            batch,
        }
    }

    /// Whether it controls anything.
    pub fn is_empty(&self) -> bool {
        self.throttle.is_none() && self.debounce.is_none() && self.batch.is_none()
    }

    /// Checks a start's input: every key the flow control names must be in
    /// it. The error says which setting names which field.
    pub fn check_input(&self, input: &Value) -> Result<(), String> {
        let keys = [
            (
                "Throttle",
                self.throttle.as_ref().and_then(|t| t.key.as_ref()),
            ),
            (
                "Debounce",
                self.debounce.as_ref().and_then(|d| d.key.as_ref()),
            ),
            ("Batch", self.batch.as_ref().and_then(|b| b.key.as_ref())),
        ];
        for (what, key) in keys {
            if let Some(k) = key {
                if k.value_of(input).is_none() {
                    return Err(format!(
                        "the input has no field {} (Metadata.Durafn.{what}.Key names it)",
                        k.describe()
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A field of an execution's input, such as `input.customer_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputKey {
    pub(crate) path: Vec<String>,
}

impl InputKey {
    /// From `input.customer_id` (or `customer_id`; dots for nested fields).
    pub fn parse(key: &str) -> Option<InputKey> {
        let path = key.strip_prefix("input.").unwrap_or(key);
        let path: Vec<String> = path.split('.').map(str::to_string).collect();
        if path.iter().any(String::is_empty) {
            return None;
        }
        Some(InputKey { path })
    }

    /// The field's value in `input` (strings as they are, other JSON as
    /// JSON); `None` when the input has no such field (or it is null).
    pub fn value_of(&self, input: &Value) -> Option<String> {
        value_at(&self.path, input)
    }

    /// `input.a.b`.
    pub fn describe(&self) -> String {
        format!("input.{}", self.path.join("."))
    }
}

/// The value at `path` in `input`, as a key: strings as they are, other JSON as JSON.
pub(crate) fn value_at(path: &[String], input: &Value) -> Option<String> {
    let mut v = input;
    for p in path {
        v = v.get(p)?;
    }
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// `Throttle`: at most `limit` starts per `period` (per key value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Throttle {
    /// Starts per period (1..=[`MAX_COUNT`]).
    pub limit: u32,
    /// The period.
    pub period: Duration,
    /// Throttled per value of this field, else across the function.
    pub key: Option<InputKey>,
}

/// `Debounce`: a start waits `period`, and a later one (same key) replaces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Debounce {
    /// The quiet time a start waits for.
    pub period: Duration,
    /// Debounced per value of this field, else across the function.
    pub key: Option<InputKey>,
}

/// `Batch`: starts run together, at most `max_size`, at most `timeout` after the oldest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Members per batch (1..=[`MAX_COUNT`]).
    pub max_size: u32,
    /// The longest the oldest member waits.
    pub timeout: Duration,
    /// Batched per value of this field, else across the function.
    pub key: Option<InputKey>,
}

/// What the dispatcher does with an execution after flow control.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Claim and invoke it now.
    Run,
    /// Not yet: try again then (it stays `PENDING`).
    WaitUntil(Timestamp),
    /// Flow control ended it without running it (batched, debounced, a bad
    /// key); the status it ended with.
    Ended(ExecutionStatus),
}

/// Whether `id` is a batch execution (made by the platform).
pub fn is_batch(id: &ExecutionId) -> bool {
    id.as_str().starts_with(BATCH_PREFIX)
}

const BATCH_PREFIX: &str = "_durafn.batch.";

/// Decides what happens to `exec` (of `function`) before its claim.
/// `first`: it has not run yet (epoch 0); batching applies to every claim
/// of a member, throttle and debounce only to the first.
pub(crate) async fn admit(
    store: &dyn Store,
    now: Timestamp,
    exec: &Execution,
    flow: &FlowControl,
) -> crate::Result<Admission> {
    let batch_exec = is_batch(&exec.id);
    if !batch_exec {
        if let Some(batch) = &flow.batch {
            return member(store, now, exec, batch).await;
        }
    }
    if exec.epoch != 0 {
        return Ok(Admission::Run);
    }
    if !batch_exec {
        if let Err(message) = flow.check_input(&exec.input) {
            return fail(store, now, exec, "InvalidFlowKey", &message).await;
        }
        if let Some(d) = &flow.debounce {
            match debounce(store, now, exec, d).await? {
                Admission::Run => {}
                other => return Ok(other),
            }
        }
    }
    match &flow.throttle {
        Some(t) => throttle(store, now, exec, t).await,
        None => Ok(Admission::Run),
    }
}

/// The group of a flow-control record: `<kind>#<function>[#<key value>]`
/// (a key value over [`MAX_KEY_IN_GROUP`] bytes by its SHA-256, so the
/// record's key stays well inside DynamoDB's 2 KB partition key).
fn group(kind: &str, function: &str, key: Option<&InputKey>, input: &Value) -> String {
    match key.and_then(|k| k.value_of(input)) {
        Some(v) if v.len() > MAX_KEY_IN_GROUP => {
            let digest = Sha256::digest(v.as_bytes());
            let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
            format!("{kind}#{function}#sha256:{hex}")
        }
        Some(v) => format!("{kind}#{function}#{v}"),
        None => format!("{kind}#{function}"),
    }
}

/// The longest key value used as it is in a record's group.
const MAX_KEY_IN_GROUP: usize = 256;

/// Ends `exec` (never run) as `FAILED` with this error.
async fn fail(
    store: &dyn Store,
    now: Timestamp,
    exec: &Execution,
    error_type: &str,
    message: &str,
) -> crate::Result<Admission> {
    let outcome = Outcome {
        status: ExecutionStatus::Failed,
        output: None,
        error: Some(ErrorObject::new(error_type, message)),
        expires_at: Some(now.plus(crate::model::DEFAULT_RETENTION)),
    };
    end_unrun(store, now, &exec.id, &outcome).await?;
    Ok(Admission::Ended(ExecutionStatus::Failed))
}

/// Ends an execution that flow control keeps from running: claim it (so
/// nobody else runs it meanwhile) and finish it. A crash in between leaves
/// it `RUNNING` until the lease ends; then the next dispatch decides again.
/// False when it could not be claimed (running, ended, gone).
async fn end_unrun(
    store: &dyn Store,
    now: Timestamp,
    id: &ExecutionId,
    outcome: &Outcome,
) -> crate::Result<bool> {
    let Some(claimed) = store.claim(id, now, now.plus(END_LEASE)).await? else {
        return Ok(false);
    };
    store.finish(id, claimed.epoch, outcome, now).await?;
    Ok(true)
}

/// How long flow control holds an execution it is ending (a claim and a
/// finish; an ending that stops in between is retried after it).
const END_LEASE: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------- throttle

async fn throttle(
    store: &dyn Store,
    now: Timestamp,
    exec: &Execution,
    t: &Throttle,
) -> crate::Result<Admission> {
    let group = group("throttle", &exec.function, t.key.as_ref(), &exec.input);
    let me = exec.id.as_str();
    let leases = store.list_leases(&group).await?;
    if leases.iter().any(|l| l.owner == me && l.until >= now) {
        return Ok(Admission::Run);
    }
    let busy = |name: &str| {
        leases
            .iter()
            .find(|l| l.name == name)
            .is_some_and(|l| l.until >= now)
    };
    for n in 0..t.limit {
        let name = format!("slot#{n}");
        if busy(&name) {
            continue;
        }
        let request = LeaseRequest {
            group: group.clone(),
            name,
            owner: me.to_string(),
            until: now.plus(t.period),
            steal_from: None,
        };
        if store.take_lease(&request, now).await?.is_taken() {
            return Ok(Admission::Run);
        }
    }
    // Every slot is busy: the earliest frees first (+1 ms: `until` is inclusive).
    let earliest = leases
        .iter()
        .filter(|l| l.until >= now)
        .map(|l| l.until)
        .min()
        .unwrap_or(now);
    Ok(Admission::WaitUntil(Timestamp(
        earliest.0.saturating_add(1),
    )))
}

// ---------------------------------------------------------------- debounce

/// The name of the record of the latest start; its `until` is that start's
/// creation time + the period (so records compare as their starts do).
const LAST: &str = "last";

async fn debounce(
    store: &dyn Store,
    now: Timestamp,
    exec: &Execution,
    d: &Debounce,
) -> crate::Result<Admission> {
    let group = group("debounce", &exec.function, d.key.as_ref(), &exec.input);
    let me = exec.id.as_str();
    let mine = exec.created_at.plus(d.period);
    // A few rounds: each lost race means another start wrote meanwhile.
    for _ in 0..4 {
        let current = store
            .list_leases(&group)
            .await?
            .into_iter()
            .find(|l| l.name == LAST);
        let steal_from = match &current {
            Some(l) if l.owner == me => return wait_or_run(store, now, &group, me, mine).await,
            Some(l) if (l.until, l.owner.as_str()) > (mine, me) => {
                // A later start: within our wait it replaces us; after it,
                // our wait passed without one and we run.
                return match l.until <= mine.plus(d.period) {
                    true => superseded(store, now, exec, &l.owner).await,
                    false => Ok(Admission::Run),
                };
            }
            Some(l) => Some(l.owner.clone()),
            None => None,
        };
        let request = LeaseRequest {
            group: group.clone(),
            name: LAST.to_string(),
            owner: me.to_string(),
            until: mine,
            steal_from,
        };
        if store.take_lease(&request, now).await?.is_taken() {
            return wait_or_run(store, now, &group, me, mine).await;
        }
    }
    // A busy key: look again shortly.
    Ok(Admission::WaitUntil(now.plus(Duration::from_millis(50))))
}

/// The latest start waits out its period, then runs (dropping the record,
/// so a start after it waits its own period).
async fn wait_or_run(
    store: &dyn Store,
    now: Timestamp,
    group: &str,
    me: &str,
    until: Timestamp,
) -> crate::Result<Admission> {
    if now < until {
        return Ok(Admission::WaitUntil(until));
    }
    store.release_lease(group, LAST, me).await?;
    Ok(Admission::Run)
}

/// A later start replaced `exec`: it ends `CANCELLED`, `debounced_by` the later one.
async fn superseded(
    store: &dyn Store,
    now: Timestamp,
    exec: &Execution,
    by: &str,
) -> crate::Result<Admission> {
    let attr = SearchAttribute {
        name: "debounced_by".into(),
        value: Value::String(by.to_string()),
        function: exec.function.clone(),
        created_at: exec.created_at,
    };
    store.put_attribute(&exec.id, &attr).await?;
    store.cancel(&exec.id, now).await?;
    tracing::info!(execution_id = %exec.id, by, "debounced: a later start replaces it");
    Ok(Admission::Ended(ExecutionStatus::Cancelled))
}

// ---------------------------------------------------------------- batching

/// The batch formed around `oldest` (its first member) of `function`.
pub fn batch_id(function: &str, oldest: &str) -> crate::Result<ExecutionId> {
    let digest = Sha256::digest(format!("{function}\n{oldest}").as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    // 14 + 32 characters of [a-z0-9._]: always a valid id.
    ExecutionId::new(format!("{BATCH_PREFIX}{hex}"))
}

/// A member record's name: creation time (zero-padded, so names sort as
/// starts do) and id.
fn member_name(exec: &Execution) -> String {
    format!("{:016}#{}", exec.created_at.0.max(0), exec.id)
}

/// The member id in a member record's name.
fn member_of(name: &str) -> &str {
    name.split_once('#').map_or(name, |(_, id)| id)
}

/// The creation time in a member record's name.
fn created_of(name: &str) -> Timestamp {
    Timestamp(
        name.split_once('#')
            .and_then(|(t, _)| t.parse().ok())
            .unwrap_or(0),
    )
}

async fn member(
    store: &dyn Store,
    now: Timestamp,
    exec: &Execution,
    b: &Batch,
) -> crate::Result<Admission> {
    if exec.epoch == 0 {
        if let Err(message) = FlowControl::new(None, None, Some(b.clone())).check_input(&exec.input)
        {
            return fail(store, now, exec, "InvalidFlowKey", &message).await;
        }
    }
    let group = group("batch", &exec.function, b.key.as_ref(), &exec.input);
    let me = exec.id.as_str();
    let name = member_name(exec);
    let max = usize::try_from(b.max_size).unwrap_or(usize::MAX);
    let mut leases = store.list_leases(&group).await?;
    match leases.iter().find(|l| l.name == name) {
        Some(l) if l.owner != me => {
            // Already in a batch: finish what its former started.
            let batch = ExecutionId::new(l.owner.as_str())?;
            return complete(store, now, &group, exec, &batch, max).await;
        }
        Some(_) => {}
        None => {
            let request = LeaseRequest {
                group: group.clone(),
                name: name.clone(),
                owner: me.to_string(),
                until: Timestamp(i64::MAX),
                steal_from: None,
            };
            match store.take_lease(&request, now).await? {
                LeaseTake::Taken(l) => leases.push(l),
                LeaseTake::Held(l) => {
                    let batch = ExecutionId::new(l.owner.as_str())?;
                    return complete(store, now, &group, exec, &batch, max).await;
                }
            }
        }
    }
    // The open members (not yet in a batch), oldest first.
    let mut open: Vec<&Lease> = leases
        .iter()
        .filter(|l| l.owner == member_of(&l.name))
        .collect();
    open.sort_by(|a, c| a.name.cmp(&c.name));
    let Some(oldest) = open.first() else {
        return Ok(Admission::WaitUntil(now.plus(Duration::from_millis(50))));
    };
    let closes_at = created_of(&oldest.name).plus(b.timeout);
    let full = open.len() >= usize::try_from(b.max_size).unwrap_or(usize::MAX);
    if !full && now < closes_at {
        return Ok(Admission::WaitUntil(closes_at));
    }
    // Form the batch of the oldest members: move their records to it (a
    // former before us may have moved some already, then stopped).
    let batch = batch_id(&exec.function, member_of(&oldest.name))?;
    let already = leases.iter().filter(|l| l.owner == batch.as_str()).count();
    let mut in_batch = false;
    for l in open.iter().take(max.saturating_sub(already)) {
        let owner = member_of(&l.name).to_string();
        let request = LeaseRequest {
            group: group.clone(),
            name: l.name.clone(),
            owner: batch.as_str().to_string(),
            until: Timestamp(i64::MAX),
            steal_from: Some(owner.clone()),
        };
        if store.take_lease(&request, now).await?.is_taken() && owner == me {
            in_batch = true;
        }
    }
    let mine = complete(store, now, &group, exec, &batch, max).await?;
    match in_batch {
        true => Ok(mine),
        // Not in this batch (it was full): the next one.
        false => Ok(Admission::WaitUntil(now)),
    }
}

/// Creates `batch` (if it is not yet) from the oldest `max` members moved to
/// it, then ends each member its input lists and gives back the records of
/// the others. Returns what became of `exec`.
async fn complete(
    store: &dyn Store,
    now: Timestamp,
    group: &str,
    exec: &Execution,
    batch: &ExecutionId,
    max: usize,
) -> crate::Result<Admission> {
    let mut moved: Vec<Lease> = store
        .list_leases(group)
        .await?
        .into_iter()
        .filter(|l| l.owner == batch.as_str())
        .collect();
    moved.sort_by(|a, c| a.name.cmp(&c.name));
    let recorded = match store.get_execution(batch).await? {
        Some(e) => e,
        // Nothing moved to it and not recorded: nothing to finish.
        None if moved.is_empty() => return Ok(Admission::WaitUntil(now)),
        None => create_batch(store, now, exec, batch, &moved[..moved.len().min(max)]).await?,
    };
    let listed: Vec<String> = recorded
        .input
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i.get("id").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let mut status = None;
    for l in &moved {
        let id = member_of(&l.name);
        let Some(index) = listed.iter().position(|m| m == id) else {
            // Moved, but the batch was recorded without it: give it back,
            // unless it has ended (in an earlier batch; its record came
            // back from a dispatch that read it before it ended).
            let ended = match ExecutionId::new(id) {
                Ok(m) => store
                    .get_execution(&m)
                    .await?
                    .is_none_or(|e| e.status.is_final()),
                Err(_) => true,
            };
            if ended {
                store.release_lease(group, &l.name, batch.as_str()).await?;
                continue;
            }
            let request = LeaseRequest {
                group: group.to_string(),
                name: l.name.clone(),
                owner: id.to_string(),
                until: Timestamp(i64::MAX),
                steal_from: Some(batch.as_str().to_string()),
            };
            store.take_lease(&request, now).await?;
            continue;
        };
        let member = ExecutionId::new(id)?;
        let ended = end_member(store, now, &member, batch, index).await?;
        if ended {
            store.release_lease(group, &l.name, batch.as_str()).await?;
        }
        if member == exec.id {
            status = Some(ended);
        }
    }
    Ok(match status {
        Some(true) => Admission::Ended(ExecutionStatus::Succeeded),
        // In the batch, but held by someone (an earlier former's claim):
        // once that lease ends, the next dispatch ends it.
        Some(false) => Admission::WaitUntil(now.plus(END_LEASE)),
        None if listed.iter().any(|m| m == exec.id.as_str()) => {
            Admission::Ended(ExecutionStatus::Succeeded)
        }
        None => Admission::WaitUntil(now),
    })
}

/// Records the batch execution: its input lists the members moved to it.
async fn create_batch(
    store: &dyn Store,
    now: Timestamp,
    exec: &Execution,
    batch: &ExecutionId,
    moved: &[Lease],
) -> crate::Result<Execution> {
    let mut items = Vec::new();
    let mut bytes = 2usize;
    let max_bytes = store.payload_limit().saturating_sub(BATCH_INPUT_MARGIN);
    for l in moved {
        let id = member_of(&l.name);
        let member = match ExecutionId::new(id) {
            Ok(m) if m == exec.id => Some(exec.clone()),
            Ok(m) => store.get_execution(&m).await?,
            Err(_) => None,
        };
        // Only members that have not ended (see `complete`).
        let Some(member) = member.filter(|m| !m.status.is_final()) else {
            continue;
        };
        let item = json!({ "id": id, "input": member.input });
        let size = crate::model::json_len(&item) + 1;
        if !items.is_empty() && bytes + size > max_bytes {
            break;
        }
        bytes += size;
        items.push(item);
    }
    let new = NewExecution {
        id: batch.clone(),
        function: exec.function.clone(),
        version: exec.version.clone(),
        input: Value::Array(items),
        now,
    };
    match store.create_execution(&new).await {
        Ok(created) => {
            if let Created::New(e) = &created {
                tracing::info!(batch = %e.id, members = moved.len(), "batch formed");
            }
            Ok(created.execution().clone())
        }
        // Another former recorded it first, with another view of the members:
        // its input decides.
        Err(StoreError::Conflict { .. }) => store
            .get_execution(batch)
            .await?
            .ok_or_else(|| StoreError::Invalid(format!("batch {batch} vanished"))),
        Err(e) => Err(e),
    }
}

/// Ends member `id` of `batch` (if it has not ended): `SUCCEEDED`, its output
/// naming the batch. False when someone else holds it right now.
async fn end_member(
    store: &dyn Store,
    now: Timestamp,
    id: &ExecutionId,
    batch: &ExecutionId,
    index: usize,
) -> crate::Result<bool> {
    let Some(member) = store.get_execution(id).await? else {
        return Ok(true);
    };
    if member.status.is_final() {
        return Ok(true);
    }
    let attr = SearchAttribute {
        name: "batched_into".into(),
        value: Value::String(batch.as_str().to_string()),
        function: member.function.clone(),
        created_at: member.created_at,
    };
    store.put_attribute(id, &attr).await?;
    let outcome = Outcome {
        status: ExecutionStatus::Succeeded,
        output: Some(json!({ "batched_into": batch.as_str(), "index": index })),
        error: None,
        expires_at: Some(now.plus(crate::model::DEFAULT_RETENTION)),
    };
    end_unrun(store, now, id, &outcome).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_name_the_key_value_and_hash_long_ones() {
        let k = InputKey::parse("input.user");
        assert_eq!(
            group("debounce", "f", k.as_ref(), &json!({"user": "a"})),
            "debounce#f#a"
        );
        assert_eq!(
            group("debounce", "f", k.as_ref(), &json!({"user": 7})),
            "debounce#f#7"
        );
        assert_eq!(
            group("throttle", "f", None, &json!({"user": "a"})),
            "throttle#f"
        );
        let long = "x".repeat(10_000);
        let g = group("batch", "f", k.as_ref(), &json!({ "user": long }));
        assert!(g.starts_with("batch#f#sha256:") && g.len() < 100, "{g}");
    }

    #[test]
    fn member_records_sort_by_creation_and_name_their_start() {
        let name = format!("{:016}#{}", 1_234, "order-1");
        assert_eq!(member_of(&name), "order-1");
        assert_eq!(created_of(&name), Timestamp(1_234));
        assert!(format!("{:016}#b", 99) < format!("{:016}#a", 100));
    }

    #[test]
    fn batch_ids_are_reserved_valid_and_stable() {
        let a = batch_id("f", "m-1").ok();
        assert_eq!(a, batch_id("f", "m-1").ok());
        assert_ne!(a, batch_id("g", "m-1").ok());
        let a = a.unwrap_or_else(|| panic!("a valid id"));
        assert!(is_batch(&a) && a.as_str().starts_with(RESERVED_PREFIX));
    }

    #[test]
    fn a_missing_key_is_named() {
        let flow = FlowControl::new(
            None,
            Some(Debounce {
                period: Duration::from_secs(1),
                key: InputKey::parse("input.a.b"),
            }),
            None,
        );
        assert!(flow.check_input(&json!({"a": {"b": 1}})).is_ok());
        let e = flow.check_input(&json!({"a": {}})).unwrap_err();
        assert!(e.contains("input.a.b") && e.contains("Debounce.Key"), "{e}");
    }
}
