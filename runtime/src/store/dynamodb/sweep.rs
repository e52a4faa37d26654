//! The expiry sweep, off the invocation's critical path.
//!
//! DESIGN §4 wants `expires_at` (TTL) on every item of a finished execution,
//! but only the meta item can get it in the one conditional write that ends
//! the execution: copying it onto the operation, event and chunk items is one
//! more write per item. So ending an execution (`finish`, `cancel`, or a stale
//! invocation's end finding it ended, see `access.rs`) only *marks* the sweep,
//! in that same meta update: the meta item enters the due index as a **sweep
//! entry** and gets a fresh `sweep` token (S). The obligation is thus durable
//! the moment the execution has ended, and the sweep itself runs later, from
//! [`Store::due`](crate::store::Store::due), which every dispatcher scan calls.
//!
//! **Sweep entries in the due index.** The `due` GSI is keys-only, so an entry
//! must say what it is by its keys: a sweep entry has `due_at = SWEEP_BASE +
//! t` (`t` the time it was marked, in ms; `SWEEP_BASE = -2^62`), below every
//! time a real wake-up can have (`WORK_FLOOR = -2^61`). In its shard's query
//! (`due_at <= now`) the sweep entries therefore come first, oldest first, then
//! the real work. `due` never returns a sweep entry: it starts up to
//! [`SWEEP_BATCH`] sweeps and, past that many, restarts the query at
//! `WORK_FLOOR` so a backlog costs one page per scan. A reader of the meta item
//! never sees a sweep entry as a due time (`decode_execution` hides it), and
//! `claim` never takes an ended execution, so listing, describing and
//! dispatching are unchanged. A dispatcher built before sweep entries existed
//! would see one as a due execution whose claim fails: wasted, harmless.
//!
//! **The sweep** ([`DynamoStore::sweep`]) runs in a background task, at most
//! [`MAX_RUNNING`] at a time per store and never twice at once for the same
//! execution in one process (an in-process set). It reads the partition (one
//! consistent query of `sk`, `expires_at` and, on the meta item, `due_at` and
//! `sweep`), writes the meta item's `expires_at` onto every other item that
//! does not carry it yet (conditional on the item existing), then removes the
//! entry and the token with an update conditional on both being unchanged. A
//! sweep that fails leaves the entry, so the next scan retries it; two
//! processes sweeping at once write the same values (idempotent).
//!
//! **Resume.** `resume` overwrites the entry with a real due time and removes
//! the token, so a pending sweep never starts. A sweep that raced the resume
//! (it wrote TTLs after the resume removed them) finds its final condition
//! false, sees a meta item without expiry and removes the expiry from the
//! partition again. Should it die in between, the next journal load of the
//! running execution finds items with an expiry under a meta item without one
//! and removes it ([`DynamoStore::repair_expiry`]): every invocation loads its
//! journal first.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::Client;
use tokio::sync::{Notify, OnceCell};

use super::DynamoStore;
use super::access::set_due;
use super::expr::{Expr, n, s};
use super::items::{self, Item, META_SK, shard_key, ts};
use super::records::sort_key;
use super::retry::call;
use super::table::{DUE_INDEX, TTL_ATTRIBUTE};
use crate::error::Result;
use crate::model::{ExecutionId, Timestamp};
use crate::store::DueItem;

/// `due_at` of a sweep entry marked at `t` (ms) is `SWEEP_BASE + t`.
const SWEEP_BASE: i64 = -(1 << 62);
/// Every `due_at` below this is a sweep entry; real due times are above.
const WORK_FLOOR: i64 = -(1 << 61);
/// The meta attribute holding the token of the pending sweep.
pub(super) const SWEEP_ATTR: &str = "sweep";
/// How many sweeps one `due` call starts at most (per shard).
pub(super) const SWEEP_BATCH: usize = 16;
/// How many sweeps run at once in one store.
pub(super) const MAX_RUNNING: usize = 8;

/// The `due_at` of a sweep entry marked at `now`.
fn sweep_due_at(now: Timestamp) -> i64 {
    SWEEP_BASE + now.0.clamp(WORK_FLOOR, -WORK_FLOOR - 1)
}

/// When the sweep entry with this `due_at` was marked; `None` for real due times.
fn sweep_time(due_at: i64) -> Option<Timestamp> {
    (due_at < WORK_FLOOR).then(|| Timestamp(due_at - SWEEP_BASE))
}

/// A meta item's due time as callers see it: a sweep entry is none.
pub(super) fn visible_due_at(due_at: Option<Timestamp>) -> Option<Timestamp> {
    due_at.filter(|t| sweep_time(t.0).is_none())
}

/// Marks the sweep in a meta update: a sweep entry in the due index and a
/// fresh token (so a sweep that started earlier cannot take the new entry away).
pub(super) fn mark_sweep(e: &mut Expr, id: &ExecutionId, now: Timestamp) {
    e.set("due_at", n(sweep_due_at(now)));
    e.set("due_shard", s(shard_key(id.due_shard())));
    e.set(SWEEP_ATTR, s(uuid::Uuid::now_v7().simple().to_string()));
}

