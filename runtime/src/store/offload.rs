//! [`OffloadingStore`]: payloads too large for a record go to a blob store.
//!
//! On the way in, every payload (an execution's input and output, an
//! operation's result, an event's payload) whose JSON is over the threshold
//! ([`OFFLOAD_THRESHOLD_BYTES`], 1 MiB) is written to a [`BlobStore`] under
//! its execution and content hash, and the record carries a reference
//! instead:
//!
//! ```json
//! {"$durafn_blob": {"sha256": "<64 hex digits>", "bytes": 20971522}}
//! ```
//!
//! On the way out (`get_execution`, `load_journal`, `claim`, the writes that
//! answer with a record), references are resolved back, checked against their
//! hash and length. Listings (`list_executions`) keep them: a page of
//! executions never downloads their payloads. A reference names no
//! execution — its blob is always under the execution of the record that
//! holds it — so a payload can never point at another execution's blob. A
//! user payload of that exact shape (a one-key object `$durafn_blob`) is
//! refused as reserved.
//!
//! The limit becomes [`MAX_OFFLOADED_PAYLOAD_BYTES`] (64 MiB). The blob is
//! written (durably) before the record that references it, so a crash in
//! between leaves an unreferenced blob, never a dangling reference. Blobs
//! expire with their execution: [`OffloadingStore::collect_garbage`] (run by
//! `purge_expired`) deletes the blobs of executions that have expired or are
//! gone (orphans only after a grace period, so a start whose record is not
//! yet written keeps its input).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use serde_json::{Value, json};

use super::blob::{self, BlobKey, BlobStore, sha256_hex};
use super::{
    AttributePage, AttributeQuery, Created, DueItem, ExecutionPage, Lease, LeaseRequest, LeaseTake,
    ListFilter, OpWrite, Outcome, QueueMessage, QueueStats, Schedule, ScheduleWrite,
    SearchAttribute, SentEvent, Store, SuspendWrite, Transition,
};
use crate::error::{Result, StoreError};
use crate::model::{
    Execution, ExecutionId, HistoryEntry, Journal, MAX_OFFLOADED_PAYLOAD_BYTES, NewExecution,
    Operation, Timestamp, json_len,
};
use std::borrow::Cow;

/// Payloads whose JSON is larger than this go to the blob store.
pub const OFFLOAD_THRESHOLD_BYTES: usize = 1024 * 1024;

/// The one key of a reference object.
pub const REFERENCE_KEY: &str = "$durafn_blob";

/// Executions whose blobs one garbage-collection pass looks at.
const GC_PAGE: usize = 500;

/// How long the blobs of an execution that does not exist are kept: a start
/// writes its input's blob before its record.
const DEFAULT_ORPHAN_GRACE: Duration = Duration::from_secs(3600);

/// The most payload bytes kept decoded in memory (see [`RecentBlobs`]).
const CACHE_BYTES: usize = 32 * 1024 * 1024;

/// The payloads this store wrote or read last, decoded. Blobs never change
/// (their key is their hash), so an entry is never stale: a handler process
/// replaying its journal, or a client polling an execution, reads and
/// parses a large payload once.
#[derive(Default)]
struct RecentBlobs {
    entries: std::collections::VecDeque<(BlobKey, Value, usize)>,
    bytes: usize,
}

impl RecentBlobs {
    fn get(&self, key: &BlobKey) -> Option<Value> {
        self.entries
            .iter()
            .find(|(k, _, _)| k == key)
            .map(|(_, v, _)| v.clone())
    }

    fn put(&mut self, key: BlobKey, value: Value, size: usize) {
        if size > CACHE_BYTES || self.entries.iter().any(|(k, _, _)| *k == key) {
            return;
        }
        while self.bytes + size > CACHE_BYTES {
            let Some((_, _, n)) = self.entries.pop_front() else {
                break;
            };
            self.bytes -= n;
        }
        self.bytes += size;
        self.entries.push_back((key, value, size));
    }
}

/// A store whose large payloads live in a [`BlobStore`] (see the module docs).
pub struct OffloadingStore {
    inner: Arc<dyn Store>,
    blobs: Arc<dyn BlobStore>,
    threshold: usize,
    orphan_grace: Duration,
    /// Where the next garbage-collection pass starts (`None`: the first folder).
    gc_after: Mutex<Option<ExecutionId>>,
    recent: Mutex<RecentBlobs>,
}

