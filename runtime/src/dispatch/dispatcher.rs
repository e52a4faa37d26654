//! The dispatcher loop: due index → claim with a lease → invoke.
//!
//! Any number of dispatchers may share a store: a claim is a conditional
//! update that bumps the execution's epoch, so only one of them wins each due
//! execution. A crashed invocation is a lease that expires; an invocation the
//! invoker *knows* failed is rescheduled at once with backoff.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, broadcast};

use super::{InvocationSummary, Invoker, LEASE_GRACE, ResumeRequest};
use crate::clock::Clock;
use crate::model::{DUE_SHARDS, ExecutionId, Timestamp};
use crate::store::Store;

/// Settings of a dispatcher.
#[derive(Clone)]
#[non_exhaustive]
pub struct DispatcherConfig {
    /// How often the due index is scanned when nothing wakes the dispatcher.
    pub poll_interval: Duration,
    /// How many due executions one shard scan returns.
    pub batch: usize,
    /// How many invocations run at once.
    pub max_concurrency: usize,
    /// A function's timeout (its lease is this plus [`LEASE_GRACE`]).
    pub timeout_for: Arc<dyn Fn(&str) -> Duration + Send + Sync>,
    /// First delay before re-invoking an execution whose invocation failed.
    pub failure_backoff: Duration,
    /// Largest such delay.
    pub max_failure_backoff: Duration,
}

impl Default for DispatcherConfig {
    fn default() -> Self {
        DispatcherConfig {
            poll_interval: Duration::from_millis(100),
            batch: 256,
            max_concurrency: 64,
            timeout_for: Arc::new(|_| Duration::from_secs(30)),
            failure_backoff: Duration::from_millis(200),
            max_failure_backoff: Duration::from_secs(60),
        }
    }
}

/// Published after every invocation the dispatcher ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionChanged {
    /// The execution.
    pub id: ExecutionId,
    /// Its status as the invocation reported it (`FAILED_INVOCATION` when the
    /// invocation itself failed).
    pub status: String,
}

/// Claims due executions and invokes their functions.
pub struct Dispatcher {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    invoker: Arc<dyn Invoker>,
    config: DispatcherConfig,
    wake: Notify,
    timers: Mutex<BinaryHeap<Reverse<Timestamp>>>,
    in_flight: Mutex<HashSet<ExecutionId>>,
    failures: Mutex<HashMap<ExecutionId, u32>>,
    permits: Arc<Semaphore>,
    changes: broadcast::Sender<ExecutionChanged>,
}

/// A cheap handle to poke a running dispatcher and follow what it does.
#[derive(Clone)]
pub struct DispatchHandle {
    inner: Arc<Inner>,
}

impl DispatchHandle {
    /// Wakes the dispatcher at once (something became due: a start, an event).
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// Follows invocation results (for callers waiting on an execution).
    pub fn subscribe(&self) -> broadcast::Receiver<ExecutionChanged> {
        self.inner.changes.subscribe()
    }
}