/// The sweeps this process runs, by partition key.
#[derive(Debug, Default)]
pub(super) struct Sweeps {
    running: Mutex<HashSet<String>>,
    changed: Notify,
}

impl Sweeps {
    /// Takes `pk` unless it is already being swept or `MAX_RUNNING` sweeps run.
    fn try_start(&self, pk: &str) -> bool {
        let Ok(mut running) = self.running.lock() else {
            return false;
        };
        if running.len() >= MAX_RUNNING {
            return false;
        }
        running.insert(pk.to_string())
    }

    fn running(&self) -> usize {
        self.running.lock().map(|r| r.len()).unwrap_or(0)
    }
}

/// Releases a sweep's place when its task ends, however it ends.
struct Running {
    sweeps: Arc<Sweeps>,
    pk: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(mut running) = self.sweeps.running.lock() {
            running.remove(&self.pk);
        }
        self.sweeps.changed.notify_waiters();
    }
}

impl DynamoStore {
    /// [`Store::due`](crate::store::Store::due): the real entries of the shard,
    /// earliest first; the sweep entries met on the way are started in the
    /// background.
    pub(super) async fn due_entries(
        &self,
        shard: u32,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<DueItem>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let client = self.client().await?;
        let what = format!("Query {DUE_INDEX} shard {shard} on {}", self.table);
        let mut found = Vec::new();
        let mut sweeps = Vec::new();
        // Set once SWEEP_BATCH sweep entries are taken: the query then restarts
        // at the first real due time, skipping the rest of a backlog.
        let mut past_sweeps = false;
        let mut start = None;
        loop {
            let mut e = Expr::new();
            let (due_shard, due_at) = (e.name("due_shard"), e.name("due_at"));
            let shard_value = e.value(s(shard_key(shard)));
            let range = if past_sweeps {
                if now.0 < WORK_FLOOR {
                    break;
                }
                let floor = e.value(n(WORK_FLOOR));
                format!("{due_at} BETWEEN {floor} AND {}", e.value(ts(now)))
            } else {
                format!("{due_at} <= {}", e.value(ts(now)))
            };
            let wanted = limit - found.len()
                + if past_sweeps {
                    0
                } else {
                    SWEEP_BATCH.saturating_sub(sweeps.len())
                };
            let req = client
                .query()
                .table_name(&self.table)
                .index_name(DUE_INDEX)
                .key_condition_expression(format!("{due_shard} = {shard_value} AND {range}"))
                .set_expression_attribute_names(e.names())
                .set_expression_attribute_values(e.values())
                .scan_index_forward(true)
                .limit(i32::try_from(wanted).unwrap_or(i32::MAX).min(1000))
                .set_exclusive_start_key(start.take());
            let out = call(&self.retry, &what, || req.clone().send())
                .await
                .map_err(|err| err.into_store(&what))?;
            for item in out.items.unwrap_or_default() {
                if sort_key(&item) != Some(META_SK) {
                    continue;
                }
                let due_at: i64 = items::req_n(&item, "due_at")?;
                match sweep_time(due_at) {
                    Some(marked) if marked <= now && sweeps.len() < SWEEP_BATCH => {
                        sweeps.push(items::req_s(&item, "pk")?.to_string());
                    }
                    None if found.len() < limit => found.push(DueItem {
                        id: items::id_of_pk(items::req_s(&item, "pk")?)?,
                        due_at: Timestamp(due_at),
                    }),
                    // A sweep left for later, or more than the caller wants.
                    _ => {}
                }
            }
            if found.len() >= limit {
                break;
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => {
                    let in_sweeps =
                        items::get_n::<i64>(&k, "due_at")?.is_some_and(|d| sweep_time(d).is_some());
                    if !past_sweeps && in_sweeps && sweeps.len() >= SWEEP_BATCH {
                        past_sweeps = true;
                    } else {
                        start = Some(k);
                    }
                }
                _ => break,
            }
        }
        self.start_sweeps(client, sweeps);
        Ok(found)
    }

    /// Starts a background sweep of each partition not being swept already,
    /// as long as fewer than `MAX_RUNNING` run. Those left out stay due.
    fn start_sweeps(&self, client: &Client, pks: Vec<String>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        for pk in pks {
            if !self.sweeps.try_start(&pk) {
                continue;
            }
            let running = Running {
                sweeps: self.sweeps.clone(),
                pk: pk.clone(),
            };
            let store = self.detached(client.clone());
            runtime.spawn(async move {
                let _running = running;
                if let Err(e) = store.sweep(&pk).await {
                    tracing::warn!(
                        pk,
                        error = %e,
                        "expiry sweep failed; it stays due and the next scan retries it"
                    );
                }
            });
        }
    }

    /// A store on the same table and client for a background task.
    fn detached(&self, client: Client) -> DynamoStore {
        DynamoStore {
            table: self.table.clone(),
            url: None,
            client: OnceCell::new_with(Some(client)),
            ready: OnceCell::new_with(Some(())),
            retry: self.retry.clone(),
            sweeps: self.sweeps.clone(),
        }
    }

