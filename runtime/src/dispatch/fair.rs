//! Priority and fairness at a concurrency limit, shared by every replica
//! through the store.
//!
//! An execution of a limited function that finds no free slot (or finds
//! others already waiting) records that it **waits**: a never-expiring
//! lease `wait#<function>` / `<5 - priority>#<created_at, 16 digits>#<id>`
//! whose owner is its fairness key (`k=<key>`, or `-`). Names sort best
//! first: highest priority, then oldest. An execution **admitted** (it took
//! its slots) is recorded as `held#<function>` / `<id>`, owner its key,
//! until its slots are released. Whose **turn** it is: among the waiters of
//! the highest priority, the oldest of the fairness key holding the fewest
//! admitted executions — so keys share the function's capacity evenly
//! whatever each one submitted. Only the waiter whose turn it is takes a
//! slot; the others keep waiting (`PENDING`). A waiter that has ended, gone,
//! been paused or already been admitted no longer counts: its record is
//! dropped by whoever meets it. Every record is one single-item write.

use std::collections::{HashMap, HashSet};

use super::limits::{self, ConcurrencyLimit, KeyLimit};
use crate::error::Result;
use crate::model::{Execution, ExecutionId, ExecutionStatus};
use crate::store::{Lease, LeaseRequest, Store};

fn wait_group(function: &str) -> String {
    format!("wait#{function}")
}

fn held_group(function: &str) -> String {
    format!("held#{function}")
}

fn key_owner(exec: &Execution) -> String {
    exec.fairness_key
        .as_deref()
        .map_or_else(|| "-".to_string(), |k| format!("k={k}"))
}

/// The name of `exec`'s waiting record.
fn wait_name(exec: &Execution) -> String {
    let rank = 5u8.saturating_sub(exec.priority.clamp(1, 5));
    format!("{rank}#{:016}#{}", exec.created_at.0.max(0), exec.id)
}

fn forever(group: String, name: String, owner: String) -> LeaseRequest {
    LeaseRequest {
        group,
        name,
        owner,
        until: crate::model::Timestamp(i64::MAX),
        steal_from: None,
    }
}

/// A waiting record, read back.
struct Waiter {
    lease: Lease,
    rank: String,
    id: String,
}

fn parse(lease: Lease) -> Option<Waiter> {
    let mut parts = lease.name.splitn(3, '#');
    let rank = parts.next()?.to_string();
    let _created = parts.next()?;
    let id = parts.next()?.to_string();
    Some(Waiter { lease, rank, id })
}

/// Whose turn it is among `waiting` (best first by name; those in `skip`
/// left out), given how many admitted executions each key holds: the best
/// rank, then the key holding the fewest, then the oldest.
fn choose<'a>(
    waiting: &'a [Waiter],
    held: &HashMap<String, usize>,
    skip: &HashSet<String>,
) -> Option<&'a Waiter> {
    let eligible: Vec<&Waiter> = waiting
        .iter()
        .filter(|w| !skip.contains(&w.lease.name))
        .collect();
    let best = &eligible.first()?.rank;
    eligible
        .iter()
        .take_while(|w| &w.rank == best)
        .enumerate()
        .min_by_key(|(i, w)| (held.get(&w.lease.owner).copied().unwrap_or(0), *i))
        .map(|(_, w)| *w)
}

