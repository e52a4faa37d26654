//! Reads and conditional meta updates the store operations share.

use super::DynamoStore;
use super::expr::{Expr, n, s};
use super::items::{self, Chunks, Item, META_SK, collect_chunk, pk, shard_key, ts};
use super::records::{META_PAYLOADS, OP_PAYLOADS, decode_execution, decode_operation, key};
use super::retry::{Failure, call};
use super::sweep::mark_sweep;
use super::table::TTL_ATTRIBUTE;
use crate::error::{Result, StoreError};
use crate::model::{Execution, ExecutionId, ExecutionStatus, Operation, Timestamp};
use crate::store::Transition;

/// How often `create` and `wake` re-run when the item changes under them.
pub(super) const MAX_RACES: usize = 8;

/// What [`DynamoStore::wake_meta`] found.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Woken {
    /// `wakeups` was bumped (and a suspended execution made due).
    Yes,
    /// No such execution.
    Missing,
    /// The execution has ended (only when waking unfinished ones): nothing
    /// changed. `ttl` is its `expires_at` (TTL seconds), if it has one.
    Ended {
        status: ExecutionStatus,
        ttl: Option<i64>,
    },
}

impl DynamoStore {
    /// One item, read with strong consistency.
    pub(super) async fn get_item(&self, pk: &str, sk: &str) -> Result<Option<Item>> {
        let client = self.client().await?;
        let what = format!("GetItem {pk}/{sk} on {}", self.table);
        let req = client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .consistent_read(true);
        let out = call(&self.retry, &what, || req.clone().send())
            .await
            .map_err(|e| e.into_store(&what))?;
        Ok(out.item)
    }

    /// Every item of partition `pk` whose sort key starts with `prefix` (all of
    /// them for `None`), strongly consistent, following pagination.
    pub(super) async fn query(&self, pk: &str, prefix: Option<&str>) -> Result<Vec<Item>> {
        let client = self.client().await?;
        let what = format!("Query {pk} on {}", self.table);
        let mut e = Expr::new();
        let mut cond = format!("{} = {}", e.name("pk"), e.value(s(pk)));
        if let Some(p) = prefix {
            cond = format!(
                "{cond} AND begins_with({}, {})",
                e.name("sk"),
                e.value(s(p))
            );
        }
        let base = client
            .query()
            .table_name(&self.table)
            .key_condition_expression(cond)
            .set_expression_attribute_names(e.names())
            .set_expression_attribute_values(e.values())
            .consistent_read(true);
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let req = base.clone().set_exclusive_start_key(start.take());
            let out = call(&self.retry, &what, || req.clone().send())
                .await
                .map_err(|e| e.into_store(&what))?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(items),
            }
        }
    }

    /// The chunk items `item` references for `attrs`.
    pub(super) async fn chunks_for(&self, pk: &str, item: &Item, attrs: &[&str]) -> Result<Chunks> {
        let mut chunks = Chunks::new();
        for r in items::chunk_refs(item, attrs)? {
            for chunk in self.query(pk, Some(&r.prefix())).await? {
                collect_chunk(&chunk, &mut chunks);
            }
        }
        Ok(chunks)
    }

    /// The meta record of `id`, with its chunked payloads, strongly consistent.
    pub(super) async fn read_execution(&self, id: &ExecutionId) -> Result<Option<Execution>> {
        let pk = pk(id);
        let Some(item) = self.get_item(&pk, META_SK).await? else {
            return Ok(None);
        };
        let chunks = self.chunks_for(&pk, &item, &META_PAYLOADS).await?;
        decode_execution(&item, &chunks).map(Some)
    }

    /// An operation record, with its chunked payloads, strongly consistent.
    pub(super) async fn read_operation(
        &self,
        id: &ExecutionId,
        op_id: &str,
    ) -> Result<Option<Operation>> {
        let pk = pk(id);
        let Some(item) = self.get_item(&pk, &items::op_sk(op_id)).await? else {
            return Ok(None);
        };
        let chunks = self.chunks_for(&pk, &item, &OP_PAYLOADS).await?;
        decode_operation(&item, &chunks).map(Some)
    }

    /// One conditional `UpdateItem` on the meta item of `id`. `Ok(Some(item))`
    /// (the new image, if `return_new`) when applied, `Ok(None)` when the
    /// condition was false.
    pub(super) async fn update_meta(
        &self,
        id: &ExecutionId,
        e: &Expr,
        condition: String,
        return_new: bool,
        what: &str,
    ) -> Result<Option<items::Item>> {
        let client = self.client().await?;
        let what = format!("UpdateItem {what} {id} on {}", self.table);
        let mut req = client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(&pk(id), META_SK)))
            .update_expression(e.update_expression())
            .condition_expression(condition)
            .set_expression_attribute_names(e.names())
            .set_expression_attribute_values(e.values());
        if return_new {
            req = req.return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew);
        }
        match call(&self.retry, &what, || req.clone().send()).await {
            Ok(out) => Ok(Some(out.attributes.unwrap_or_default())),
            Err(Failure::Condition) => Ok(None),
            Err(err) => Err(err.into_store(&what)),
        }
    }

    /// The claimant's view after a failed epoch condition: `Done` if it already
    /// applied the same transition, `Stale` otherwise.
    ///
    /// A stale claimant of an execution that has ended meanwhile (cancelled
    /// while it ran) may have written operations after the expiry sweep of
    /// that end: the sweep is marked again here (one conditional update), so
    /// they expire with the rest.
    pub(super) async fn settle(
        &self,
        id: &ExecutionId,
        epoch: u64,
        target: ExecutionStatus,
        now: Timestamp,
    ) -> Result<Transition> {
        // Only epoch and status matter here: no need to fetch payload chunks.
        let pk = pk(id);
        let current = self
            .get_item(&pk, META_SK)
            .await?
            .ok_or_else(|| StoreError::NotFound(id.to_string()))?;
        let (current_epoch, status): (u64, ExecutionStatus) = (
            items::req_n(&current, "epoch")?,
            items::parse_enum(&current, "status")?,
        );
        if current_epoch == epoch && status == target {
            return Ok(Transition::Done);
        }
        if let Some(ttl) = items::get_n::<i64>(&current, TTL_ATTRIBUTE)? {
            // Only while it still has that expiry (a resume removes it).
            let mut e = Expr::new();
            mark_sweep(&mut e, id, now);
            let cond = format!("{} = {}", e.name(TTL_ATTRIBUTE), e.value(n(ttl)));
            self.update_meta(id, &e, cond, false, "mark sweep").await?;
        }
        Ok(Transition::Stale)
    }
}

