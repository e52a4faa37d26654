//! [`InvocationConfig`]: the limits and settings of one invocation, which
//! every context of it reads (re-exported as `durafn::invocation::InvocationConfig`).

use std::sync::Arc;
use std::time::Duration;

use durafn_runtime::model::{Operation, Timestamp};

/// A hook called after each checkpoint this invocation writes.
pub type CheckpointHook = Arc<dyn Fn(&Operation) + Send + Sync>;

/// A hook called as a step attempt's body starts: `(op id, step name, attempt)`.
pub type StepHook = Arc<dyn Fn(&str, &str, u32) + Send + Sync>;

/// Limits and settings of one invocation.
#[derive(Clone)]
#[non_exhaustive]
pub struct InvocationConfig {
    /// Yield (checkpoint and ask to be re-invoked at once) after this many
    /// step attempts. `None`: no limit. `Some(1)`: one step per invocation.
    pub max_steps_per_invocation: Option<u32>,
    /// When the invocation must end (the Lambda deadline).
    pub deadline: Option<Timestamp>,
    /// How long before the deadline to stop starting new steps.
    pub yield_margin: Duration,
    /// How long finished executions are kept.
    pub retention: Duration,
    /// How often a running invocation checks whether its execution was
    /// cancelled (before step attempts; the journal read that starts the
    /// invocation counts as the first check).
    pub cancel_check_interval: Duration,
    /// Pause the execution, instead of failing the step for good, when a
    /// step's retries run out (`Metadata.Durafn.PauseOnFailure`; the handler
    /// process gets [`PAUSE_ON_FAILURE_ENV`]). The step keeps one more
    /// attempt, due at once: unpausing (after deploying a fix) runs it.
    pub pause_on_failure: bool,
    /// Called after each checkpoint write (tests use it to crash mid-way).
    #[doc(hidden)]
    pub on_checkpoint: Option<CheckpointHook>,
    /// Called as each step body starts, after an at-most-once step's start
    /// record is durable (tests use it to kill the process mid-step).
    #[doc(hidden)]
    pub on_step_body: Option<StepHook>,
}

/// Set to `1` in a handler process's environment when its function has
/// `Metadata.Durafn.PauseOnFailure: true` (see [`InvocationConfig::pause_on_failure`]).
pub use durafn_runtime::dispatch::PAUSE_ON_FAILURE_ENV;

impl Default for InvocationConfig {
    fn default() -> Self {
        InvocationConfig {
            max_steps_per_invocation: None,
            deadline: None,
            yield_margin: Duration::from_secs(2),
            retention: durafn_runtime::model::retention(),
            cancel_check_interval: Duration::from_secs(1),
            pause_on_failure: std::env::var(PAUSE_ON_FAILURE_ENV).is_ok_and(|v| v == "1"),
            on_checkpoint: None,
            on_step_body: None,
        }
    }
}

impl std::fmt::Debug for InvocationConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InvocationConfig")
            .field("max_steps_per_invocation", &self.max_steps_per_invocation)
            .field("deadline", &self.deadline)
            .field("retention", &self.retention)
            .finish()
    }
}
