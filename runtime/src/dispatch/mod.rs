//! Dispatch: finding due executions, claiming them, invoking their function.
//!
//! - [`Dispatcher`]: scans the due index shard by shard, claims each due
//!   execution with a lease and hands it to an [`Invoker`].
//! - [`ShardLeaser`]: the shard leases that share the due shards among
//!   several replicas' dispatchers ([`shards`]).
//! - [`limits`]: per-function and keyed concurrency limits, held as slots
//!   in the store.
//! - `capacity`: at most as many running invocations per function as the
//!   invoker has processes for; the rest wait unclaimed.
//! - [`pause`]: paused functions, whose due executions are parked.
//! - [`flow`]: throttle, debounce and batching of a function's starts.
//! - [`ResumeRequest`]: the payload every invoker delivers to the function.
//! - [`wake`]: wake-up messages for dispatchers that are not always running
//!   (the dispatcher function on AWS Lambda, fed by an SQS wake queue).

mod capacity;
mod dispatcher;
mod fair;
pub mod flow;
mod invoker;
pub mod limits;
pub mod pause;
pub mod shards;
pub mod wake;

pub use dispatcher::{CapacityFor, DispatchHandle, Dispatcher, DispatcherConfig, ExecutionChanged};
pub use flow::FlowControl;
pub use invoker::{InvocationSummary, InvokeError, Invoker};
pub use limits::{ConcurrencyLimit, KeyLimit};
pub use shards::{HeldShards, ShardLeaseConfig, ShardLeaser};

use serde::{Deserialize, Serialize};

use crate::model::ExecutionId;

/// The payload of an invocation that continues an execution. The dispatcher
/// has already claimed it: `epoch` is the claim, and the handler's final update
/// is conditional on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResumeRequest {
    /// The execution to continue.
    pub execution_id: ExecutionId,
    /// The epoch the dispatcher claimed.
    pub epoch: u64,
    /// The function version the execution is pinned to (an invoker that can
    /// address versions, such as AWS Lambda's, invokes exactly that one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// What the claim cost in store calls, for the invocation to record with
    /// its own ([`crate::cost`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_usage: Option<crate::cost::StoreUsage>,
    /// The claimed execution's journal, when the claim read it and it is
    /// small ([`RESUME_JOURNAL_LIMIT`]) and holds no blob references
    /// (which the handler's offloading store resolves as it reads): the
    /// handler starts on it instead of reading it. Only a store that reads it with the claim sends it
    /// (SQLite, on the host that runs the handlers); it carries the
    /// execution's secret seed, as the store's own answers do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journal: Option<Box<crate::store::remote::wire::WireJournal>>,
}

/// The largest journal (serialized) a [`ResumeRequest`] carries; a larger
/// one the handler reads itself.
pub const RESUME_JOURNAL_LIMIT: usize = 256 * 1024;

/// The envelope key that marks an invocation payload as a resume request:
/// `{"durafn_resume": {"execution_id": "...", "epoch": 3}}`.
pub const RESUME_KEY: &str = "durafn_resume";

/// Set (to `1`) in a handler process's environment when its function has
/// concurrency limits or flow control: its HTTP and queue starts then only
/// create the execution (`PENDING`) and leave its first claim to the
/// dispatcher, which applies them.
pub const DISPATCHED_STARTS_ENV: &str = "DURAFN_DISPATCHED_STARTS";

/// Set (to `1`) in a handler process's environment when its function has
/// `Metadata.Durafn.PauseOnFailure: true`: a step whose retries run out
/// pauses the execution instead of failing it (the SDK's
/// `InvocationConfig::pause_on_failure`).
pub const PAUSE_ON_FAILURE_ENV: &str = "DURAFN_PAUSE_ON_FAILURE";

/// The envelope key of an explicit start request:
/// `{"durafn_start": {"name": "optional-id", "input": {...}}}`.
pub const START_KEY: &str = "durafn_start";

/// Grace added to a function's timeout to form its lease: a crashed
/// invocation's execution becomes due again this long after its deadline.
pub const LEASE_GRACE: std::time::Duration = std::time::Duration::from_secs(5);
