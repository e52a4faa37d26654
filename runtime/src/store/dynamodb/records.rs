//! Execution and operation records as DynamoDB items.
//!
//! Meta item (`sk = meta`): `function` S, `version` S, `status` S, `input` /
//! `input_chunks`, `output` / `output_chunks`, `error` / `error_chunks` (JSON
//! text), `epoch` N, `wakeups` N, `due_shard` S + `due_at` N (both or neither),
//! `created_at` N, `updated_at` N, `ended_at` N, `expires_at_ms` N (the exact
//! expiry) and `expires_at` N (the same in epoch seconds, the table's TTL
//! attribute); and, written once at creation for the listing indexes
//! (`list.rs`), `list_key` S, `list_bucket` S and `fn_bucket` S.
//!
//! Operation item (`sk = op#<op id>`): `op_id` S, `type` S, `name` S, `status` S,
//! `attempt` N, `result` / `result_chunks`, `error` / `error_chunks`,
//! `started_at` N, `ended_at` N, `wake_at` N, `rev` N.

use super::expr::{n, s};
use super::items::{
    Chunks, Item, META_SK, Placed, get_s, get_ts, id_of_pk, op_sk, parse_enum, payload, req_n,
    req_s, shard_key, ts,
};
use super::list::{
    FN_BUCKET_ATTR, LIST_BUCKET_ATTR, LIST_KEY_ATTR, fn_bucket, list_bucket, list_key,
};
use crate::error::Result;
use crate::model::{Execution, ExecutionStatus, NewExecution, Operation, Timestamp};

/// The payload fields of a meta item.
pub(super) const META_PAYLOADS: [&str; 3] = ["input", "output", "error"];
/// The payload fields of an operation item.
pub(super) const OP_PAYLOADS: [&str; 2] = ["result", "error"];

/// The key of an item.
pub(super) fn key(pk: &str, sk: &str) -> Item {
    Item::from([("pk".to_string(), s(pk)), ("sk".to_string(), s(sk))])
}

/// A TTL value (epoch seconds, rounded up) for an expiry in milliseconds.
pub(super) fn ttl_seconds(t: Timestamp) -> i64 {
    t.0.div_euclid(1000) + i64::from(t.0.rem_euclid(1000) != 0)
}

/// The meta item of a new execution: `PENDING`, due at once.
pub(super) fn new_meta_item(new: &NewExecution, input: &Placed) -> Item {
    let mut item = key(&super::items::pk(&new.id), META_SK);
    let (attr, value) = input.attribute();
    let bucket = list_bucket(&new.id);
    item.extend([
        ("function".to_string(), s(new.function.clone())),
        ("version".to_string(), s(new.version.clone())),
        ("status".to_string(), s(ExecutionStatus::Pending.as_str())),
        (attr, value),
        ("epoch".to_string(), n(0)),
        ("wakeups".to_string(), n(0)),
        ("due_shard".to_string(), s(shard_key(new.id.due_shard()))),
        ("due_at".to_string(), ts(new.now)),
        ("created_at".to_string(), ts(new.now)),
        ("updated_at".to_string(), ts(new.now)),
        (LIST_KEY_ATTR.to_string(), s(list_key(new.now, &new.id))),
        (
            FN_BUCKET_ATTR.to_string(),
            s(fn_bucket(&new.function, &bucket)),
        ),
        (LIST_BUCKET_ATTR.to_string(), s(bucket)),
    ]);
    item
}

/// The execution a fresh [`new_meta_item`] stands for.
pub(super) fn new_execution(new: &NewExecution) -> Execution {
    Execution {
        id: new.id.clone(),
        function: new.function.clone(),
        version: new.version.clone(),
        status: ExecutionStatus::Pending,
        input: new.input.clone(),
        output: None,
        error: None,
        epoch: 0,
        wakeups: 0,
        due_at: Some(new.now),
        created_at: new.now,
        updated_at: new.now,
        ended_at: None,
        expires_at: None,
    }
}