impl DynamoStore {
    /// Bumps `wakeups`; a `SUSPENDED` execution not due before `now` becomes
    /// due now. With `unfinished_only`, an ended execution is left alone.
    pub(super) async fn wake_meta(
        &self,
        id: &ExecutionId,
        now: Timestamp,
        unfinished_only: bool,
    ) -> Result<Woken> {
        for _ in 0..MAX_RACES {
            // SUSPENDED and not due before now: bump and make it due now.
            let mut e = Expr::new();
            e.add("wakeups", 1);
            e.set("updated_at", ts(now));
            set_due(&mut e, id, Some(now));
            let waiting = waiting_condition(&mut e, now);
            if self
                .update_meta(id, &e, waiting, false, "wake")
                .await?
                .is_some()
            {
                return Ok(Woken::Yes);
            }
            // Anything else that exists (and has not ended): only bump the counter.
            let mut e = Expr::new();
            e.add("wakeups", 1);
            e.set("updated_at", ts(now));
            let mut other = format!(
                "attribute_exists({}) AND NOT {}",
                e.name("pk"),
                waiting_condition(&mut e, now)
            );
            if unfinished_only {
                let finals = ExecutionStatus::ALL
                    .into_iter()
                    .filter(|st| st.is_final())
                    .map(|st| e.value(s(st.as_str())))
                    .collect::<Vec<_>>()
                    .join(", ");
                other.push_str(&format!(" AND NOT ({} IN ({finals}))", e.name("status")));
            }
            if self
                .update_meta(id, &e, other, false, "wake")
                .await?
                .is_some()
            {
                return Ok(Woken::Yes);
            }
            let Some(current) = self.get_item(&pk(id), META_SK).await? else {
                return Ok(Woken::Missing);
            };
            let status: ExecutionStatus = items::parse_enum(&current, "status")?;
            if unfinished_only && status.is_final() {
                let ttl = items::get_n::<i64>(&current, TTL_ATTRIBUTE)?;
                return Ok(Woken::Ended { status, ttl });
            }
            // The status changed between the two attempts: go again.
        }
        Err(StoreError::Transient(format!(
            "waking {id} kept racing with other updates"
        )))
    }
}

/// `(#status = SUSPENDED AND (attribute_not_exists(#due_at) OR #due_at > :now)
/// AND attribute_not_exists(#paused))`: a paused execution is only counted
/// as woken (its unpause makes it due).
fn waiting_condition(e: &mut Expr, now: Timestamp) -> String {
    format!(
        "({status} = {susp} AND (attribute_not_exists({due}) OR {due} > {now}) AND {not_paused})",
        status = e.name("status"),
        susp = e.value(s(ExecutionStatus::Suspended.as_str())),
        due = e.name("due_at"),
        now = e.value(ts(now)),
        not_paused = super::pause::not_paused(e),
    )
}

/// Sets `due_shard` + `due_at` together (or removes both).
pub(super) fn set_due(e: &mut Expr, id: &ExecutionId, due_at: Option<Timestamp>) {
    match due_at {
        Some(t) => {
            e.set("due_at", ts(t));
            e.set("due_shard", s(shard_key(id.due_shard())));
        }
        None => {
            e.remove("due_at");
            e.remove("due_shard");
        }
    }
}

/// `#epoch = :e AND #status = RUNNING`.
pub(super) fn claimant_condition(e: &mut Expr, epoch: u64) -> String {
    format!(
        "{} = {} AND {} = {}",
        e.name("epoch"),
        e.value(n(epoch)),
        e.name("status"),
        e.value(s(ExecutionStatus::Running.as_str()))
    )
}
