//! A [`Store`] that passes every call through to another and adds up how
//! long each kind of call took: where a durable workflow spends its time in
//! its store (claim, checkpoints, finish, reads).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use durafn_runtime::Result;
use durafn_runtime::model::{Execution, ExecutionId, Journal, NewExecution, Operation, Timestamp};
use durafn_runtime::store::{
    Created, DueItem, ExecutionPage, ListFilter, OpWrite, Outcome, SentEvent, Store, Transition,
};
use serde_json::Value;

/// How many calls of one kind, and their total time.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Tally {
    /// Calls made.
    pub(crate) calls: u64,
    /// Their total time.
    pub(crate) total: Duration,
}

/// A timing pass-through store.
pub(crate) struct TimedStore {
    inner: Arc<dyn Store>,
    tallies: Mutex<BTreeMap<&'static str, Tally>>,
}

impl TimedStore {
    /// Wraps `inner`.
    pub(crate) fn new(inner: Arc<dyn Store>) -> Self {
        TimedStore {
            inner,
            tallies: Mutex::new(BTreeMap::new()),
        }
    }

    /// The calls made so far, by method name; resets the tallies.
    pub(crate) fn take(&self) -> BTreeMap<&'static str, Tally> {
        self.tallies
            .lock()
            .map(|mut t| std::mem::take(&mut *t))
            .unwrap_or_default()
    }

    async fn timed<T>(&self, what: &'static str, call: impl Future<Output = T>) -> T {
        let started = Instant::now();
        let out = call.await;
        let elapsed = started.elapsed();
        if let Ok(mut t) = self.tallies.lock() {
            let tally = t.entry(what).or_default();
            tally.calls += 1;
            tally.total += elapsed;
        }
        out
    }
}

#[async_trait]
impl Store for TimedStore {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    async fn create_execution(&self, new: &NewExecution) -> Result<Created> {
        self.timed("create_execution", self.inner.create_execution(new))
            .await
    }

    async fn get_execution(&self, id: &ExecutionId) -> Result<Option<Execution>> {
        self.timed("get_execution", self.inner.get_execution(id))
            .await
    }

    async fn load_journal(&self, id: &ExecutionId) -> Result<Option<Journal>> {
        self.timed("load_journal", self.inner.load_journal(id))
            .await
    }

    async fn claim(
        &self,
        id: &ExecutionId,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Option<Execution>> {
        self.timed("claim", self.inner.claim(id, now, lease_until))
            .await
    }

    async fn put_operation(&self, id: &ExecutionId, op: &Operation) -> Result<OpWrite> {
        self.timed("put_operation", self.inner.put_operation(id, op))
            .await
    }

    async fn suspend(
        &self,
        id: &ExecutionId,
        epoch: u64,
        seen_wakeups: u64,
        wake_at: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<Transition> {
        self.timed(
            "suspend",
            self.inner.suspend(id, epoch, seen_wakeups, wake_at, now),
        )
        .await
    }

    async fn finish(
        &self,
        id: &ExecutionId,
        epoch: u64,
        outcome: &Outcome,
        now: Timestamp,
    ) -> Result<Transition> {
        self.timed("finish", self.inner.finish(id, epoch, outcome, now))
            .await
    }

    async fn wake(&self, id: &ExecutionId, now: Timestamp) -> Result<bool> {
        self.timed("wake", self.inner.wake(id, now)).await
    }

    async fn due(&self, shard: u32, now: Timestamp, limit: usize) -> Result<Vec<DueItem>> {
        self.timed("due", self.inner.due(shard, now, limit)).await
    }

    async fn purge_expired(&self, now: Timestamp) -> Result<u64> {
        self.timed("purge_expired", self.inner.purge_expired(now))
            .await
    }

    async fn list_executions(&self, filter: &ListFilter) -> Result<ExecutionPage> {
        self.timed("list_executions", self.inner.list_executions(filter))
            .await
    }

    async fn send_event(
        &self,
        id: &ExecutionId,
        name: &str,
        payload: &Value,
        now: Timestamp,
    ) -> Result<SentEvent> {
        self.timed("send_event", self.inner.send_event(id, name, payload, now))
            .await
    }

    async fn resume(&self, id: &ExecutionId, now: Timestamp) -> Result<Option<Execution>> {
        self.timed("resume", self.inner.resume(id, now)).await
    }

    async fn cancel(&self, id: &ExecutionId, now: Timestamp) -> Result<Option<Execution>> {
        self.timed("cancel", self.inner.cancel(id, now)).await
    }
}
