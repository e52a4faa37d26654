//! Pausing and unpausing an execution (see
//! [`Store::set_paused`](crate::store::Store::set_paused)) on DynamoDB.
//!
//! A paused meta item carries `paused` N (when it was paused) and no
//! `due_shard`, so it is out of the sparse `due` GSI while it keeps its
//! `due_at` (shown, not dispatched). Every write that would put it back
//! there is conditional on `attribute_not_exists(paused)`: the claim
//! (refused), a wake (only `wakeups` is bumped), a suspension (this file's
//! [`DynamoStore::suspend_paused`] suspends it outside the index). Ending
//! or cancelling removes `paused`. Unpausing is one conditional update per
//! status group: `PENDING`/`SUSPENDED` become due now, `RUNNING` is due
//! again at its lease's end.

use super::DynamoStore;
use super::access::{claimant_condition, set_due};
use super::expr::{Expr, n, s};
use super::items::{shard_key, ts};
use crate::error::Result;
use crate::model::{Execution, ExecutionId, ExecutionStatus, Timestamp};

/// The meta item's pause marker.
pub(super) const PAUSED_ATTR: &str = "paused";

/// `attribute_not_exists(#paused)`.
pub(super) fn not_paused(e: &mut Expr) -> String {
    format!("attribute_not_exists({})", e.name(PAUSED_ATTR))
}

/// `#status IN (...)` over `statuses`.
fn status_in(e: &mut Expr, statuses: &[ExecutionStatus]) -> String {
    let values = statuses
        .iter()
        .map(|st| e.value(s(st.as_str())))
        .collect::<Vec<_>>()
        .join(", ");
    format!("{} IN ({values})", e.name("status"))
}

impl DynamoStore {
    /// [`Store::set_paused`](crate::store::Store::set_paused).
    pub(super) async fn set_paused_meta(
        &self,
        id: &ExecutionId,
        paused: bool,
        now: Timestamp,
    ) -> Result<Option<Execution>> {
        if paused {
            let mut e = Expr::new();
            e.set(PAUSED_ATTR, n(now.0));
            e.set("updated_at", ts(now));
            e.remove("due_shard");
            let unfinished = status_in(
                &mut e,
                &[
                    ExecutionStatus::Pending,
                    ExecutionStatus::Running,
                    ExecutionStatus::Suspended,
                ],
            );
            let cond = format!("{unfinished} AND {}", not_paused(&mut e));
            self.update_meta(id, &e, cond, false, "pause").await?;
            return self.read_execution(id).await;
        }
        // Waiting ones: due now, so they catch up on what came meanwhile.
        let mut e = Expr::new();
        e.remove(PAUSED_ATTR);
        e.set("updated_at", ts(now));
        set_due(&mut e, id, Some(now));
        let waiting = status_in(
            &mut e,
            &[ExecutionStatus::Pending, ExecutionStatus::Suspended],
        );
        let cond = format!("{waiting} AND attribute_exists({})", e.name(PAUSED_ATTR));
        if self
            .update_meta(id, &e, cond, false, "unpause")
            .await?
            .is_none()
        {
            // A running one: back in the index at its lease's end.
            let mut e = Expr::new();
            e.remove(PAUSED_ATTR);
            e.set("updated_at", ts(now));
            e.set("due_shard", s(shard_key(id.due_shard())));
            let running = status_in(&mut e, &[ExecutionStatus::Running]);
            let cond = format!(
                "{running} AND attribute_exists({}) AND attribute_exists({})",
                e.name(PAUSED_ATTR),
                e.name("due_at")
            );
            self.update_meta(id, &e, cond, false, "unpause").await?;
        }
        self.read_execution(id).await
    }

    /// Suspends a paused execution for its claimant (`epoch`): `SUSPENDED`,
    /// `due_at` = `wake_at` (or now, if none: it has work left), kept out of
    /// the due index. False when the condition does not hold.
    pub(super) async fn suspend_paused(
        &self,
        id: &ExecutionId,
        epoch: u64,
        wake_at: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<bool> {
        let mut e = Expr::new();
        e.set("status", s(ExecutionStatus::Suspended.as_str()));
        e.set("updated_at", ts(now));
        e.set("due_at", ts(wake_at.unwrap_or(now)));
        e.remove("due_shard");
        let cond = format!(
            "{} AND attribute_exists({})",
            claimant_condition(&mut e, epoch),
            e.name(PAUSED_ATTR)
        );
        Ok(self
            .update_meta(id, &e, cond, false, "suspend paused")
            .await?
            .is_some())
    }
}
