//! [`Wrapper`]: a store that passes every call to another one through one
//! function, [`Wrapper::around`]. The method list lives here once: a wrapper
//! (retries, injected faults, timing) implements `inner` and `around` and is
//! a [`Store`] with every method forwarded, so none can be forgotten.

use std::future::Future;
use std::pin::Pin;

use async_trait::async_trait;
use serde_json::Value;

use super::{
    AttributePage, AttributeQuery, Created, DueItem, ExecutionPage, Lease, LeaseRequest, LeaseTake,
    ListFilter, OpWrite, Outcome, QueueMessage, QueueStats, Schedule, ScheduleWrite,
    SearchAttribute, SentEvent, Store, SuspendWrite, Transition,
};
use crate::error::Result;
use crate::model::{
    Execution, ExecutionId, HistoryEntry, Journal, NewExecution, Operation, Timestamp,
};

/// One call of the wrapped store, as [`Wrapper::around`] receives it.
pub type InnerCall<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// A store that forwards every call to [`Wrapper::inner`] through
/// [`Wrapper::around`]; every `Wrapper` is a [`Store`].
pub trait Wrapper: Send + Sync + 'static {
    /// The store the calls go to.
    fn inner(&self) -> &dyn Store;

    /// Runs one call. `what` is the [`Store`] method's name; `call` starts
    /// the inner store's call (call it again to retry, or not at all).
    fn around<'a, T, F>(
        &'a self,
        what: &'static str,
        call: F,
    ) -> impl Future<Output = Result<T>> + Send + 'a
    where
        T: Send + 'a,
        F: FnMut() -> InnerCall<'a, T> + Send + 'a;
}

