//! An in-process runtime with a virtual clock, for testing workflows.
//!
//! ```no_run
//! # use durafn::prelude::*;
//! # async fn order(ctx: DurableContext, n: u32) -> Result<u32, DurableError> { Ok(n) }
//! # async fn t() -> Result<(), durafn::Error> {
//! let rt = durafn::testing::TestRuntime::new();
//! let exec = rt.start(durafn::handler(order), 7).await?;
//! exec.run_until_settled().await?;            // timers are skipped, not waited for
//! assert_eq!(exec.status().await?, Status::Succeeded);
//! let out: u32 = exec.result().await?;
//! let ops = exec.operations().await?;          // type, name, status, attempt, result/error
//! # Ok(()) }
//! ```
//!
//! Every invocation is a real one: the handler replays its journal from a
//! temporary SQLite store, exactly as under the emulator or on AWS Lambda.
//! Only time is virtual: [`TestExecution::run_until_settled`] moves the clock
//! to each timer or retry backoff as soon as the handler waits for it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use durafn_runtime::clock::{Clock, ManualClock};
use durafn_runtime::model::{
    ErrorObject, Execution, ExecutionId, ExecutionStatus, NewExecution, OpKind, OpStatus,
    Operation, Timestamp,
};
use durafn_runtime::store::{SentEvent, SqliteStore, Store};
use durafn_runtime::trigger::callback::{self, Completion};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Notify;

use crate::error::Error;
use crate::handler::Handler;
use crate::invocation::{InvocationConfig, InvocationReport, run_invocation};

/// Where the virtual clock starts: 2026-01-01T00:00:00Z.
pub const EPOCH: Timestamp = Timestamp(1_767_225_600_000);

/// How long a test invocation's lease lasts (a crashed one is retried after it).
const LEASE: Duration = Duration::from_secs(15 * 60);

/// The most invocations `run_until_settled` runs before it gives up.
const MAX_INVOCATIONS: usize = 10_000;

/// An in-process Durafn: a temporary SQLite store and a virtual clock.
pub struct TestRuntime {
    store: Arc<dyn Store>,
    clock: ManualClock,
    config: InvocationConfig,
    functions: Functions,
    _dir: Option<tempfile::TempDir>,
}

/// Handlers by function name, for executions started by `ctx.invoke`.
type Functions = Arc<std::sync::Mutex<std::collections::HashMap<String, Handler>>>;

impl Default for TestRuntime {
    fn default() -> Self {
        Self::new()
    }
}

impl TestRuntime {
    /// A runtime on a fresh temporary SQLite store.
    ///
    /// # Panics
    /// If no temporary folder can be created (use [`try_new`](Self::try_new) to handle that).
    #[allow(clippy::expect_used)]
    pub fn new() -> Self {
        Self::try_new().expect("durafn::testing: cannot create a temporary SQLite store")
    }

    /// A runtime on a fresh temporary SQLite store.
    pub fn try_new() -> Result<Self, Error> {
        let dir = tempfile::tempdir()
            .map_err(|e| Error::Invalid(format!("cannot create a temporary folder: {e}")))?;
        let store = SqliteStore::open(dir.path().join("durafn.db"))?;
        Ok(TestRuntime {
            store: Arc::new(store),
            clock: ManualClock::new(EPOCH),
            config: InvocationConfig::default(),
            functions: Functions::default(),
            _dir: Some(dir),
        })
    }

    /// A runtime on a store of your own (e.g. one that injects faults).
    pub fn with_store(store: Arc<dyn Store>) -> Self {
        TestRuntime {
            store,
            clock: ManualClock::new(EPOCH),
            config: InvocationConfig::default(),
            functions: Functions::default(),
            _dir: None,
        }
    }

    /// Yields after `n` step attempts per invocation (1: one step each).
    pub fn max_steps_per_invocation(mut self, n: u32) -> Self {
        self.config.max_steps_per_invocation = Some(n.max(1));
        self
    }

    /// Makes `handler` available as function `name`, for `ctx.invoke`: child
    /// executions of registered functions run alongside the execution under
    /// test in [`TestExecution::run_until_settled`].
    pub fn register(&self, name: &str, handler: Handler) {
        if let Ok(mut f) = self.functions.lock() {
            f.insert(name.to_string(), handler);
        }
    }

