//! The DynamoDB store: AWS DynamoDB, DynamoDB Local, ScyllaDB Alternator.
//!
//! One table, keys `pk` (S) / `sk` (S), three GSIs created with the table (see
//! `table.rs`), and only single-item conditional `PutItem` / `UpdateItem`
//! writes — no transactions, no batch writes — so it runs on Alternator too.
//!
//! | item | `pk` | `sk` |
//! |---|---|---|
//! | execution meta | `x#<execution id>` | `meta` |
//! | operation | `x#<execution id>` | `op#<op id>` |
//! | event | `x#<execution id>` | `ev#<sent_at ms, 16 digits>#<UUIDv7 hex>` |
//! | payload chunk | `x#<execution id>` | `chunk#<fnv64 hex>#<len>#<nnnn>` |
//!
//! The attributes of each are listed in `records.rs` and `items.rs`. A journal
//! load is one paginated, strongly consistent `Query` on `pk` (meta, operations,
//! events and chunks together). The due index is the sparse GSI `due`: a meta item
//! carries `due_shard` (`s07`) and `due_at` exactly while it is due; its reads
//! are eventually consistent, which is fine because claiming is a conditional
//! update on the base item. Listing reads the sparse GSIs `recent` (every
//! execution) and `list` (one function's), 16 buckets each, newest first
//! (`list.rs`).
//!
//! Large payloads are split into content-addressed chunk items written before
//! the item that references them (`items.rs`). Finished and cancelled
//! executions get `expires_at` (TTL, epoch seconds) on their meta item in the
//! update that ends them; the same update marks an *expiry sweep* in the due
//! index, which the next due-index scan carries out in the background: it puts
//! the expiry on every other item of the partition (`sweep.rs`). A stale
//! invocation that ends after its execution did marks the sweep again, in case
//! it wrote more. Deletion is left to the table's TTL, so
//! [`Store::purge_expired`](super::Store::purge_expired) returns 0. Resuming a
//! failed or blocked execution removes that expiry again (`events.rs`).
//!
//! Throttling and transient errors are retried inside the store with backoff
//! and full jitter (`retry.rs`); conditional-check failures never are.

mod access;
mod attributes;
mod events;
mod expr;
mod history;
mod items;
mod list;
mod ops;
mod pause;
mod priority;
mod queues;
mod records;
mod retry;
mod schedules;
mod sweep;
mod table;
mod url;
mod usage;

use std::sync::Arc;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use tokio::sync::OnceCell;
use tokio::task::JoinSet;

pub use retry::RetryPolicy;
pub use table::{DUE_INDEX, LIST_INDEX, RECENT_INDEX, TTL_ATTRIBUTE};
pub use url::DynamoUrl;

use crate::error::{Result, StoreError};
use expr::{Expr, n, s};
use items::{Item, Placed};
use records::key;
use retry::{Failure, call};

/// How many chunk or expiry writes one call (or one sweep) keeps in flight.
const WRITE_CONCURRENCY: usize = 8;

/// The DynamoDB implementation of [`Store`](super::Store).
#[derive(Debug)]
pub struct DynamoStore {
    table: String,
    /// Where a lazily built client comes from (URLs without an endpoint).
    url: Option<DynamoUrl>,
    client: OnceCell<Client>,
    /// Set once the table is known to exist (or creation is not wanted).
    ready: OnceCell<()>,
    retry: RetryPolicy,
    /// The expiry sweeps this store runs in the background.
    sweeps: Arc<sweep::Sweeps>,
}

impl DynamoStore {
    /// Opens a store from `dynamodb://TABLE?endpoint=URL&region=REGION` without
    /// any I/O. With an endpoint the client is configured at once; without one
    /// the default AWS chain is loaded on first use. The table is created (with
    /// its indexes and TTL) on first use if it is missing.
    pub fn open(url: &str) -> Result<Self> {
        let parsed = DynamoUrl::parse(url)?;
        let client = OnceCell::new();
        if let Some(builder) = parsed.config_builder() {
            let _ = client.set(Client::from_conf(builder.build()));
        }
        Ok(DynamoStore {
            table: parsed.table.clone(),
            url: Some(parsed),
            client,
            ready: OnceCell::new(),
            retry: RetryPolicy::default(),
            sweeps: Arc::default(),
        })
    }

    /// Like [`DynamoStore::open`], then connects and creates the table if it is
    /// missing, so configuration and connection errors surface here.
    pub async fn connect(url: &str) -> Result<Self> {
        let store = Self::open(url)?;
        store.create_table_if_missing().await?;
        Ok(store)
    }

