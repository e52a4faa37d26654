//! Search attributes as DynamoDB items (see `store/attributes.rs`):
//!
//! - in the execution's partition, `sk = a#<name>`, `value` S (compact
//!   JSON): the attribute's current value (the journal skips these items,
//!   the expiry sweep gives them the execution's expiry);
//! - an index item per value, `pk = attr#<name>=<value>`,
//!   `sk = <created_at, 16 digits>#<execution id>`, with `x` (the id) and
//!   `function`, expiring a year and a retention after it was written (an
//!   entry whose execution is gone is skipped by the search's reader).
//!
//! Setting reads the execution's item (the value it replaces), puts the new
//! index item, deletes the old one if the value changed, and only then
//! writes the execution's item — so a retry after a crash anywhere in between
//! reads the old value again and finishes the job, leaving no stale entry:
//! single-item writes, no GSI (tables created
//! before work, and ScyllaDB Alternator does too). A search is one `Query`
//! of the value's partition, newest first, narrowed to a function by a
//! filter. A value shared by many executions is one hot partition: an
//! attribute is for finding a few executions (a customer, an order), not a
//! status.

use aws_sdk_dynamodb::types::AttributeValue;

use super::DynamoStore;
use super::expr::{Expr, n, s};
use super::items::{Item, pk};
use super::records::{key, ttl_seconds};
use super::retry::call;
use super::table::TTL_ATTRIBUTE;
use crate::error::Result;
use crate::model::{DEFAULT_RETENTION, ExecutionId};
use crate::store::attributes::{
    AttributePage, AttributeQuery, SearchAttribute, cursor, index_value, page_size, parse_cursor,
    validate,
};

/// The sort-key prefix of an execution's attribute items.
const ATTRIBUTE_PREFIX: &str = "a#";

/// How long an index item lives: the longest sleep plus the retention.
const INDEX_LIFETIME: std::time::Duration =
    std::time::Duration::from_secs(366 * 86_400 + DEFAULT_RETENTION.as_secs());

fn index_pk(name: &str, value: &str) -> String {
    format!("attr#{name}={value}")
}

impl DynamoStore {
    /// [`crate::store::Store::put_attribute`].
    pub(super) async fn put_attribute_items(
        &self,
        id: &ExecutionId,
        attr: &SearchAttribute,
    ) -> Result<()> {
        let value = validate(attr)?;
        let client = self.client().await?;
        let own_sk = format!("{ATTRIBUTE_PREFIX}{}", attr.name);
        // The value it replaces, read first: the execution's item is
        // written last, so a retry after a crash anywhere in between reads
        // the old value again and finishes the same writes.
        let old = self
            .get_item(&pk(id), &own_sk)
            .await?
            .and_then(|a| a.get("value").and_then(|v| v.as_s().ok()).cloned());
        let sk = cursor(attr.created_at, id.as_str());
        let expires = crate::clock::Clock::now(&crate::clock::SystemClock).plus(INDEX_LIFETIME);
        let mut item = key(&index_pk(&attr.name, &value), &sk);
        item.insert("x".into(), s(id.as_str()));
        item.insert("function".into(), s(attr.function.clone()));
        item.insert(TTL_ATTRIBUTE.into(), n(ttl_seconds(expires)));
        let what = format!(
            "PutItem attribute index {} of {id} on {}",
            attr.name, self.table
        );
        let req = client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item));
        call(&self.retry, &what, || req.clone().send())
            .await
            .map_err(|e| e.into_store(&what))?;
        if let Some(old) = old.filter(|o| *o != value) {
            let what = format!(
                "DeleteItem attribute index {} of {id} on {}",
                attr.name, self.table
            );
            let req = client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(key(&index_pk(&attr.name, &old), &sk)));
            call(&self.retry, &what, || req.clone().send())
                .await
                .map_err(|e| e.into_store(&what))?;
        }
        let mut own = key(&pk(id), &own_sk);
        own.insert("value".into(), s(value));
        let what = format!("PutItem attribute {} of {id} on {}", attr.name, self.table);
        let req = client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(own));
        call(&self.retry, &what, || req.clone().send())
            .await
            .map_err(|e| e.into_store(&what))?;
        Ok(())
    }

    /// [`crate::store::Store::find_by_attribute`].
    pub(super) async fn find_attribute_items(&self, q: &AttributeQuery) -> Result<AttributePage> {
        crate::store::attributes::validate_attribute_name(&q.name)?;
        let value = index_value(&q.value)?;
        let limit = page_size(q.limit);
        let partition = index_pk(&q.name, &value);
        let client = self.client().await?;
        let mut e = Expr::new();
        let cond = format!("{} = {}", e.name("pk"), e.value(s(partition.clone())));
        let filter = q
            .function
            .as_ref()
            .map(|f| format!("{} = {}", e.name("function"), e.value(s(f.clone()))));
        let start: Option<Item> = q
            .cursor
            .as_deref()
            .filter(|c| parse_cursor(c).is_some())
            .map(|c| key(&partition, c));
        let base = client
            .query()
            .table_name(&self.table)
            .key_condition_expression(cond)
            .set_filter_expression(filter)
            .set_expression_attribute_names(e.names())
            .set_expression_attribute_values(e.values())
            .scan_index_forward(false)
            .limit(i32::try_from(limit + 1).unwrap_or(i32::MAX));
        let what = format!("Query {partition} on {}", self.table);
        let mut rows: Vec<(String, String)> = Vec::new();
        let mut start = start;
        loop {
            let req = base.clone().set_exclusive_start_key(start.take());
            let out = call(&self.retry, &what, || req.clone().send())
                .await
                .map_err(|e| e.into_store(&what))?;
            for item in out.items.unwrap_or_default() {
                let get = |k: &str| {
                    item.get(k)
                        .and_then(|v: &AttributeValue| v.as_s().ok())
                        .cloned()
                };
                if let (Some(x), Some(sk)) = (get("x"), get("sk")) {
                    rows.push((x, sk));
                }
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() && rows.len() <= limit => start = Some(k),
                _ => break,
            }
        }
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next_cursor = match rows.last() {
            Some((_, sk)) if more => Some(sk.clone()),
            _ => None,
        };
        let ids = rows
            .into_iter()
            .filter_map(|(x, _)| ExecutionId::new(x).ok())
            .collect();
        Ok(AttributePage { ids, next_cursor })
    }
}
