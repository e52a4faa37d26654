//! A store that reports every write making an execution due to a
//! [`WakeSink`]: how a dispatcher that runs only when told (the dispatcher
//! function on AWS Lambda) hears of starts, events, callbacks, resumes,
//! child executions and timers without polling.
//!
//! The writes that make something due, and what is reported:
//! - `create_execution` of a new execution: due now;
//! - `wake` of an existing execution (callbacks, children waking parents):
//!   due now;
//! - `send_event` delivered, `resume` applied: due now;
//! - `suspend` applied: the wake time it set. A wake signal that arrived
//!   during the invocation makes the store set "due now" instead, which the
//!   caller cannot see, so a suspension re-reads the record and reports what
//!   the store holds.
//!
//! Reports are best effort and come after the write: the due index remains
//! the truth, and the dispatcher's sweep finds anything a report missed.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use super::{
    Created, DueItem, ExecutionPage, ListFilter, OpWrite, Outcome, Schedule, ScheduleWrite,
    SentEvent, Store, SuspendWrite, Transition,
};
use crate::error::Result;
use crate::model::{
    Execution, ExecutionId, ExecutionStatus, HistoryEntry, Journal, NewExecution, Operation,
    Timestamp,
};

/// Where wake-ups go (on AWS the SQS wake queue, `dispatch::wake::WakeQueue`).
#[async_trait]
pub trait WakeSink: Send + Sync + 'static {
    /// Execution `id` is due at `at` (`now` or later). Failures are the
    /// sink's to log: the due index still holds the wake-up.
    async fn due(&self, id: &ExecutionId, at: Timestamp, now: Timestamp);
}

/// Wraps a store; reports what becomes due to a [`WakeSink`].
pub struct WakingStore {
    inner: Arc<dyn Store>,
    sink: Arc<dyn WakeSink>,
}

impl WakingStore {
    /// `inner`, reporting to `sink`.
    pub fn new(inner: Arc<dyn Store>, sink: Arc<dyn WakeSink>) -> Self {
        WakingStore { inner, sink }
    }

    /// An execution suspended: reports when it is due (its timer, or now if
    /// a signal during the invocation made it due at once).
    async fn suspended(&self, id: &ExecutionId, wake_at: Option<Timestamp>, now: Timestamp) {
        let due = match wake_at {
            Some(at) if at <= now => Some(at),
            // A signal during the invocation may have made it due now.
            _ => match self.inner.get_execution(id).await {
                Ok(Some(e)) if e.status == ExecutionStatus::Suspended => e.due_at,
                Ok(_) => None,
                Err(e) => {
                    tracing::warn!(execution_id = %id, error = %e, "cannot re-read a suspended execution; reporting its timer");
                    wake_at
                }
            },
        };
        if let Some(at) = due {
            self.sink.due(id, at, now).await;
        }
    }
}

