//! The dispatcher loop: due index → claim with a lease → invoke.
//!
//! Any number of dispatchers may share a store: a claim is a conditional
//! update that bumps the execution's epoch, so only one of them wins each due
//! execution. A crashed invocation is a lease that expires; an invocation the
//! invoker *knows* failed is rescheduled at once with backoff.
//!
//! Inside one dispatcher, work waits in a **ready queue** ordered by due time:
//! the due index's scans put what is due (and what becomes due before the
//! next scan) there, and so do the wake times invocations report (in-memory
//! timers, which also carry the function, so their claim needs no read
//! first). At most `max_concurrency` **workers** run; each takes the earliest
//! due entry, claims and invokes it, then takes the next, so a burst of
//! timers is served in due order without a scan per timer. An
//! execution is never dispatched twice at once by one dispatcher: an entry
//! for one already in flight marks it to be tried again when that dispatch
//! ends. [`DispatchHandle::dispatch_now`] starts one execution at once,
//! without a scan.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, broadcast};

use super::capacity::{Capacity, Slot};
use super::flow::{self, Admission, FlowControl};
use super::limits::{self, ConcurrencyLimit};
use super::{HeldShards, InvocationSummary, Invoker, LEASE_GRACE, ResumeRequest};
use crate::clock::Clock;
use crate::model::{DUE_SHARDS, Execution, ExecutionId, ExecutionStatus, NewExecution, Timestamp};
use crate::store::{Created, Store};

/// Settings of a dispatcher.
#[derive(Clone)]
#[non_exhaustive]
pub struct DispatcherConfig {
    /// How often the due index is scanned when nothing wakes the dispatcher.
    /// Each scan also queues what becomes due within twice this interval, so
    /// those timers fire on time even if this process never saw them.
    pub poll_interval: Duration,
    /// How many due executions one shard scan returns.
    pub batch: usize,
    /// How many invocations run at once. Their claims and checkpoints share
    /// the store's group commits, so a burst of due timers needs many: with
    /// too few, each waits out commits one small group at a time.
    pub max_concurrency: usize,
    /// How many entries the ready queue keeps (in-memory timers and due
    /// work); past that the latest are dropped. A dropped timer stays in the
    /// due index, and a scan queues it again shortly before it is due.
    pub max_timers: usize,
    /// A function's timeout (its lease is this plus [`LEASE_GRACE`]).
    pub timeout_for: Arc<dyn Fn(&str) -> Duration + Send + Sync>,
    /// First delay before re-invoking an execution whose invocation failed.
    pub failure_backoff: Duration,
    /// Largest such delay.
    pub max_failure_backoff: Duration,
    /// The due shards this dispatcher scans (a replica's share, kept by a
    /// [`ShardLeaser`](super::ShardLeaser)); `None`: every shard.
    pub shards: Option<Arc<HeldShards>>,
    /// Concurrency limits by function name (see [`super::limits`]).
    pub limits: Arc<HashMap<String, ConcurrencyLimit>>,
    /// Throttle, debounce and batching by function name (see [`super::flow`]).
    pub flow: Arc<HashMap<String, FlowControl>>,
    /// How many invocations of a function the invoker runs at once (the
    /// emulator's processes per function); `None`: no bound. Executions due
    /// beyond it are not claimed until one ends (see [`super::capacity`]).
    pub capacity_for: CapacityFor,
}

impl Default for DispatcherConfig {
    fn default() -> Self {
        DispatcherConfig {
            poll_interval: Duration::from_millis(100),
            batch: 256,
            max_concurrency: 256,
            max_timers: 16_384,
            timeout_for: Arc::new(|_| Duration::from_secs(30)),
            failure_backoff: Duration::from_millis(200),
            max_failure_backoff: Duration::from_secs(60),
            shards: None,
            limits: Arc::new(HashMap::new()),
            flow: Arc::new(HashMap::new()),
            capacity_for: Arc::new(|_| None),
        }
    }
}

/// [`DispatcherConfig::capacity_for`]: a function's invocations at once, if bounded.
pub type CapacityFor = Arc<dyn Fn(&str) -> Option<usize> + Send + Sync>;

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
    /// Wakes the run loop: to scan (with `scan_now`), or to look at the
    /// ready queue again (a new earliest timer, a worker that stopped).
    wake: Notify,
    /// Signalled whenever an invocation this dispatcher started has ended
    /// (for [`Dispatcher::idle`]).
    ended: Notify,
    /// [`DispatchHandle::wake`] asked for a scan.
    scan_now: AtomicBool,
    /// A shard scan returned a full batch: scan again once the queue drains.
    more_due: AtomicBool,
    queue: Mutex<Queue>,
    failures: Mutex<HashMap<ExecutionId, u32>>,
    changes: broadcast::Sender<ExecutionChanged>,
    /// Claims lost to another dispatcher after a read said the execution
    /// was due: double dispatches the claim prevented.
    lost_claims: AtomicU64,
    /// Executions over a concurrency limit (left `PENDING`): their function
    /// and when to try again.
    blocked: Mutex<HashMap<ExecutionId, (Arc<str>, Timestamp)>>,
    /// Invocations running per function, and executions waiting for one to end.
    capacity: Capacity,
    /// The paused functions (see [`super::pause`]).
    paused: super::pause::PausedFunctions,
}

