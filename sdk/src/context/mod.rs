//! `DurableContext`: the handle a handler uses for every durable operation.
//!
//! The context owns the invocation's shared state: the journal cursor, the
//! count of work in flight (step bodies and checkpoint writes), and what the
//! handler waits for. An operation that must wait *parks*: it records its wake
//! time and never completes in this invocation. When the handler can make no
//! more progress — nothing in flight, something parked — the invocation
//! driver ends the invocation as `SUSPENDED` at the earliest wake time.

mod attributes;
mod batch;
mod child;
mod condition;
mod config;
mod deterministic;
mod invoke;
mod sleep;
mod step;
mod wait;

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use durafn_runtime::StoreError;
use durafn_runtime::clock::Clock;
use durafn_runtime::model::{ExecutionId, OpKind, Operation, Timestamp};
use durafn_runtime::store::{OpWrite, Store};

use crate::replay::{JournalCursor, NonDeterministic, op_id};

pub use batch::{Batch, BatchItem, BatchResult, Branch};
pub use child::Child;
pub use condition::{Condition, WaitStrategy};
pub use config::{CheckpointHook, InvocationConfig, PAUSE_ON_FAILURE_ENV, StepHook};
pub use deterministic::ReplayLogger;
pub use invoke::Invoke;
pub(crate) use invoke::parent_of;
pub use sleep::{MAX_SLEEP, MIN_SLEEP, Sleep};
pub use step::{Step, StepContext, StepSemantics};
pub use wait::{Callback, CreateCallback, EventWait, WaitForCallback};

/// Why an invocation cannot go on.
#[derive(Debug)]
pub(crate) enum Fault {
    /// The handler diverged from its journal.
    NonDeterministic(NonDeterministic),
    /// A checkpoint could not be written (after retries).
    Store(StoreError),
    /// The execution was cancelled while this invocation ran.
    Cancelled,
    /// The execution was paused while this invocation ran: it suspends
    /// (due at once, which the store keeps from dispatch until unpaused).
    Paused,
    /// A deferred record ([`DurableContext::checkpoint_later`]) found
    /// another writer's different one: this invocation parked on what is
    /// not the recorded state, so it suspends, due at once, and the next
    /// invocation replays the recorded one.
    Diverged,
}

/// What the driver needs to know after each poll of the handler.
#[derive(Debug, Default)]
pub(crate) struct RunState {
    /// Step bodies and checkpoint writes under way.
    pub(crate) in_flight: usize,
    /// True once any operation parked.
    pub(crate) waiting: bool,
    /// The earliest time a parked operation wants to wake (`None`: only the
    /// outside world can wake it).
    pub(crate) earliest_wake: Option<Timestamp>,
    /// Set when the invocation must stop.
    pub(crate) fault: Option<Fault>,
    /// Step attempts run in this invocation.
    pub(crate) attempts_run: u32,
    /// When the execution's status was last checked for cancellation.
    /// (By the invocation's clock.)
    pub(crate) cancel_checked: Option<Timestamp>,
}

/// State shared by every context of one invocation.
pub(crate) struct Shared {
    pub(crate) execution_id: ExecutionId,
    /// The execution's secret seed (callback tokens, `uuid()`, `random()`).
    pub(crate) seed: String,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) cursor: Mutex<JournalCursor>,
    pub(crate) state: Mutex<RunState>,
    pub(crate) config: InvocationConfig,
    /// This invocation's spans, when traces are exported.
    pub(crate) trace: Option<Arc<crate::telemetry::InvocationTrace>>,
    /// Where the handler is, for the keys of captured log lines.
    pub(crate) position: Mutex<crate::capture::Position>,
    /// The epoch of this invocation's claim (history records name it).
    pub(crate) epoch: u64,
    /// The execution's function and creation time (search attributes).
    pub(crate) function: String,
    pub(crate) created_at: durafn_runtime::model::Timestamp,
    /// Checkpoints recorded but not yet written
    /// ([`DurableContext::checkpoint_later`]).
    pub(crate) deferred: Mutex<Vec<Deferred>>,
}