    /// Pauses executions whose step retries run out instead of failing them
    /// (`Metadata.Durafn.PauseOnFailure`).
    pub fn pause_on_failure(mut self, on: bool) -> Self {
        self.config.pause_on_failure = on;
        self
    }

    /// How often running invocations check for cancellation (default 1 s;
    /// zero: before every step attempt).
    pub fn cancel_check_interval(mut self, d: Duration) -> Self {
        self.config.cancel_check_interval = d;
        self
    }

    /// The store.
    pub fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    /// The virtual clock.
    pub fn clock(&self) -> &ManualClock {
        &self.clock
    }

    /// The virtual time now.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Moves virtual time forward.
    pub fn advance(&self, d: Duration) {
        self.clock.advance(d);
    }

    /// Starts an execution with a generated id. It does not run until you call
    /// [`TestExecution::run_until_settled`] (or `run_once`).
    pub async fn start<I: Serialize>(
        &self,
        handler: Handler,
        input: I,
    ) -> Result<TestExecution, Error> {
        let name = uuid::Uuid::now_v7().to_string();
        self.start_named(&name, handler, input).await
    }

    /// Starts (idempotently) an execution named `name`.
    pub async fn start_named<I: Serialize>(
        &self,
        name: &str,
        handler: Handler,
        input: I,
    ) -> Result<TestExecution, Error> {
        let input = serde_json::to_value(input)
            .map_err(|e| Error::Invalid(format!("the input cannot be serialized: {e}")))?;
        let id = ExecutionId::new(name)?;
        self.store
            .create_execution(&NewExecution {
                id: id.clone(),
                function: "test".into(),
                version: "1".into(),
                input,
                now: self.clock.now(),
            })
            .await?;
        Ok(TestExecution {
            store: self.store.clone(),
            clock: self.clock.clone(),
            config: self.config.clone(),
            handler,
            id,
            invocations: Arc::new(AtomicUsize::new(0)),
            functions: self.functions.clone(),
        })
    }
}

/// One execution under the test runtime.
pub struct TestExecution {
    store: Arc<dyn Store>,
    clock: ManualClock,
    config: InvocationConfig,
    handler: Handler,
    id: ExecutionId,
    invocations: Arc<AtomicUsize>,
    functions: Functions,
}

impl TestExecution {
    /// Runs every other execution (of a registered function) that is due now,
    /// until none is. Returns how many invocations ran.
    async fn run_others(&self) -> Result<usize, Error> {
        let mut ran = 0;
        loop {
            let now = self.clock.now();
            let mut progress = false;
            for shard in 0..durafn_runtime::model::DUE_SHARDS {
                for item in self.store.due(shard, now, 100).await? {
                    if item.id == self.id {
                        continue;
                    }
                    let Some(exec) = self.store.get_execution(&item.id).await? else {
                        continue;
                    };
                    let handler = self
                        .functions
                        .lock()
                        .ok()
                        .and_then(|f| f.get(&exec.function).cloned());
                    let Some(handler) = handler else { continue };
                    let Some(claimed) = self.store.claim(&item.id, now, now.plus(LEASE)).await?
                    else {
                        continue;
                    };
                    let clock: Arc<dyn Clock> = Arc::new(self.clock.clone());
                    run_invocation(
                        &handler,
                        self.store.clone(),
                        clock,
                        self.config.clone(),
                        &claimed,
                    )
                    .await?;
                    ran += 1;
                    progress = true;
                }
            }
            if !progress || ran > MAX_INVOCATIONS {
                return Ok(ran);
            }
        }
    }

    /// The earliest time another execution of a registered function is due.
    async fn next_other_due(&self) -> Result<Option<Timestamp>, Error> {
        let far = Timestamp(i64::MAX / 4);
        let mut next: Option<Timestamp> = None;
        for shard in 0..durafn_runtime::model::DUE_SHARDS {
            for item in self.store.due(shard, far, 100).await? {
                if item.id == self.id {
                    continue;
                }
                let registered = match self.store.get_execution(&item.id).await? {
                    Some(e) => self
                        .functions
                        .lock()
                        .map(|f| f.contains_key(&e.function))
                        .unwrap_or(false),
                    None => false,
                };
                if registered {
                    next = Some(next.map_or(item.due_at, |n| n.min(item.due_at)));
                }
            }
        }
        Ok(next)
    }
    /// The execution id.
    pub fn id(&self) -> &ExecutionId {
        &self.id
    }