/// What waits and what runs.
#[derive(Default)]
struct Queue {
    /// Executions to dispatch once due, earliest first, with their function
    /// when known (then the dispatch needs no read before its claim).
    ready: BTreeMap<(Timestamp, ExecutionId), Option<Arc<str>>>,
    /// Executions a worker is dispatching (one worker each), and whether to
    /// try again when it is done (something asked for it meanwhile).
    in_flight: HashMap<ExecutionId, bool>,
    /// Function names, shared by the entries that carry one.
    functions: HashSet<Arc<str>>,
    /// Priorities learned (from starts, reads and claims) of executions
    /// whose priority is not the default; see [`Inner::take_due`].
    priorities: HashMap<ExecutionId, u8>,
}

/// An invocation's place in its function's capacity: given back when the
/// dispatch ends (however it ends), handing the place to the next waiter.
struct RunningSlot<'a> {
    inner: &'a Inner,
    slot: Option<Slot>,
}

impl Drop for RunningSlot<'_> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            if let Some((id, function)) = self.inner.capacity.release(slot) {
                self.inner
                    .add_timer(self.inner.clock.now(), &id, Some(&function));
            }
        }
    }
}

/// One execution for a worker to dispatch.
struct Job {
    id: ExecutionId,
    /// Its function, if known; else the dispatch reads the execution first.
    function: Option<Arc<str>>,
    /// Created and claimed already ([`DispatchHandle::start`]): invoked
    /// without a claim.
    claimed: Option<Box<Claimed>>,
}

impl Job {
    fn unknown(id: ExecutionId) -> Self {
        Job::of(id, None)
    }

    fn of(id: ExecutionId, function: Option<Arc<str>>) -> Self {
        Job {
            id,
            function,
            claimed: None,
        }
    }
}

/// An execution a start has created and claimed in one write, for a
/// worker to invoke.
struct Claimed {
    execution: Execution,
    /// Its journal is known to be empty (created by this start and claimed
    /// for the first time, nothing sent to it since).
    empty: bool,
    /// The store calls of the create and claim, handed to the invocation.
    meter: Arc<crate::cost::UsageMeter>,
    /// Its place in the function's process capacity.
    slot: Option<Slot>,
}

/// A cheap handle to poke a running dispatcher and follow what it does.
#[derive(Clone)]
pub struct DispatchHandle {
    inner: Arc<Inner>,
}

impl DispatchHandle {
    /// Wakes the dispatcher at once to scan the due index (something became
    /// due and the caller does not know what). Prefer
    /// [`dispatch_now`](Self::dispatch_now) when it does.
    pub fn wake(&self) {
        self.inner.scan_now.store(true, Ordering::SeqCst);
        self.inner.wake.notify_one();
    }

    /// Tries to run execution `id` at once (it was just started, or an event
    /// or callback arrived for it), without scanning the due index: read it,
    /// claim it if it is due, invoke it. If the dispatcher is already
    /// dispatching it, it is tried again when that dispatch ends (so a signal
    /// that arrived during an invocation is not left to the next poll); if
    /// every worker is busy, it is queued ahead of anything due later.
    pub fn dispatch_now(&self, id: ExecutionId) {
        self.dispatch_now_as(id, None);
    }

    /// [`dispatch_now`](Self::dispatch_now) for an execution whose function
    /// the caller knows (it has just created it): the dispatch claims it
    /// without reading it first, unless the function has concurrency limits.
    pub fn dispatch_now_of(&self, id: ExecutionId, function: &str) {
        self.dispatch_now_as(id, Some(Arc::from(function)));
    }

    /// [`dispatch_now_of`](Self::dispatch_now_of) for a start with a
    /// priority (1–5): while workers are busy, higher priorities are taken
    /// from the ready queue first.
    pub fn dispatch_now_with_priority(&self, id: ExecutionId, function: &str, priority: u8) {
        self.inner.learn_priority(&id, priority);
        self.dispatch_now_as(id, Some(Arc::from(function)));
    }

