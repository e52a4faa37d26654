//! Schedule records on DynamoDB.
//!
//! One item per schedule: `pk = sched#<name>`, `sk = sched`, with `name` S,
//! `rev` N, `body` S (the whole [`Schedule`] as JSON) and, always, the due
//! index keys `due_shard = "sched"` and `due_at` N (its next due time, or
//! [`NEVER`] while paused, disabled or finished). Schedules thus sit in the
//! same `due` GSI as executions, in a partition of their own that the
//! executions' shards (`s00`–`s15`) never read: "what is due" is one query
//! (`due_at <= now`), and listing every schedule is the same query without
//! the bound — no scan, no extra index. The GSI is keys-only, so each hit is
//! then read with a strongly consistent `GetItem`.
//!
//! Writes are single-item conditional puts: create on
//! `attribute_not_exists(pk)`, update on `rev = <previous>` (first writer wins).

use std::collections::HashMap;

use super::DynamoStore;
use super::expr::{Expr, n, s};
use super::items::{Item, corrupt, req_s};
use super::retry::{Failure, call};
use super::table::DUE_INDEX;
use crate::error::{Result, StoreError};
use crate::model::Timestamp;
use crate::store::{Schedule, ScheduleWrite, validate_schedule};

/// The sort key of a schedule item.
const SCHEDULE_SK: &str = "sched";
/// The `due_shard` every schedule item carries.
const SCHEDULE_SHARD: &str = "sched";
/// `due_at` of a schedule that is not due at any time.
const NEVER: i64 = i64::MAX;

fn schedule_pk(name: &str) -> String {
    format!("sched#{name}")
}

fn schedule_item(schedule: &Schedule) -> Result<Item> {
    let body = serde_json::to_string(schedule)
        .map_err(|e| StoreError::Backend(format!("cannot encode schedule: {e}")))?;
    let due = schedule.due_at.map_or(NEVER, |t| t.0);
    Ok(Item::from([
        ("pk".to_string(), s(schedule_pk(&schedule.name))),
        ("sk".to_string(), s(SCHEDULE_SK)),
        ("name".to_string(), s(schedule.name.clone())),
        ("rev".to_string(), n(schedule.rev)),
        ("body".to_string(), s(body)),
        ("due_shard".to_string(), s(SCHEDULE_SHARD)),
        ("due_at".to_string(), n(due)),
    ]))
}

fn decode_schedule(item: &Item) -> Result<Schedule> {
    serde_json::from_str(req_s(item, "body")?)
        .map_err(|e| corrupt(format!("schedule body is not valid: {e}")))
}

impl DynamoStore {
    /// [`Store::create_schedule`](crate::store::Store::create_schedule).
    pub(super) async fn put_new_schedule(&self, schedule: &Schedule) -> Result<ScheduleWrite> {
        validate_schedule(schedule)?;
        if schedule.rev != 1 {
            return Err(StoreError::Invalid(format!(
                "a new schedule has revision 1, not {}",
                schedule.rev
            )));
        }
        self.put_schedule(schedule, "attribute_not_exists(#pk)".into(), None)
            .await
    }

    /// [`Store::update_schedule`](crate::store::Store::update_schedule).
    pub(super) async fn replace_schedule(&self, schedule: &Schedule) -> Result<ScheduleWrite> {
        validate_schedule(schedule)?;
        let prev = schedule.rev.saturating_sub(1);
        self.put_schedule(schedule, "#rev = :prev".into(), Some(prev))
            .await
    }

    async fn put_schedule(
        &self,
        schedule: &Schedule,
        cond: String,
        prev: Option<u64>,
    ) -> Result<ScheduleWrite> {
        let client = self.client().await?;
        let (names, values) = match prev {
            None => (HashMap::from([("#pk".to_string(), "pk".to_string())]), None),
            Some(p) => (
                HashMap::from([("#rev".to_string(), "rev".to_string())]),
                Some(HashMap::from([(":prev".to_string(), n(p))])),
            ),
        };
        let what = format!("PutItem schedule {} on {}", schedule.name, self.table);
        let req = client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(schedule_item(schedule)?))
            .condition_expression(cond)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(values);
        match call(&self.retry, &what, || req.clone().send()).await {
            Ok(_) => Ok(ScheduleWrite::Written),
            Err(Failure::Condition) => Ok(match self.read_schedule(&schedule.name).await? {
                Some(current) => ScheduleWrite::Conflict(current),
                None => ScheduleWrite::Missing,
            }),
            Err(err) => Err(err.into_store(&what)),
        }
    }

    /// [`Store::get_schedule`](crate::store::Store::get_schedule).
    pub(super) async fn read_schedule(&self, name: &str) -> Result<Option<Schedule>> {
        self.get_item(&schedule_pk(name), SCHEDULE_SK)
            .await?
            .map(|item| decode_schedule(&item))
            .transpose()
    }

    /// The schedules of the due index up to `until` (all of them for
    /// `None`), earliest due first, at most `limit`.
    pub(super) async fn query_schedules(
        &self,
        until: Option<Timestamp>,
        limit: usize,
    ) -> Result<Vec<Schedule>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let client = self.client().await?;
        let what = format!("Query {DUE_INDEX} schedules on {}", self.table);
        let mut e = Expr::new();
        let mut cond = format!("{} = {}", e.name("due_shard"), e.value(s(SCHEDULE_SHARD)));
        if let Some(t) = until {
            cond.push_str(&format!(" AND {} <= {}", e.name("due_at"), e.value(n(t.0))));
        }
        let base = client
            .query()
            .table_name(&self.table)
            .index_name(DUE_INDEX)
            .key_condition_expression(cond)
            .set_expression_attribute_names(e.names())
            .set_expression_attribute_values(e.values())
            .scan_index_forward(true);
        let mut names = Vec::new();
        let mut start = None;
        while names.len() < limit {
            let req = base.clone().set_exclusive_start_key(start.take());
            let out = call(&self.retry, &what, || req.clone().send())
                .await
                .map_err(|err| err.into_store(&what))?;
            for item in out.items.unwrap_or_default() {
                if let Some(name) = req_s(&item, "pk")?.strip_prefix("sched#") {
                    names.push(name.to_string());
                }
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        names.truncate(limit);
        let mut found = Vec::with_capacity(names.len());
        for name in names {
            // The index is eventually consistent: read the record itself.
            if let Some(s) = self.read_schedule(&name).await? {
                if until.is_none_or(|t| s.due_at.is_some_and(|d| d <= t)) {
                    found.push(s);
                }
            }
        }
        if until.is_none() {
            found.sort_by(|a, b| a.name.cmp(&b.name));
        }
        Ok(found)
    }
}
