//! A store wrapper that injects transient failures, for tests.
//!
//! A failure is injected either before the call reaches the inner store (nothing
//! happened) or after it (the write landed but the caller is told it failed) —
//! the ambiguous case every retry path must survive. With
//! [`FaultyStore::with_latency`] every call is also delayed by a random
//! 0..max, so calls that were in order overlap.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

use super::{
    Created, DueItem, ExecutionPage, ListFilter, OpWrite, Outcome, Schedule, ScheduleWrite,
    SentEvent, Store, Transition,
};
use crate::error::{Result, StoreError};
use crate::model::{Execution, ExecutionId, Journal, NewExecution, Operation, Timestamp};

/// Injects transient errors into a fraction of calls.
pub struct FaultyStore {
    inner: Arc<dyn Store>,
    rate: f64,
    rng: Mutex<StdRng>,
    injected: AtomicU64,
    ambiguous: AtomicU64,
    ambiguous_enabled: bool,
    max_latency: std::time::Duration,
}

enum Fault {
    None,
    Before,
    After,
}

impl FaultyStore {
    /// Fails `rate` (0.0–1.0) of calls, half before and half after the inner call.
    pub fn new(inner: Arc<dyn Store>, rate: f64, seed: u64) -> Self {
        FaultyStore {
            inner,
            rate,
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            injected: AtomicU64::new(0),
            ambiguous: AtomicU64::new(0),
            ambiguous_enabled: true,
            max_latency: std::time::Duration::ZERO,
        }
    }

    /// Delays every call by a random time in `0..max` (before it reaches the
    /// inner store).
    pub fn with_latency(mut self, max: std::time::Duration) -> Self {
        self.max_latency = max;
        self
    }

    /// How many of the injected faults were ambiguous (the call took effect).
    pub fn ambiguous(&self) -> u64 {
        self.ambiguous.load(Ordering::Relaxed)
    }

    /// Injects faults only before the inner call: a failed call never happened.
    /// (Retries then reproduce a healthy store exactly; with ambiguous faults a
    /// retried claim or wake may observably differ, e.g. `Existing` for `New`.)
    pub fn before_only(mut self) -> Self {
        self.ambiguous_enabled = false;
        self
    }

    /// How many faults have been injected so far.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::Relaxed)
    }

    fn roll(&self) -> (Fault, std::time::Duration) {
        let Ok(mut rng) = self.rng.lock() else {
            return (Fault::None, std::time::Duration::ZERO);
        };
        let delay = if self.max_latency.is_zero() {
            std::time::Duration::ZERO
        } else {
            self.max_latency.mul_f64(rng.random::<f64>())
        };
        if rng.random::<f64>() >= self.rate {
            return (Fault::None, delay);
        }
        self.injected.fetch_add(1, Ordering::Relaxed);
        if !self.ambiguous_enabled || rng.random::<bool>() {
            (Fault::Before, delay)
        } else {
            self.ambiguous.fetch_add(1, Ordering::Relaxed);
            (Fault::After, delay)
        }
    }

    async fn call<T>(
        &self,
        what: &str,
        fut: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let (fault, delay) = self.roll();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        match fault {
            Fault::None => fut.await,
            Fault::Before => Err(StoreError::Transient(format!(
                "injected fault before {what}"
            ))),
            Fault::After => {
                let _ = fut.await;
                Err(StoreError::Transient(format!(
                    "injected fault after {what}"
                )))
            }
        }
    }
}

#[async_trait]
impl Store for FaultyStore {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    async fn create_execution(&self, new: &NewExecution) -> Result<Created> {
        self.call("create", self.inner.create_execution(new)).await
    }
    async fn get_execution(&self, id: &ExecutionId) -> Result<Option<Execution>> {
        self.call("get", self.inner.get_execution(id)).await
    }
    async fn load_journal(&self, id: &ExecutionId) -> Result<Option<Journal>> {
        self.call("load", self.inner.load_journal(id)).await
    }
    async fn claim(
        &self,
        id: &ExecutionId,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Option<Execution>> {
        self.call("claim", self.inner.claim(id, now, lease_until))
            .await
    }
    async fn put_operation(&self, id: &ExecutionId, op: &Operation) -> Result<OpWrite> {
        self.call("put_operation", self.inner.put_operation(id, op))
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
        self.call(
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
        self.call("finish", self.inner.finish(id, epoch, outcome, now))
            .await
    }
    async fn wake(&self, id: &ExecutionId, now: Timestamp) -> Result<bool> {
        self.call("wake", self.inner.wake(id, now)).await
    }
    async fn due(&self, shard: u32, now: Timestamp, limit: usize) -> Result<Vec<DueItem>> {
        self.call("due", self.inner.due(shard, now, limit)).await
    }
    async fn purge_expired(&self, now: Timestamp) -> Result<u64> {
        self.call("purge", self.inner.purge_expired(now)).await
    }
    async fn list_executions(&self, filter: &ListFilter) -> Result<ExecutionPage> {
        self.call("list", self.inner.list_executions(filter)).await
    }
    async fn cancel(&self, id: &ExecutionId, now: Timestamp) -> Result<Option<Execution>> {
        self.call("cancel", self.inner.cancel(id, now)).await
    }
    async fn send_event(
        &self,
        id: &ExecutionId,
        name: &str,
        payload: &Value,
        now: Timestamp,
    ) -> Result<SentEvent> {
        self.call("send_event", self.inner.send_event(id, name, payload, now))
            .await
    }
    async fn resume(&self, id: &ExecutionId, now: Timestamp) -> Result<Option<Execution>> {
        self.call("resume", self.inner.resume(id, now)).await
    }
    async fn create_schedule(&self, schedule: &Schedule) -> Result<ScheduleWrite> {
        self.call("create_schedule", self.inner.create_schedule(schedule))
            .await
    }
    async fn update_schedule(&self, schedule: &Schedule) -> Result<ScheduleWrite> {
        self.call("update_schedule", self.inner.update_schedule(schedule))
            .await
    }
    async fn get_schedule(&self, name: &str) -> Result<Option<Schedule>> {
        self.call("get_schedule", self.inner.get_schedule(name))
            .await
    }
    async fn list_schedules(&self) -> Result<Vec<Schedule>> {
        self.call("list_schedules", self.inner.list_schedules())
            .await
    }
    async fn due_schedules(&self, now: Timestamp, limit: usize) -> Result<Vec<Schedule>> {
        self.call("due_schedules", self.inner.due_schedules(now, limit))
            .await
    }
}