    fn dispatch_now_as(&self, id: ExecutionId, function: Option<Arc<str>>) {
        let inner = &self.inner;
        let now = inner.clock.now();
        if !inner.ours(&id, now) {
            // Another replica holds its shard: its scan dispatches it (the
            // write that made it due is in the due index), so two replicas
            // do not race for it.
            return;
        }
        let runtime = tokio::runtime::Handle::try_current().ok();
        let start = {
            let mut q = inner.queue();
            if let Some(again) = q.in_flight.get_mut(&id) {
                *again = true;
                return;
            }
            if runtime.is_some() && inner.has_room(&q) {
                q.in_flight.insert(id.clone(), false);
                true
            } else {
                inner.enqueue(&mut q, now, id.clone(), function.as_deref());
                false
            }
        };
        match runtime {
            Some(rt) if start => {
                rt.spawn(inner.clone().worker(Job::of(id, function)));
            }
            _ => inner.wake.notify_one(),
        }
    }

    /// Starts an execution: creates it and, when this dispatcher can run it
    /// at once, claims it in the same write ([`Store::create_and_claim`],
    /// one commit on SQLite) and invokes it — a write and a hop fewer than
    /// creating it and then claiming it. Otherwise (limits, flow control,
    /// a paused function, no free worker or process, another replica's
    /// shard, a store without an atomic create-and-claim) it creates it and
    /// dispatches it as [`dispatch_now_of`](Self::dispatch_now_of) does.
    /// Answers what the create found (new, or an existing execution).
    ///
    /// `store` is the caller's view of the dispatcher's store (the REST
    /// API's, which may offload large inputs to a blob store).
    pub async fn start(&self, store: &dyn Store, new: &NewExecution) -> crate::Result<Created> {
        let inner = &self.inner;
        let function: Arc<str> = Arc::from(new.function.as_str());
        let reserved = match store.atomic_create_and_claim() {
            true => inner.reserve_start(&new.id, &function).await,
            false => None,
        };
        let Some((rt, slot)) = reserved else {
            let created = store.create_execution(new).await?;
            if let Created::New(_) = &created {
                self.dispatch_now_of(new.id.clone(), &function);
            }
            return Ok(created);
        };
        let lease = (inner.config.timeout_for)(&function) + LEASE_GRACE;
        let meter = crate::cost::UsageMeter::new();
        let write = store.create_and_claim(new, new.now.plus(lease));
        let (created, claimed) = match crate::cost::metered(meter.clone(), write).await {
            Ok((created, Some(claimed))) => (created, claimed),
            other => {
                drop(RunningSlot { inner, slot });
                inner.unreserve(&new.id);
                return other.map(|(created, _)| created);
            }
        };
        // Created by this start and claimed for the first time, with nothing
        // sent to it since: no invocation has run, no event arrived.
        let empty =
            matches!(created, Created::New(_)) && claimed.epoch == 1 && claimed.wakeups == 0;
        let job = Job {
            id: new.id.clone(),
            function: Some(function),
            claimed: Some(Box::new(Claimed {
                execution: claimed,
                empty,
                meter,
                slot,
            })),
        };
        rt.spawn(inner.clone().worker(job));
        Ok(created)
    }

    /// A function was paused or unpaused here: read the paused functions
    /// again before the next dispatch (other replicas do within
    /// [`super::pause::REFRESH`]).
    pub fn function_pauses_changed(&self) {
        self.inner.paused.invalidate();
    }

    /// Follows invocation results (for callers waiting on an execution).
    pub fn subscribe(&self) -> broadcast::Receiver<ExecutionChanged> {
        self.inner.changes.subscribe()
    }