/// A record of an operation parked on, not written yet, with the history
/// record of the attempt that made it (written beside it).
pub(crate) struct Deferred {
    pub(crate) op: Operation,
    pub(crate) history: Option<durafn_runtime::model::HistoryEntry>,
}

impl Shared {
    pub(crate) fn state(&self) -> MutexGuard<'_, RunState> {
        // A poisoned lock only means a panic elsewhere; the counters stay usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn cursor(&self) -> MutexGuard<'_, JournalCursor> {
        self.cursor.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn position(&self) -> MutexGuard<'_, crate::capture::Position> {
        self.position.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The deferred checkpoints, taken: the caller writes them.
    pub(crate) fn take_deferred(&self) -> Vec<Deferred> {
        std::mem::take(&mut *self.deferred.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// A checkpoint is durable: the hook and the trace hear of it.
    pub(crate) fn checkpointed(&self, op: &Operation) {
        if let Some(hook) = &self.config.on_checkpoint {
            hook(op);
        }
        if let Some(trace) = &self.trace {
            trace.operation(op, self.clock.now());
        }
    }

    /// Writes the history records of deferred checkpoints.
    pub(crate) async fn write_histories(&self, deferred: &[Deferred]) {
        let keep = durafn_runtime::model::history_limit();
        for entry in deferred.iter().filter_map(|d| d.history.as_ref()) {
            crate::history::write(self.store.as_ref(), &self.execution_id, entry, keep).await;
        }
    }

    /// Writes the deferred checkpoints, in the order they were recorded.
    pub(crate) async fn flush(&self) -> Result<(), Fault> {
        let deferred = self.take_deferred();
        if deferred.is_empty() {
            return Ok(());
        }
        let puts = async {
            for Deferred { op, .. } in &deferred {
                match self.store.put_operation(&self.execution_id, op).await {
                    Ok(written) => match written.theirs(op) {
                        None => self.checkpointed(op),
                        Some(theirs) => {
                            tracing::info!(op_id = %theirs.id, "operation already recorded differently by another invocation; replaying it in a new invocation");
                            return Err(Fault::Diverged);
                        }
                    },
                    Err(e) => {
                        tracing::error!(op_id = %op.id, error = %e, "checkpoint failed; ending the invocation");
                        return Err(Fault::Store(e));
                    }
                }
            }
            Ok(())
        };
        // The records first: a store that defers history sends them with the checkpoint.
        let ((), written) = futures::join!(self.write_histories(&deferred), puts);
        written
    }
}

/// One context's id space: its own id and its operation counter.
struct Scope {
    prefix: String,
    next: AtomicU32,
    /// Counter for `uuid()` / `random()` draws, separate from operation ids.
    draws: AtomicU32,
}

/// The handle for durable operations, passed to every handler.
///
/// Cloning it is cheap; clones share the same operation counter, so
/// operations are numbered in the order they are created, wherever created.
#[derive(Clone)]
pub struct DurableContext {
    shared: Arc<Shared>,
    scope: Arc<Scope>,
}

impl std::fmt::Debug for DurableContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DurableContext")
            .field("execution_id", &self.shared.execution_id)
            .field("scope", &self.scope.prefix)
            .finish()
    }
}

/// An operation as created at its call site: its id and its recorded state.
pub(crate) struct Opened {
    pub(crate) id: String,
    /// The recorded state, or `Err` if the journal disagrees (the fault is set).
    pub(crate) record: Result<Option<Operation>, ()>,
}

/// Marks work in flight for as long as it lives.
pub(crate) struct WorkGuard {
    shared: Arc<Shared>,
}

impl Drop for WorkGuard {
    fn drop(&mut self) {
        let mut st = self.shared.state();
        st.in_flight = st.in_flight.saturating_sub(1);
    }
}

impl DurableContext {
    pub(crate) fn root(shared: Arc<Shared>) -> Self {
        DurableContext {
            shared,
            scope: Arc::new(Scope {
                prefix: String::new(),
                next: AtomicU32::new(1),
                draws: AtomicU32::new(0),
            }),
        }
    }

