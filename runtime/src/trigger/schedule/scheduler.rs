//! The scheduler: schedule records in the store, fired when due.
//!
//! A fire is two writes, no transaction:
//! 1. create the execution `<schedule>:<fire time as yyyymmddThhmmssZ>`
//!    (idempotent by id: every scheduler computes the same id for the same
//!    fire, so racing schedulers start it once);
//! 2. advance the schedule record (`next_fire_at`, `last_execution`, ...)
//!    with a write conditional on its revision (first writer wins; the loser
//!    re-reads and finds nothing left to do).
//!
//! A crash between the two leaves the schedule due: the next tick creates the
//! same execution again (it exists: nothing new starts) and advances.
//!
//! **Catch-up** (fires missed while no scheduler ran, found when
//! `next_fire_at` is in the past): [`CatchUp::Latest`] (default) starts the
//! latest missed fire once; [`CatchUp::All`] starts every one (at most
//! [`SchedulerConfig::max_catch_up`] per tick, the rest on the next ticks);
//! [`CatchUp::None`] starts none — only fires found within
//! [`SchedulerConfig::grace`] of their time count as on time.
//!
//! **Overlap** (a fire while the schedule's last execution has not ended):
//! [`Overlap::Skip`] (default) drops the fire; [`Overlap::BufferOne`] keeps
//! the latest such fire and starts it once the previous execution has ended
//! (checked every [`SchedulerConfig::recheck`]); [`Overlap::Allow`] starts it.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::{ScheduleSpec, fire_id, fire_time_rfc3339, ms};
use crate::clock::Clock;
use crate::error::{Result, StoreError};
use crate::model::{ExecutionId, NewExecution, Timestamp};
use crate::store::{CatchUp, Created, Overlap, Schedule, ScheduleWrite, Store};

/// How often one change re-runs when racing writers keep changing the record.
const MAX_RACES: usize = 16;
/// The most fire times computed to find the missed ones.
const MAX_SCAN: usize = 100_000;

/// A schedule as a template (or a caller) defines it.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleDef {
    /// Its name (1-64 of `[A-Za-z0-9._-]`).
    pub name: String,
    /// The durable function each fire starts.
    pub function: String,
    /// `rate(...)`, `cron(...)` or `at(...)`.
    pub expression: String,
    /// The IANA time zone (UTC when `None`).
    pub timezone: Option<String>,
    /// The input each execution gets (with `schedule` and `scheduled_time`
    /// added when it is an object or null).
    pub input: Value,
    /// `false` when the template disables it.
    pub enabled: bool,
    /// The catch-up policy.
    pub catch_up: CatchUp,
    /// The overlap policy.
    pub overlap: Overlap,
}

impl ScheduleDef {
    /// A definition with the default policies, enabled, null input.
    pub fn new(
        name: impl Into<String>,
        function: impl Into<String>,
        expression: impl Into<String>,
        timezone: Option<String>,
    ) -> Self {
        ScheduleDef {
            name: name.into(),
            function: function.into(),
            expression: expression.into(),
            timezone,
            input: Value::Null,
            enabled: true,
            catch_up: CatchUp::default(),
            overlap: Overlap::default(),
        }
    }
}

/// Settings of a scheduler.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SchedulerConfig {
    /// How many due schedules one tick reads.
    pub batch: usize,
    /// How often a fire held back by [`Overlap::BufferOne`] is re-checked.
    pub recheck: Duration,
    /// With [`CatchUp::None`], how late a fire may be found and still start.
    pub grace: Duration,
    /// With [`CatchUp::All`], the most missed fires started per tick.
    pub max_catch_up: usize,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            batch: 100,
            recheck: Duration::from_secs(5),
            grace: Duration::from_secs(60),
            max_catch_up: 100,
        }
    }
}

/// One fire that started (or found) an execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FireOutcome {
    /// The schedule.
    pub schedule: String,
    /// The fire time (the request time for a manual trigger).
    pub fire_at: Timestamp,
    /// The execution it started.
    pub execution_id: ExecutionId,
    /// False when the execution already existed (a racing scheduler, or a
    /// retry after a crash, created it).
    pub new: bool,
}

/// What one [`Scheduler::tick`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TickReport {
    /// The fires that started executions, in order.
    pub fired: Vec<FireOutcome>,
    /// Fires dropped by a catch-up or overlap policy.
    pub skipped: u64,
    /// Schedules that could not be processed (logged; retried next tick).
    pub errors: usize,
}

/// Keeps schedules in a store and fires the due ones. Any number of
/// schedulers may share a store.
pub struct Scheduler {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    config: SchedulerConfig,
}