#[async_trait]
impl<W: Wrapper> Store for W {
    fn backend(&self) -> &'static str {
        self.inner().backend()
    }
    fn atomic_create_and_claim(&self) -> bool {
        self.inner().atomic_create_and_claim()
    }
    fn payload_limit(&self) -> usize {
        self.inner().payload_limit()
    }
    async fn create_execution(&self, new: &NewExecution) -> Result<Created> {
        let s = self.inner();
        self.around("create_execution", || s.create_execution(new))
            .await
    }
    async fn get_execution(&self, id: &ExecutionId) -> Result<Option<Execution>> {
        let s = self.inner();
        self.around("get_execution", || s.get_execution(id)).await
    }
    async fn load_journal(&self, id: &ExecutionId) -> Result<Option<Journal>> {
        let s = self.inner();
        self.around("load_journal", || s.load_journal(id)).await
    }
    async fn claim(
        &self,
        id: &ExecutionId,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Option<Execution>> {
        let s = self.inner();
        self.around("claim", || s.claim(id, now, lease_until)).await
    }
    async fn claim_with_journal(
        &self,
        id: &ExecutionId,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Option<(Execution, Option<Journal>)>> {
        let s = self.inner();
        self.around("claim_with_journal", || {
            s.claim_with_journal(id, now, lease_until)
        })
        .await
    }
    async fn create_and_claim(
        &self,
        new: &NewExecution,
        lease_until: Timestamp,
    ) -> Result<(Created, Option<Execution>)> {
        let s = self.inner();
        self.around("create_and_claim", || s.create_and_claim(new, lease_until))
            .await
    }
    async fn put_operation(&self, id: &ExecutionId, op: &Operation) -> Result<OpWrite> {
        let s = self.inner();
        self.around("put_operation", || s.put_operation(id, op))
            .await
    }
    async fn put_history(&self, id: &ExecutionId, entry: &HistoryEntry, keep: u32) -> Result<()> {
        let s = self.inner();
        self.around("put_history", || s.put_history(id, entry, keep))
            .await
    }
    async fn load_history(&self, id: &ExecutionId) -> Result<Vec<HistoryEntry>> {
        let s = self.inner();
        self.around("load_history", || s.load_history(id)).await
    }
    async fn suspend(
        &self,
        id: &ExecutionId,
        epoch: u64,
        seen_wakeups: u64,
        wake_at: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<Transition> {
        let s = self.inner();
        self.around("suspend", || {
            s.suspend(id, epoch, seen_wakeups, wake_at, now)
        })
        .await
    }
    async fn finish(
        &self,
        id: &ExecutionId,
        epoch: u64,
        outcome: &Outcome,
        now: Timestamp,
    ) -> Result<Transition> {
        let s = self.inner();
        self.around("finish", || s.finish(id, epoch, outcome, now))
            .await
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
        let s = self.inner();
        self.around("suspend_with", || {
            s.suspend_with(id, epoch, seen_wakeups, ops, wake_at, now)
        })
        .await
    }
    async fn wake(&self, id: &ExecutionId, now: Timestamp) -> Result<bool> {
        let s = self.inner();
        self.around("wake", || s.wake(id, now)).await
    }
    async fn due(&self, shard: u32, now: Timestamp, limit: usize) -> Result<Vec<DueItem>> {
        let s = self.inner();
        self.around("due", || s.due(shard, now, limit)).await
    }
    async fn purge_expired(&self, now: Timestamp) -> Result<u64> {
        let s = self.inner();
        self.around("purge_expired", || s.purge_expired(now)).await
    }
    async fn list_executions(&self, filter: &ListFilter) -> Result<ExecutionPage> {
        let s = self.inner();
        self.around("list_executions", || s.list_executions(filter))
            .await
    }
    async fn send_event(
        &self,
        id: &ExecutionId,
        name: &str,
        payload: &Value,
        now: Timestamp,
    ) -> Result<SentEvent> {
        let s = self.inner();
        self.around("send_event", || s.send_event(id, name, payload, now))
            .await
    }
    async fn resume(&self, id: &ExecutionId, now: Timestamp) -> Result<Option<Execution>> {
        let s = self.inner();
        self.around("resume", || s.resume(id, now)).await
    }
    async fn cancel(&self, id: &ExecutionId, now: Timestamp) -> Result<Option<Execution>> {
        let s = self.inner();
        self.around("cancel", || s.cancel(id, now)).await
    }
    async fn set_paused(
        &self,
        id: &ExecutionId,
        paused: bool,
        now: Timestamp,
    ) -> Result<Option<Execution>> {
        let s = self.inner();
        self.around("set_paused", || s.set_paused(id, paused, now))
            .await
    }
    async fn set_start_options(
        &self,
        id: &ExecutionId,
        options: &crate::model::StartOptions,
        now: Timestamp,
    ) -> Result<Option<Execution>> {
        let s = self.inner();
        self.around("set_start_options", || {
            s.set_start_options(id, options, now)
        })
        .await
    }
    async fn create_schedule(&self, schedule: &Schedule) -> Result<ScheduleWrite> {
        let s = self.inner();
        self.around("create_schedule", || s.create_schedule(schedule))
            .await
    }
    async fn update_schedule(&self, schedule: &Schedule) -> Result<ScheduleWrite> {
        let s = self.inner();
        self.around("update_schedule", || s.update_schedule(schedule))
            .await
    }
    async fn get_schedule(&self, name: &str) -> Result<Option<Schedule>> {
        let s = self.inner();
        self.around("get_schedule", || s.get_schedule(name)).await
    }
    async fn list_schedules(&self) -> Result<Vec<Schedule>> {
        let s = self.inner();
        self.around("list_schedules", || s.list_schedules()).await
    }
    async fn due_schedules(&self, now: Timestamp, limit: usize) -> Result<Vec<Schedule>> {
        let s = self.inner();
        self.around("due_schedules", || s.due_schedules(now, limit))
            .await
    }
    async fn send_message(&self, message: &QueueMessage) -> Result<bool> {
        let s = self.inner();
        self.around("send_message", || s.send_message(message))
            .await
    }
    async fn receive_messages(
        &self,
        queue: &str,
        now: Timestamp,
        hidden_until: Timestamp,
        max: usize,
    ) -> Result<Vec<QueueMessage>> {
        let s = self.inner();
        self.around("receive_messages", || {
            s.receive_messages(queue, now, hidden_until, max)
        })
        .await
    }
    async fn delete_message(&self, queue: &str, id: &str, receipt: &str) -> Result<bool> {
        let s = self.inner();
        self.around("delete_message", || s.delete_message(queue, id, receipt))
            .await
    }
    async fn change_message_visibility(
        &self,
        queue: &str,
        id: &str,
        receipt: &str,
        visible_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool> {
        let s = self.inner();
        self.around("change_message_visibility", || {
            s.change_message_visibility(queue, id, receipt, visible_at, now)
        })
        .await
    }
    async fn queue_stats(&self, queue: &str, now: Timestamp) -> Result<QueueStats> {
        let s = self.inner();
        self.around("queue_stats", || s.queue_stats(queue, now))
            .await
    }
    async fn purge_queue(&self, queue: &str) -> Result<u64> {
        let s = self.inner();
        self.around("purge_queue", || s.purge_queue(queue)).await
    }
    async fn take_lease(&self, request: &LeaseRequest, now: Timestamp) -> Result<LeaseTake> {
        let s = self.inner();
        self.around("take_lease", || s.take_lease(request, now))
            .await
    }
    async fn release_lease(&self, group: &str, name: &str, owner: &str) -> Result<bool> {
        let s = self.inner();
        self.around("release_lease", || s.release_lease(group, name, owner))
            .await
    }
    async fn list_leases(&self, group: &str) -> Result<Vec<Lease>> {
        let s = self.inner();
        self.around("list_leases", || s.list_leases(group)).await
    }
    async fn put_attribute(&self, id: &ExecutionId, attr: &SearchAttribute) -> Result<()> {
        let s = self.inner();
        self.around("put_attribute", || s.put_attribute(id, attr))
            .await
    }
    async fn find_by_attribute(&self, query: &AttributeQuery) -> Result<AttributePage> {
        let s = self.inner();
        self.around("find_by_attribute", || s.find_by_attribute(query))
            .await
    }
}