/// Decodes a meta item; `chunks` holds the chunk items it references.
pub(super) fn decode_execution(item: &Item, chunks: &Chunks) -> Result<Execution> {
    Ok(Execution {
        id: id_of_pk(req_s(item, "pk")?)?,
        function: req_s(item, "function")?.to_string(),
        version: req_s(item, "version")?.to_string(),
        status: parse_enum(item, "status")?,
        input: payload(item, "input", chunks)?
            .ok_or_else(|| super::items::corrupt("input is missing"))?,
        output: payload(item, "output", chunks)?,
        error: payload(item, "error", chunks)?,
        epoch: req_n(item, "epoch")?,
        wakeups: req_n(item, "wakeups")?,
        due_at: get_ts(item, "due_at")?,
        created_at: Timestamp(req_n(item, "created_at")?),
        updated_at: Timestamp(req_n(item, "updated_at")?),
        ended_at: get_ts(item, "ended_at")?,
        expires_at: get_ts(item, "expires_at_ms")?,
    })
}

/// The item of an operation record; `payloads` are its placed result / error.
pub(super) fn op_item(pk: &str, op: &Operation, payloads: &[Placed]) -> Item {
    let mut item = key(pk, &op_sk(&op.id));
    item.extend([
        ("op_id".to_string(), s(op.id.clone())),
        ("type".to_string(), s(op.kind.as_str())),
        ("name".to_string(), s(op.name.clone())),
        ("status".to_string(), s(op.status.as_str())),
        ("attempt".to_string(), n(op.attempt)),
        ("started_at".to_string(), ts(op.started_at)),
        ("rev".to_string(), n(op.rev)),
    ]);
    if let Some(t) = op.ended_at {
        item.insert("ended_at".to_string(), ts(t));
    }
    if let Some(t) = op.wake_at {
        item.insert("wake_at".to_string(), ts(t));
    }
    item.extend(payloads.iter().map(Placed::attribute));
    item
}

/// Decodes an operation item; `chunks` holds the chunk items it references.
pub(super) fn decode_operation(item: &Item, chunks: &Chunks) -> Result<Operation> {
    Ok(Operation {
        id: req_s(item, "op_id")?.to_string(),
        kind: parse_enum(item, "type")?,
        name: req_s(item, "name")?.to_string(),
        status: parse_enum(item, "status")?,
        attempt: req_n(item, "attempt")?,
        result: payload(item, "result", chunks)?,
        error: payload(item, "error", chunks)?,
        started_at: Timestamp(req_n(item, "started_at")?),
        ended_at: get_ts(item, "ended_at")?,
        wake_at: get_ts(item, "wake_at")?,
        rev: req_n(item, "rev")?,
    })
}

/// The sort key of an item, if it has one.
pub(super) fn sort_key(item: &Item) -> Option<&str> {
    get_s(item, "sk").ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ErrorObject, ExecutionId, OpKind, OpStatus};
    use serde_json::json;

    #[test]
    fn operations_round_trip() {
        let op = Operation {
            id: "3.1".into(),
            kind: OpKind::Step,
            name: "charge".into(),
            status: OpStatus::Pending,
            attempt: 2,
            result: None,
            error: Some(ErrorObject::new("Timeout", "slow")),
            started_at: Timestamp(5),
            ended_at: None,
            wake_at: Some(Timestamp(9)),
            rev: 3,
        };
        let fields = vec![(
            "error",
            serde_json::to_string(&op.error).unwrap_or_default(),
        )];
        let placed = super::super::items::place(fields, 1000);
        let item = op_item("x#a", &op, &placed);
        assert_eq!(sort_key(&item), Some("op#3.1"));
        let back = decode_operation(&item, &Chunks::new()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, op);
    }

    #[test]
    fn new_executions_round_trip() {
        let new = NewExecution {
            id: ExecutionId::new("o-1").unwrap_or_else(|e| panic!("{e}")),
            function: "order".into(),
            version: "7".into(),
            input: json!({"a": [1, 2]}),
            now: Timestamp(1_000),
        };
        let placed = super::super::items::place(vec![("input", new.input.to_string())], 1000);
        let item = new_meta_item(&new, &placed[0]);
        let back = decode_execution(&item, &Chunks::new()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, new_execution(&new));
        assert_eq!(ttl_seconds(Timestamp(1_000)), 1);
        assert_eq!(ttl_seconds(Timestamp(1_001)), 2);
    }
}