impl Scheduler {
    /// A scheduler over `store`.
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, config: SchedulerConfig) -> Self {
        Scheduler {
            store,
            clock,
            config,
        }
    }

    /// Creates or updates a schedule from its definition. An existing record
    /// keeps its state (next fire, pause, last execution): a restart neither
    /// resets nor repeats anything, and fires missed meanwhile are caught up
    /// by the next [`tick`](Self::tick). A changed expression or time zone,
    /// or a schedule the template enables again, counts from now.
    pub async fn register(&self, def: &ScheduleDef) -> Result<Schedule> {
        super::validate_name(&def.name)?;
        if def.function.is_empty() {
            return Err(StoreError::Invalid(format!(
                "schedule {} has no function",
                def.name
            )));
        }
        let spec = ScheduleSpec::parse(&def.expression, def.timezone.as_deref())?;
        for _ in 0..MAX_RACES {
            let now = self.clock.now();
            let Some(current) = self.store.get_schedule(&def.name).await? else {
                let next_fire_at = spec.next_after(now, now);
                let mut s = Schedule {
                    name: def.name.clone(),
                    function: def.function.clone(),
                    expression: spec.expression().to_string(),
                    timezone: spec.timezone().map(str::to_string),
                    input: def.input.clone(),
                    enabled: def.enabled,
                    paused: false,
                    catch_up: def.catch_up,
                    overlap: def.overlap,
                    anchor: now,
                    next_fire_at,
                    pending_fire_at: None,
                    last_fire_at: None,
                    last_execution: None,
                    fires: 0,
                    skipped: 0,
                    due_at: None,
                    created_at: now,
                    updated_at: now,
                    rev: 1,
                };
                s.due_at = self.due_of(&s, now);
                match self.store.create_schedule(&s).await? {
                    ScheduleWrite::Written => return Ok(s),
                    ScheduleWrite::Conflict(c) if c == s => return Ok(s),
                    _ => continue,
                }
            };
            let mut next = current.clone();
            next.function = def.function.clone();
            next.input = def.input.clone();
            next.catch_up = def.catch_up;
            next.overlap = def.overlap;
            let changed = current.expression != spec.expression()
                || current.timezone.as_deref() != spec.timezone();
            let enabled_again = def.enabled && !current.enabled;
            next.enabled = def.enabled;
            if changed || enabled_again {
                next.expression = spec.expression().to_string();
                next.timezone = spec.timezone().map(str::to_string);
                next.anchor = now;
                next.next_fire_at = spec.next_after(now, now);
                next.pending_fire_at = None;
            }
            next.due_at = self.due_of(&next, now);
            if next == current {
                return Ok(current);
            }
            match self.write(next).await? {
                Some(written) => return Ok(written),
                None => continue,
            }
        }
        Err(raced(&def.name))
    }

    /// Fires every schedule due at the clock's now.
    pub async fn tick(&self) -> Result<TickReport> {
        let now = self.clock.now();
        let due = self.store.due_schedules(now, self.config.batch).await?;
        let mut report = TickReport::default();
        for s in due {
            let name = s.name.clone();
            match self.process(s, now).await {
                Ok((fired, skipped)) => {
                    report.fired.extend(fired);
                    report.skipped += skipped;
                }
                Err(e) => {
                    tracing::warn!(schedule = %name, error = %e, "cannot fire schedule; retrying next tick");
                    report.errors += 1;
                }
            }
        }
        Ok(report)
    }

    /// The earliest time any schedule is due (`None`: none is), for a loop
    /// that sleeps until then.
    pub async fn next_due(&self) -> Result<Option<Timestamp>> {
        Ok(self
            .store
            .list_schedules()
            .await?
            .iter()
            .filter_map(|s| s.due_at)
            .min())
    }

    /// Every schedule, by name.
    pub async fn list(&self) -> Result<Vec<Schedule>> {
        self.store.list_schedules().await
    }

    /// One schedule.
    pub async fn get(&self, name: &str) -> Result<Option<Schedule>> {
        self.store.get_schedule(name).await
    }

    /// Pauses a schedule: it leaves the due index until resumed. `None`: no
    /// such schedule.
    pub async fn pause(&self, name: &str) -> Result<Option<Schedule>> {
        self.change(name, |s, _, _| {
            s.paused = true;
            s.pending_fire_at = None;
            Ok(())
        })
        .await
    }

    /// Resumes a paused schedule from now: fires missed while it was paused
    /// are not caught up.
    pub async fn resume(&self, name: &str) -> Result<Option<Schedule>> {
        self.change(name, |s, spec, now| {
            if s.paused {
                s.paused = false;
                s.next_fire_at = spec.next_after(now, s.anchor);
            }
            Ok(())
        })
        .await
    }

    /// Fires a schedule now, once, whatever its state: the execution is keyed
    /// by the request time (to the second), so a repeated request in the
    /// same second starts nothing new. `None`: no such schedule.
    pub async fn trigger(&self, name: &str) -> Result<Option<FireOutcome>> {
        let now = self.clock.now();
        let at = Timestamp(now.0.div_euclid(1000) * 1000);
        let Some(s) = self.store.get_schedule(name).await? else {
            return Ok(None);
        };
        let outcome = self.start(&s, at, now).await?;
        let recorded = outcome.clone();
        self.change(name, move |s, _, _| {
            s.last_execution = Some(recorded.execution_id.clone());
            if recorded.new {
                s.fires += 1;
            }
            Ok(())
        })
        .await?;
        Ok(Some(outcome))
    }

    /// Applies `f` to a schedule with a conditional write, re-reading on races.
    async fn change<F>(&self, name: &str, f: F) -> Result<Option<Schedule>>
    where
        F: Fn(&mut Schedule, &ScheduleSpec, Timestamp) -> Result<()>,
    {
        for _ in 0..MAX_RACES {
            let now = self.clock.now();
            let Some(current) = self.store.get_schedule(name).await? else {
                return Ok(None);
            };
            let spec = ScheduleSpec::parse(&current.expression, current.timezone.as_deref())?;
            let mut next = current.clone();
            f(&mut next, &spec, now)?;
            next.due_at = self.due_of(&next, now);
            if next == current {
                return Ok(Some(current));
            }
            if let Some(written) = self.write(next).await? {
                return Ok(Some(written));
            }
        }
        Err(raced(name))
    }

    /// Writes the next revision of `s`; `None` when another writer got there
    /// first (re-read and try again).
    async fn write(&self, mut s: Schedule) -> Result<Option<Schedule>> {
        s.rev += 1;
        s.updated_at = self.clock.now();
        match self.store.update_schedule(&s).await? {
            ScheduleWrite::Written => Ok(Some(s)),
            // A retried write that had landed finds itself.
            ScheduleWrite::Conflict(c) if c == s => Ok(Some(s)),
            ScheduleWrite::Conflict(_) => Ok(None),
            ScheduleWrite::Missing => Err(StoreError::Invalid(format!(
                "schedule {} no longer exists",
                s.name
            ))),
        }
    }

    /// When a scheduler must look at `s` next.
    fn due_of(&self, s: &Schedule, now: Timestamp) -> Option<Timestamp> {
        if !s.enabled || s.paused {
            return None;
        }
        let recheck = s.pending_fire_at.map(|_| now.plus(self.config.recheck));
        match (s.next_fire_at, recheck) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Fires one due schedule: returns the fires started and how many were
    /// skipped.
    async fn process(&self, mut s: Schedule, now: Timestamp) -> Result<(Vec<FireOutcome>, u64)> {
        // Executions started by an attempt that lost the race to advance the
        // record: still reported (the winner found them existing).
        let mut started: Vec<FireOutcome> = Vec::new();
        for _ in 0..MAX_RACES {
            if !s.enabled || s.paused || s.due_at.is_none_or(|d| d > now) {
                return Ok((started, 0));
            }
            let spec = ScheduleSpec::parse(&s.expression, s.timezone.as_deref())?;
            let mut next = s.clone();
            let mut skipped = 0u64;
            let mut candidates: Vec<Timestamp> = Vec::new();
            if let Some(first) = s.next_fire_at.filter(|t| *t <= now) {
                let mut missed = vec![first];
                missed.extend(spec.fires_between(first, now, s.anchor, MAX_SCAN));
                let truncated = missed.len() > MAX_SCAN;
                let count = missed.len() as u64;
                match s.catch_up {
                    CatchUp::Latest => {
                        let latest = if truncated {
                            latest_fire(&spec, first, now, s.anchor)
                        } else {
                            missed.last().copied()
                        };
                        candidates.extend(latest);
                        skipped += count.saturating_sub(1);
                        next.next_fire_at = spec.next_after(now, s.anchor);
                    }
                    CatchUp::All => {
                        let take = self.config.max_catch_up.max(1);
                        if missed.len() > take {
                            missed.truncate(take);
                            let last = missed.last().copied().unwrap_or(first);
                            next.next_fire_at = spec.next_after(last, s.anchor);
                        } else {
                            next.next_fire_at = spec.next_after(now, s.anchor);
                        }
                        candidates.extend(missed);
                    }
                    CatchUp::None => {
                        let grace = ms(self.config.grace);
                        let (on_time, late): (Vec<_>, Vec<_>) =
                            missed.into_iter().partition(|t| now.0 - t.0 <= grace);
                        skipped += late.len() as u64;
                        candidates.extend(on_time.last().copied());
                        next.next_fire_at = spec.next_after(now, s.anchor);
                    }
                }
            }
            // A fire held back earlier comes first.
            if let Some(p) = s.pending_fire_at {
                candidates.insert(0, p);
                next.pending_fire_at = None;
            }
            // Fires whose execution exists already (a crash after creating it,
            // or a racing scheduler) are done: record them, start nothing.
            let mut already = Vec::new();
            let mut to_start = Vec::new();
            for t in candidates {
                let id = fire_id(&s.name, t)?;
                if self.store.get_execution(&id).await?.is_some() {
                    already.push(FireOutcome {
                        schedule: s.name.clone(),
                        fire_at: t,
                        execution_id: id,
                        new: false,
                    });
                } else {
                    to_start.push(t);
                }
            }
            if !to_start.is_empty() && s.overlap != Overlap::Allow && self.busy(&s).await? {
                match s.overlap {
                    Overlap::BufferOne => {
                        skipped += to_start.len() as u64 - 1;
                        next.pending_fire_at = to_start.last().copied();
                    }
                    _ => skipped += to_start.len() as u64,
                }
                to_start.clear();
            }
            let mut fired = already;
            for t in to_start {
                fired.push(self.start(&s, t, now).await?);
            }
            if let Some(last) = fired.iter().max_by_key(|f| f.fire_at) {
                if s.last_fire_at.is_none_or(|l| l <= last.fire_at) {
                    next.last_fire_at = Some(last.fire_at);
                    next.last_execution = Some(last.execution_id.clone());
                }
            }
            // Counted by the write that advances the record: once per fire.
            next.fires += fired.len() as u64;
            next.skipped += skipped;
            next.due_at = self.due_of(&next, now);
            let written = self.write(next).await?;
            for f in fired {
                match started
                    .iter_mut()
                    .find(|g| g.execution_id == f.execution_id)
                {
                    Some(g) => g.new |= f.new,
                    None => started.push(f),
                }
            }
            match written {
                Some(_) => {
                    for f in &started {
                        tracing::info!(schedule = %f.schedule, execution = %f.execution_id, new = f.new, "schedule fired");
                    }
                    return Ok((started, skipped));
                }
                None => match self.store.get_schedule(&s.name).await? {
                    // Another scheduler advanced it: what we created is what
                    // it created (same ids); see what is left to do.
                    Some(fresh) => s = fresh,
                    None => return Ok((started, skipped)),
                },
            }
        }
        Err(raced(&s.name))
    }

    /// True if the schedule's last execution has not ended.
    async fn busy(&self, s: &Schedule) -> Result<bool> {
        let Some(id) = &s.last_execution else {
            return Ok(false);
        };
        Ok(self
            .store
            .get_execution(id)
            .await?
            .is_some_and(|e| !e.status.is_final()))
    }

    /// Creates the execution of the fire at `at` (idempotent by id).
    async fn start(&self, s: &Schedule, at: Timestamp, now: Timestamp) -> Result<FireOutcome> {
        let id = fire_id(&s.name, at)?;
        let new = NewExecution {
            id: id.clone(),
            function: s.function.clone(),
            version: "$LATEST".into(),
            input: fire_input(s, at),
            now,
        };
        let new = match self.store.create_execution(&new).await {
            Ok(Created::New(_)) => true,
            Ok(Created::Existing(_)) => false,
            // The id exists with another input (the schedule's input changed
            // between a crash and its retry): that fire has started.
            Err(StoreError::Conflict { .. }) => false,
            Err(e) => return Err(e),
        };
        Ok(FireOutcome {
            schedule: s.name.clone(),
            fire_at: at,
            execution_id: id,
            new,
        })
    }
}

