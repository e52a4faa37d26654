//! The [`Store`] operations on DynamoDB: each one conditional single-item write
//! (plus the chunk items written before it) or one query.

use async_trait::async_trait;
use serde_json::Value;

use super::DynamoStore;
use super::access::{MAX_RACES, Woken, claimant_condition, set_due};
use super::expr::{Expr, n, s};
use super::items::{
    Chunks, EVENT_PREFIX, META_INPUT_BUDGET, META_OUTCOME_BUDGET, META_SK, OP_INLINE_BUDGET,
    OP_PREFIX, collect_chunk, pk, place, to_json, ts,
};
use super::pause::{PAUSED_ATTR, not_paused};
use super::records::{
    META_PAYLOADS, decode_event, decode_execution, decode_operation, new_execution, new_meta_item,
    op_item, sort_key, ttl_seconds,
};
use super::retry::{Failure, call};
use super::sweep::{SWEEP_ATTR, mark_sweep};
use super::table::TTL_ATTRIBUTE;
use crate::error::{Result, StoreError};
use crate::model::{
    DEFAULT_RETENTION, Execution, ExecutionId, ExecutionStatus, HistoryEntry, Journal,
    NewExecution, Operation, Timestamp,
};
use crate::store::{
    Created, DueItem, ExecutionPage, ListFilter, OpWrite, Outcome, Schedule, ScheduleWrite,
    SentEvent, Store, Transition, validate_new, validate_op, validate_outcome,
};