    /// How many claims this dispatcher lost to another one after reading
    /// the execution as due (each a double dispatch the claim prevented).
    pub fn lost_claims(&self) -> u64 {
        self.inner.lost_claims.load(Ordering::Relaxed)
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
                config,
                wake: Notify::new(),
                ended: Notify::new(),
                scan_now: AtomicBool::new(false),
                more_due: AtomicBool::new(false),
                queue: Mutex::new(Queue::default()),
                failures: Mutex::new(HashMap::new()),
                changes,
                lost_claims: AtomicU64::new(0),
                blocked: Mutex::new(HashMap::new()),
                capacity: Capacity::default(),
                paused: Default::default(),
            }),
        }
    }

    /// A handle to wake the dispatcher and follow its results.
    pub fn handle(&self) -> DispatchHandle {
        DispatchHandle {
            inner: self.inner.clone(),
        }
    }

    /// Runs until `shutdown` completes: scan every poll interval (at once when
    /// woken, or when the last scan found more than a batch and the queue has
    /// drained), start workers for what is due, and sleep until the next
    /// timer, the next poll or a wake-up, whichever comes first.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let inner = &self.inner;
        let poll = inner.config.poll_interval;
        // Every time here is the injected clock's: in virtual time the loop
        // polls and fires timers as the clock is advanced.
        let mut next_poll = inner.clock.now();
        loop {
            let now = inner.clock.now();
            let scan = inner.scan_now.swap(false, Ordering::SeqCst)
                || now >= next_poll
                || (inner.more_due.load(Ordering::SeqCst) && inner.drained());
            if scan {
                if let Err(e) = inner.scan().await {
                    tracing::warn!(error = %e, "due-index scan failed; retrying");
                }
                next_poll = inner.clock.now().plus(poll);
            }
            inner.start_due();
            let mut until = next_poll;
            if let Some(t) = inner.next_timer() {
                until = until.min(t);
            }
            if inner.more_due.load(Ordering::SeqCst) && inner.drained() {
                until = until.min(inner.clock.now());
            }
            tokio::select! {
                _ = &mut shutdown => break,
                _ = inner.wake.notified() => {}
                _ = inner.clock.sleep_until(until) => {}
            }
        }
    }

    /// One scan of every shard: queues what is due now (and, as timers, what
    /// becomes due soon) and starts workers for it. Returns how many
    /// executions due now it queued. The invocations run in the background;
    /// [`Dispatcher::idle`] waits for them.
    pub async fn tick(&self) -> crate::Result<usize> {
        self.inner.scan().await
    }

    /// Dispatches execution `id` once, now, and returns when its invocation
    /// has been handed to the invoker and answered: read it, claim it if it
    /// is due, invoke it (an unknown function fails it; a failed invocation
    /// reschedules it with backoff). Returns false if it was not claimable
    /// or this dispatcher is already dispatching it. For a dispatcher that
    /// runs per wake-up message rather than as a loop.
    pub async fn dispatch_one(&self, id: &ExecutionId) -> bool {
        {
            let mut q = self.inner.queue();
            if q.in_flight.contains_key(id) {
                return false;
            }
            q.in_flight.insert(id.clone(), false);
        }
        let dispatched = self.inner.dispatch(&Job::unknown(id.clone())).await;
        self.inner.queue().in_flight.remove(id);
        self.inner.ended.notify_waiters();
        dispatched
    }

    /// Waits until no invocation started by this dispatcher is running.
    pub async fn idle(&self) {
        loop {
            // Registered before the check, so a worker ending in between is seen.
            let ended = self.inner.ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            if self.inner.queue().in_flight.is_empty() {
                return;
            }
            ended.await;
        }
    }
}

impl Inner {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        // A worker that panicked mid-update leaves a consistent enough queue.
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn has_room(&self, q: &Queue) -> bool {
        q.in_flight.len() < self.config.max_concurrency.max(1)
    }

    /// Queues `id` for `at`; past `max_timers` entries the latest one goes.
    fn enqueue(&self, q: &mut Queue, at: Timestamp, id: ExecutionId, function: Option<&str>) {
        let function = function.map(|f| match q.functions.get(f) {
            Some(shared) => shared.clone(),
            None => {
                let shared: Arc<str> = Arc::from(f);
                q.functions.insert(shared.clone());
                shared
            }
        });
        let entry = q.ready.entry((at, id)).or_insert(None);
        if function.is_some() {
            *entry = function;
        }
        if q.ready.len() > self.config.max_timers.max(1) {
            q.ready.pop_last();
        }
    }

    /// Takes the due entry of the highest priority (among the first
    /// [`PRIORITY_WINDOW`] due ones; the earliest of them on a tie) whose
    /// execution is not in flight and marks it in flight. Entries of
    /// executions in flight are dropped, and those executions marked to be
    /// tried again.
    fn take_due(&self, q: &mut Queue, now: Timestamp) -> Option<Job> {
        while q
            .ready
            .first_key_value()
            .is_some_and(|((t, _), _)| *t <= now)
        {
            let key = if q.priorities.is_empty() {
                q.ready.first_key_value().map(|(k, _)| k.clone())?
            } else {
                let priority = |id: &ExecutionId| {
                    q.priorities
                        .get(id)
                        .copied()
                        .unwrap_or(crate::model::DEFAULT_PRIORITY)
                };
                q.ready
                    .keys()
                    .take_while(|(t, _)| *t <= now)
                    .take(PRIORITY_WINDOW)
                    .enumerate()
                    .max_by_key(|(i, (_, id))| (priority(id), std::cmp::Reverse(*i)))
                    .map(|(_, k)| k.clone())?
            };
            let function = q.ready.remove(&key)?;
            let (_, id) = key;
            match q.in_flight.get_mut(&id) {
                Some(again) => *again = true,
                None => {
                    q.in_flight.insert(id.clone(), false);
                    return Some(Job::of(id, function));
                }
            }
        }
        None
    }

