//! Creating (or checking) the store's table.
//!
//! Alternator can only create secondary indexes together with the table, so
//! every GSI is part of `CreateTable`:
//! - `due`: hash `due_shard` (S, `s00`..`s15`), range `due_at` (N), keys only.
//!   Sparse: only meta items that are due (or whose expiry sweep is pending,
//!   at `due_at` < -2^61: `sweep.rs`) carry both attributes; schedules sit
//!   in partition `sched`.
//! - `list`: hash `fn_bucket` (S, `<function>#b00`..`#b15`), range `list_key`
//!   (S, `<created_at>#<id>`), projecting `status`: one function's executions
//!   by start time.
//! - `recent`: hash `list_bucket` (S, `b00`..`b15`), range `list_key`,
//!   projecting `status`: every execution by start time.
//!
//! The two listing indexes are sparse (only meta items carry their keys) and
//! split into 16 buckets each; `list.rs` explains why and how they are read.
//! Billing is on demand (`PAY_PER_REQUEST`); TTL is enabled on `expires_at`.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TableDescription, TableStatus, TimeToLiveSpecification,
    TimeToLiveStatus,
};

use super::list::{FN_BUCKET_ATTR, LIST_BUCKET_ATTR, LIST_KEY_ATTR};
use super::retry::{Failure, RetryPolicy, call};
use crate::error::{Result, StoreError};

/// The due-index GSI.
pub const DUE_INDEX: &str = "due";
/// The GSI listing one function's executions.
pub const LIST_INDEX: &str = "list";
/// The GSI listing every execution.
pub const RECENT_INDEX: &str = "recent";
/// The TTL attribute (epoch seconds).
pub const TTL_ATTRIBUTE: &str = "expires_at";

/// Every GSI: name, hash and range attributes, and the non-key attributes it
/// must project (none: keys only).
const INDEXES: [(&str, &str, &str, &[&str]); 3] = [
    (DUE_INDEX, "due_shard", "due_at", &[]),
    (LIST_INDEX, FN_BUCKET_ATTR, LIST_KEY_ATTR, &["status"]),
    (RECENT_INDEX, LIST_BUCKET_ATTR, LIST_KEY_ATTR, &["status"]),
];

/// Every key attribute of the table and its indexes, with its type.
const KEY_ATTRIBUTES: [(&str, ScalarAttributeType); 7] = [
    ("pk", ScalarAttributeType::S),
    ("sk", ScalarAttributeType::S),
    ("due_shard", ScalarAttributeType::S),
    ("due_at", ScalarAttributeType::N),
    (FN_BUCKET_ATTR, ScalarAttributeType::S),
    (LIST_BUCKET_ATTR, ScalarAttributeType::S),
    (LIST_KEY_ATTR, ScalarAttributeType::S),
];

/// How long to wait for a new table to become `ACTIVE`.
const ACTIVE_TIMEOUT: Duration = Duration::from_secs(180);

fn build_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("cannot build a CreateTable request: {e}"))
}

fn key(attr: &str, kind: KeyType) -> Result<KeySchemaElement> {
    KeySchemaElement::builder()
        .attribute_name(attr)
        .key_type(kind)
        .build()
        .map_err(build_err)
}

fn attr(name: &str, kind: ScalarAttributeType) -> Result<AttributeDefinition> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(kind)
        .build()
        .map_err(build_err)
}

fn gsi(name: &str, hash: &str, range: &str, include: &[&str]) -> Result<GlobalSecondaryIndex> {
    let projection = if include.is_empty() {
        Projection::builder().projection_type(ProjectionType::KeysOnly)
    } else {
        include.iter().fold(
            Projection::builder().projection_type(ProjectionType::Include),
            |p, attr| p.non_key_attributes(*attr),
        )
    };
    GlobalSecondaryIndex::builder()
        .index_name(name)
        .key_schema(key(hash, KeyType::Hash)?)
        .key_schema(key(range, KeyType::Range)?)
        .projection(projection.build())
        .build()
        .map_err(build_err)
}

/// Creates `table` with its indexes and TTL if it does not exist, waits until it
/// is `ACTIVE`, and checks the layout of an existing one. Returns true if this
/// call created it. Safe to call concurrently and repeatedly.
pub(super) async fn create_table_if_missing(
    client: &Client,
    table: &str,
    policy: &RetryPolicy,
) -> Result<bool> {
    let created = match describe(client, table, policy).await? {
        Some(desc) => {
            check_layout(table, &desc)?;
            false
        }
        None => create(client, table, policy).await?,
    };
    wait_active(client, table, policy).await?;
    enable_ttl(client, table, policy).await;
    Ok(created)
}

async fn describe(
    client: &Client,
    table: &str,
    policy: &RetryPolicy,
) -> Result<Option<TableDescription>> {
    let what = format!("DescribeTable {table}");
    let req = client.describe_table().table_name(table);
    match call(policy, &what, || req.clone().send()).await {
        Ok(out) => Ok(out.table),
        Err(Failure::Service { code, .. }) if code == "ResourceNotFoundException" => Ok(None),
        Err(e) => Err(e.into_store(&what)),
    }
}

