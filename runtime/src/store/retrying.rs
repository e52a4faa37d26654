//! A wrapper that retries transient store errors with backoff and jitter.
//!
//! Every write of the `Store` contract is safe to retry: creating is idempotent,
//! operation writes are first-writer-wins (a retry of a write that did land gets
//! its own record back as the "conflict"), and epoch-conditional updates answer
//! `Done` when this same claimant already applied them.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use super::{
    Created, DueItem, ExecutionPage, ListFilter, OpWrite, Outcome, Schedule, ScheduleWrite,
    SentEvent, Store, Transition,
};
use crate::error::Result;
use crate::model::{Execution, ExecutionId, Journal, NewExecution, Operation, Timestamp};

/// Retries transient errors of the wrapped store.
pub struct RetryingStore {
    inner: Arc<dyn Store>,
    max_attempts: u32,
    base_delay: Duration,
    max_delay: Duration,
}

impl RetryingStore {
    /// Wraps `inner`: up to 8 attempts, 5 ms doubling to at most 1 s, full jitter.
    pub fn new(inner: Arc<dyn Store>) -> Self {
        RetryingStore {
            inner,
            max_attempts: 8,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_secs(1),
        }
    }

    /// Sets how many attempts each call gets (at least 1).
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    async fn retry<T, F, Fut>(&self, what: &str, mut f: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut attempt = 1;
        loop {
            match f().await {
                Err(e) if e.is_transient() && attempt < self.max_attempts => {
                    let cap = self
                        .base_delay
                        .saturating_mul(1 << attempt.min(20))
                        .min(self.max_delay);
                    let delay = cap.mul_f64(jitter_fraction());
                    tracing::debug!(%e, attempt, what, ?delay, "retrying transient store error");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

/// A fraction in [0, 1) from the system clock's sub-second noise; good enough
/// to spread retries apart without a random number generator dependency.
fn jitter_fraction() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mixed = nanos.wrapping_mul(2_654_435_761) % 1_000_000;
    f64::from(mixed) / 1_000_000.0
}

#[async_trait]
impl Store for RetryingStore {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    async fn create_execution(&self, new: &NewExecution) -> Result<Created> {
        self.retry("create", || self.inner.create_execution(new))
            .await
    }
    async fn get_execution(&self, id: &ExecutionId) -> Result<Option<Execution>> {
        self.retry("get", || self.inner.get_execution(id)).await
    }
    async fn load_journal(&self, id: &ExecutionId) -> Result<Option<Journal>> {
        self.retry("load", || self.inner.load_journal(id)).await
    }
    async fn claim(
        &self,
        id: &ExecutionId,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Option<Execution>> {
        self.retry("claim", || self.inner.claim(id, now, lease_until))
            .await
    }
    async fn create_and_claim(
        &self,
        new: &NewExecution,
        lease_until: Timestamp,
    ) -> Result<(Created, Option<Execution>)> {
        self.retry("create_and_claim", || {
            self.inner.create_and_claim(new, lease_until)
        })
        .await
    }
    async fn put_operation(&self, id: &ExecutionId, op: &Operation) -> Result<OpWrite> {
        self.retry("put_operation", || self.inner.put_operation(id, op))
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
        self.retry("suspend", || {
            self.inner.suspend(id, epoch, seen_wakeups, wake_at, now)
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
        self.retry("finish", || self.inner.finish(id, epoch, outcome, now))
            .await
    }
    async fn wake(&self, id: &ExecutionId, now: Timestamp) -> Result<bool> {
        self.retry("wake", || self.inner.wake(id, now)).await
    }
    async fn due(&self, shard: u32, now: Timestamp, limit: usize) -> Result<Vec<DueItem>> {
        self.retry("due", || self.inner.due(shard, now, limit))
            .await
    }
    async fn purge_expired(&self, now: Timestamp) -> Result<u64> {
        self.retry("purge", || self.inner.purge_expired(now)).await
    }
    async fn list_executions(&self, filter: &ListFilter) -> Result<ExecutionPage> {
        self.retry("list", || self.inner.list_executions(filter))
            .await
    }
    async fn cancel(&self, id: &ExecutionId, now: Timestamp) -> Result<Option<Execution>> {
        self.retry("cancel", || self.inner.cancel(id, now)).await
    }
    async fn send_event(
        &self,
        id: &ExecutionId,
        name: &str,
        payload: &Value,
        now: Timestamp,
    ) -> Result<SentEvent> {
        self.retry("send_event", || {
            self.inner.send_event(id, name, payload, now)
        })
        .await
    }
    async fn resume(&self, id: &ExecutionId, now: Timestamp) -> Result<Option<Execution>> {
        self.retry("resume", || self.inner.resume(id, now)).await
    }
    async fn create_schedule(&self, schedule: &Schedule) -> Result<ScheduleWrite> {
        self.retry("create_schedule", || self.inner.create_schedule(schedule))
            .await
    }
    async fn update_schedule(&self, schedule: &Schedule) -> Result<ScheduleWrite> {
        self.retry("update_schedule", || self.inner.update_schedule(schedule))
            .await
    }
    async fn get_schedule(&self, name: &str) -> Result<Option<Schedule>> {
        self.retry("get_schedule", || self.inner.get_schedule(name))
            .await
    }
    async fn list_schedules(&self) -> Result<Vec<Schedule>> {
        self.retry("list_schedules", || self.inner.list_schedules())
            .await
    }
    async fn due_schedules(&self, now: Timestamp, limit: usize) -> Result<Vec<Schedule>> {
        self.retry("due_schedules", || self.inner.due_schedules(now, limit))
            .await
    }
}
