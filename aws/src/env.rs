//! Configuration from the environment, shared by both functions.

use std::sync::Arc;
use std::time::Duration;

use durafn_runtime::dispatch::wake::WakeQueue;
use durafn_runtime::store::{RetryingStore, Store, WakingStore};

use crate::dispatcher::DispatcherSettings;

/// Opens `DURAFN_STORE` (retrying transient errors) and, when a wake queue is
/// given, reports what becomes due to it. Returns the store and the queue.
pub async fn open_store() -> anyhow::Result<(Arc<dyn Store>, Option<Arc<WakeQueue>>)> {
    let url = std::env::var("DURAFN_STORE").map_err(|_| {
        anyhow::anyhow!("DURAFN_STORE is not set: give the store URL, e.g. dynamodb://TABLE")
    })?;
    let store: Arc<dyn Store> = Arc::new(RetryingStore::new(durafn_runtime::store::open(&url)?));
    let queue = WakeQueue::from_env().await.map(Arc::new);
    let store = match &queue {
        Some(q) => Arc::new(WakingStore::new(store, q.clone())) as Arc<dyn Store>,
        None => store,
    };
    Ok((store, queue))
}

fn seconds(var: &str) -> anyhow::Result<Option<Duration>> {
    match std::env::var(var) {
        Ok(v) => v
            .trim()
            .parse::<u64>()
            .map(|s| Some(Duration::from_secs(s)))
            .map_err(|e| anyhow::anyhow!("{var}={v:?} is not a number of seconds: {e}")),
        Err(_) => Ok(None),
    }
}

/// The dispatcher's settings: `DURAFN_FUNCTION_TIMEOUT` (seconds, the
/// longest timeout of the durable functions; default 900, Lambda's longest)
/// and `DURAFN_SWEEP_AHEAD` (seconds; default 90).
pub fn settings_from_env() -> anyhow::Result<DispatcherSettings> {
    let mut s = DispatcherSettings::default();
    if let Some(t) = seconds("DURAFN_FUNCTION_TIMEOUT")? {
        s.function_timeout = t;
    }
    if let Some(t) = seconds("DURAFN_SWEEP_AHEAD")? {
        s.sweep_ahead = t;
    }
    Ok(s)
}