/// Whether `exec` may take a slot of `function` now. Records it as waiting
/// when others wait (it then waits its turn); false when it is another's.
/// With a keyed limit, a waiter whose key has no free slot cannot use a
/// freed one: it is passed over (and keeps its place).
pub(crate) async fn my_turn(
    store: &dyn Store,
    exec: &Execution,
    function: &str,
    key: Option<&KeyLimit>,
) -> Result<bool> {
    let group = wait_group(function);
    let mine = wait_name(exec);
    let mut waiting: Vec<Waiter> = store
        .list_leases(&group)
        .await?
        .into_iter()
        .filter_map(parse)
        .collect();
    if waiting.iter().all(|w| w.id == exec.id.as_str()) {
        // Nobody else waits: it may go.
        return Ok(true);
    }
    if !waiting.iter().any(|w| w.lease.name == mine) {
        store
            .take_lease(
                &forever(group.clone(), mine.clone(), key_owner(exec)),
                exec.updated_at,
            )
            .await?;
        waiting = store
            .list_leases(&group)
            .await?
            .into_iter()
            .filter_map(parse)
            .collect();
    }
    let mut held: HashMap<String, usize> = HashMap::new();
    for l in store.list_leases(&held_group(function)).await? {
        *held.entry(l.owner).or_default() += 1;
    }
    // Drop waiters that no longer wait, pass over those their key holds
    // back, until one that can go is chosen.
    let mut skip = HashSet::new();
    for _ in 0..16 {
        let Some(next) = choose(&waiting, &held, &skip) else {
            return Ok(true);
        };
        if next.id == exec.id.as_str() {
            return Ok(true);
        }
        let candidate = match ExecutionId::new(next.id.as_str()) {
            Ok(id) => store
                .get_execution(&id)
                .await?
                .filter(|e| !e.paused && e.epoch == 0 && e.status == ExecutionStatus::Pending),
            Err(_) => None,
        };
        if let Some(e) = candidate {
            if key_is_full(store, function, key, &e).await? {
                skip.insert(next.lease.name.clone());
                continue;
            }
            return Ok(false);
        }
        let name = next.lease.name.clone();
        store
            .release_lease(&group, &name, &next.lease.owner)
            .await?;
        waiting.retain(|w| w.lease.name != name);
    }
    Ok(false)
}

/// Whether `e`'s key (of a keyed limit) has every slot taken.
async fn key_is_full(
    store: &dyn Store,
    function: &str,
    key: Option<&KeyLimit>,
    e: &Execution,
) -> Result<bool> {
    let Some(k) = key else {
        return Ok(false);
    };
    let only_key = ConcurrencyLimit::new(None, Some(k.clone()));
    for (group, size) in limits::groups(function, &only_key, &e.input) {
        if store.list_leases(&group).await?.len() >= size as usize {
            return Ok(true);
        }
    }
    Ok(false)
}

/// `exec` found no free slot: it waits (its turn comes by priority and key).
pub(crate) async fn wait(store: &dyn Store, exec: &Execution, function: &str) -> Result<()> {
    let req = forever(wait_group(function), wait_name(exec), key_owner(exec));
    store.take_lease(&req, exec.updated_at).await?;
    Ok(())
}

/// `exec` took its slots: it is admitted and waits no more.
pub(crate) async fn admitted(store: &dyn Store, exec: &Execution, function: &str) -> Result<()> {
    let owner = key_owner(exec);
    let req = forever(held_group(function), exec.id.to_string(), owner.clone());
    store.take_lease(&req, exec.updated_at).await?;
    store
        .release_lease(&wait_group(function), &wait_name(exec), &owner)
        .await?;
    Ok(())
}

