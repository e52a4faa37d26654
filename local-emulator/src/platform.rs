//! What the platform's parts share once assembled: the queue and schedule
//! services start from a [`Platform`] (and depend on this module only, not
//! on the assembly in [`crate::server`]).

use std::sync::Arc;

use durafn_runtime::clock::Clock;
use durafn_runtime::dispatch::HeldShards;
use durafn_runtime::store::Store;

use crate::api::ApiState;
use crate::auth::Guard;
use crate::lambda_api::Hosts;
use crate::routes::Limits;
use crate::template::Template;

/// Why the queue or schedule service cannot start from a template. Each
/// says which event of which function, and the template line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    /// An HttpApi route takes `POST /`, where the template's queues are served.
    #[error(
        "HttpApi event {event:?} of function {function:?} (line {line}): {method} / is where durafn serves the SQS protocol of the template's queues; choose another path"
    )]
    QueueRouteTaken {
        /// The event's name.
        event: String,
        /// The function it belongs to.
        function: String,
        /// Its template line.
        line: usize,
        /// `POST` or `ANY`.
        method: String,
    },
    /// A schedule event's expression, time zone or name is invalid.
    #[error("schedule event `{event}` of function {function} (template line {line}): {reason}")]
    BadSchedule {
        /// The event's name.
        event: String,
        /// The function it belongs to.
        function: String,
        /// Its template line.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// Two schedule events have one name.
    #[error("two schedules are named {name:?} (template line {line}): give them different `Name`s")]
    DuplicateSchedule {
        /// The name both have.
        name: String,
        /// The second one's template line.
        line: usize,
    },
}

/// What the platform's parts share; the queue and schedule services start from it.
#[derive(Clone)]
pub struct Platform {
    /// The template.
    pub template: Arc<Template>,
    /// The store.
    pub store: Arc<dyn Store>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Every function's host (invoke a function with `hosts[name].invoke(payload)`).
    pub hosts: Hosts,
    /// The REST API's state (dispatcher handle, token, ...).
    pub api: ApiState,
    /// The token check of every protected route.
    pub guard: Guard,
    /// Rate limits.
    pub limits: Limits,
    /// Becomes `true` when the platform shuts down.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// The shards this replica holds, when replicas share the store
    /// (`None`: this process is the only one and holds everything). The
    /// scheduler fires only where the schedules' shard is held.
    pub shards: Option<Arc<HeldShards>>,
}
