//! Concurrency limits: per-function maximum concurrency and keyed
//! concurrency (e.g. one execution at a time per `customer_id`), enforced
//! across replicas through the store.
//!
//! An execution of a limited function holds a **slot** from its first claim
//! until it ends (across its suspensions): a lease record owned by the
//! execution id — `limit#<function>` / `slot#<n>` for `max` (`n < max`),
//! `limit#<function>#<key value>` / `slot#<n>` for the key (`n < max_per_key`).
//! Slots never expire by time: a slot whose owner has ended (or is gone) is
//! taken from it ([`LeaseRequest::steal_from`]) by the next waiter, so a
//! crash between an end and its release loses nothing. An execution that
//! finds no free slot is not claimed: it stays `PENDING` and the dispatcher
//! tries again after [`RETRY_BLOCKED`] (at once when a slot of its function
//! is released in this process).

use std::collections::HashMap;

use serde_json::Value;

use crate::clock::Clock;
use crate::model::{Execution, ExecutionId, Timestamp};
use crate::store::{Lease, LeaseRequest, LeaseTake, Store};

/// How long an execution over its limit waits before it is tried again
/// (unless a slot of its function is released in this process first).
pub const RETRY_BLOCKED: std::time::Duration = std::time::Duration::from_millis(500);

/// A function's limits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConcurrencyLimit {
    /// At most this many executions in progress (`ReservedConcurrentExecutions`).
    pub max: Option<u32>,
    /// At most `max_per_key` in progress per value of the input field at `key`.
    pub key: Option<KeyLimit>,
}

impl ConcurrencyLimit {
    /// A limit of `max` executions in progress (`None`: no such limit) and
    /// an optional keyed limit.
    pub fn new(max: Option<u32>, key: Option<KeyLimit>) -> Self {
        ConcurrencyLimit { max, key }
    }
}

/// A keyed limit: a field of the execution's input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyLimit {
    /// The field's path in the input (`customer_id`, `order.customer`).
    pub path: Vec<String>,
    /// At most this many in progress per value.
    pub max_per_key: u32,
}

impl KeyLimit {
    /// From `input.customer_id` (or `customer_id`) and a maximum per key.
    pub fn parse(key: &str, max_per_key: u32) -> Option<KeyLimit> {
        if max_per_key == 0 {
            return None;
        }
        let path = super::flow::InputKey::parse(key)?.path;
        Some(KeyLimit { path, max_per_key })
    }

    /// The key's value in `input` (strings as they are, other JSON as JSON);
    /// `None` when the input has no such field.
    pub fn value_of(&self, input: &Value) -> Option<String> {
        super::flow::value_at(&self.path, input)
    }
}

/// The slot groups an execution of `function` needs, with their sizes.
pub(crate) fn groups(
    function: &str,
    limit: &ConcurrencyLimit,
    input: &Value,
) -> Vec<(String, u32)> {
    let mut out = Vec::new();
    if let Some(max) = limit.max {
        out.push((format!("limit#{function}"), max));
    }
    if let Some(k) = &limit.key {
        if let Some(value) = k.value_of(input) {
            out.push((format!("limit#{function}#{value}"), k.max_per_key));
        }
    }
    out
}