#[async_trait]
impl Store for WakingStore {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    fn atomic_create_and_claim(&self) -> bool {
        self.inner.atomic_create_and_claim()
    }
    fn payload_limit(&self) -> usize {
        self.inner.payload_limit()
    }
    async fn create_execution(&self, new: &NewExecution) -> Result<Created> {
        let created = self.inner.create_execution(new).await?;
        if let Created::New(e) = &created {
            self.sink.due(&e.id, new.now, new.now).await;
        }
        Ok(created)
    }
    async fn get_execution(&self, id: &ExecutionId) -> Result<Option<Execution>> {
        self.inner.get_execution(id).await
    }
    async fn load_journal(&self, id: &ExecutionId) -> Result<Option<Journal>> {
        self.inner.load_journal(id).await
    }
    async fn claim(
        &self,
        id: &ExecutionId,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Option<Execution>> {
        self.inner.claim(id, now, lease_until).await
    }
    async fn claim_with_journal(
        &self,
        id: &ExecutionId,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Option<(Execution, Option<Journal>)>> {
        self.inner.claim_with_journal(id, now, lease_until).await
    }
    async fn create_and_claim(
        &self,
        new: &NewExecution,
        lease_until: Timestamp,
    ) -> Result<(Created, Option<Execution>)> {
        // The caller runs what it claims: nothing to report.
        self.inner.create_and_claim(new, lease_until).await
    }
    async fn put_operation(&self, id: &ExecutionId, op: &Operation) -> Result<OpWrite> {
        self.inner.put_operation(id, op).await
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
        let t = self
            .inner
            .suspend(id, epoch, seen_wakeups, wake_at, now)
            .await?;
        if t == Transition::Done {
            self.suspended(id, wake_at, now).await;
        }
        Ok(t)
    }
    async fn finish(
        &self,
        id: &ExecutionId,
        epoch: u64,
        outcome: &Outcome,
        now: Timestamp,
    ) -> Result<Transition> {
        self.inner.finish(id, epoch, outcome, now).await
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
        let t = self
            .inner
            .suspend_with(id, epoch, seen_wakeups, ops, wake_at, now)
            .await?;
        if t == SuspendWrite::Done {
            self.suspended(id, wake_at, now).await;
        }
        Ok(t)
    }
    async fn wake(&self, id: &ExecutionId, now: Timestamp) -> Result<bool> {
        let woken = self.inner.wake(id, now).await?;
        if woken {
            self.sink.due(id, now, now).await;
        }
        Ok(woken)
    }
    async fn due(&self, shard: u32, now: Timestamp, limit: usize) -> Result<Vec<DueItem>> {
        self.inner.due(shard, now, limit).await
    }
    async fn purge_expired(&self, now: Timestamp) -> Result<u64> {
        self.inner.purge_expired(now).await
    }
    async fn list_executions(&self, filter: &ListFilter) -> Result<ExecutionPage> {
        self.inner.list_executions(filter).await
    }
    async fn send_event(
        &self,
        id: &ExecutionId,
        name: &str,
        payload: &Value,
        now: Timestamp,
    ) -> Result<SentEvent> {
        let sent = self.inner.send_event(id, name, payload, now).await?;
        if matches!(sent, SentEvent::Delivered(_)) {
            self.sink.due(id, now, now).await;
        }
        Ok(sent)
    }
    async fn resume(&self, id: &ExecutionId, now: Timestamp) -> Result<Option<Execution>> {
        let resumed = self.inner.resume(id, now).await?;
        if let Some(e) = &resumed {
            if let Some(at) = e.due_at.filter(|_| e.status == ExecutionStatus::Suspended) {
                self.sink.due(id, at, now).await;
            }
        }
        Ok(resumed)
    }
    async fn cancel(&self, id: &ExecutionId, now: Timestamp) -> Result<Option<Execution>> {
        self.inner.cancel(id, now).await
    }
    async fn set_paused(
        &self,
        id: &ExecutionId,
        paused: bool,
        now: Timestamp,
    ) -> Result<Option<Execution>> {
        let after = self.inner.set_paused(id, paused, now).await?;
        if let Some(e) = after.as_ref().filter(|e| !paused && !e.paused) {
            // Unpaused: due now (or at its lease's end) again.
            if let Some(at) = e.due_at.filter(|_| !e.status.is_final()) {
                self.sink.due(id, at, now).await;
            }
        }
        Ok(after)
    }
    async fn set_start_options(
        &self,
        id: &ExecutionId,
        options: &crate::model::StartOptions,
        now: Timestamp,
    ) -> Result<Option<Execution>> {
        self.inner.set_start_options(id, options, now).await
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
    async fn send_message(&self, message: &super::QueueMessage) -> Result<bool> {
        self.inner.send_message(message).await
    }
    async fn receive_messages(
        &self,
        queue: &str,
        now: Timestamp,
        hidden_until: Timestamp,
        max: usize,
    ) -> Result<Vec<super::QueueMessage>> {
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
    async fn queue_stats(&self, queue: &str, now: Timestamp) -> Result<super::QueueStats> {
        self.inner.queue_stats(queue, now).await
    }
    async fn purge_queue(&self, queue: &str) -> Result<u64> {
        self.inner.purge_queue(queue).await
    }
    async fn take_lease(
        &self,
        request: &super::LeaseRequest,
        now: Timestamp,
    ) -> Result<super::LeaseTake> {
        self.inner.take_lease(request, now).await
    }
    async fn release_lease(&self, group: &str, name: &str, owner: &str) -> Result<bool> {
        self.inner.release_lease(group, name, owner).await
    }
    async fn list_leases(&self, group: &str) -> Result<Vec<super::Lease>> {
        self.inner.list_leases(group).await
    }
    async fn put_attribute(&self, id: &ExecutionId, attr: &super::SearchAttribute) -> Result<()> {
        self.inner.put_attribute(id, attr).await
    }
    async fn find_by_attribute(
        &self,
        query: &super::AttributeQuery,
    ) -> Result<super::AttributePage> {
        self.inner.find_by_attribute(query).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use serde_json::json;

    use super::*;
    use crate::store::SqliteStore;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<(String, i64)>>);

    #[async_trait]
    impl WakeSink for Recorder {
        async fn due(&self, id: &ExecutionId, at: Timestamp, _now: Timestamp) {
            self.0.lock().unwrap().push((id.as_str().to_string(), at.0));
        }
    }

    fn new(id: &str, now: i64) -> NewExecution {
        NewExecution {
            id: ExecutionId::new(id).unwrap(),
            function: "f".into(),
            version: "$LATEST".into(),
            input: json!({}),
            now: Timestamp(now),
        }
    }

    #[tokio::test]
    async fn starts_events_wakes_and_timers_are_reported_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let inner = SqliteStore::open(dir.path().join("s.db")).unwrap();
        let sink = Arc::new(Recorder::default());
        let store = WakingStore::new(Arc::new(inner), sink.clone());
        let taken = |s: &Recorder| std::mem::take(&mut *s.0.lock().unwrap());

        let n = new("x-1", 1_000);
        store.create_execution(&n).await.unwrap();
        assert_eq!(taken(&sink), [("x-1".to_string(), 1_000)]);
        // The same start again creates nothing, reports nothing.
        store.create_execution(&n).await.unwrap();
        assert!(taken(&sink).is_empty());

        let id = n.id.clone();
        let c = store
            .claim(&id, Timestamp(1_000), Timestamp(60_000))
            .await
            .unwrap()
            .unwrap();
        assert!(taken(&sink).is_empty(), "a claim is not a wake-up");
        store
            .suspend(
                &id,
                c.epoch,
                c.wakeups,
                Some(Timestamp(11_000)),
                Timestamp(2_000),
            )
            .await
            .unwrap();
        assert_eq!(taken(&sink), [("x-1".to_string(), 11_000)]);

        store
            .send_event(&id, "ping", &json!(1), Timestamp(3_000))
            .await
            .unwrap();
        assert_eq!(taken(&sink), [("x-1".to_string(), 3_000)]);

        // A signal during an invocation: the suspension reports "due now".
        let c = store
            .claim(&id, Timestamp(4_000), Timestamp(60_000))
            .await
            .unwrap()
            .unwrap();
        store.wake(&id, Timestamp(4_500)).await.unwrap();
        taken(&sink);
        store
            .suspend(
                &id,
                c.epoch,
                c.wakeups,
                Some(Timestamp(99_000)),
                Timestamp(5_000),
            )
            .await
            .unwrap();
        let reported = taken(&sink);
        assert_eq!(reported.len(), 1);
        assert!(reported[0].1 <= 5_000, "{reported:?}");

        // A stale suspension reports nothing; a missing execution is not woken.
        store
            .suspend(
                &id,
                c.epoch + 7,
                c.wakeups,
                Some(Timestamp(7_000)),
                Timestamp(6_000),
            )
            .await
            .unwrap();
        assert!(taken(&sink).is_empty());
        let ghost = ExecutionId::new("ghost").unwrap();
        assert!(!store.wake(&ghost, Timestamp(6_000)).await.unwrap());
        assert!(taken(&sink).is_empty());
    }
}
