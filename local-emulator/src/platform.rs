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
