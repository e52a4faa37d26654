//! Pausing a whole function: nothing of it is dispatched until it is
//! unpaused; new starts are accepted and wait as `PENDING`.
//!
//! A paused function is a lease record that never expires
//! (`pause#function` / `<function>`, owner `operator`), so it lives in every
//! store without a new record type and is shared by every replica. Each
//! dispatcher keeps the set of paused functions, re-read at most every
//! [`REFRESH`] (at once in the process that changed it). A due execution
//! of a paused function is **parked**: recorded as `parked#<function>` /
//! `<execution id>` and then paused itself ([`Store::set_paused`]), which
//! takes it out of the due index — so a backlog of starts never fills the
//! dispatcher's scans. Unpausing the function deletes its record first,
//! then unpauses every parked execution. A dispatcher that parked one
//! while the function was being unpaused reads the record again after
//! pausing the execution and undoes the pause if the record is gone, so no
//! execution stays parked behind an unpaused function. An unpause that
//! stopped half-way (a crash) is finished by running it again.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::Result;
use crate::model::{ExecutionId, Timestamp};
use crate::store::{LeaseRequest, Store};

/// The lease group of paused functions (one record per function).
pub const FUNCTION_PAUSE_GROUP: &str = "pause#function";

/// How long a dispatcher trusts its copy of the paused functions.
pub const REFRESH: Duration = Duration::from_secs(1);

const OWNER: &str = "operator";

fn parked_group(function: &str) -> String {
    format!("parked#{function}")
}

fn forever(group: String, name: &str) -> LeaseRequest {
    LeaseRequest {
        group,
        name: name.to_string(),
        owner: OWNER.to_string(),
        until: Timestamp(i64::MAX),
        steal_from: None,
    }
}

/// Pauses `function` (idempotent).
pub async fn pause_function(store: &dyn Store, function: &str, now: Timestamp) -> Result<()> {
    let req = forever(FUNCTION_PAUSE_GROUP.to_string(), function);
    store.take_lease(&req, now).await?;
    Ok(())
}

/// Unpauses `function` and every execution parked behind it; returns how
/// many were unpaused. Idempotent: run again to finish one that failed.
pub async fn unpause_function(store: &dyn Store, function: &str, now: Timestamp) -> Result<usize> {
    store
        .release_lease(FUNCTION_PAUSE_GROUP, function, OWNER)
        .await?;
    let group = parked_group(function);
    let mut n = 0;
    for parked in store.list_leases(&group).await? {
        if let Ok(id) = ExecutionId::new(parked.name.as_str()) {
            store.set_paused(&id, false, now).await?;
            n += 1;
        }
        store.release_lease(&group, &parked.name, OWNER).await?;
    }
    Ok(n)
}

/// The paused functions, by name (one query).
pub async fn paused_functions(store: &dyn Store) -> Result<BTreeSet<String>> {
    Ok(store
        .list_leases(FUNCTION_PAUSE_GROUP)
        .await?
        .into_iter()
        .map(|l| l.name)
        .collect())
}

/// Parks execution `id` of paused `function` (see the module docs). True
/// when it stays parked; false when the function was unpaused meanwhile
/// (the execution is then left unpaused, to be dispatched).
pub(crate) async fn park(
    store: &dyn Store,
    id: &ExecutionId,
    function: &str,
    now: Timestamp,
) -> Result<bool> {
    let group = parked_group(function);
    store
        .take_lease(&forever(group.clone(), id.as_str()), now)
        .await?;
    store.set_paused(id, true, now).await?;
    if paused_functions(store).await?.contains(function) {
        return Ok(true);
    }
    store.set_paused(id, false, now).await?;
    store.release_lease(&group, id.as_str(), OWNER).await?;
    Ok(false)
}

/// A dispatcher's copy of the paused functions.
#[derive(Default)]
pub(crate) struct PausedFunctions {
    copy: Mutex<Option<(Timestamp, Arc<BTreeSet<String>>)>>,
}

impl PausedFunctions {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(Timestamp, Arc<BTreeSet<String>>)>> {
        self.copy
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Forgets the copy: the next look re-reads the store.
    pub(crate) fn invalidate(&self) {
        *self.lock() = None;
    }

    /// Whether `function` is paused, by a copy at most [`REFRESH`] old. A
    /// failed read keeps the last copy (none: nothing is paused).
    pub(crate) async fn is_paused(
        &self,
        store: &dyn Store,
        function: &str,
        now: Timestamp,
    ) -> bool {
        let fresh = {
            let mut copy = self.lock();
            match copy.as_mut() {
                Some((at, set)) if *at <= now && at.until(now) < REFRESH => Some(set.clone()),
                // Stale: this caller re-reads; the others go on with the old
                // copy meanwhile (no burst of reads under load).
                Some((at, _)) => {
                    *at = now;
                    None
                }
                None => None,
            }
        };
        let set = match fresh {
            Some(set) => set,
            None => match paused_functions(store).await {
                Ok(set) => {
                    let set = Arc::new(set);
                    *self.lock() = Some((now, set.clone()));
                    set
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the paused functions; using the last copy");
                    self.lock()
                        .as_ref()
                        .map(|(_, set)| set.clone())
                        .unwrap_or_default()
                }
            },
        };
        set.contains(function)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use serde_json::json;

    use super::*;
    use crate::model::NewExecution;
    use crate::store::SqliteStore;

    #[tokio::test]
    async fn parked_executions_are_unpaused_with_their_function() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("s.db")).unwrap();
        let id = ExecutionId::new("p-1").unwrap();
        store
            .create_execution(&NewExecution {
                id: id.clone(),
                function: "f".into(),
                version: "1".into(),
                input: json!(null),
                now: Timestamp(1),
            })
            .await
            .unwrap();
        // Not paused: parking undoes itself.
        assert!(!park(&store, &id, "f", Timestamp(2)).await.unwrap());
        assert!(!store.get_execution(&id).await.unwrap().unwrap().paused);

        pause_function(&store, "f", Timestamp(3)).await.unwrap();
        pause_function(&store, "f", Timestamp(3)).await.unwrap();
        assert!(paused_functions(&store).await.unwrap().contains("f"));
        assert!(park(&store, &id, "f", Timestamp(4)).await.unwrap());
        assert!(store.get_execution(&id).await.unwrap().unwrap().paused);

        let cache = PausedFunctions::default();
        assert!(cache.is_paused(&store, "f", Timestamp(5)).await);
        assert!(!cache.is_paused(&store, "g", Timestamp(5)).await);

        assert_eq!(
            unpause_function(&store, "f", Timestamp(6)).await.unwrap(),
            1
        );
        let e = store.get_execution(&id).await.unwrap().unwrap();
        assert!(!e.paused);
        assert_eq!(e.due_at, Some(Timestamp(6)));
        assert!(store.list_leases("parked#f").await.unwrap().is_empty());
        // The copy is trusted for REFRESH, then read again.
        assert!(cache.is_paused(&store, "f", Timestamp(5 + 999)).await);
        assert!(!cache.is_paused(&store, "f", Timestamp(5 + 1000)).await);
        assert_eq!(
            unpause_function(&store, "f", Timestamp(7)).await.unwrap(),
            0
        );
    }
}