/// Takes a slot in each group for `exec` (keeping those it holds). False
/// when a group has none free: the slots taken in earlier groups are given
/// back, so a waiter holds nothing.
pub(crate) async fn acquire(
    store: &dyn Store,
    clock: &dyn Clock,
    exec: &Execution,
    groups: &[(String, u32)],
) -> crate::Result<bool> {
    let me = exec.id.as_str();
    let mut taken: Vec<(String, String)> = Vec::new();
    for (group, size) in groups {
        match acquire_one(store, clock, me, group, *size).await? {
            Some(name) => taken.push((group.clone(), name)),
            None => {
                for (g, name) in taken {
                    store.release_lease(&g, &name, me).await?;
                }
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// A slot of `group` for `me`: one it holds, else a free one, else one
/// whose holder has ended.
async fn acquire_one(
    store: &dyn Store,
    clock: &dyn Clock,
    me: &str,
    group: &str,
    size: u32,
) -> crate::Result<Option<String>> {
    let leases = store.list_leases(group).await?;
    if let Some(l) = leases.iter().find(|l| l.owner == me) {
        return Ok(Some(l.name.clone()));
    }
    let held: HashMap<&str, &Lease> = leases.iter().map(|l| (l.name.as_str(), l)).collect();
    let request = |name: String, steal_from: Option<String>| LeaseRequest {
        group: group.to_string(),
        name,
        owner: me.to_string(),
        until: Timestamp(i64::MAX),
        steal_from,
    };
    let now = clock.now();
    // Free slots first, then those of ended holders.
    for n in 0..size {
        let name = format!("slot#{n}");
        if held.contains_key(name.as_str()) {
            continue;
        }
        if let LeaseTake::Taken(_) = store.take_lease(&request(name.clone(), None), now).await? {
            return Ok(Some(name));
        }
    }
    for n in 0..size {
        let name = format!("slot#{n}");
        let Some(holder) = held.get(name.as_str()) else {
            continue;
        };
        let ended = match ExecutionId::new(holder.owner.as_str()) {
            Ok(id) => store
                .get_execution(&id)
                .await?
                .is_none_or(|e| holds_nothing(e.status)),
            Err(_) => true,
        };
        if !ended {
            continue;
        }
        let req = request(name.clone(), Some(holder.owner.clone()));
        if let LeaseTake::Taken(_) = store.take_lease(&req, now).await? {
            return Ok(Some(name));
        }
    }
    Ok(None)
}

/// Whether an execution in `status` no longer holds its slots: ended, or
/// blocked (it takes them again when resumed and claimed).
pub(crate) fn holds_nothing(status: crate::model::ExecutionStatus) -> bool {
    status.is_final() || status == crate::model::ExecutionStatus::Blocked
}

/// Gives back every slot `id` holds in `groups`.
pub(crate) async fn release(
    store: &dyn Store,
    id: &ExecutionId,
    groups: &[(String, u32)],
) -> crate::Result<()> {
    for (group, _) in groups {
        for l in store.list_leases(group).await? {
            if l.owner == id.as_str() {
                store.release_lease(group, &l.name, id.as_str()).await?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::clock::ManualClock;
    use crate::model::{ExecutionStatus, NewExecution};
    use crate::store::{Outcome, SqliteStore};

    async fn exec(store: &Arc<dyn Store>, id: &str, customer: &str) -> Execution {
        store
            .create_execution(&NewExecution {
                id: ExecutionId::new(id).unwrap(),
                function: "f".into(),
                version: "1".into(),
                input: json!({ "customer_id": customer }),
                now: Timestamp(0),
            })
            .await
            .unwrap()
            .execution()
            .clone()
    }

    #[tokio::test]
    async fn slots_are_held_until_the_holder_ends_and_keyed_per_value() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path().join("s.db")).unwrap());
        let clock = ManualClock::new(Timestamp(1_000));
        let limit = ConcurrencyLimit::new(Some(2), KeyLimit::parse("input.customer_id", 1));
        let a1 = exec(&store, "a1", "a").await;
        let a2 = exec(&store, "a2", "a").await;
        let b1 = exec(&store, "b1", "b").await;
        let c1 = exec(&store, "c1", "c").await;
        let g = |e: &Execution| groups("f", &limit, &e.input);
        assert!(acquire(store.as_ref(), &clock, &a1, &g(&a1)).await.unwrap());
        // Idempotent for its holder.
        assert!(acquire(store.as_ref(), &clock, &a1, &g(&a1)).await.unwrap());
        // Same key: waits, and holds nothing while it waits.
        assert!(!acquire(store.as_ref(), &clock, &a2, &g(&a2)).await.unwrap());
        assert!(acquire(store.as_ref(), &clock, &b1, &g(&b1)).await.unwrap());
        // The function's two slots are taken.
        assert!(!acquire(store.as_ref(), &clock, &c1, &g(&c1)).await.unwrap());
        assert_eq!(store.list_leases("limit#f").await.unwrap().len(), 2);
        assert!(store.list_leases("limit#f#c").await.unwrap().is_empty());

        // b1 is released: c1 gets its slot.
        release(store.as_ref(), &b1.id, &g(&b1)).await.unwrap();
        assert!(acquire(store.as_ref(), &clock, &c1, &g(&c1)).await.unwrap());

        // a1 ends without releasing (a crash): its slots are taken from it.
        let claimed = store
            .claim(&a1.id, Timestamp(1), Timestamp(99_000))
            .await
            .unwrap()
            .unwrap();
        let outcome = Outcome {
            status: ExecutionStatus::Succeeded,
            output: Some(json!(1)),
            error: None,
            expires_at: None,
        };
        store
            .finish(&a1.id, claimed.epoch, &outcome, Timestamp(2))
            .await
            .unwrap();
        assert!(acquire(store.as_ref(), &clock, &a2, &g(&a2)).await.unwrap());
        let owners: Vec<String> = store
            .list_leases("limit#f#a")
            .await
            .unwrap()
            .into_iter()
            .map(|l| l.owner)
            .collect();
        assert_eq!(owners, ["a2"]);
    }

    #[test]
    fn keys_are_read_from_the_input() {
        let k = KeyLimit::parse("input.order.customer", 1).unwrap();
        assert_eq!(
            k.value_of(&json!({"order": {"customer": "c-1"}})),
            Some("c-1".into())
        );
        assert_eq!(
            k.value_of(&json!({"order": {"customer": 7}})),
            Some("7".into())
        );
        assert_eq!(k.value_of(&json!({"order": {}})), None);
        assert!(KeyLimit::parse("input.", 1).is_none());
        assert!(KeyLimit::parse("customer_id", 0).is_none());
    }
}