    /// Starts a worker for each due entry, while there is room.
    fn start_due(self: &Arc<Self>) {
        let now = self.clock.now();
        loop {
            let next = {
                let mut q = self.queue();
                if !self.has_room(&q) {
                    return;
                }
                self.take_due(&mut q, now)
            };
            match next {
                Some(job) => {
                    tokio::spawn(self.clone().worker(job));
                }
                None => return,
            }
        }
    }

    /// True when nothing in the ready queue is due.
    fn drained(&self) -> bool {
        let now = self.clock.now();
        self.queue()
            .ready
            .first_key_value()
            .is_none_or(|((t, _), _)| *t > now)
    }

    /// How long until the earliest queued entry is due: zero if one is due
    /// and a worker could take it; `None` if the queue is empty or every
    /// worker is busy (a worker takes the next entry when it is done).
    /// When the earliest queued entry is due (now, if it is and a worker
    /// could take it; `None` if nothing is queued or no worker could).
    fn next_timer(&self) -> Option<Timestamp> {
        let now = self.clock.now();
        let q = self.queue();
        let ((t, _), _) = q.ready.first_key_value()?;
        if *t > now {
            Some(*t)
        } else if self.has_room(&q) {
            Some(now)
        } else {
            None
        }
    }

    /// One worker: dispatches `job`, then the same execution again if
    /// something asked for it meanwhile, then the earliest due entry, until
    /// none is due.
    async fn worker(self: Arc<Self>, mut job: Job) {
        loop {
            match job.claimed.take() {
                Some(claimed) => self.run_started(job.id.clone(), *claimed).await,
                None => {
                    self.dispatch(&job).await;
                }
            }
            let now = self.clock.now();
            let next = {
                let mut q = self.queue();
                match q.in_flight.get_mut(&job.id) {
                    Some(again) if *again => {
                        *again = false;
                        Some(Job::unknown(job.id))
                    }
                    _ => {
                        q.in_flight.remove(&job.id);
                        self.take_due(&mut q, now)
                    }
                }
            };
            match next {
                Some(next) => job = next,
                None => {
                    // The loop may sleep on a timer this worker was to take.
                    self.wake.notify_one();
                    self.ended.notify_waiters();
                    return;
                }
            }
        }
    }

    /// One scan of every shard (see [`Dispatcher::tick`]).
    async fn scan(self: &Arc<Self>) -> crate::Result<usize> {
        let now = self.clock.now();
        let horizon = now.plus(self.config.poll_interval.saturating_mul(2));
        let mut queued = 0;
        let mut full = false;
        self.more_due.store(false, Ordering::SeqCst);
        for shard in 0..DUE_SHARDS {
            if let Some(held) = &self.config.shards {
                if !held.holds(shard, now) {
                    continue;
                }
            }
            let due = self.store.due(shard, horizon, self.config.batch).await?;
            let due_now = due.iter().filter(|item| item.due_at <= now).count();
            let mut queued_here = 0;
            let mut q = self.queue();
            for item in due {
                if q.in_flight.contains_key(&item.id) || self.is_blocked(&item.id, now) {
                    continue;
                }
                if item.due_at <= now {
                    queued_here += 1;
                }
                self.enqueue(&mut q, item.due_at, item.id, None);
            }
            // A full batch of due items: the shard may hold more.
            full |= due_now >= self.config.batch && queued_here > 0;
            queued += queued_here;
        }
        self.more_due.store(full, Ordering::SeqCst);
        self.start_due();
        Ok(queued)
    }

    /// Whether this dispatcher serves `id`'s due shard (always, without
    /// shard leases).
    fn ours(&self, id: &ExecutionId, now: Timestamp) -> bool {
        self.config
            .shards
            .as_ref()
            .is_none_or(|held| held.holds(id.due_shard(), now))
    }

    /// Queues `id` (of `function`, when known) for `t`; wakes the loop if it
    /// is now the earliest entry. A timer of an execution in a shard another
    /// replica holds is left to that replica's scan.
    fn add_timer(&self, t: Timestamp, id: &ExecutionId, function: Option<&str>) {
        if !self.ours(id, self.clock.now()) {
            return;
        }
        let earliest = {
            let mut q = self.queue();
            self.enqueue(&mut q, t, id.clone(), function);
            q.ready
                .first_key_value()
                .is_some_and(|((first, _), _)| *first == t)
        };
        if earliest {
            self.wake.notify_one();
        }
    }