impl std::fmt::Debug for OffloadingStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OffloadingStore")
            .field("backend", &self.inner.backend())
            .field("blobs", &self.blobs.describe())
            .field("threshold", &self.threshold)
            .finish()
    }
}

/// Wraps `store` in an [`OffloadingStore`] when `DURAFN_BLOBS` names a blob
/// store (`file:///PATH`, `s3://BUCKET/PREFIX`; see [`blob::open`]); returns
/// it unchanged otherwise.
pub fn with_blobs_from_env(store: Arc<dyn Store>) -> Result<Arc<dyn Store>> {
    match std::env::var("DURAFN_BLOBS") {
        Ok(url) if !url.trim().is_empty() => Ok(Arc::new(OffloadingStore::new(
            store,
            blob::open(url.trim())?,
        ))),
        _ => Ok(store),
    }
}

impl OffloadingStore {
    /// `inner`, its payloads over [`OFFLOAD_THRESHOLD_BYTES`] in `blobs`.
    pub fn new(inner: Arc<dyn Store>, blobs: Arc<dyn BlobStore>) -> Self {
        OffloadingStore {
            inner,
            blobs,
            threshold: OFFLOAD_THRESHOLD_BYTES,
            orphan_grace: DEFAULT_ORPHAN_GRACE,
            gc_after: Mutex::new(None),
            recent: Mutex::new(RecentBlobs::default()),
        }
    }

    /// Offloads payloads over `bytes` instead (at most
    /// [`crate::model::MAX_PAYLOAD_BYTES`], what a record can hold).
    pub fn threshold(mut self, bytes: usize) -> Self {
        self.threshold = bytes.min(crate::model::MAX_PAYLOAD_BYTES);
        self
    }

    /// Keeps the blobs of an execution that does not exist for `d` after
    /// they were written (default one hour).
    pub fn orphan_grace(mut self, d: Duration) -> Self {
        self.orphan_grace = d;
        self
    }

    /// The blob store.
    pub fn blobs(&self) -> &Arc<dyn BlobStore> {
        &self.blobs
    }

    /// The store records go to.
    pub fn inner(&self) -> &Arc<dyn Store> {
        &self.inner
    }

    /// One pass of blob expiry: looks at up to 500 executions that have
    /// blobs (the next pass continues after them, then starts over) and
    /// deletes the blobs of those that are finished and past `expires_at`
    /// at `now`, or gone (purged, or never created) and written longer than
    /// the orphan grace ago. Returns how many blobs it deleted.
    pub async fn collect_garbage(&self, now: Timestamp) -> Result<u64> {
        let after = self
            .gc_after
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let page = self.blobs.executions(after.as_ref(), GC_PAGE).await?;
        let next = if page.len() >= GC_PAGE {
            page.last().map(|f| f.execution.clone())
        } else {
            None
        };
        let grace = i64::try_from(self.orphan_grace.as_millis()).unwrap_or(i64::MAX);
        let mut deleted = 0;
        for folder in page {
            let expired = match self.inner.get_execution(&folder.execution).await? {
                Some(e) => e.status.is_final() && e.expires_at.is_some_and(|t| t <= now),
                None => now.0.saturating_sub(folder.newest.0) > grace,
            };
            if expired {
                let n = self.blobs.delete_execution(&folder.execution).await?;
                tracing::debug!(execution_id = %folder.execution, blobs = n, "deleted expired payload blobs");
                deleted += n;
            }
        }
        *self.gc_after.lock().unwrap_or_else(|p| p.into_inner()) = next;
        Ok(deleted)
    }

    /// Writes `v` to the blob store if it is over the threshold, and returns
    /// the reference to record instead (`None`: record `v` itself).
    async fn offload(
        &self,
        id: &ExecutionId,
        what: impl FnOnce() -> String,
        v: &Value,
    ) -> Result<Option<Value>> {
        if is_reserved(v) {
            return Err(StoreError::Invalid(format!(
                "{} is a one-key object {{\"{REFERENCE_KEY}\": …}}: that shape is reserved for \
                 references to offloaded payloads (docs/payloads.md); wrap it in another object",
                what()
            )));
        }
        let size = json_len(v);
        if size <= self.threshold {
            return Ok(None);
        }
        if size > MAX_OFFLOADED_PAYLOAD_BYTES {
            return Err(StoreError::PayloadTooLarge {
                what: what(),
                size,
                limit: MAX_OFFLOADED_PAYLOAD_BYTES,
            });
        }
        let bytes = serde_json::to_vec(v)
            .map_err(|e| StoreError::Invalid(format!("{} cannot be serialized: {e}", what())))?;
        let key = BlobKey::of(id, &bytes);
        let len = bytes.len();
        self.blobs.put(&key, Bytes::from(bytes)).await?;
        let reference = json!({ REFERENCE_KEY: { "sha256": key.sha256, "bytes": len } });
        self.recent().put(key, v.clone(), len);
        Ok(Some(reference))
    }