#[async_trait]
impl Store for DynamoStore {
    fn backend(&self) -> &'static str {
        "dynamodb"
    }

    /// No transactions (Alternator has none): a start creates, then claims.
    fn atomic_create_and_claim(&self) -> bool {
        false
    }

    fn payload_limit(&self) -> usize {
        crate::model::MAX_PAYLOAD_BYTES
    }

    async fn create_and_claim(
        &self,
        new: &NewExecution,
        lease_until: Timestamp,
    ) -> Result<(Created, Option<Execution>)> {
        let created = self.create_execution(new).await?;
        let claimed = self.claim(&new.id, new.now, lease_until).await?;
        Ok((created, claimed))
    }

    async fn create_execution(&self, new: &NewExecution) -> Result<Created> {
        validate_new(new)?;
        let pk = pk(&new.id);
        let placed = place(vec![to_json("input", &new.input)?], META_INPUT_BUDGET);
        self.write_chunks(&pk, &placed).await?;
        // Kept only if this put creates the item; an existing one keeps its own.
        let seed = crate::model::new_seed();
        let item = placed
            .first()
            .map(|input| new_meta_item(new, input, &seed))
            .ok_or_else(|| StoreError::Backend("input was not placed".into()))?;
        let client = self.client().await?;
        let what = format!("PutItem meta {} on {}", new.id, self.table);
        let req = client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)");
        for _ in 0..MAX_RACES {
            match call(&self.retry, &what, || req.clone().send()).await {
                Ok(_) => return Ok(Created::New(new_execution(new, &seed))),
                Err(Failure::Condition) => {}
                Err(e) => return Err(e.into_store(&what)),
            }
            // It exists (or existed a moment ago: deleted by TTL, we try again).
            let Some(existing) = self.read_execution(&new.id).await? else {
                continue;
            };
            let what = if existing.function != new.function {
                "function"
            } else if existing.input != new.input {
                "input"
            } else {
                return Ok(Created::Existing(existing));
            };
            return Err(StoreError::Conflict {
                id: new.id.to_string(),
                what,
            });
        }
        Err(StoreError::Transient(format!(
            "creating {} kept racing with deletes",
            new.id
        )))
    }

    async fn get_execution(&self, id: &ExecutionId) -> Result<Option<Execution>> {
        self.read_execution(id).await
    }

    async fn load_journal(&self, id: &ExecutionId) -> Result<Option<Journal>> {
        let pk = pk(id);
        let all = self.query(&pk, None).await?;
        let mut chunks = Chunks::new();
        let mut meta = None;
        let mut ops = Vec::new();
        let mut evs = Vec::new();
        for item in &all {
            if collect_chunk(item, &mut chunks) {
                continue;
            }
            match sort_key(item) {
                Some(META_SK) => meta = Some(item),
                Some(sk) if sk.starts_with(OP_PREFIX) => ops.push(item),
                Some(sk) if sk.starts_with(EVENT_PREFIX) => evs.push(item),
                _ => {}
            }
        }
        let Some(meta) = meta else {
            return Ok(None);
        };
        if !meta.contains_key(TTL_ATTRIBUTE) {
            self.repair_expiry(&pk, &all).await;
        }
        let execution = decode_execution(meta, &chunks)?;
        let mut operations = ops
            .into_iter()
            .map(|item| decode_operation(item, &chunks))
            .collect::<Result<Vec<_>>>()?;
        crate::model::sort_operations(&mut operations);
        let mut events = evs
            .into_iter()
            .map(|item| decode_event(item, &chunks))
            .collect::<Result<Vec<_>>>()?;
        // The query returns them in key order already; sorting keeps that explicit.
        events.sort_by(|a, b| a.seq.cmp(&b.seq));
        Ok(Some(Journal {
            execution,
            operations,
            events,
        }))
    }

    async fn claim(
        &self,
        id: &ExecutionId,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Option<Execution>> {
        let mut e = Expr::new();
        e.set("status", s(ExecutionStatus::Running.as_str()));
        e.add("epoch", 1);
        e.set("updated_at", ts(now));
        set_due(&mut e, id, Some(lease_until));
        let claimable = [
            ExecutionStatus::Pending,
            ExecutionStatus::Suspended,
            ExecutionStatus::Running,
        ]
        .map(|st| e.value(s(st.as_str())))
        .join(", ");
        let cond = format!(
            "{status} IN ({claimable}) AND {due} <= {now} AND {not_paused}",
            status = e.name("status"),
            due = e.name("due_at"),
            now = e.value(ts(now)),
            not_paused = not_paused(&mut e),
        );
        let Some(item) = self.update_meta(id, &e, cond, true, "claim").await? else {
            return Ok(None);
        };
        let chunks = self.chunks_for(&pk(id), &item, &META_PAYLOADS).await?;
        decode_execution(&item, &chunks).map(Some)
    }

    async fn put_operation(&self, id: &ExecutionId, op: &Operation) -> Result<OpWrite> {
        validate_op(op)?;
        let pk = pk(id);
        let mut fields = Vec::new();
        if let Some(r) = &op.result {
            fields.push(to_json("result", r)?);
        }
        if let Some(err) = &op.error {
            fields.push(to_json("error", err)?);
        }
        let placed = place(fields, OP_INLINE_BUDGET);
        self.write_chunks(&pk, &placed).await?;
        let mut e = Expr::new();
        let cond = if op.rev == 1 {
            format!("attribute_not_exists({})", e.name("pk"))
        } else {
            format!("{} = {}", e.name("rev"), e.value(n(op.rev - 1)))
        };
        let client = self.client().await?;
        let what = format!("PutItem op {} of {id} on {}", op.id, self.table);
        let req = client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(op_item(&pk, op, &placed)))
            .condition_expression(cond)
            .set_expression_attribute_names(e.names())
            .set_expression_attribute_values(e.values());
        match call(&self.retry, &what, || req.clone().send()).await {
            Ok(_) => Ok(OpWrite::Written),
            // First writer wins: never retried, the current record is the answer.
            Err(Failure::Condition) => match self.read_operation(id, &op.id).await? {
                Some(current) => Ok(OpWrite::Conflict(current)),
                None => Err(StoreError::Invalid(format!(
                    "operation {} of {id} has no revision {} to replace",
                    op.id,
                    op.rev - 1
                ))),
            },
            Err(err) => Err(err.into_store(&what)),
        }
    }

    async fn put_history(&self, id: &ExecutionId, entry: &HistoryEntry, keep: u32) -> Result<()> {
        self.put_history_item(id, entry, keep).await
    }

    async fn load_history(&self, id: &ExecutionId) -> Result<Vec<HistoryEntry>> {
        self.load_history_items(id).await
    }

    async fn suspend(
        &self,
        id: &ExecutionId,
        epoch: u64,
        seen_wakeups: u64,
        wake_at: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<Transition> {
        // No signal since the claim: due at `wake_at`; otherwise due now. Two
        // conditional attempts stand in for SQL's CASE.
        for (missed, due_at) in [(false, wake_at), (true, Some(now))] {
            let mut e = Expr::new();
            e.set("status", s(ExecutionStatus::Suspended.as_str()));
            e.set("updated_at", ts(now));
            set_due(&mut e, id, due_at);
            let op = if missed { "<>" } else { "=" };
            let cond = format!(
                "{} AND {} {op} {} AND {}",
                claimant_condition(&mut e, epoch),
                e.name("wakeups"),
                e.value(n(seen_wakeups)),
                not_paused(&mut e),
            );
            if self
                .update_meta(id, &e, cond, false, "suspend")
                .await?
                .is_some()
            {
                return Ok(Transition::Done);
            }
        }
        // Paused meanwhile: suspended outside the due index (`pause.rs`).
        if self.suspend_paused(id, epoch, wake_at, now).await? {
            return Ok(Transition::Done);
        }
        self.settle(id, epoch, ExecutionStatus::Suspended, now)
            .await
    }

    async fn finish(
        &self,
        id: &ExecutionId,
        epoch: u64,
        outcome: &Outcome,
        now: Timestamp,
    ) -> Result<Transition> {
        validate_outcome(outcome)?;
        let pk = pk(id);
        let mut fields = Vec::new();
        if let Some(out) = &outcome.output {
            fields.push(to_json("output", out)?);
        }
        if let Some(err) = &outcome.error {
            fields.push(to_json("error", err)?);
        }
        let placed = place(fields, META_OUTCOME_BUDGET);
        self.write_chunks(&pk, &placed).await?;

        let mut e = Expr::new();
        e.set("status", s(outcome.status.as_str()));
        e.set("updated_at", ts(now));
        let ended = (outcome.status != ExecutionStatus::Blocked).then(|| ts(now));
        e.set_or_remove("ended_at", ended);
        // An execution that will expire marks its expiry sweep in this same
        // update (`sweep.rs`): the sweep runs later, off the invocation's path.
        match outcome.expires_at {
            Some(_) => mark_sweep(&mut e, id, now),
            None => {
                set_due(&mut e, id, None);
                e.remove(SWEEP_ATTR);
            }
        }
        e.set_or_remove("expires_at_ms", outcome.expires_at.map(ts));
        e.set_or_remove(TTL_ATTRIBUTE, outcome.expires_at.map(|t| n(ttl_seconds(t))));
        for field in ["output", "error"] {
            match placed.iter().find(|p| p.field() == field) {
                Some(p) => {
                    let (attr, value) = p.attribute();
                    e.set(&attr, value);
                    e.remove(&p.other_attribute());
                }
                None => {
                    e.remove(field);
                    e.remove(&format!("{field}_chunks"));
                }
            }
        }
        e.remove(PAUSED_ATTR);
        let cond = claimant_condition(&mut e, epoch);
        if self
            .update_meta(id, &e, cond, false, "finish")
            .await?
            .is_some()
        {
            return Ok(Transition::Done);
        }
        self.settle(id, epoch, outcome.status, now).await
    }

    async fn wake(&self, id: &ExecutionId, now: Timestamp) -> Result<bool> {
        Ok(self.wake_meta(id, now, false).await? != Woken::Missing)
    }

    async fn due(&self, shard: u32, now: Timestamp, limit: usize) -> Result<Vec<DueItem>> {
        // Also starts the expiry sweeps that are due (`sweep.rs`); they are
        // never returned.
        self.due_entries(shard, now, limit).await
    }

    async fn purge_expired(&self, _now: Timestamp) -> Result<u64> {
        // The table's TTL on `expires_at` deletes finished executions.
        Ok(0)
    }

    async fn list_executions(&self, filter: &ListFilter) -> Result<ExecutionPage> {
        self.list_page(filter).await
    }

    async fn cancel(&self, id: &ExecutionId, now: Timestamp) -> Result<Option<Execution>> {
        let expires = now.plus(DEFAULT_RETENTION);
        let mut e = Expr::new();
        e.set("status", s(ExecutionStatus::Cancelled.as_str()));
        e.set("updated_at", ts(now));
        e.set("ended_at", ts(now));
        mark_sweep(&mut e, id, now);
        e.set("expires_at_ms", ts(expires));
        e.set(TTL_ATTRIBUTE, n(ttl_seconds(expires)));
        e.remove(PAUSED_ATTR);
        let unfinished = [
            ExecutionStatus::Pending,
            ExecutionStatus::Running,
            ExecutionStatus::Suspended,
            ExecutionStatus::Blocked,
        ]
        .map(|st| e.value(s(st.as_str())))
        .join(", ");
        // False for a missing item too: no phantom meta item is created.
        let cond = format!("{} IN ({unfinished})", e.name("status"));
        let pk = pk(id);
        let Some(item) = self.update_meta(id, &e, cond, true, "cancel").await? else {
            // Already finished, or no such execution: as it is now.
            return self.read_execution(id).await;
        };
        let chunks = self.chunks_for(&pk, &item, &META_PAYLOADS).await?;
        decode_execution(&item, &chunks).map(Some)
    }

    async fn set_paused(
        &self,
        id: &ExecutionId,
        paused: bool,
        now: Timestamp,
    ) -> Result<Option<Execution>> {
        self.set_paused_meta(id, paused, now).await
    }

    async fn set_start_options(
        &self,
        id: &ExecutionId,
        options: &crate::model::StartOptions,
        now: Timestamp,
    ) -> Result<Option<Execution>> {
        self.set_start_options_meta(id, options, now).await
    }

    async fn send_event(
        &self,
        id: &ExecutionId,
        name: &str,
        payload: &Value,
        now: Timestamp,
    ) -> Result<SentEvent> {
        self.deliver_event(id, name, payload, now).await
    }

    async fn resume(&self, id: &ExecutionId, now: Timestamp) -> Result<Option<Execution>> {
        self.resume_execution(id, now).await
    }
    async fn create_schedule(&self, schedule: &Schedule) -> Result<ScheduleWrite> {
        self.put_new_schedule(schedule).await
    }

    async fn update_schedule(&self, schedule: &Schedule) -> Result<ScheduleWrite> {
        self.replace_schedule(schedule).await
    }

    async fn get_schedule(&self, name: &str) -> Result<Option<Schedule>> {
        self.read_schedule(name).await
    }

    async fn list_schedules(&self) -> Result<Vec<Schedule>> {
        self.query_schedules(None, usize::MAX).await
    }

    async fn due_schedules(&self, now: Timestamp, limit: usize) -> Result<Vec<Schedule>> {
        self.query_schedules(Some(now), limit).await
    }

    async fn send_message(&self, message: &crate::store::QueueMessage) -> Result<bool> {
        self.put_message(message).await
    }

    async fn receive_messages(
        &self,
        queue: &str,
        now: Timestamp,
        hidden_until: Timestamp,
        max: usize,
    ) -> Result<Vec<crate::store::QueueMessage>> {
        self.claim_messages(queue, now, hidden_until, max).await
    }

    async fn delete_message(&self, queue: &str, id: &str, receipt: &str) -> Result<bool> {
        self.remove_message(queue, id, receipt).await
    }

    async fn change_message_visibility(
        &self,
        queue: &str,
        id: &str,
        receipt: &str,
        visible_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool> {
        self.move_visibility(queue, id, receipt, visible_at, now)
            .await
    }

    async fn queue_stats(&self, queue: &str, now: Timestamp) -> Result<crate::store::QueueStats> {
        self.count_messages(queue, now).await
    }

    async fn purge_queue(&self, queue: &str) -> Result<u64> {
        self.delete_messages(queue).await
    }

    async fn take_lease(
        &self,
        request: &crate::store::LeaseRequest,
        now: Timestamp,
    ) -> Result<crate::store::LeaseTake> {
        self.put_lease(request, now).await
    }

    async fn release_lease(&self, group: &str, name: &str, owner: &str) -> Result<bool> {
        self.delete_lease(group, name, owner).await
    }

    async fn list_leases(&self, group: &str) -> Result<Vec<crate::store::Lease>> {
        self.query_leases(group).await
    }

    async fn put_attribute(
        &self,
        id: &ExecutionId,
        attr: &crate::store::SearchAttribute,
    ) -> Result<()> {
        self.put_attribute_items(id, attr).await
    }

    async fn find_by_attribute(
        &self,
        query: &crate::store::AttributeQuery,
    ) -> Result<crate::store::AttributePage> {
        self.find_attribute_items(query).await
    }
}