    /// Claims `job` if it is due and invokes it. Unless its function is
    /// known, it is read first, and not claimed if the copy says it is not
    /// due (a stale timer, or already run: no write needed).
    async fn dispatch(&self, job: &Job) -> bool {
        let id = job.id.clone();
        if self.is_blocked(&id, self.clock.now())
            || self
                .capacity
                .is_waiting(&id, job.function.as_deref(), self.clock.now())
        {
            return false;
        }
        // A limited or flow-controlled function's execution is read first
        // (its input names its key, its epoch whether it has run).
        let limited = job
            .function
            .as_deref()
            .is_none_or(|f| self.config.limits.contains_key(f) || self.config.flow.contains_key(f));
        let (function, read): (Arc<str>, Option<Execution>) = match &job.function {
            Some(f) if !limited => (f.clone(), None),
            _ => match self.store.get_execution(&id).await {
                Ok(Some(e)) if claimable(&e, self.clock.now()) => {
                    self.learn_priority(&e.id, e.priority);
                    if e.status == ExecutionStatus::Running {
                        // Still RUNNING yet due: its invocation's lease expired.
                        metrics::counter!("durafn_lease_expiries_total").increment(1);
                    }
                    (Arc::from(e.function.as_str()), Some(e))
                }
                Ok(_) => {
                    // Not due (ended, running, gone): it no longer waits for a slot.
                    self.unblock(&id);
                    return false;
                }
                Err(e) => {
                    tracing::warn!(execution_id = %id, error = %e, "cannot read a due execution");
                    return false;
                }
            },
        };
        let now = self.clock.now();
        if self
            .paused
            .is_paused(self.store.as_ref(), &function, now)
            .await
        {
            // Its function is paused: parked out of the due index.
            self.unblock(&id);
            match super::pause::park(self.store.as_ref(), &id, &function, now).await {
                Ok(true) => {
                    tracing::info!(execution_id = %id, function = %function, "function paused: execution parked");
                    return false;
                }
                Ok(false) => {} // unpaused meanwhile: dispatch it
                Err(e) => {
                    tracing::warn!(execution_id = %id, error = %e, "cannot park an execution of a paused function");
                    return false;
                }
            }
        }
        // At the function's process capacity: not claimed; it waits here
        // until one of the function's invocations ends.
        let _running = match (self.config.capacity_for)(&function) {
            Some(max) => match self.capacity.take(&function, max, &id, self.clock.now()) {
                Some(slot) => Some(RunningSlot {
                    inner: self,
                    slot: Some(slot),
                }),
                None => return false,
            },
            None => None,
        };
        if let (Some(flow), Some(exec)) = (self.config.flow.get(&*function), &read) {
            let now = self.clock.now();
            match flow::admit(self.store.as_ref(), now, exec, flow).await {
                Ok(Admission::Run) => {}
                Ok(Admission::WaitUntil(until)) => {
                    if self.hold(&id, &function, until) {
                        tracing::debug!(execution_id = %id, function = %function, until = until.0, "held by flow control: waiting as PENDING");
                    }
                    return false;
                }
                Ok(Admission::Ended(status)) => {
                    self.unblock(&id);
                    self.queue().priorities.remove(&id);
                    let status = status.as_str().to_string();
                    let _ = self.changes.send(ExecutionChanged { id, status });
                    return true;
                }
                Err(e) => {
                    tracing::warn!(execution_id = %id, error = %e, "flow control failed; trying again");
                    self.hold(&id, &function, now.plus(limits::RETRY_BLOCKED));
                    return false;
                }
            }
        }
        let slots = match (self.config.limits.get(&*function), &read) {
            (Some(limit), Some(exec)) => {
                let groups = limits::groups(&function, limit, &exec.input);
                let store = self.store.as_ref();
                // Not yet admitted: it waits its turn (priority, then fairness key).
                let first = exec.epoch == 0;
                let turn = match first {
                    true => super::fair::my_turn(store, exec, &function, limit.key.as_ref()).await,
                    false => Ok(true),
                };
                match turn {
                    Ok(true) => {}
                    Ok(false) => {
                        self.block(&id, &function);
                        return false;
                    }
                    Err(e) => {
                        tracing::warn!(execution_id = %id, error = %e, "cannot read the waiters of a concurrency limit");
                        self.block(&id, &function);
                        return false;
                    }
                }
                match limits::acquire(store, self.clock.as_ref(), exec, &groups).await {
                    Ok(true) => {
                        self.unblock(&id);
                        if first {
                            if let Err(e) = super::fair::admitted(store, exec, &function).await {
                                tracing::warn!(execution_id = %id, error = %e, "cannot record an admission");
                            }
                        }
                        groups
                    }
                    Ok(false) => {
                        if let Err(e) = super::fair::wait(store, exec, &function).await {
                            tracing::warn!(execution_id = %id, error = %e, "cannot record a waiter");
                        }
                        self.block(&id, &function);
                        return false;
                    }
                    Err(e) => {
                        tracing::warn!(execution_id = %id, error = %e, "cannot take a concurrency slot");
                        self.block(&id, &function);
                        return false;
                    }
                }
            }
            _ => Vec::new(),
        };
        let now = self.clock.now();
        let lease = (self.config.timeout_for)(&function) + LEASE_GRACE;
        // The claim's store calls are the invocation's: counted here, handed over.
        let meter = crate::cost::UsageMeter::new();
        let claim = self.store.claim_with_journal(&id, now, now.plus(lease));
        let (claimed, journal) = match crate::cost::metered(meter.clone(), claim).await {
            Ok(Some(c)) => c,
            Ok(None) => {
                // Another dispatcher got it, or it is no longer due.
                let lost = self.lost_claims.fetch_add(1, Ordering::Relaxed) + 1;
                metrics::counter!("durafn_claims_lost_total").increment(1);
                tracing::info!(execution_id = %id, lost_claims = lost, "claim lost: another dispatcher claimed it first");
                return false;
            }
            Err(e) => {
                tracing::warn!(execution_id = %id, error = %e, "claim failed");
                return false;
            }
        };
        self.invoke_claimed(id, claimed, journal, &meter, &slots)
            .await
    }