    fn recent(&self) -> std::sync::MutexGuard<'_, RecentBlobs> {
        self.recent.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces a reference in `v` by the payload it names.
    async fn resolve(&self, id: &ExecutionId, v: &mut Value) -> Result<()> {
        let Some((sha256, len)) = reference(v) else {
            return Ok(());
        };
        let Some(key) = BlobKey::parse(id, sha256) else {
            return Ok(());
        };
        if let Some(value) = self.recent().get(&key) {
            *v = value;
            return Ok(());
        }
        let Some(body) = self.blobs.get(&key).await? else {
            return Err(StoreError::Backend(format!(
                "a payload of execution {id} is in the blob store {} ({}), and the blob is \
                 missing: it expired with the execution, or DURAFN_BLOBS is not the blob store \
                 it was written to",
                self.blobs.describe(),
                key.path()
            )));
        };
        if body.len() as u64 != len || sha256_hex(&body) != key.sha256 {
            return Err(StoreError::Backend(format!(
                "the payload blob {} of execution {id} in {} does not match its reference \
                 ({len} bytes, sha256 {}): it was changed after it was written",
                key.path(),
                self.blobs.describe(),
                key.sha256
            )));
        }
        let value: Value = serde_json::from_slice(&body).map_err(|e| {
            StoreError::Backend(format!(
                "the payload blob {} of execution {id} is not JSON: {e}",
                key.path()
            ))
        })?;
        self.recent().put(key, value.clone(), body.len());
        *v = value;
        Ok(())
    }

    async fn resolve_execution(&self, e: &mut Execution) -> Result<()> {
        let id = e.id.clone();
        self.resolve(&id, &mut e.input).await?;
        if let Some(out) = e.output.as_mut() {
            self.resolve(&id, out).await?;
        }
        Ok(())
    }

    async fn resolve_opt(&self, e: Option<Execution>) -> Result<Option<Execution>> {
        match e {
            Some(mut e) => {
                self.resolve_execution(&mut e).await?;
                Ok(Some(e))
            }
            None => Ok(None),
        }
    }

    async fn resolve_journal(&self, id: &ExecutionId, mut journal: Journal) -> Result<Journal> {
        self.resolve_execution(&mut journal.execution).await?;
        for op in &mut journal.operations {
            self.resolve_operation(id, op).await?;
        }
        for ev in &mut journal.events {
            self.resolve(id, &mut ev.payload).await?;
        }
        Ok(journal)
    }

    /// `op` as the inner store records it: a large result offloaded.
    async fn recorded_op<'o>(
        &self,
        id: &ExecutionId,
        op: &'o Operation,
    ) -> Result<Cow<'o, Operation>> {
        let stored = match &op.result {
            Some(r) => {
                let what = || format!("{} {:?} (operation {}) result", op.kind, op.name, op.id);
                self.offload(id, what, r).await?
            }
            None => None,
        };
        Ok(match stored {
            Some(r) => Cow::Owned(with_result(op, r)),
            None => Cow::Borrowed(op),
        })
    }

    /// `outcome` as the inner store records it: a large output offloaded.
    async fn recorded_outcome<'o>(
        &self,
        id: &ExecutionId,
        outcome: &'o Outcome,
    ) -> Result<Cow<'o, Outcome>> {
        let stored = match &outcome.output {
            Some(out) => self.offload(id, || "execution output".into(), out).await?,
            None => None,
        };
        Ok(match stored {
            Some(r) => Cow::Owned(Outcome {
                status: outcome.status,
                output: Some(r),
                error: outcome.error.clone(),
                expires_at: outcome.expires_at,
            }),
            None => Cow::Borrowed(outcome),
        })
    }

    async fn resolve_operation(&self, id: &ExecutionId, op: &mut Operation) -> Result<()> {
        match op.result.as_mut() {
            Some(r) => self.resolve(id, r).await,
            None => Ok(()),
        }
    }

    /// Resolves an execution the caller just created with `input`: where the
    /// record holds the reference just written, the input itself goes back
    /// (no read).
    async fn resolve_created(
        &self,
        mut e: Execution,
        stored: &Option<Value>,
        input: &Value,
    ) -> Result<Execution> {
        if stored.as_ref().is_some_and(|r| *r == e.input) {
            e.input = input.clone();
        }
        self.resolve_execution(&mut e).await?;
        Ok(e)
    }

    async fn resolve_created_kind(
        &self,
        created: Created,
        stored: &Option<Value>,
        input: &Value,
    ) -> Result<Created> {
        Ok(match created {
            Created::New(e) => Created::New(self.resolve_created(e, stored, input).await?),
            Created::Existing(e) => {
                Created::Existing(self.resolve_created(e, stored, input).await?)
            }
        })
    }

    /// `new` as the record should hold it.
    async fn offload_new(&self, new: &NewExecution) -> Result<(Option<Value>, NewExecution)> {
        let stored = self
            .offload(&new.id, || "execution input".into(), &new.input)
            .await?;
        let recorded = NewExecution {
            id: new.id.clone(),
            function: new.function.clone(),
            version: new.version.clone(),
            input: stored.clone().unwrap_or(Value::Null),
            now: new.now,
        };
        Ok((stored, recorded))
    }
}

