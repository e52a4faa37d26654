//! Execution and operation records as DynamoDB items.
//!
//! Meta item (`sk = meta`): `function` S, `version` S, `status` S, `input` /
//! `input_chunks`, `output` / `output_chunks`, `error` / `error_chunks` (JSON
//! text), `epoch` N, `wakeups` N, `due_shard` S + `due_at` N (both or neither;
//! while an expiry sweep is pending, they hold its entry and `sweep` S its
//! token: `sweep.rs`), `created_at` N, `updated_at` N, `ended_at` N,
//! `expires_at_ms` N (the exact expiry) and `expires_at` N (the same in epoch
//! seconds, the table's TTL attribute); and, written once at creation for the listing indexes
//! (`list.rs`), `list_key` S, `list_bucket` S and `fn_bucket` S; and `seed` S,
//! the execution's secret (never projected into an index).
//!
//! Operation item (`sk = op#<op id>`): `op_id` S, `type` S, `name` S, `status` S,
//! `attempt` N, `result` / `result_chunks`, `error` / `error_chunks`,
//! `started_at` N, `ended_at` N, `wake_at` N, `rev` N.
//!
//! History item (`sk = h#<key>`): `body` S, the entry as JSON (`history.rs`).
//!
//! Event item (`sk = ev#<seq>`): `name` S, `payload` / `payload_chunks`,
//! `sent_at` N. `seq` is `<sent_at ms, 16 digits>#<UUIDv7 hex>`: it sorts in
//! sending order (by time, then by creation order within this process) and is
//! unique without a counter.

use super::expr::{n, s};
use super::items::{
    Chunks, EVENT_PREFIX, Item, META_SK, Placed, corrupt, get_s, get_ts, id_of_pk, op_sk,
    parse_enum, payload, req_n, req_s, shard_key, ts,
};
use super::list::{
    FN_BUCKET_ATTR, LIST_BUCKET_ATTR, LIST_KEY_ATTR, fn_bucket, list_bucket, list_key,
};
use super::sweep::visible_due_at;
use crate::error::Result;
use crate::model::{EventRecord, Execution, ExecutionStatus, NewExecution, Operation, Timestamp};

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
pub(super) fn new_meta_item(new: &NewExecution, input: &Placed, seed: &str) -> Item {
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
        ("seed".to_string(), s(seed)),
    ]);
    item
}

/// The execution a fresh [`new_meta_item`] stands for.
pub(super) fn new_execution(new: &NewExecution, seed: &str) -> Execution {
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
        paused: false,
        priority: crate::model::DEFAULT_PRIORITY,
        fairness_key: None,
        seed: seed.to_string(),
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
        // A pending expiry sweep sits in the due index too; it is no due time.
        due_at: visible_due_at(get_ts(item, "due_at")?),
        created_at: Timestamp(req_n(item, "created_at")?),
        updated_at: Timestamp(req_n(item, "updated_at")?),
        ended_at: get_ts(item, "ended_at")?,
        expires_at: get_ts(item, "expires_at_ms")?,
        paused: item.contains_key(super::pause::PAUSED_ATTR),
        priority: super::items::get_n::<u8>(item, super::priority::PRIORITY_ATTR)?
            .unwrap_or(crate::model::DEFAULT_PRIORITY),
        fairness_key: get_s(item, super::priority::FAIRNESS_ATTR)?.map(str::to_string),
        // Items written before seeds existed have none.
        seed: get_s(item, "seed")?.unwrap_or_default().to_string(),
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

/// The `seq` of an event sent at `now`: sorts by time, then by creation order
/// within this process (UUIDv7 is monotonic per process), and is unique.
pub(super) fn event_seq(now: Timestamp) -> String {
    format!("{:016}#{}", now.0.max(0), uuid::Uuid::now_v7().simple())
}

/// The sort key of an event.
pub(super) fn event_sk(seq: &str) -> String {
    format!("{EVENT_PREFIX}{seq}")
}

/// The item of an event; `payload` is its placed payload.
pub(super) fn event_item(pk: &str, event: &EventRecord, payload: &Placed) -> Item {
    let mut item = key(pk, &event_sk(&event.seq));
    item.extend([
        ("name".to_string(), s(event.name.clone())),
        ("sent_at".to_string(), ts(event.sent_at)),
        payload.attribute(),
    ]);
    item
}

/// Decodes an event item; `chunks` holds the chunk items it references.
pub(super) fn decode_event(item: &Item, chunks: &Chunks) -> Result<EventRecord> {
    let sk = req_s(item, "sk")?;
    let seq = sk
        .strip_prefix(EVENT_PREFIX)
        .ok_or_else(|| corrupt(format!("{sk:?} is not an event")))?;
    Ok(EventRecord {
        seq: seq.to_string(),
        name: req_s(item, "name")?.to_string(),
        payload: payload(item, "payload", chunks)?
            .ok_or_else(|| corrupt("event payload is missing"))?,
        sent_at: Timestamp(req_n(item, "sent_at")?),
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
        let item = new_meta_item(&new, &placed[0], "5eed");
        let back = decode_execution(&item, &Chunks::new()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, new_execution(&new, "5eed"));
        assert_eq!(back.seed, "5eed");
        assert_eq!(ttl_seconds(Timestamp(1_000)), 1);
        assert_eq!(ttl_seconds(Timestamp(1_001)), 2);
    }

    #[test]
    fn events_round_trip_and_their_seqs_sort_in_sending_order() {
        let seqs: Vec<String> = [Timestamp(5), Timestamp(5), Timestamp(5), Timestamp(40)]
            .into_iter()
            .map(event_seq)
            .collect();
        let mut sorted = seqs.clone();
        sorted.sort();
        assert_eq!(seqs, sorted);
        assert!(seqs[0] != seqs[1] && seqs[1] != seqs[2]);
        assert!(event_seq(Timestamp(999)) < event_seq(Timestamp(1_000)));
        let ev = EventRecord {
            seq: seqs[3].clone(),
            name: "approved".into(),
            payload: json!({"by": "ops"}),
            sent_at: Timestamp(40),
        };
        let placed = super::super::items::place(vec![("payload", ev.payload.to_string())], 1000);
        let item = event_item("x#a", &ev, &placed[0]);
        assert_eq!(sort_key(&item), Some(event_sk(&ev.seq).as_str()));
        let back = decode_event(&item, &Chunks::new()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, ev);
    }
}