    /// Invokes an execution [`DispatchHandle::start`] created and claimed.
    async fn run_started(&self, id: ExecutionId, claimed: Claimed) {
        let Claimed {
            execution,
            empty,
            meter,
            slot,
        } = claimed;
        let _running = RunningSlot { inner: self, slot };
        let journal = empty.then(|| crate::model::Journal {
            execution: execution.clone(),
            operations: Vec::new(),
            events: Vec::new(),
        });
        self.invoke_claimed(id, execution, journal, &meter, &[])
            .await;
    }

    /// Whether a start of `function` can be created, claimed and invoked
    /// at once here ([`DispatchHandle::start`], which has checked that the
    /// store creates and claims in one write): this dispatcher serves the id's shard, the
    /// function has no limits or flow control and is not paused, and a
    /// worker and a process are free. Then `id` is marked in flight, and
    /// the reservation is the runtime to run its worker on and the process
    /// slot it holds.
    async fn reserve_start(
        &self,
        id: &ExecutionId,
        function: &Arc<str>,
    ) -> Option<(tokio::runtime::Handle, Option<Slot>)> {
        let now = self.clock.now();
        let rt = tokio::runtime::Handle::try_current().ok()?;
        if !self.ours(id, now)
            || self.config.limits.contains_key(&**function)
            || self.config.flow.contains_key(&**function)
            || self
                .paused
                .is_paused(self.store.as_ref(), function, now)
                .await
        {
            return None;
        }
        {
            let mut q = self.queue();
            if q.in_flight.contains_key(id) || !self.has_room(&q) {
                return None;
            }
            q.in_flight.insert(id.clone(), false);
        }
        let slot = match (self.config.capacity_for)(function) {
            // At capacity: it waits for a process as any due execution does.
            Some(max) => match self.capacity.take(function, max, id, now) {
                Some(slot) => Some(slot),
                None => {
                    self.unreserve(id);
                    return None;
                }
            },
            None => None,
        };
        Some((rt, slot))
    }

    /// Gives up a start's in-flight mark; if something asked for the
    /// execution meanwhile, it is dispatched now.
    fn unreserve(&self, id: &ExecutionId) {
        let again = self.queue().in_flight.remove(id) == Some(true);
        if again {
            self.add_timer(self.clock.now(), id, None);
        }
        self.ended.notify_waiters();
    }