/// `(sha256, bytes)` when `v` is a reference.
fn reference(v: &Value) -> Option<(&str, u64)> {
    let obj = v.as_object().filter(|o| o.len() == 1)?;
    let r = obj.get(REFERENCE_KEY)?.as_object()?;
    Some((r.get("sha256")?.as_str()?, r.get("bytes")?.as_u64()?))
}

/// Whether any payload of `journal` (input, output, an operation's result,
/// an event's payload) is a blob reference, which only an
/// [`OffloadingStore`] in the reader's process turns back into the value.
pub fn holds_references(journal: &Journal) -> bool {
    let e = &journal.execution;
    is_reserved(&e.input)
        || e.output.as_ref().is_some_and(is_reserved)
        || journal
            .operations
            .iter()
            .any(|o| o.result.as_ref().is_some_and(is_reserved))
        || journal.events.iter().any(|ev| is_reserved(&ev.payload))
}

fn is_reserved(v: &Value) -> bool {
    v.as_object()
        .is_some_and(|o| o.len() == 1 && o.contains_key(REFERENCE_KEY))
}

/// `op` with `result` in place of its own (built field by field, so the
/// large result is not cloned first).
fn with_result(op: &Operation, result: Value) -> Operation {
    Operation {
        id: op.id.clone(),
        kind: op.kind,
        name: op.name.clone(),
        status: op.status,
        attempt: op.attempt,
        result: Some(result),
        error: op.error.clone(),
        started_at: op.started_at,
        ended_at: op.ended_at,
        wake_at: op.wake_at,
        rev: op.rev,
    }
}