impl Dispatcher {
    /// A dispatcher over `store`, invoking through `invoker`.
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        invoker: Arc<dyn Invoker>,
        config: DispatcherConfig,
    ) -> Self {
        let (changes, _) = broadcast::channel(1024);
        Dispatcher {
            inner: Arc::new(Inner {
                store,
                clock,
                invoker,
                permits: Arc::new(Semaphore::new(config.max_concurrency.max(1))),
                config,
                wake: Notify::new(),
                timers: Mutex::new(BinaryHeap::new()),
                in_flight: Mutex::new(HashSet::new()),
                failures: Mutex::new(HashMap::new()),
                changes,
            }),
        }
    }

    /// A handle to wake the dispatcher and follow its results.
    pub fn handle(&self) -> DispatchHandle {
        DispatchHandle {
            inner: self.inner.clone(),
        }
    }

    /// Runs until `shutdown` completes: scan, invoke, sleep until the next
    /// timer, the poll interval, or a wake-up — whichever comes first.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let started = match self.tick().await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "due-index scan failed; retrying");
                    0
                }
            };
            let pause = if started >= self.inner.config.batch {
                Duration::ZERO
            } else {
                self.inner.until_next_timer()
            };
            tokio::select! {
                _ = &mut shutdown => break,
                _ = self.inner.wake.notified() => {}
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// One scan of every shard: claims and starts invoking what is due now.
    /// Returns how many invocations it started. The invocations run in the
    /// background; [`Dispatcher::idle`] waits for them.
    pub async fn tick(&self) -> crate::Result<usize> {
        let now = self.inner.clock.now();
        let mut started = 0;
        for shard in 0..DUE_SHARDS {
            let due = self
                .inner
                .store
                .due(shard, now, self.inner.config.batch)
                .await?;
            for item in due {
                if !self.inner.mark_in_flight(&item.id) {
                    continue;
                }
                started += 1;
                let inner = self.inner.clone();
                tokio::spawn(async move {
                    let id = item.id.clone();
                    inner.dispatch(item.id).await;
                    inner.unmark_in_flight(&id);
                });
            }
        }
        Ok(started)
    }

    /// Waits until no invocation started by this dispatcher is running.
    pub async fn idle(&self) {
        loop {
            let busy = self
                .inner
                .in_flight
                .lock()
                .map(|s| !s.is_empty())
                .unwrap_or(false);
            if !busy {
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

impl Inner {
    fn mark_in_flight(&self, id: &ExecutionId) -> bool {
        self.in_flight
            .lock()
            .map(|mut s| s.insert(id.clone()))
            .unwrap_or(false)
    }

    fn unmark_in_flight(&self, id: &ExecutionId) {
        if let Ok(mut s) = self.in_flight.lock() {
            s.remove(id);
        }
    }

    fn until_next_timer(&self) -> Duration {
        let poll = self.config.poll_interval;
        let now = self.clock.now();
        let Ok(mut timers) = self.timers.lock() else {
            return poll;
        };
        match timers.peek().copied() {
            Some(Reverse(t)) if t <= now => {
                timers.pop();
                Duration::ZERO
            }
            Some(Reverse(t)) => now.until(t).min(poll),
            None => poll,
        }
    }

    fn add_timer(&self, t: Timestamp) {
        if let Ok(mut timers) = self.timers.lock() {
            timers.push(Reverse(t));
        }
        self.wake.notify_one();
    }

    async fn dispatch(&self, id: ExecutionId) {
        let _permit = match self.permits.clone().acquire_owned().await {
            Ok(p) => p,
            Err(_) => return,
        };
        let exec = match self.store.get_execution(&id).await {
            Ok(Some(e)) => e,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(execution_id = %id, error = %e, "cannot read a due execution");
                return;
            }
        };
        let now = self.clock.now();
        let lease = (self.config.timeout_for)(&exec.function) + LEASE_GRACE;
        let claimed = match self.store.claim(&id, now, now.plus(lease)).await {
            Ok(Some(c)) => c,
            Ok(None) => return, // another dispatcher got it, or it is no longer due
            Err(e) => {
                tracing::warn!(execution_id = %id, error = %e, "claim failed");
                return;
            }
        };
        let request = ResumeRequest {
            execution_id: id.clone(),
            epoch: claimed.epoch,
        };
        tracing::debug!(execution_id = %id, epoch = claimed.epoch, function = %exec.function, "invoking");
        let status = match self.invoker.invoke(&exec.function, &request).await {
            Ok(summary) => {
                self.on_success(&id, &summary);
                summary.status
            }
            Err(super::InvokeError::UnknownFunction(function)) => {
                // Nothing will ever run it: fail it now (a parent awaiting it is woken).
                let outcome = crate::store::Outcome {
                    status: crate::model::ExecutionStatus::Failed,
                    output: None,
                    error: Some(crate::model::ErrorObject::new(
                        "UnknownFunction",
                        format!("no function named {function:?} is deployed here"),
                    )),
                    expires_at: Some(now.plus(crate::model::DEFAULT_RETENTION)),
                };
                let now = self.clock.now();
                if let Err(e) = self.store.finish(&id, claimed.epoch, &outcome, now).await {
                    tracing::warn!(execution_id = %id, error = %e, "could not fail an execution of an unknown function");
                }
                if let Some((parent, _)) = id.as_str().rsplit_once("::") {
                    if let Ok(parent) = ExecutionId::new(parent) {
                        let _ = self.store.wake(&parent, now).await;
                    }
                }
                "FAILED".to_string()
            }
            Err(e) => {
                self.on_failure(&id, claimed.epoch, claimed.wakeups, &e.to_string())
                    .await;
                "FAILED_INVOCATION".to_string()
            }
        };
        let _ = self.changes.send(ExecutionChanged { id, status });
    }

    fn on_success(&self, id: &ExecutionId, summary: &InvocationSummary) {
        if let Ok(mut f) = self.failures.lock() {
            f.remove(id);
        }
        if summary.status == "SUSPENDED" {
            if let Some(t) = summary.wake_at {
                self.add_timer(t);
            }
        }
    }

    /// The invoker knows this invocation failed: reschedule now, with backoff,
    /// instead of waiting for the lease to expire.
    async fn on_failure(&self, id: &ExecutionId, epoch: u64, wakeups: u64, error: &str) {
        let n = self
            .failures
            .lock()
            .map(|mut f| {
                let n = f.entry(id.clone()).or_insert(0);
                *n += 1;
                *n
            })
            .unwrap_or(1);
        let backoff = self
            .config
            .failure_backoff
            .saturating_mul(1 << (n - 1).min(16))
            .min(self.config.max_failure_backoff);
        let now = self.clock.now();
        let retry_at = now.plus(backoff);
        tracing::warn!(execution_id = %id, error, failures = n, ?backoff, "invocation failed; rescheduling");
        match self
            .store
            .suspend(id, epoch, wakeups, Some(retry_at), now)
            .await
        {
            Ok(_) => self.add_timer(retry_at),
            Err(e) => {
                tracing::warn!(execution_id = %id, error = %e, "could not reschedule; the lease will expire")
            }
        }
    }
}