/// `id` gave its slots back.
pub(crate) async fn released(store: &dyn Store, id: &ExecutionId, function: &str) -> Result<()> {
    let group = held_group(function);
    for l in store.list_leases(&group).await? {
        if l.name == id.as_str() {
            store.release_lease(&group, &l.name, &l.owner).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use serde_json::json;

    use super::*;
    use crate::model::{NewExecution, StartOptions, Timestamp};
    use crate::store::SqliteStore;

    async fn waiting(store: &SqliteStore, name: &str, at: i64, p: u8, key: &str) -> Execution {
        let id = ExecutionId::new(name).unwrap();
        store
            .create_execution(&NewExecution {
                id: id.clone(),
                function: "f".into(),
                version: "1".into(),
                input: json!(null),
                now: Timestamp(at),
            })
            .await
            .unwrap();
        let options = StartOptions {
            priority: p,
            fairness_key: Some(key.into()),
        };
        store
            .set_start_options(&id, &options, Timestamp(at))
            .await
            .unwrap()
            .unwrap()
    }

    #[tokio::test]
    async fn the_turn_goes_by_priority_then_to_the_key_holding_least() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("s.db")).unwrap();
        let a1 = waiting(&store, "a1", 1, 3, "a").await;
        let a2 = waiting(&store, "a2", 2, 3, "a").await;
        let b1 = waiting(&store, "b1", 3, 3, "b").await;
        let hi = waiting(&store, "hi", 4, 5, "a").await;
        // Alone, a1 may go; it is admitted and holds for key a.
        assert!(my_turn(&store, &a1, "f", None).await.unwrap());
        admitted(&store, &a1, "f").await.unwrap();
        // The others found no free slot: they wait.
        for e in [&a2, &b1, &hi] {
            wait(&store, e, "f").await.unwrap();
        }
        // The highest priority goes first.
        assert!(!my_turn(&store, &a2, "f", None).await.unwrap());
        assert!(!my_turn(&store, &b1, "f", None).await.unwrap());
        assert!(my_turn(&store, &hi, "f", None).await.unwrap());
        admitted(&store, &hi, "f").await.unwrap();
        // Same priority: key a holds two, key b none — b1 goes before the
        // older a2.
        assert!(!my_turn(&store, &a2, "f", None).await.unwrap());
        assert!(my_turn(&store, &b1, "f", None).await.unwrap());
        admitted(&store, &b1, "f").await.unwrap();
        released(&store, &a1.id, "f").await.unwrap();
        released(&store, &hi.id, "f").await.unwrap();
        assert_eq!(store.list_leases("held#f").await.unwrap().len(), 1);
        assert!(my_turn(&store, &a2, "f", None).await.unwrap());
        // A waiter that ended no longer holds the others back.
        let gone = waiting(&store, "gone", 5, 5, "c").await;
        let low = waiting(&store, "low", 6, 1, "d").await;
        wait(&store, &gone, "f").await.unwrap();
        wait(&store, &low, "f").await.unwrap();
        store.cancel(&gone.id, Timestamp(7)).await.unwrap();
        admitted(&store, &a2, "f").await.unwrap();
        assert!(my_turn(&store, &low, "f", None).await.unwrap());
        assert_eq!(
            store.list_leases("wait#f").await.unwrap().len(),
            1,
            "gone's record is dropped"
        );
    }

    #[tokio::test]
    async fn a_waiter_its_key_holds_back_does_not_hold_back_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("s.db")).unwrap();
        let mk = |name: &'static str, at: i64, customer: &'static str| {
            let store = &store;
            async move {
                let id = ExecutionId::new(name).unwrap();
                store
                    .create_execution(&NewExecution {
                        id: id.clone(),
                        function: "f".into(),
                        version: "1".into(),
                        input: json!(customer),
                        now: Timestamp(at),
                    })
                    .await
                    .unwrap()
                    .execution()
                    .clone()
            }
        };
        let c0_1 = mk("c0-1", 1, "c0").await;
        let c0_2 = mk("c0-2", 2, "c0").await;
        let c1_1 = mk("c1-1", 3, "c1").await;
        // c0-1 holds customer c0's one slot.
        let held = LeaseRequest {
            group: "limit#f#c0".into(),
            name: "slot#0".into(),
            owner: "c0-1".into(),
            until: Timestamp(i64::MAX),
            steal_from: None,
        };
        store.take_lease(&held, Timestamp(1)).await.unwrap();
        admitted(&store, &c0_1, "f").await.unwrap();
        wait(&store, &c0_2, "f").await.unwrap();
        wait(&store, &c1_1, "f").await.unwrap();
        // c0-2 is older but its customer is at its limit: c1-1 goes.
        assert!(
            !my_turn(&store, &c1_1, "f", None).await.unwrap(),
            "without the key, c0-2 is first"
        );
        let k = key_on_input();
        assert!(my_turn(&store, &c1_1, "f", Some(&k)).await.unwrap());
    }

    /// A keyed limit of 1 on the whole input (a string here).
    fn key_on_input() -> KeyLimit {
        KeyLimit {
            path: Vec::new(),
            max_per_key: 1,
        }
    }
}