#[async_trait]
impl Store for OffloadingStore {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    fn atomic_create_and_claim(&self) -> bool {
        self.inner.atomic_create_and_claim()
    }
    fn payload_limit(&self) -> usize {
        MAX_OFFLOADED_PAYLOAD_BYTES
    }
    async fn create_execution(&self, new: &NewExecution) -> Result<Created> {
        let (stored, recorded) = self.offload_new(new).await?;
        let created = match &stored {
            Some(_) => self.inner.create_execution(&recorded).await?,
            None => self.inner.create_execution(new).await?,
        };
        self.resolve_created_kind(created, &stored, &new.input)
            .await
    }
    async fn get_execution(&self, id: &ExecutionId) -> Result<Option<Execution>> {
        let e = self.inner.get_execution(id).await?;
        self.resolve_opt(e).await
    }
    async fn load_journal(&self, id: &ExecutionId) -> Result<Option<Journal>> {
        match self.inner.load_journal(id).await? {
            Some(journal) => Ok(Some(self.resolve_journal(id, journal).await?)),
            None => Ok(None),
        }
    }
    async fn claim(
        &self,
        id: &ExecutionId,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Option<Execution>> {
        let e = self.inner.claim(id, now, lease_until).await?;
        self.resolve_opt(e).await
    }
    async fn claim_with_journal(
        &self,
        id: &ExecutionId,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Option<(Execution, Option<Journal>)>> {
        let Some((mut claimed, journal)) =
            self.inner.claim_with_journal(id, now, lease_until).await?
        else {
            return Ok(None);
        };
        self.resolve_execution(&mut claimed).await?;
        let journal = match journal {
            Some(j) => Some(self.resolve_journal(id, j).await?),
            None => None,
        };
        Ok(Some((claimed, journal)))
    }
    async fn create_and_claim(
        &self,
        new: &NewExecution,
        lease_until: Timestamp,
    ) -> Result<(Created, Option<Execution>)> {
        let (stored, recorded) = self.offload_new(new).await?;
        let (created, claimed) = match &stored {
            Some(_) => self.inner.create_and_claim(&recorded, lease_until).await?,
            None => self.inner.create_and_claim(new, lease_until).await?,
        };
        let created = self
            .resolve_created_kind(created, &stored, &new.input)
            .await?;
        let claimed = match claimed {
            Some(e) => Some(self.resolve_created(e, &stored, &new.input).await?),
            None => None,
        };
        Ok((created, claimed))
    }
    async fn put_operation(&self, id: &ExecutionId, op: &Operation) -> Result<OpWrite> {
        let recorded = self.recorded_op(id, op).await?;
        match self.inner.put_operation(id, &recorded).await? {
            OpWrite::Written => Ok(OpWrite::Written),
            OpWrite::Conflict(mut theirs) => {
                self.resolve_operation(id, &mut theirs).await?;
                Ok(OpWrite::Conflict(theirs))
            }
        }
    }
    async fn put_history(&self, id: &ExecutionId, entry: &HistoryEntry, keep: u32) -> Result<()> {
        self.inner.put_history(id, entry, keep).await
    }
    async fn load_history(&self, id: &ExecutionId) -> Result<Vec<HistoryEntry>> {
        self.inner.load_history(id).await
    }
    async fn suspend(
        &self,
        id: &ExecutionId,
        epoch: u64,
        seen_wakeups: u64,
        wake_at: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<Transition> {
        self.inner
            .suspend(id, epoch, seen_wakeups, wake_at, now)
            .await
    }
    async fn finish(
        &self,
        id: &ExecutionId,
        epoch: u64,
        outcome: &Outcome,
        now: Timestamp,
    ) -> Result<Transition> {
        let recorded = self.recorded_outcome(id, outcome).await?;
        self.inner.finish(id, epoch, &recorded, now).await
    }
    async fn suspend_with(
        &self,
        id: &ExecutionId,
        epoch: u64,
        seen_wakeups: u64,
        ops: &[Operation],
        wake_at: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<SuspendWrite> {
        let mut recorded = Vec::with_capacity(ops.len());
        for op in ops {
            recorded.push(self.recorded_op(id, op).await?.into_owned());
        }
        match self
            .inner
            .suspend_with(id, epoch, seen_wakeups, &recorded, wake_at, now)
            .await?
        {
            SuspendWrite::Conflict(mut theirs) => {
                self.resolve_operation(id, &mut theirs).await?;
                Ok(SuspendWrite::Conflict(theirs))
            }
            other => Ok(other),
        }
    }
    async fn wake(&self, id: &ExecutionId, now: Timestamp) -> Result<bool> {
        self.inner.wake(id, now).await
    }
    async fn due(&self, shard: u32, now: Timestamp, limit: usize) -> Result<Vec<DueItem>> {
        self.inner.due(shard, now, limit).await
    }
    async fn purge_expired(&self, now: Timestamp) -> Result<u64> {
        let purged = self.inner.purge_expired(now).await?;
        self.collect_garbage(now).await?;
        Ok(purged)
    }
    async fn list_executions(&self, filter: &ListFilter) -> Result<ExecutionPage> {
        // References stay: a page of executions never downloads payloads.
        self.inner.list_executions(filter).await
    }
    async fn send_event(
        &self,
        id: &ExecutionId,
        name: &str,
        payload: &Value,
        now: Timestamp,
    ) -> Result<SentEvent> {
        let stored = self
            .offload(id, || format!("event {name:?} payload"), payload)
            .await?;
        let sent = match &stored {
            Some(r) => self.inner.send_event(id, name, r, now).await?,
            None => self.inner.send_event(id, name, payload, now).await?,
        };
        match sent {
            SentEvent::Delivered(mut ev) => {
                if stored.as_ref().is_some_and(|r| *r == ev.payload) {
                    ev.payload = payload.clone();
                }
                self.resolve(id, &mut ev.payload).await?;
                Ok(SentEvent::Delivered(ev))
            }
            other => Ok(other),
        }
    }
    async fn resume(&self, id: &ExecutionId, now: Timestamp) -> Result<Option<Execution>> {
        let e = self.inner.resume(id, now).await?;
        self.resolve_opt(e).await
    }
    async fn cancel(&self, id: &ExecutionId, now: Timestamp) -> Result<Option<Execution>> {
        let e = self.inner.cancel(id, now).await?;
        self.resolve_opt(e).await
    }
    async fn set_paused(
        &self,
        id: &ExecutionId,
        paused: bool,
        now: Timestamp,
    ) -> Result<Option<Execution>> {
        let e = self.inner.set_paused(id, paused, now).await?;
        self.resolve_opt(e).await
    }
    async fn set_start_options(
        &self,
        id: &ExecutionId,
        options: &crate::model::StartOptions,
        now: Timestamp,
    ) -> Result<Option<Execution>> {
        let e = self.inner.set_start_options(id, options, now).await?;
        self.resolve_opt(e).await
    }
    async fn create_schedule(&self, schedule: &Schedule) -> Result<ScheduleWrite> {
        self.inner.create_schedule(schedule).await
    }
    async fn update_schedule(&self, schedule: &Schedule) -> Result<ScheduleWrite> {
        self.inner.update_schedule(schedule).await
    }
    async fn get_schedule(&self, name: &str) -> Result<Option<Schedule>> {
        self.inner.get_schedule(name).await
    }
    async fn list_schedules(&self) -> Result<Vec<Schedule>> {
        self.inner.list_schedules().await
    }
    async fn due_schedules(&self, now: Timestamp, limit: usize) -> Result<Vec<Schedule>> {
        self.inner.due_schedules(now, limit).await
    }
    async fn send_message(&self, message: &QueueMessage) -> Result<bool> {
        self.inner.send_message(message).await
    }
    async fn receive_messages(
        &self,
        queue: &str,
        now: Timestamp,
        hidden_until: Timestamp,
        max: usize,
    ) -> Result<Vec<QueueMessage>> {
        self.inner
            .receive_messages(queue, now, hidden_until, max)
            .await
    }
    async fn delete_message(&self, queue: &str, id: &str, receipt: &str) -> Result<bool> {
        self.inner.delete_message(queue, id, receipt).await
    }
    async fn change_message_visibility(
        &self,
        queue: &str,
        id: &str,
        receipt: &str,
        visible_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool> {
        self.inner
            .change_message_visibility(queue, id, receipt, visible_at, now)
            .await
    }
    async fn queue_stats(&self, queue: &str, now: Timestamp) -> Result<QueueStats> {
        self.inner.queue_stats(queue, now).await
    }
    async fn purge_queue(&self, queue: &str) -> Result<u64> {
        self.inner.purge_queue(queue).await
    }
    async fn take_lease(&self, request: &LeaseRequest, now: Timestamp) -> Result<LeaseTake> {
        self.inner.take_lease(request, now).await
    }
    async fn release_lease(&self, group: &str, name: &str, owner: &str) -> Result<bool> {
        self.inner.release_lease(group, name, owner).await
    }
    async fn list_leases(&self, group: &str) -> Result<Vec<Lease>> {
        self.inner.list_leases(group).await
    }
    async fn put_attribute(&self, id: &ExecutionId, attr: &SearchAttribute) -> Result<()> {
        self.inner.put_attribute(id, attr).await
    }
    async fn find_by_attribute(&self, query: &AttributeQuery) -> Result<AttributePage> {
        self.inner.find_by_attribute(query).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ExecutionStatus, OpKind, OpStatus};
    use crate::store::SqliteStore;
    use crate::store::blob::DirBlobStore;

    struct Fixture {
        store: OffloadingStore,
        raw: Arc<dyn Store>,
        blobs: std::path::PathBuf,
        _dir: tempfile::TempDir,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let raw: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path().join("s.db")).unwrap());
        let blobs = dir.path().join("blobs");
        let store =
            OffloadingStore::new(raw.clone(), Arc::new(DirBlobStore::new(&blobs))).threshold(1000);
        Fixture {
            store,
            raw,
            blobs,
            _dir: dir,
        }
    }

    fn new(id: &str, input: Value) -> NewExecution {
        NewExecution {
            id: ExecutionId::new(id).unwrap(),
            function: "f".into(),
            version: "1".into(),
            input,
            now: Timestamp(1_000),
        }
    }

    fn blob_files(f: &Fixture) -> usize {
        walk(&f.blobs)
    }

    fn walk(p: &std::path::Path) -> usize {
        let Ok(entries) = std::fs::read_dir(p) else {
            return 0;
        };
        entries
            .flatten()
            .map(|e| {
                if e.path().is_dir() {
                    walk(&e.path())
                } else {
                    1
                }
            })
            .sum()
    }

    #[tokio::test]
    async fn large_payloads_are_references_in_the_record_and_values_outside() {
        let f = fixture();
        let big = json!({"blob": "b".repeat(5000)});
        let n = new("x-1", big.clone());
        let created = f.store.create_execution(&n).await.unwrap();
        assert_eq!(created.execution().input, big);
        // Idempotent: the same input is the same reference.
        assert!(matches!(
            f.store.create_execution(&n).await.unwrap(),
            Created::Existing(_)
        ));
        // A different one still conflicts.
        let other = new("x-1", json!({"blob": "c".repeat(5000)}));
        assert!(matches!(
            f.store.create_execution(&other).await,
            Err(StoreError::Conflict { .. })
        ));
        let raw = f.raw.get_execution(&n.id).await.unwrap().unwrap();
        let (sha, bytes) = reference(&raw.input).unwrap();
        assert_eq!(bytes as usize, json_len(&big));
        assert_eq!(sha.len(), 64);
        assert!(json_len(&raw.input) < 200, "{}", raw.input);
        assert_eq!(
            f.store.get_execution(&n.id).await.unwrap().unwrap().input,
            big
        );

        let claimed = f
            .store
            .claim(&n.id, Timestamp(1_000), Timestamp(60_000))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(claimed.input, big);
        let op = Operation {
            id: "1".into(),
            kind: OpKind::Step,
            name: "download".into(),
            status: OpStatus::Succeeded,
            attempt: 1,
            result: Some(json!("r".repeat(3000))),
            error: None,
            started_at: Timestamp(1_000),
            ended_at: Some(Timestamp(1_001)),
            wake_at: None,
            rev: 1,
        };
        assert_eq!(
            f.store.put_operation(&n.id, &op).await.unwrap(),
            OpWrite::Written
        );
        // A second writer gets the first one's record back, resolved.
        let mut late = op.clone();
        late.result = Some(json!("z".repeat(3000)));
        assert_eq!(
            f.store.put_operation(&n.id, &late).await.unwrap(),
            OpWrite::Conflict(op.clone())
        );
        f.store
            .send_event(&n.id, "big", &json!("e".repeat(2000)), Timestamp(1_002))
            .await
            .unwrap();
        let journal = f.store.load_journal(&n.id).await.unwrap().unwrap();
        assert_eq!(journal.execution.input, big);
        assert_eq!(journal.operations, vec![op.clone()]);
        assert_eq!(journal.events[0].payload, json!("e".repeat(2000)));
        let raw = f.raw.load_journal(&n.id).await.unwrap().unwrap();
        assert!(reference(raw.operations[0].result.as_ref().unwrap()).is_some());
        assert!(reference(&raw.events[0].payload).is_some());

        let out = json!({"out": "o".repeat(4000)});
        let t = f
            .store
            .finish(
                &n.id,
                claimed.epoch,
                &Outcome {
                    status: ExecutionStatus::Succeeded,
                    output: Some(out.clone()),
                    error: None,
                    expires_at: Some(Timestamp(100_000)),
                },
                Timestamp(2_000),
            )
            .await
            .unwrap();
        assert_eq!(t, Transition::Done);
        let done = f.store.get_execution(&n.id).await.unwrap().unwrap();
        assert_eq!(done.output, Some(out));
        // input, result, event payload, output, and the conflicting input
        // and result (each written before its record lost; they expire with
        // the execution)
        assert_eq!(blob_files(&f), 6);
        // Small payloads stay inline and write no blob.
        f.store
            .create_execution(&new("x-small", json!({"n": 1})))
            .await
            .unwrap();
        assert_eq!(blob_files(&f), 6);
        // A listing never downloads payloads: it shows the references.
        let page = f
            .store
            .list_executions(&crate::store::ListFilter::default())
            .await
            .unwrap();
        let listed = page.executions.iter().find(|e| e.id == n.id).unwrap();
        assert!(reference(&listed.input).is_some(), "{}", listed.input);
    }

    #[tokio::test]
    async fn oversize_and_reserved_payloads_are_refused_and_nothing_is_written() {
        let f = fixture();
        let huge = json!("h".repeat(MAX_OFFLOADED_PAYLOAD_BYTES + 1));
        let err = f
            .store
            .create_execution(&new("x-huge", huge))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("execution input"), "{err}");
        assert!(
            err.contains(&MAX_OFFLOADED_PAYLOAD_BYTES.to_string()),
            "{err}"
        );
        assert!(
            f.raw
                .get_execution(&ExecutionId::new("x-huge").unwrap())
                .await
                .unwrap()
                .is_none()
        );
        let forged = json!({ REFERENCE_KEY: {"sha256": "0".repeat(64), "bytes": 1} });
        let err = f
            .store
            .create_execution(&new("x-forged", forged))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("reserved"), "{err}");
        assert_eq!(blob_files(&f), 0);
        assert_eq!(f.store.payload_limit(), MAX_OFFLOADED_PAYLOAD_BYTES);
        assert_eq!(f.raw.payload_limit(), crate::model::MAX_PAYLOAD_BYTES);
    }

    #[tokio::test]
    async fn another_reader_checks_blobs_and_a_missing_one_is_a_clear_error() {
        let f = fixture();
        let n = new("x-lost", json!("l".repeat(5000)));
        f.store.create_execution(&n).await.unwrap();
        // Another process (nothing cached) reads the record and its blob.
        let fresh = || OffloadingStore::new(f.raw.clone(), Arc::new(DirBlobStore::new(&f.blobs)));
        assert_eq!(
            fresh().get_execution(&n.id).await.unwrap().unwrap().input,
            n.input
        );
        let raw = f.raw.get_execution(&n.id).await.unwrap().unwrap();
        let (sha, _) = reference(&raw.input).unwrap();
        let file = f.blobs.join("x-x-lost").join(sha);
        std::fs::write(&file, b"\"tampered\"").unwrap();
        let err = fresh().get_execution(&n.id).await.unwrap_err().to_string();
        assert!(err.contains("does not match"), "{err}");
        f.store.blobs().delete_execution(&n.id).await.unwrap();
        let err = fresh().get_execution(&n.id).await.unwrap_err().to_string();
        assert!(err.contains("missing"), "{err}");
        assert!(err.contains("x-lost"), "{err}");
    }

    #[tokio::test]
    async fn blobs_expire_with_their_execution() {
        let f = fixture();
        let store = OffloadingStore::new(f.raw.clone(), Arc::new(DirBlobStore::new(&f.blobs)))
            .threshold(1000)
            .orphan_grace(Duration::from_secs(60));
        let wall = crate::clock::Clock::now(&crate::clock::SystemClock).0;
        let keep = new("x-keep", json!("k".repeat(5000)));
        let done = new("x-done", json!("d".repeat(5000)));
        for n in [&keep, &done] {
            store.create_execution(n).await.unwrap();
        }
        // An orphan: a blob whose execution was never created.
        let orphan = ExecutionId::new("x-orphan").unwrap();
        store
            .blobs()
            .put(
                &BlobKey::of(&orphan, b"\"o\""),
                Bytes::from_static(b"\"o\""),
            )
            .await
            .unwrap();
        let c = store
            .claim(&done.id, Timestamp(1_000), Timestamp(60_000))
            .await
            .unwrap()
            .unwrap();
        let expires = Timestamp(wall + 10_000);
        store
            .finish(
                &done.id,
                c.epoch,
                &Outcome {
                    status: ExecutionStatus::Succeeded,
                    output: Some(json!("out".repeat(1000))),
                    error: None,
                    expires_at: Some(expires),
                },
                Timestamp(2_000),
            )
            .await
            .unwrap();
        assert_eq!(blob_files(&f), 4);
        // Before expiry and within the orphans' grace: everything stays.
        store.purge_expired(Timestamp(wall)).await.unwrap();
        assert_eq!(blob_files(&f), 4);
        // Past expiry (an injected time, no sleeping): the finished
        // execution's blobs go with it, the orphan's after its grace.
        let later = Timestamp(wall + 120_000);
        store.purge_expired(later).await.unwrap();
        assert!(store.get_execution(&done.id).await.unwrap().is_none());
        assert_eq!(
            blob_files(&f),
            1,
            "only the running execution's input stays"
        );
        assert_eq!(
            store.get_execution(&keep.id).await.unwrap().unwrap().input,
            keep.input
        );
    }
}