    /// How many expiry sweeps this store runs in the background right now.
    pub fn sweeps_running(&self) -> usize {
        self.sweeps.running()
    }

    /// Waits until no expiry sweep started by this store (by
    /// [`Store::due`](crate::store::Store::due)) is running. A process that is
    /// about to be frozen or stopped (a dispatcher Lambda ending its
    /// invocation) can call it so its sweeps finish first; a sweep that does
    /// not finish stays due anyway.
    pub async fn wait_for_sweeps(&self) {
        loop {
            let changed = self.sweeps.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.sweeps.running() == 0 {
                return;
            }
            changed.await;
        }
    }

    /// Carries out the pending sweep of partition `pk`, if it still has one:
    /// the meta item's `expires_at` onto every other item, then the sweep
    /// entry removed. An error leaves the entry for the next scan.
    pub(super) async fn sweep(&self, pk: &str) -> Result<()> {
        let id = items::id_of_pk(pk)?;
        let found = self
            .partition_attrs(pk, &[TTL_ATTRIBUTE, "due_at", SWEEP_ATTR])
            .await?;
        let Some(meta) = found.iter().find(|it| sort_key(it) == Some(META_SK)) else {
            return Ok(()); // deleted by TTL
        };
        let Some(marked) =
            items::get_n::<i64>(meta, "due_at")?.filter(|d| sweep_time(*d).is_some())
        else {
            return Ok(()); // swept already, or resumed
        };
        let token = items::get_s(meta, SWEEP_ATTR)?.map(str::to_string);
        if let Some(ttl) = items::get_n::<i64>(meta, TTL_ATTRIBUTE)? {
            let want = n(ttl);
            let targets = found
                .iter()
                .filter_map(|it| {
                    let sk = sort_key(it)?;
                    (sk != META_SK && it.get(TTL_ATTRIBUTE) != Some(&want))
                        .then(|| (sk.to_string(), None))
                })
                .collect();
            self.write_expiry(pk, targets, Some(ttl)).await?;
        }
        let mut e = Expr::new();
        set_due(&mut e, &id, None);
        e.remove(SWEEP_ATTR);
        let mut cond = format!("{} = {}", e.name("due_at"), e.value(n(marked)));
        let sweep = e.name(SWEEP_ATTR);
        match token {
            Some(t) => cond.push_str(&format!(" AND {sweep} = {}", e.value(s(t)))),
            None => cond.push_str(&format!(" AND attribute_not_exists({sweep})")),
        }
        if self
            .update_meta(&id, &e, cond, false, "sweep done")
            .await?
            .is_some()
        {
            return Ok(());
        }
        // The meta item changed since the query. Marked again (a stale
        // invocation ended): the new entry is swept at a later scan. Resumed:
        // the expiry written above must go again.
        let Some(current) = self.get_item(pk, META_SK).await? else {
            return Ok(());
        };
        if items::get_n::<i64>(&current, TTL_ATTRIBUTE)?.is_none() {
            self.clear_expiry(pk).await?;
        }
        Ok(())
    }

    /// Removes, best effort, an expiry left on the items of an execution whose
    /// meta item has none (a sweep that raced a resume and died before it could
    /// undo its writes). `all` is the whole partition, as the journal load read
    /// it; nothing is written unless such an item is found.
    pub(super) async fn repair_expiry(&self, pk: &str, all: &[Item]) {
        let stray: Vec<_> = all
            .iter()
            .filter_map(|it| {
                let sk = sort_key(it)?;
                let seen = it.get(TTL_ATTRIBUTE)?;
                (sk != META_SK).then(|| (sk.to_string(), Some(seen.clone())))
            })
            .collect();
        if stray.is_empty() {
            return;
        }
        tracing::warn!(
            pk,
            items = stray.len(),
            "an unfinished execution has items with an expiry; removing it"
        );
        if let Err(e) = self.write_expiry(pk, stray, None).await {
            tracing::warn!(pk, error = %e, "cannot remove a stray expiry; the next load retries");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweep_entries_sort_before_every_real_due_time_and_keep_theirs() {
        for t in [0, 1_700_000_000_000, i64::MAX / 4] {
            let d = sweep_due_at(Timestamp(t));
            assert!(d < WORK_FLOOR);
            assert_eq!(sweep_time(d), Some(Timestamp(t)));
        }
        assert!(sweep_due_at(Timestamp(5)) < sweep_due_at(Timestamp(6)));
        assert!(sweep_time(sweep_due_at(Timestamp(i64::MAX))).is_some());
        assert!(sweep_time(sweep_due_at(Timestamp(i64::MIN))).is_some());
        for real in [0, -5, 1_700_000_000_000, i64::MAX, i64::MAX / 4] {
            assert_eq!(sweep_time(real), None);
            assert_eq!(visible_due_at(Some(Timestamp(real))), Some(Timestamp(real)));
        }
        assert_eq!(
            visible_due_at(Some(Timestamp(sweep_due_at(Timestamp(9))))),
            None
        );
    }
}