    /// Invokes an execution this dispatcher (or a start through it) has
    /// claimed, and settles what follows: a failed invocation's retry, the
    /// limit slots it held, who waits on its end.
    async fn invoke_claimed(
        &self,
        id: ExecutionId,
        claimed: Execution,
        journal: Option<crate::model::Journal>,
        meter: &crate::cost::UsageMeter,
        slots: &[(String, u32)],
    ) -> bool {
        let now = self.clock.now();
        self.learn_priority(&id, claimed.priority);
        let request = ResumeRequest {
            execution_id: id.clone(),
            epoch: claimed.epoch,
            version: Some(claimed.version.clone()),
            claim_usage: Some(meter.snapshot()),
            // Not one whose payloads are blob references: the handler's
            // own offloading store resolves those as it reads.
            journal: journal
                .filter(|j| !crate::store::holds_references(j))
                .map(crate::store::remote::wire::WireJournal::from)
                .filter(|j| crate::model::serialized_len(j) <= super::RESUME_JOURNAL_LIMIT)
                .map(Box::new),
        };
        tracing::debug!(execution_id = %id, epoch = claimed.epoch, function = %claimed.function, "invoking");
        let status = match self.invoker.invoke(&claimed.function, &request).await {
            Ok(summary) => {
                self.on_success(&id, &claimed.function, &summary);
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
                        if let Ok(true) = self.store.wake(&parent, now).await {
                            self.add_timer(now, &parent, None);
                        }
                    }
                }
                "FAILED".to_string()
            }
            Err(e) => {
                self.on_failure(&claimed, &e.to_string()).await;
                "FAILED_INVOCATION".to_string()
            }
        };
        if !slots.is_empty() {
            let ended = ExecutionStatus::parse(&status).is_some_and(limits::holds_nothing);
            if ended {
                if let Err(e) =
                    super::fair::released(self.store.as_ref(), &id, &claimed.function).await
                {
                    tracing::warn!(execution_id = %id, error = %e, "could not drop an admission record");
                }
                match limits::release(self.store.as_ref(), &id, slots).await {
                    Ok(()) => self.retry_blocked(&claimed.function),
                    Err(e) => {
                        tracing::warn!(execution_id = %id, error = %e, "could not release a concurrency slot; the next waiter takes it")
                    }
                }
            }
        }
        if ExecutionStatus::parse(&status).is_some_and(ExecutionStatus::is_final) {
            self.queue().priorities.remove(&id);
        }
        let _ = self.changes.send(ExecutionChanged { id, status });
        true
    }

    /// Remembers `id`'s priority for the order of the ready queue (only
    /// non-default ones are kept, at most `max_timers` of them).
    fn learn_priority(&self, id: &ExecutionId, priority: u8) {
        let mut q = self.queue();
        if priority == crate::model::DEFAULT_PRIORITY {
            q.priorities.remove(id);
        } else if q.priorities.len() < self.config.max_timers.max(1) {
            q.priorities.insert(id.clone(), priority);
        }
    }

    fn blocked(&self) -> MutexGuard<'_, HashMap<ExecutionId, (Arc<str>, Timestamp)>> {
        self.blocked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether `id` waits for a concurrency slot until after `now`.
    fn is_blocked(&self, id: &ExecutionId, now: Timestamp) -> bool {
        self.blocked()
            .get(id)
            .is_some_and(|(_, until)| *until > now)
    }

    /// `id` is over its function's limit: it stays `PENDING`, tried again
    /// after [`limits::RETRY_BLOCKED`].
    fn block(&self, id: &ExecutionId, function: &Arc<str>) {
        let until = self.clock.now().plus(limits::RETRY_BLOCKED);
        if self.hold(id, function, until) {
            tracing::info!(execution_id = %id, function = %function, "over its concurrency limit: waiting as PENDING");
        }
    }

    /// Holds `id` back (it stays `PENDING`) until `until`, when a timer
    /// tries it again; true if it was not held already.
    fn hold(&self, id: &ExecutionId, function: &Arc<str>, until: Timestamp) -> bool {
        let first = self
            .blocked()
            .insert(id.clone(), (function.clone(), until))
            .is_none();
        self.add_timer(until, id, Some(function));
        first
    }

    fn unblock(&self, id: &ExecutionId) {
        self.blocked().remove(id);
    }

    /// A slot of `function` was released: its waiters here try at once.
    fn retry_blocked(&self, function: &str) {
        let now = self.clock.now();
        let waiting: Vec<(ExecutionId, Arc<str>)> = {
            let mut b = self.blocked();
            b.iter_mut()
                .filter(|(_, (f, _))| &**f == function)
                .map(|(id, (f, until))| {
                    *until = now;
                    (id.clone(), f.clone())
                })
                .collect()
        };
        for (id, f) in waiting {
            self.add_timer(now, &id, Some(&f));
        }
    }

    fn on_success(&self, id: &ExecutionId, function: &str, summary: &InvocationSummary) {
        if let Ok(mut f) = self.failures.lock() {
            f.remove(id);
        }
        if summary.status == "SUSPENDED" {
            if let Some(t) = summary.wake_at {
                self.add_timer(t, id, Some(function));
            }
        }
    }

    /// The invoker knows this invocation failed: reschedule now, with backoff,
    /// instead of waiting for the lease to expire.
    async fn on_failure(&self, claimed: &Execution, error: &str) {
        let (id, epoch, wakeups) = (&claimed.id, claimed.epoch, claimed.wakeups);
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
            Ok(_) => self.add_timer(retry_at, id, Some(&claimed.function)),
            Err(e) => {
                tracing::warn!(execution_id = %id, error = %e, "could not reschedule; the lease will expire")
            }
        }
    }
}

/// How many due entries [`Inner::take_due`] compares by priority.
const PRIORITY_WINDOW: usize = 256;

/// What [`Store::claim`] requires, read from a recent copy: due, not
/// paused, and not ended.
fn claimable(exec: &Execution, now: Timestamp) -> bool {
    matches!(
        exec.status,
        ExecutionStatus::Pending | ExecutionStatus::Suspended | ExecutionStatus::Running
    ) && !exec.paused
        && exec.due_at.is_some_and(|t| t <= now)
}