    /// A child context whose operations are numbered `<op_id>.1`, `<op_id>.2`, ...
    pub(crate) fn nested(&self, op_id: &str) -> Self {
        DurableContext {
            shared: self.shared.clone(),
            scope: Arc::new(Scope {
                prefix: op_id.to_string(),
                next: AtomicU32::new(1),
                draws: AtomicU32::new(0),
            }),
        }
    }

    /// The next draw number of this context (for `uuid()` / `random()`).
    pub(crate) fn next_draw(&self) -> (String, u32) {
        (
            self.scope.prefix.clone(),
            self.scope.draws.fetch_add(1, Ordering::SeqCst),
        )
    }

    /// The id the next operation of this context will get, without claiming it.
    pub(crate) fn peek_next_id(&self) -> String {
        op_id(&self.scope.prefix, self.scope.next.load(Ordering::SeqCst))
    }

    /// Claims the next id without matching it (for markers found by peeking).
    pub(crate) fn skip_id(&self) -> String {
        let n = self.scope.next.fetch_add(1, Ordering::SeqCst);
        op_id(&self.scope.prefix, n)
    }

    pub(crate) fn cursor(&self) -> MutexGuard<'_, JournalCursor> {
        self.shared.cursor()
    }

    pub(crate) fn seed(&self) -> &str {
        &self.shared.seed
    }

    /// The id of the execution this handler runs.
    pub fn execution_id(&self) -> &ExecutionId {
        &self.shared.execution_id
    }

    /// Claims the next operation id and matches it against the journal.
    pub(crate) fn open(&self, kind: OpKind, name: &str) -> Opened {
        let n = self.scope.next.fetch_add(1, Ordering::SeqCst);
        let id = op_id(&self.scope.prefix, n);
        self.shared.position().opened(&id);
        let record = match self.shared.cursor().open(&id, kind, name) {
            Ok(rec) => Ok(rec.cloned()),
            Err(nd) => {
                tracing::error!(execution_id = %self.shared.execution_id, error = %nd, "non-deterministic replay");
                self.set_fault(Fault::NonDeterministic(nd));
                Err(())
            }
        };
        Opened { id, record }
    }

    /// This invocation's spans, when traces are exported.
    pub(crate) fn trace(&self) -> Option<&crate::telemetry::InvocationTrace> {
        self.shared.trace.as_deref()
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    pub(crate) fn clock_now(&self) -> Timestamp {
        self.shared.clock.now()
    }

    /// The largest payload the store takes (4 MiB, 64 MiB with a blob store).
    pub(crate) fn payload_limit(&self) -> usize {
        self.shared.store.payload_limit()
    }

    fn set_fault(&self, fault: Fault) {
        let mut st = self.shared.state();
        if st.fault.is_none() {
            st.fault = Some(fault);
        }
    }

    /// Marks work in flight until the guard drops.
    pub(crate) fn work(&self) -> WorkGuard {
        self.shared.state().in_flight += 1;
        WorkGuard {
            shared: self.shared.clone(),
        }
    }

    /// Waits for good in this invocation: records the wake time (`None`: woken
    /// only from outside) and never completes. The driver suspends the
    /// invocation once nothing else can make progress.
    pub(crate) fn park<T>(&self, wake: Option<Timestamp>) -> impl Future<Output = T> + use<T> {
        {
            let mut st = self.shared.state();
            st.waiting = true;
            if let Some(t) = wake {
                st.earliest_wake = Some(st.earliest_wake.map_or(t, |e| e.min(t)));
            }
        }
        std::future::pending::<T>()
    }

    /// True if the execution has been cancelled or paused: checked before a
    /// step attempt starts, at most once per `cancel_check_interval` (one
    /// read; the journal read that starts the invocation counts as the first
    /// check). A cancelled invocation stops there; a paused one suspends.
    pub(crate) async fn cancelled(&self) -> bool {
        let interval = self.shared.config.cancel_check_interval;
        {
            let mut st = self.shared.state();
            let now = self.clock_now();
            if st
                .cancel_checked
                .is_some_and(|t| t.until(now) < interval && now >= t)
            {
                return false;
            }
            st.cancel_checked = Some(now);
        }
        let _work = self.work();
        match self
            .shared
            .store
            .get_execution(&self.shared.execution_id)
            .await
        {
            Ok(Some(e)) if e.status == durafn_runtime::model::ExecutionStatus::Cancelled => {
                tracing::info!(execution_id = %self.shared.execution_id, "cancelled; stopping");
                self.set_fault(Fault::Cancelled);
                true
            }
            Ok(Some(e)) if e.paused => {
                tracing::info!(execution_id = %self.shared.execution_id, "paused; suspending");
                self.set_fault(Fault::Paused);
                true
            }
            _ => false,
        }
    }

    /// A step's retries ran out under `pause_on_failure`: pause the
    /// execution and suspend (as a pause found by [`Self::cancelled`] does).
    /// If the pause cannot be written, the invocation fails as a store
    /// fault and the next invocation runs the kept attempt.
    pub(crate) async fn pause_for_failure<T>(&self, op_id: &str, name: &str) -> T {
        let now = self.clock_now();
        let shared = &self.shared;
        match shared
            .store
            .set_paused(&shared.execution_id, true, now)
            .await
        {
            Ok(_) => {
                tracing::warn!(execution_id = %shared.execution_id, op_id, step = name, "retries ran out: execution paused (PauseOnFailure); unpause it to retry the step");
                self.set_fault(Fault::Paused);
            }
            Err(e) => self.set_fault(Fault::Store(e)),
        }
        self.park(None).await
    }

    /// True when the invocation should stop starting new attempts and ask to be
    /// re-invoked at once: its step budget or its deadline is spent.
    pub(crate) fn should_yield(&self, now: Timestamp) -> bool {
        let cfg = &self.shared.config;
        let st = self.shared.state();
        if cfg
            .max_steps_per_invocation
            .is_some_and(|max| st.attempts_run >= max)
        {
            return true;
        }
        cfg.deadline
            .is_some_and(|deadline| now.plus(cfg.yield_margin) >= deadline)
    }

    pub(crate) fn count_attempt(&self) {
        self.shared.state().attempts_run += 1;
    }

    /// Records an operation the caller parks on at once (a timer, a
    /// retry's backoff) and writes it later: with the invocation's
    /// suspension (one write, not two), or before the next checkpoint or
    /// step body if the handler goes on elsewhere. Nothing sees such a
    /// record before it is written: the operation never returns in this
    /// invocation. A crash before the write loses only what a crash just
    /// before an immediate write would have.
    pub(crate) fn checkpoint_later(
        &self,
        op: Operation,
        history: Option<durafn_runtime::model::HistoryEntry>,
    ) -> Operation {
        self.shared.cursor().record(op.clone());
        self.shared
            .deferred
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Deferred {
                op: op.clone(),
                history,
            });
        op
    }

    /// Writes the deferred checkpoints ([`Self::checkpoint_later`]); false
    /// (the invocation's fault set) if that failed.
    pub(crate) async fn flush(&self) -> bool {
        match self.shared.flush().await {
            Ok(()) => true,
            Err(fault) => {
                self.set_fault(fault);
                false
            }
        }
    }

    /// Writes an operation record. First writer wins: if another invocation
    /// recorded this operation first, its record is adopted and returned.
    /// A store failure stops the invocation (nothing is lost: the next
    /// invocation replays from the last checkpoint).
    pub(crate) async fn checkpoint(&self, op: Operation) -> Operation {
        let _work = self.work();
        if !self.flush().await {
            return self.park(None).await;
        }
        match self
            .shared
            .store
            .put_operation(&self.shared.execution_id, &op)
            .await
        {
            Ok(OpWrite::Written) => {
                self.shared.cursor().record(op.clone());
                self.shared.checkpointed(&op);
                op
            }
            Ok(OpWrite::Conflict(current)) => {
                tracing::info!(op_id = %current.id, "operation already recorded by another invocation; adopting it");
                self.shared.cursor().record(current.clone());
                current
            }
            Err(e) => {
                tracing::error!(op_id = %op.id, error = %e, "checkpoint failed; ending the invocation");
                self.set_fault(Fault::Store(e));
                self.park(None).await
            }
        }
    }
}