/// What a fired execution receives: the schedule's input with `schedule`
/// and `scheduled_time` (RFC 3339, UTC) added when it is an object or null.
pub(crate) fn fire_input(s: &Schedule, at: Timestamp) -> Value {
    let time = fire_time_rfc3339(at);
    match &s.input {
        Value::Null => json!({ "schedule": s.name, "scheduled_time": time }),
        Value::Object(m) => {
            let mut m = m.clone();
            m.entry("schedule").or_insert_with(|| json!(s.name));
            m.entry("scheduled_time").or_insert_with(|| json!(time));
            Value::Object(m)
        }
        other => other.clone(),
    }
}

/// The latest fire in `[first, now]` when there are too many to list.
fn latest_fire(
    spec: &ScheduleSpec,
    first: Timestamp,
    now: Timestamp,
    anchor: Timestamp,
) -> Option<Timestamp> {
    const DAY: i64 = 86_400_000;
    for window in [3_600_000, DAY, 32 * DAY, 400 * DAY, 4000 * DAY] {
        let from = Timestamp((now.0 - window).max(first.0 - 1));
        if let Some(t) = spec.fires_between(from, now, anchor, MAX_SCAN).last() {
            return Some(*t);
        }
    }
    Some(first)
}

fn raced(name: &str) -> StoreError {
    StoreError::Transient(format!(
        "schedule {name} kept changing under this scheduler; try again"
    ))
}