async fn create(client: &Client, table: &str, policy: &RetryPolicy) -> Result<bool> {
    let what = format!("CreateTable {table}");
    let mut req = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key("pk", KeyType::Hash)?)
        .key_schema(key("sk", KeyType::Range)?);
    for (name, kind) in KEY_ATTRIBUTES {
        req = req.attribute_definitions(attr(name, kind)?);
    }
    for (index, hash, range, include) in INDEXES {
        req = req.global_secondary_indexes(gsi(index, hash, range, include)?);
    }
    match call(policy, &what, || req.clone().send()).await {
        Ok(_) => {
            tracing::info!(table, "created DynamoDB table");
            Ok(true)
        }
        // Another process is creating it right now.
        Err(Failure::Service { code, .. }) if code == "ResourceInUseException" => Ok(false),
        Err(e) => Err(e.into_store(&what)),
    }
}

async fn wait_active(client: &Client, table: &str, policy: &RetryPolicy) -> Result<()> {
    let start = Instant::now();
    loop {
        let status = describe(client, table, policy)
            .await?
            .and_then(|d| d.table_status);
        if status == Some(TableStatus::Active) {
            return Ok(());
        }
        if start.elapsed() > ACTIVE_TIMEOUT {
            return Err(StoreError::Transient(format!(
                "DynamoDB table {table} is not ACTIVE after {ACTIVE_TIMEOUT:?} (status {status:?})"
            )));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Enables TTL on `expires_at`. Best effort: a backend without TTL support (or
/// without permission to change it) still works; finished executions then stay
/// until deleted some other way.
async fn enable_ttl(client: &Client, table: &str, policy: &RetryPolicy) {
    let what = format!("DescribeTimeToLive {table}");
    let req = client.describe_time_to_live().table_name(table);
    match call(policy, &what, || req.clone().send()).await {
        Ok(out) => {
            let desc = out.time_to_live_description;
            let status = desc.as_ref().and_then(|d| d.time_to_live_status.clone());
            let attr = desc.as_ref().and_then(|d| d.attribute_name.clone());
            match status {
                Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling) => {
                    if attr.as_deref() != Some(TTL_ATTRIBUTE) {
                        tracing::warn!(
                            table,
                            ?attr,
                            "TTL is enabled on another attribute than {TTL_ATTRIBUTE}"
                        );
                    }
                    return;
                }
                Some(TimeToLiveStatus::Disabling) => {
                    tracing::warn!(table, "TTL is being disabled; not re-enabling it now");
                    return;
                }
                _ => {}
            }
        }
        Err(e) => {
            tracing::warn!(table, error = %e.into_store(&what), "cannot read the table's TTL setting");
        }
    }
    let spec = match TimeToLiveSpecification::builder()
        .enabled(true)
        .attribute_name(TTL_ATTRIBUTE)
        .build()
    {
        Ok(spec) => spec,
        Err(e) => {
            tracing::warn!(table, error = %e, "cannot build a TTL specification");
            return;
        }
    };
    let what = format!("UpdateTimeToLive {table}");
    let req = client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(spec);
    if let Err(e) = call(policy, &what, || req.clone().send()).await {
        tracing::warn!(
            table,
            error = %e.into_store(&what),
            "cannot enable TTL on {TTL_ATTRIBUTE}; expired executions will not be deleted by the database"
        );
    }
}

/// Checks an existing table has the keys and indexes the store needs.
fn check_layout(table: &str, desc: &TableDescription) -> Result<()> {
    let keys = |schema: &[KeySchemaElement]| -> Vec<(String, KeyType)> {
        schema
            .iter()
            .map(|k| (k.attribute_name.clone(), k.key_type.clone()))
            .collect()
    };
    let want = |hash: &str, range: &str| {
        vec![
            (hash.to_string(), KeyType::Hash),
            (range.to_string(), KeyType::Range),
        ]
    };
    let problem = |what: String| {
        StoreError::Invalid(format!(
            "DynamoDB table {table} exists but {what}; use another table name or recreate it \
             (Durafn creates it with keys pk/sk and GSIs {DUE_INDEX}(due_shard, due_at), \
             {LIST_INDEX}({FN_BUCKET_ATTR}, {LIST_KEY_ATTR}) and \
             {RECENT_INDEX}({LIST_BUCKET_ATTR}, {LIST_KEY_ATTR}), the last two projecting status)"
        ))
    };
    if keys(desc.key_schema()) != want("pk", "sk") {
        return Err(problem(
            "its key schema is not pk (hash, S) / sk (range, S)".into(),
        ));
    }
    for (index, hash, range, include) in INDEXES {
        let found = desc
            .global_secondary_indexes()
            .iter()
            .find(|g| g.index_name.as_deref() == Some(index));
        let Some(g) = found else {
            return Err(problem(format!("it has no GSI {index:?}")));
        };
        if keys(g.key_schema()) != want(hash, range) {
            return Err(problem(format!(
                "its GSI {index:?} is not keyed on ({hash}, {range})"
            )));
        }
        // A backend that does not describe the projection (older Alternator
        // releases project every attribute anyway) passes.
        let projects = |attr: &str| match g.projection() {
            None => true,
            Some(p) => match p.projection_type() {
                Some(ProjectionType::KeysOnly) => false,
                Some(ProjectionType::Include) => p.non_key_attributes().iter().any(|a| a == attr),
                _ => true,
            },
        };
        if let Some(missing) = include.iter().find(|a| !projects(a)) {
            return Err(problem(format!(
                "its GSI {index:?} does not project {missing:?}"
            )));
        }
    }
    Ok(())
}