    /// Runs invocations until the execution finishes, blocks, is paused, or
    /// waits on the outside world (a callback or an event, even one with a
    /// timeout).
    /// Timers, retry backoffs and expired leases are skipped by moving the
    /// virtual clock; to let a callback or event time out, [`advance`](Self::advance)
    /// the clock yourself.
    pub async fn run_until_settled(&self) -> Result<ExecutionStatus, Error> {
        for _ in 0..MAX_INVOCATIONS {
            self.run_others().await?;
            let exec = self.execution().await?;
            if exec.status.is_final() || exec.status == ExecutionStatus::Blocked {
                return Ok(exec.status);
            }
            // Paused: nothing runs until someone unpauses it.
            if exec.paused && exec.status != ExecutionStatus::Running {
                return Ok(exec.status);
            }
            let own_due = if exec.status == ExecutionStatus::Suspended {
                self.without_recheck(exec.due_at).await?
            } else {
                exec.due_at
            };
            // Children of registered functions count as internal work: skip to them.
            let other_due = self.next_other_due().await?;
            let Some(mut due_at) = (match (own_due, other_due) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }) else {
                return Ok(exec.status);
            };
            if own_due != Some(due_at) {
                self.clock.advance_to(due_at);
                continue;
            }
            if exec.status == ExecutionStatus::Suspended && due_at > self.clock.now() {
                let ops = self.operations().await?;
                let waiting_outside = ops.iter().any(|o| {
                    matches!(o.kind, OpKind::Callback | OpKind::Event)
                        && o.status == OpStatus::Pending
                });
                if waiting_outside {
                    // Skip only timers and backoffs, never an outside wait's timeout.
                    let timer = ops
                        .iter()
                        .filter(|o| matches!(o.kind, OpKind::Sleep | OpKind::Step))
                        .filter(|o| o.status == OpStatus::Pending)
                        .filter_map(|o| o.wake_at)
                        .min();
                    match timer {
                        Some(t) => due_at = t,
                        None => return Ok(exec.status),
                    }
                }
            }
            self.clock.advance_to(due_at);
            self.run_once().await?;
        }
        Err(Error::State(format!(
            "execution {} did not settle within {MAX_INVOCATIONS} invocations",
            self.id
        )))
    }

    /// A suspended execution's `due_at` without the look a parent takes at a child that has not ended
    /// (`ctx.invoke`'s safety re-check): here children run in this process and
    /// always wake their parent, so only the parent's own timers count.
    async fn without_recheck(&self, due_at: Option<Timestamp>) -> Result<Option<Timestamp>, Error> {
        let Some(due) = due_at else { return Ok(None) };
        if due <= self.clock.now() {
            return Ok(Some(due));
        }
        let ops = self.operations().await?;
        let waits_on_child = ops.iter().any(|o| {
            o.kind == OpKind::Invoke && matches!(o.status, OpStatus::Pending | OpStatus::Started)
        });
        if !waits_on_child {
            return Ok(Some(due));
        }
        let timers = ops
            .iter()
            .filter(|o| matches!(o.status, OpStatus::Pending | OpStatus::Started))
            .filter_map(|o| o.wake_at)
            .min();
        Ok(match timers {
            Some(t) if t <= due => Some(due),
            other => other,
        })
    }

    /// Runs one invocation if the execution is due now (no time skipping).
    /// Returns `None` if it is not due.
    pub async fn run_once(&self) -> Result<Option<InvocationReport>, Error> {
        let now = self.clock.now();
        let Some(claimed) = self.store.claim(&self.id, now, now.plus(LEASE)).await? else {
            return Ok(None);
        };
        self.invocations.fetch_add(1, Ordering::SeqCst);
        let clock: Arc<dyn Clock> = Arc::new(self.clock.clone());
        let report = run_invocation(
            &self.handler,
            self.store.clone(),
            clock,
            self.config.clone(),
            &claimed,
        )
        .await?;
        Ok(Some(report))
    }

    /// Simulates a crash: runs one invocation and drops it right after its
    /// `n`-th checkpoint is durable, leaving its lease to expire as a dead
    /// process would. Returns false if the invocation ended before that.
    pub async fn crash_after_checkpoints(&self, n: usize) -> Result<bool, Error> {
        let now = self.clock.now();
        let Some(claimed) = self.store.claim(&self.id, now, now.plus(LEASE)).await? else {
            return Err(Error::State(format!("execution {} is not due", self.id)));
        };
        self.invocations.fetch_add(1, Ordering::SeqCst);
        let written = Arc::new(AtomicUsize::new(0));
        let crash = Arc::new(Notify::new());
        let mut config = self.config.clone();
        let (w, c) = (written.clone(), crash.clone());
        config.on_checkpoint = Some(Arc::new(move |_| {
            if w.fetch_add(1, Ordering::SeqCst) + 1 == n {
                c.notify_one();
            }
        }));
        let clock: Arc<dyn Clock> = Arc::new(self.clock.clone());
        tokio::select! {
            biased;
            _ = crash.notified() => Ok(true),
            r = run_invocation(&self.handler, self.store.clone(), clock, config, &claimed) => {
                r.map(|_| false)
            }
        }
    }

    /// Simulates a process dying in the middle of a step: runs one
    /// invocation and drops it (no further code of it runs, nothing more is
    /// written) as soon as the body of the step named `step` has started and
    /// reaches its first `.await` — after an at-most-once step's start record
    /// is durable. The lease is left to expire, as a dead process's would.
    /// Returns false if the invocation ended without starting that step.
    pub async fn crash_during_step(&self, step: &str) -> Result<bool, Error> {
        let now = self.clock.now();
        let Some(claimed) = self.store.claim(&self.id, now, now.plus(LEASE)).await? else {
            return Err(Error::State(format!("execution {} is not due", self.id)));
        };
        self.invocations.fetch_add(1, Ordering::SeqCst);
        let crash = Arc::new(Notify::new());
        let mut config = self.config.clone();
        let (c, target) = (crash.clone(), step.to_string());
        config.on_step_body = Some(Arc::new(move |_, name, _| {
            if name == target {
                c.notify_one();
            }
        }));
        let clock: Arc<dyn Clock> = Arc::new(self.clock.clone());
        tokio::select! {
            biased;
            _ = crash.notified() => Ok(true),
            r = run_invocation(&self.handler, self.store.clone(), clock, config, &claimed) => {
                r.map(|_| false)
            }
        }
    }

    /// How many invocations have run.
    pub fn invocations(&self) -> usize {
        self.invocations.load(Ordering::SeqCst)
    }

    /// The execution's meta record.
    pub async fn execution(&self) -> Result<Execution, Error> {
        self.store
            .get_execution(&self.id)
            .await?
            .ok_or_else(|| Error::State(format!("execution {} does not exist", self.id)))
    }

    /// The execution's status.
    pub async fn status(&self) -> Result<ExecutionStatus, Error> {
        Ok(self.execution().await?.status)
    }

    /// The output, decoded; an error if the execution has not succeeded.
    pub async fn result<T: DeserializeOwned>(&self) -> Result<T, Error> {
        let exec = self.execution().await?;
        match (exec.status, exec.output) {
            (ExecutionStatus::Succeeded, Some(out)) => serde_json::from_value(out)
                .map_err(|e| Error::Invalid(format!("the output does not decode: {e}"))),
            (status, _) => Err(Error::State(format!(
                "execution {} is {status}, not SUCCEEDED{}",
                self.id,
                exec.error.map(|e| format!(": {e}")).unwrap_or_default()
            ))),
        }
    }

    /// The recorded error, if the execution failed or is blocked.
    pub async fn error(&self) -> Result<Option<ErrorObject>, Error> {
        Ok(self.execution().await?.error)
    }

    /// Every operation, in start order, with its latest state.
    pub async fn operations(&self) -> Result<Vec<Operation>, Error> {
        Ok(self
            .store
            .load_journal(&self.id)
            .await?
            .map(|j| j.operations)
            .unwrap_or_default())
    }

    /// The execution's journal as `durafn export` writes it, to check it
    /// against changed code with [`replay`].
    pub async fn journal(&self) -> Result<crate::replay_check::ExportedJournal, Error> {
        self.store
            .load_journal(&self.id)
            .await?
            .map(Into::into)
            .ok_or_else(|| Error::State(format!("execution {} does not exist", self.id)))
    }

    /// The first operation with this name.
    pub async fn operation(&self, name: &str) -> Result<Option<Operation>, Error> {
        Ok(self
            .operations()
            .await?
            .into_iter()
            .find(|o| o.name == name))
    }

    /// Moves virtual time forward.
    pub fn advance(&self, d: Duration) {
        self.clock.advance(d);
    }

    /// Sends an event to the execution (as `POST /v1/executions/{id}/events/{name}` does).
    pub async fn send_event<T: Serialize>(&self, name: &str, payload: T) -> Result<(), Error> {
        let payload = serde_json::to_value(payload)
            .map_err(|e| Error::Invalid(format!("the event payload cannot be serialized: {e}")))?;
        match self
            .store
            .send_event(&self.id, name, &payload, self.clock.now())
            .await?
        {
            SentEvent::Delivered(_) => Ok(()),
            SentEvent::NotFound => Err(Error::State(format!(
                "execution {} does not exist",
                self.id
            ))),
            SentEvent::Ended(status) => Err(Error::State(format!(
                "execution {} has ended ({status}); it takes no more events",
                self.id
            ))),
        }
    }

    async fn callback_op(&self, name: &str) -> Result<Operation, Error> {
        self.operations()
            .await?
            .into_iter()
            .rev()
            .find(|o| o.kind == OpKind::Callback && o.name == name)
            .ok_or_else(|| Error::State(format!("no callback named {name:?} has been created")))
    }

    /// The id (token) of the callback named `name`, as handed to the outside
    /// world: the one its record carries, from the moment it was created.
    pub async fn callback_id(&self, name: &str) -> Result<String, Error> {
        let op = self.callback_op(name).await?;
        if let Some(id) = callback::recorded_id(&op) {
            return Ok(id.to_string());
        }
        let seed = self.execution().await?.seed;
        Ok(callback::token(&self.id, &seed, &op.id))
    }

    async fn complete(&self, name: &str, completion: Completion) -> Result<(), Error> {
        let op = self.callback_op(name).await?;
        callback::complete(
            self.store.as_ref(),
            &self.id,
            &op.id,
            completion,
            self.clock.now(),
        )
        .await?
        .map(|_| ())
        .map_err(|e| Error::State(format!("callback {name:?}: {e}")))
    }

    /// Completes the callback named `name` with a result.
    pub async fn callback_succeed<T: Serialize>(&self, name: &str, result: T) -> Result<(), Error> {
        let v = serde_json::to_value(result).map_err(|e| {
            Error::Invalid(format!("the callback result cannot be serialized: {e}"))
        })?;
        self.complete(name, Completion::Succeed(v)).await
    }

    /// Fails the callback named `name`.
    pub async fn callback_fail(&self, name: &str, error: ErrorObject) -> Result<(), Error> {
        self.complete(name, Completion::Fail(error)).await
    }

    /// Resumes a `FAILED` or `BLOCKED` execution from its last checkpoint
    /// (as `POST /v1/executions/{id}/resume` does).
    pub async fn resume(&self) -> Result<(), Error> {
        durafn_runtime::trigger::resume::resume(self.store.as_ref(), &self.id, self.clock.now())
            .await?
            .map(|_| ())
            .map_err(|e| Error::State(format!("execution {}: {e}", self.id)))
    }

    /// Sends a heartbeat to the callback named `name`.
    pub async fn callback_heartbeat(&self, name: &str) -> Result<(), Error> {
        self.complete(name, Completion::Heartbeat).await
    }
}

/// Replays a recorded journal against `handler` without side effects (steps
/// the journal has not recorded are not run): [`Verdict::Blocked`] with the
/// first [`Divergence`] if this code would block the execution.
///
/// ```no_run
/// # use durafn::prelude::*;
/// # async fn v2(ctx: DurableContext, n: u32) -> Result<u32, DurableError> { Ok(n) }
/// # async fn t(journal: durafn::testing::ExportedJournal) {
/// let checked = durafn::testing::replay(&durafn::handler(v2), &journal).await;
/// assert_eq!(checked.verdict, durafn::testing::Verdict::Ok, "{:?}", checked.divergence);
/// # }
/// ```
pub async fn replay(handler: &Handler, journal: &ExportedJournal) -> CheckedExecution {
    crate::replay_check::check(handler, journal).await
}

pub use crate::replay_check::{CheckedExecution, Divergence, ExportedJournal, OpRef, Verdict};
