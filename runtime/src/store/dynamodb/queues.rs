//! Queue messages and leases on DynamoDB.
//!
//! A message is one item: `pk = q#<queue>`, `sk = m#<id>`, with `body` S
//! (JSON), `sent_at`, `receive_count`, `first_received_at` N, `receipt` S,
//! and the due index keys `due_shard = q#<queue>`, `due_at` = when it is
//! visible. So "what can be received" is one query of the `due` GSI's
//! partition `q#<queue>` (no new index; the executions' shards `s00`–`s15`
//! and the schedules' `sched` never read it), and each hit is claimed with an
//! `UpdateItem` conditional on the `due_at` the index showed: of two
//! receivers, one wins each message.
//!
//! A lease is one item `pk = lease#<group>`, `sk = <name>` with `owner` S and
//! `until` N, written by an `UpdateItem` conditional on it being absent,
//! expired, the taker's own or held by the owner named to steal from.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::ReturnValue;

use super::DynamoStore;
use super::expr::{Expr, n, s};
use super::items::{Item, corrupt, get_s, get_ts, req_n, req_s};
use super::records::key;
use super::retry::{Failure, call};
use super::table::DUE_INDEX;
use crate::error::Result;
use crate::model::Timestamp;
use crate::store::queue::{lease_free_for, new_receipt, validate_lease, validate_message};
use crate::store::{Lease, LeaseRequest, LeaseTake, QueueMessage, QueueStats};

fn queue_pk(queue: &str) -> String {
    format!("q#{queue}")
}

fn message_sk(id: &str) -> String {
    format!("m#{id}")
}

fn lease_pk(group: &str) -> String {
    format!("lease#{group}")
}

fn decode_message(item: &Item) -> Result<QueueMessage> {
    let queue = req_s(item, "pk")?
        .strip_prefix("q#")
        .ok_or_else(|| corrupt("queue message pk"))?;
    let id = req_s(item, "sk")?
        .strip_prefix("m#")
        .ok_or_else(|| corrupt("queue message sk"))?;
    Ok(QueueMessage {
        queue: queue.to_string(),
        id: id.to_string(),
        body: serde_json::from_str(req_s(item, "body")?)
            .map_err(|e| corrupt(format!("queue message body: {e}")))?,
        sent_at: Timestamp(req_n(item, "sent_at")?),
        visible_at: Timestamp(req_n(item, "due_at")?),
        receive_count: req_n(item, "receive_count")?,
        first_received_at: get_ts(item, "first_received_at")?,
        receipt: get_s(item, "receipt")?.map(str::to_string),
    })
}

fn decode_lease(group: &str, item: &Item) -> Result<Lease> {
    Ok(Lease {
        group: group.to_string(),
        name: req_s(item, "sk")?.to_string(),
        owner: req_s(item, "owner")?.to_string(),
        until: Timestamp(req_n(item, "until")?),
    })
}

impl DynamoStore {
    /// [`Store::send_message`](crate::store::Store::send_message).
    pub(super) async fn put_message(&self, m: &QueueMessage) -> Result<bool> {
        validate_message(m)?;
        let client = self.client().await?;
        let body = serde_json::to_string(&m.body)
            .map_err(|e| corrupt(format!("cannot encode a queue message: {e}")))?;
        let pk = queue_pk(&m.queue);
        let mut item = Item::from([
            ("pk".to_string(), s(pk.clone())),
            ("sk".to_string(), s(message_sk(&m.id))),
            ("body".to_string(), s(body)),
            ("sent_at".to_string(), n(m.sent_at.0)),
            ("receive_count".to_string(), n(m.receive_count)),
            ("due_shard".to_string(), s(pk)),
            ("due_at".to_string(), n(m.visible_at.0)),
        ]);
        if let Some(t) = m.first_received_at {
            item.insert("first_received_at".into(), n(t.0));
        }
        let what = format!("PutItem message {} of {} on {}", m.id, m.queue, self.table);
        let req = client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", "pk");
        match call(&self.retry, &what, || req.clone().send()).await {
            Ok(_) => Ok(true),
            Err(Failure::Condition) => Ok(false),
            Err(err) => Err(err.into_store(&what)),
        }
    }