    /// A store on `table` through a client the caller configured (custom
    /// interceptors, HTTP client, credentials). Turn the SDK's retries off in
    /// its config (`RetryConfig::disabled()`): the store retries by itself.
    /// The table is created on first use if it is missing.
    /// Its requests are counted for [`crate::cost`] (an interceptor is added).
    pub fn from_client(client: Client, table: impl Into<String>) -> Self {
        let counted = client
            .config()
            .to_builder()
            .interceptor(usage::CountRequests)
            .build();
        DynamoStore {
            table: table.into(),
            url: None,
            client: OnceCell::new_with(Some(Client::from_conf(counted))),
            ready: OnceCell::new(),
            retry: RetryPolicy::default(),
            sweeps: Arc::default(),
        }
    }

    /// Replaces the retry policy for throttling and transient errors.
    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Never creates the table (it is managed elsewhere, e.g. by CloudFormation).
    pub fn without_table_creation(self) -> Self {
        let _ = self.ready.set(());
        self
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Creates the table with its GSIs (`due`, `list`, `recent`) and TTL on `expires_at`
    /// if it does not exist, and waits until it is active; checks the keys and
    /// indexes of an existing one. Returns true if this call created it.
    /// Idempotent and safe to run from several processes at once.
    pub async fn create_table_if_missing(&self) -> Result<bool> {
        let client = self.sdk_client().await?;
        let created = table::create_table_if_missing(client, &self.table, &self.retry).await?;
        let _ = self.ready.set(());
        Ok(created)
    }

    async fn sdk_client(&self) -> Result<&Client> {
        self.client
            .get_or_try_init(|| async {
                let url = self.url.as_ref().ok_or_else(|| {
                    StoreError::Backend("DynamoDB store has neither a client nor a URL".into())
                })?;
                Ok::<_, StoreError>(Client::from_conf(url.load_config().await))
            })
            .await
    }

    /// The client, once the table is ready.
    async fn client(&self) -> Result<&Client> {
        let client = self.sdk_client().await?;
        self.ready
            .get_or_try_init(|| async {
                table::create_table_if_missing(client, &self.table, &self.retry)
                    .await
                    .map(|_| ())
            })
            .await?;
        Ok(client)
    }

    /// Writes the chunk items of `placed` (before the item that references them).
    /// Chunks are immutable and content-addressed: one that already exists holds
    /// the same bytes, so its failed `attribute_not_exists` condition is success.
    async fn write_chunks(&self, pk: &str, placed: &[Placed]) -> Result<()> {
        let chunk_items: Vec<Item> = placed.iter().flat_map(|p| p.chunk_items(pk)).collect();
        if chunk_items.is_empty() {
            return Ok(());
        }
        let client = self.client().await?.clone();
        let mut tasks = JoinSet::new();
        let mut pending = chunk_items.into_iter();
        let mut result = Ok(());
        loop {
            while tasks.len() < WRITE_CONCURRENCY {
                let Some(item) = pending.next() else { break };
                let (client, table, policy) =
                    (client.clone(), self.table.clone(), self.retry.clone());
                tasks.spawn(async move {
                    let what = format!("PutItem chunk on {table}");
                    let req = client
                        .put_item()
                        .table_name(&table)
                        .set_item(Some(item))
                        .condition_expression("attribute_not_exists(pk)");
                    match call(&policy, &what, || req.clone().send()).await {
                        Ok(_) | Err(Failure::Condition) => Ok(()),
                        Err(e) => Err(e.into_store(&what)),
                    }
                });
            }
            let Some(joined) = tasks.join_next().await else {
                return result;
            };
            let outcome = joined
                .map_err(|e| StoreError::Backend(format!("chunk writer task failed: {e}")))
                .and_then(|r| r);
            if let Err(e) = outcome {
                if result.is_ok() {
                    result = Err(e);
                }
                // Stop starting new writes; let the ones in flight finish.
                pending = Vec::new().into_iter();
            }
        }
    }

    /// Removes `expires_at` from every item of a resumed execution's partition
    /// besides the meta item, so TTL does not delete its journal. Each removal
    /// is conditional on the value seen, so the sweep of a later end wins; and
    /// nothing is removed once the meta item has an expiry again (it ended again).
    async fn clear_expiry(&self, pk: &str) -> Result<()> {
        let found = self.expiries(pk).await?;
        let ended_again = found
            .iter()
            .any(|(sk, seen)| sk == items::META_SK && seen.is_some());
        if ended_again {
            return Ok(());
        }
        let targets = found
            .into_iter()
            .filter(|(sk, seen)| sk != items::META_SK && seen.is_some())
            .collect();
        self.write_expiry(pk, targets, None).await
    }

    /// The sort key and `expires_at` of every item of partition `pk`: one
    /// strongly consistent query reading only those two attributes.
    async fn expiries(&self, pk: &str) -> Result<Vec<(String, Option<AttributeValue>)>> {
        let found = self.partition_attrs(pk, &[TTL_ATTRIBUTE]).await?;
        Ok(found
            .into_iter()
            .filter_map(|mut item| {
                let sk = records::sort_key(&item)?.to_string();
                Some((sk, item.remove(TTL_ATTRIBUTE)))
            })
            .collect())
    }

    /// Every item of partition `pk` with only its `sk` and `attrs`: one
    /// strongly consistent query.
    pub(super) async fn partition_attrs(&self, pk: &str, attrs: &[&str]) -> Result<Vec<Item>> {
        let client = self.client().await?;
        let what = format!("Query {pk} expiries on {}", self.table);
        let mut e = Expr::new();
        let cond = format!("{} = {}", e.name("pk"), e.value(s(pk)));
        let projection = std::iter::once("sk")
            .chain(attrs.iter().copied())
            .map(|a| e.name(a))
            .collect::<Vec<_>>()
            .join(", ");
        let base = client
            .query()
            .table_name(&self.table)
            .key_condition_expression(cond)
            .projection_expression(projection)
            .set_expression_attribute_names(e.names())
            .set_expression_attribute_values(e.values())
            .consistent_read(true);
        let mut found = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let req = base.clone().set_exclusive_start_key(start.take());
            let out = call(&self.retry, &what, || req.clone().send())
                .await
                .map_err(|err| err.into_store(&what))?;
            found.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(found),
            }
        }
    }

    /// Sets (`Some`) or removes (`None`) `expires_at` on the items `targets` of
    /// partition `pk`, `WRITE_CONCURRENCY` at a time. Each write is conditional
    /// on the item existing (no phantom items) and, when a value is given with
    /// its sort key, on `expires_at` still holding it; a false condition is
    /// success. Every write is tried; the first error is returned.
    async fn write_expiry(
        &self,
        pk: &str,
        targets: Vec<(String, Option<AttributeValue>)>,
        ttl: Option<i64>,
    ) -> Result<()> {
        if targets.is_empty() {
            return Ok(());
        }
        let client = self.client().await?.clone();
        let mut tasks = JoinSet::new();
        let mut pending = targets.into_iter();
        let mut result = Ok(());
        loop {
            while tasks.len() < WRITE_CONCURRENCY {
                let Some((sk, seen)) = pending.next() else {
                    break;
                };
                let (client, table, policy, pk) = (
                    client.clone(),
                    self.table.clone(),
                    self.retry.clone(),
                    pk.to_string(),
                );
                tasks.spawn(async move {
                    let mut e = Expr::new();
                    e.set_or_remove(TTL_ATTRIBUTE, ttl.map(n));
                    let mut cond = format!("attribute_exists({})", e.name("pk"));
                    if let Some(seen) = seen {
                        let (attr, value) = (e.name(TTL_ATTRIBUTE), e.value(seen));
                        cond.push_str(&format!(" AND {attr} = {value}"));
                    }
                    let what = format!("UpdateItem {pk}/{sk} expiry on {table}");
                    let req = client
                        .update_item()
                        .table_name(&table)
                        .set_key(Some(key(&pk, &sk)))
                        .update_expression(e.update_expression())
                        .condition_expression(cond)
                        .set_expression_attribute_names(e.names())
                        .set_expression_attribute_values(e.values());
                    match call(&policy, &what, || req.clone().send()).await {
                        Ok(_) | Err(Failure::Condition) => Ok(()),
                        Err(err) => Err(err.into_store(&what)),
                    }
                });
            }
            let Some(joined) = tasks.join_next().await else {
                return result;
            };
            let outcome = joined
                .map_err(|e| StoreError::Backend(format!("expiry writer task failed: {e}")))
                .and_then(|r| r);
            if let (Err(e), true) = (outcome, result.is_ok()) {
                result = Err(e);
            }
        }
    }
}
