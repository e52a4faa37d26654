//! Schedule records (`pk = sched#<name>`): a schedule's definition and its
//! state, as stored. The scheduler that fires them is
//! `trigger::schedule`.

use serde_json::Value;

use super::{ExecutionId, Timestamp};
use crate::error::{Result, StoreError};

/// The most bytes a schedule's input may take (a schedule record stays one
/// small item; larger data belongs elsewhere).
pub const MAX_SCHEDULE_INPUT_BYTES: usize = 256 * 1024;

/// What a schedule does about fires missed while no scheduler ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CatchUp {
    /// Start only the latest missed fire, once (the default).
    #[default]
    Latest,
    /// Start every missed fire.
    All,
    /// Start none of them; wait for the next fire.
    None,
}

/// What a schedule does when a fire comes while its previous execution is
/// still going.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Overlap {
    /// Skip the fire (the default): at most one execution at a time.
    #[default]
    Skip,
    /// Keep the latest such fire and start it when the previous one ends.
    BufferOne,
    /// Start it anyway.
    Allow,
}

/// A schedule record (`pk = sched#<name>`): its definition and its state.
/// Every change is a whole-record write conditional on `rev`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Schedule {
    /// The schedule's name (1-64 of `[A-Za-z0-9._-]`).
    pub name: String,
    /// The durable function each fire starts.
    pub function: String,
    /// `rate(...)`, `cron(...)` or `at(...)` in AWS's syntax.
    pub expression: String,
    /// The IANA time zone of `cron` and `at` (UTC when `None`).
    pub timezone: Option<String>,
    /// Given to each execution (with the schedule's name and fire time).
    pub input: Value,
    /// `false` when the template disables it (`State: DISABLED`).
    pub enabled: bool,
    /// Paused through the API or CLI (kept across restarts).
    pub paused: bool,
    /// The catch-up policy.
    pub catch_up: CatchUp,
    /// The overlap policy.
    pub overlap: Overlap,
    /// When a `rate` schedule started counting.
    pub anchor: Timestamp,
    /// The next fire time (`None`: no more fires, e.g. a one-shot that fired).
    pub next_fire_at: Option<Timestamp>,
    /// A fire held back by [`Overlap::BufferOne`].
    pub pending_fire_at: Option<Timestamp>,
    /// The scheduled time of the last fire that started an execution.
    pub last_fire_at: Option<Timestamp>,
    /// The last execution a fire (or a manual trigger) started.
    pub last_execution: Option<ExecutionId>,
    /// How many executions the schedule started.
    pub fires: u64,
    /// How many fires were skipped (overlap or catch-up policy).
    pub skipped: u64,
    /// When a scheduler must look at it next (its entry in the due index;
    /// `None` while paused, disabled or finished).
    pub due_at: Option<Timestamp>,
    /// When the record was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
    /// Its revision: 1 when created, +1 on every write.
    pub rev: u64,
}

/// Checks a schedule name: 1–64 characters of `[A-Za-z0-9._-]` (as
/// EventBridge Scheduler allows).
pub fn validate_name(name: &str) -> Result<()> {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if name.is_empty() || name.len() > 64 || !name.chars().all(ok) {
        return Err(StoreError::Invalid(format!(
            "schedule name {name:?} is not valid: use 1-64 characters of letters, digits, '.', '_' or '-'"
        )));
    }
    Ok(())
}