    /// Keys and `due_at` of up to `limit` messages of `queue` visible by `until`.
    async fn visible_keys(
        &self,
        queue: &str,
        until: Option<Timestamp>,
        limit: usize,
    ) -> Result<Vec<(String, i64)>> {
        let client = self.client().await?;
        let what = format!("Query {DUE_INDEX} queue {queue} on {}", self.table);
        let mut e = Expr::new();
        let mut cond = format!("{} = {}", e.name("due_shard"), e.value(s(queue_pk(queue))));
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
        let mut found = Vec::new();
        let mut start = None;
        while found.len() < limit {
            let req = base.clone().set_exclusive_start_key(start.take());
            let out = call(&self.retry, &what, || req.clone().send())
                .await
                .map_err(|err| err.into_store(&what))?;
            for item in out.items.unwrap_or_default() {
                found.push((req_s(&item, "sk")?.to_string(), req_n(&item, "due_at")?));
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        found.truncate(limit);
        Ok(found)
    }

    /// [`Store::receive_messages`](crate::store::Store::receive_messages).
    pub(super) async fn claim_messages(
        &self,
        queue: &str,
        now: Timestamp,
        hidden_until: Timestamp,
        max: usize,
    ) -> Result<Vec<QueueMessage>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        // Read a few more than asked: some may be claimed by another receiver.
        let keys = self.visible_keys(queue, Some(now), max * 2).await?;
        let client = self.client().await?;
        let mut out = Vec::new();
        for (sk, seen) in keys {
            if out.len() >= max {
                break;
            }
            let mut e = Expr::new();
            e.set("due_at", n(hidden_until.0));
            e.add("receive_count", 1);
            e.set("receipt", s(new_receipt()));
            let first = e.name("first_received_at");
            let first_value = e.value(n(now.0));
            let cond = format!(
                "{} = {} AND {} <= {}",
                e.name("due_at"),
                e.value(n(seen)),
                e.name("due_at"),
                e.value(n(now.0))
            );
            let update = format!(
                "{}, {first} = if_not_exists({first}, {first_value})",
                e.update_expression()
            );
            let what = format!("UpdateItem receive {sk} of {queue} on {}", self.table);
            let req = client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key(&queue_pk(queue), &sk)))
                .update_expression(update)
                .condition_expression(cond)
                .set_expression_attribute_names(e.names())
                .set_expression_attribute_values(e.values())
                .return_values(ReturnValue::AllNew);
            match call(&self.retry, &what, || req.clone().send()).await {
                Ok(o) => {
                    if let Some(item) = o.attributes {
                        out.push(decode_message(&item)?);
                    }
                }
                // Another receiver claimed it, or it is gone.
                Err(Failure::Condition) => {}
                Err(err) => return Err(err.into_store(&what)),
            }
        }
        Ok(out)
    }

    /// [`Store::delete_message`](crate::store::Store::delete_message).
    pub(super) async fn remove_message(
        &self,
        queue: &str,
        id: &str,
        receipt: &str,
    ) -> Result<bool> {
        let client = self.client().await?;
        let what = format!("DeleteItem message {id} of {queue} on {}", self.table);
        let req = client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(&queue_pk(queue), &message_sk(id))))
            .condition_expression("#receipt = :r")
            .expression_attribute_names("#receipt", "receipt")
            .expression_attribute_values(":r", s(receipt));
        match call(&self.retry, &what, || req.clone().send()).await {
            Ok(_) => Ok(true),
            Err(Failure::Condition) => Ok(false),
            Err(err) => Err(err.into_store(&what)),
        }
    }

    /// [`Store::change_message_visibility`](crate::store::Store::change_message_visibility).
    pub(super) async fn move_visibility(
        &self,
        queue: &str,
        id: &str,
        receipt: &str,
        visible_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool> {
        let client = self.client().await?;
        let mut e = Expr::new();
        e.set("due_at", n(visible_at.0));
        let cond = format!(
            "{} = {} AND {} > {}",
            e.name("receipt"),
            e.value(s(receipt)),
            e.name("due_at"),
            e.value(n(now.0))
        );
        let what = format!("UpdateItem visibility {id} of {queue} on {}", self.table);
        let req = client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(&queue_pk(queue), &message_sk(id))))
            .update_expression(e.update_expression())
            .condition_expression(cond)
            .set_expression_attribute_names(e.names())
            .set_expression_attribute_values(e.values());
        match call(&self.retry, &what, || req.clone().send()).await {
            Ok(_) => Ok(true),
            Err(Failure::Condition) => Ok(false),
            Err(err) => Err(err.into_store(&what)),
        }
    }

    /// [`Store::queue_stats`](crate::store::Store::queue_stats): one
    /// consistent query of the queue's partition.
    pub(super) async fn count_messages(&self, queue: &str, now: Timestamp) -> Result<QueueStats> {
        let mut stats = QueueStats::default();
        // Keys, visibility and receipt only: never the bodies.
        for item in self
            .partition_attrs(&queue_pk(queue), &["due_at", "receipt"])
            .await?
        {
            let visible_at: i64 = req_n(&item, "due_at")?;
            if visible_at <= now.0 {
                stats.visible += 1;
            } else {
                if item.contains_key("receipt") {
                    stats.in_flight += 1;
                } else {
                    stats.delayed += 1;
                }
                let t = Timestamp(visible_at);
                stats.next_visible_at = Some(stats.next_visible_at.map_or(t, |c| c.min(t)));
            }
        }
        Ok(stats)
    }

    /// [`Store::purge_queue`](crate::store::Store::purge_queue).
    pub(super) async fn delete_messages(&self, queue: &str) -> Result<u64> {
        let client = self.client().await?;
        let pk = queue_pk(queue);
        let mut deleted = 0;
        for item in self.partition_attrs(&pk, &[]).await? {
            let sk = req_s(&item, "sk")?;
            let what = format!("DeleteItem {pk}/{sk} on {}", self.table);
            let req = client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(key(&pk, sk)))
                .condition_expression("attribute_exists(#pk)")
                .expression_attribute_names("#pk", "pk");
            match call(&self.retry, &what, || req.clone().send()).await {
                Ok(_) => deleted += 1,
                // Deleted meanwhile (received and deleted by a consumer).
                Err(Failure::Condition) => {}
                Err(err) => return Err(err.into_store(&what)),
            }
        }
        Ok(deleted)
    }

    /// [`Store::take_lease`](crate::store::Store::take_lease).
    pub(super) async fn put_lease(&self, r: &LeaseRequest, now: Timestamp) -> Result<LeaseTake> {
        validate_lease(r)?;
        let client = self.client().await?;
        let mut e = Expr::new();
        e.set("owner", s(r.owner.clone()));
        e.set("until", n(r.until.0));
        let owner = e.name("owner");
        let until = e.name("until");
        let me = e.value(s(r.owner.clone()));
        let mut cond = format!(
            "attribute_not_exists({}) OR {until} < {} OR {owner} = {me}",
            e.name("pk"),
            e.value(n(now.0))
        );
        if let Some(gone) = &r.steal_from {
            cond.push_str(&format!(" OR {owner} = {}", e.value(s(gone.clone()))));
        }
        let what = format!("UpdateItem lease {}/{} on {}", r.group, r.name, self.table);
        let pk = lease_pk(&r.group);
        let req = client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(&pk, &r.name)))
            .update_expression(e.update_expression())
            .condition_expression(cond)
            .set_expression_attribute_names(e.names())
            .set_expression_attribute_values(e.values());
        let wanted = Lease {
            group: r.group.clone(),
            name: r.name.clone(),
            owner: r.owner.clone(),
            until: r.until,
        };
        match call(&self.retry, &what, || req.clone().send()).await {
            Ok(_) => Ok(LeaseTake::Taken(wanted)),
            Err(Failure::Condition) => match self.get_item(&pk, &r.name).await? {
                Some(item) => {
                    let current = decode_lease(&r.group, &item)?;
                    if lease_free_for(&current, r, now) {
                        // It expired or changed hands between the write and the read: try again.
                        Box::pin(self.put_lease(r, now)).await
                    } else {
                        Ok(LeaseTake::Held(current))
                    }
                }
                None => Box::pin(self.put_lease(r, now)).await,
            },
            Err(err) => Err(err.into_store(&what)),
        }
    }

    /// [`Store::release_lease`](crate::store::Store::release_lease).
    pub(super) async fn delete_lease(&self, group: &str, name: &str, owner: &str) -> Result<bool> {
        let client = self.client().await?;
        let what = format!("DeleteItem lease {group}/{name} on {}", self.table);
        let req = client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(&lease_pk(group), name)))
            .condition_expression("#owner = :o")
            .set_expression_attribute_names(Some(HashMap::from([(
                "#owner".to_string(),
                "owner".to_string(),
            )])))
            .expression_attribute_values(":o", s(owner));
        match call(&self.retry, &what, || req.clone().send()).await {
            Ok(_) => Ok(true),
            Err(Failure::Condition) => Ok(false),
            Err(err) => Err(err.into_store(&what)),
        }
    }

    /// [`Store::list_leases`](crate::store::Store::list_leases).
    pub(super) async fn query_leases(&self, group: &str) -> Result<Vec<Lease>> {
        let mut out = Vec::new();
        for item in self.query(&lease_pk(group), None).await? {
            out.push(decode_lease(group, &item)?);
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}
