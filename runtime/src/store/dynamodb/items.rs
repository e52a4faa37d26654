//! Records <-> DynamoDB items, and the splitting of large payloads into chunks.
//!
//! Layout (one table, keys `pk` S / `sk` S; see the module docs of `mod.rs`):
//! - meta item `pk = x#<id>`, `sk = meta`;
//! - operation item `pk = x#<id>`, `sk = op#<op id>`;
//! - event item `pk = x#<id>`, `sk = ev#<seq>`;
//! - chunk item `pk = x#<id>`, `sk = chunk#<fnv64 hex>#<len>#<nnnn>`, attribute
//!   `data` (B): a slice of one payload's JSON text.
//!
//! A payload field (`input`, `output`, `error`, `result`, `payload`) is stored either inline
//! as JSON text in the attribute of its name, or as `<field>_chunks` =
//! `"<fnv64 hex>:<len>:<count>"`. Chunks are content-addressed: a new version of a
//! payload gets new chunk keys, so writing it never touches chunks an older
//! revision (or a racing writer) still references, and a reader checks length
//! and hash after stitching, so it can never assemble two versions into one.

use std::collections::HashMap;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::expr::{n, s};
use crate::error::{Result, StoreError};
use crate::model::{ExecutionId, Timestamp};

/// An item as the SDK sees it.
pub(super) type Item = HashMap<String, AttributeValue>;

/// Chunk items read from a partition, by sort key.
pub(super) type Chunks = HashMap<String, Vec<u8>>;

/// Sort key of an execution's meta item.
pub(super) const META_SK: &str = "meta";
/// Sort-key prefix of operation items.
pub(super) const OP_PREFIX: &str = "op#";
/// Sort-key prefix of event items.
pub(super) const EVENT_PREFIX: &str = "ev#";
/// Sort-key prefix of chunk items.
pub(super) const CHUNK_PREFIX: &str = "chunk#";

/// The most payload bytes an operation item carries inline (the item limit is
/// 400 KB; the rest is headroom for the other attributes).
pub(super) const OP_INLINE_BUDGET: usize = 350_000;
/// The most payload bytes an event item carries inline (less its name).
pub(super) const EVENT_INLINE_BUDGET: usize = 350_000;
/// The most bytes of `input` a meta item carries inline.
pub(super) const META_INPUT_BUDGET: usize = 175_000;
/// The most bytes of `output` + `error` a meta item carries inline.
pub(super) const META_OUTCOME_BUDGET: usize = 175_000;
/// The size of one chunk item's `data`.
pub(super) const CHUNK_BYTES: usize = 350_000;

/// The partition key of an execution.
pub(super) fn pk(id: &ExecutionId) -> String {
    format!("x#{id}")
}

/// The execution id of a partition key.
pub(super) fn id_of_pk(pk: &str) -> Result<ExecutionId> {
    let id = pk
        .strip_prefix("x#")
        .ok_or_else(|| corrupt(format!("partition key {pk:?} is not an execution")))?;
    ExecutionId::new(id)
}

/// The sort key of an operation.
pub(super) fn op_sk(op_id: &str) -> String {
    format!("{OP_PREFIX}{op_id}")
}

/// The `due_shard` value of shard `n`: `s00` .. `s15`.
pub(super) fn shard_key(shard: u32) -> String {
    format!("s{shard:02}")
}

pub(super) fn corrupt(msg: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("corrupt DynamoDB item: {msg}"))
}

/// FNV-1a, 64 bits: stable across processes and Rust versions.
pub(super) fn fnv64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Where a chunked payload's pieces are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ChunkRef {
    hash: u64,
    len: usize,
    count: usize,
}

impl ChunkRef {
    fn of(bytes: &[u8]) -> Self {
        ChunkRef {
            hash: fnv64(bytes),
            len: bytes.len(),
            count: bytes.len().div_ceil(CHUNK_BYTES).max(1),
        }
    }

    fn encode(&self) -> String {
        format!("{:016x}:{}:{}", self.hash, self.len, self.count)
    }

    fn parse(s: &str) -> Result<Self> {
        let mut parts = s.split(':');
        let (Some(h), Some(l), Some(c), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(corrupt(format!("bad chunk reference {s:?}")));
        };
        let bad = |_| corrupt(format!("bad chunk reference {s:?}"));
        Ok(ChunkRef {
            hash: u64::from_str_radix(h, 16).map_err(bad)?,
            len: l
                .parse()
                .map_err(|_| corrupt(format!("bad chunk reference {s:?}")))?,
            count: c
                .parse()
                .map_err(|_| corrupt(format!("bad chunk reference {s:?}")))?,
        })
    }

    /// The sort-key prefix all of this payload's chunks share.
    pub(super) fn prefix(&self) -> String {
        format!("{CHUNK_PREFIX}{:016x}#{}#", self.hash, self.len)
    }

    fn sk(&self, n: usize) -> String {
        format!("{}{n:04}", self.prefix())
    }

    fn assemble(&self, chunks: &Chunks) -> Result<String> {
        let mut bytes = Vec::with_capacity(self.len);
        for i in 0..self.count {
            let sk = self.sk(i);
            let piece = chunks
                .get(&sk)
                .ok_or_else(|| corrupt(format!("chunk {sk} is missing")))?;
            bytes.extend_from_slice(piece);
        }
        if bytes.len() != self.len || fnv64(&bytes) != self.hash {
            return Err(corrupt(format!(
                "chunks under {} do not match their hash",
                self.prefix()
            )));
        }
        String::from_utf8(bytes).map_err(|_| corrupt("chunked payload is not UTF-8"))
    }
}

/// One payload field, serialized and placed: inline or in chunks.
#[derive(Debug)]
pub(super) struct Placed {
    attr: &'static str,
    json: String,
    chunked: Option<ChunkRef>,
}

impl Placed {
    /// The payload field's name (`input`, `result`, ...).
    pub(super) fn field(&self) -> &'static str {
        self.attr
    }

    /// The attribute value to store on the referencing item, under its name.
    pub(super) fn attribute(&self) -> (String, AttributeValue) {
        match &self.chunked {
            None => (self.attr.to_string(), s(self.json.clone())),
            Some(r) => (format!("{}_chunks", self.attr), s(r.encode())),
        }
    }

    /// The name of the attribute this field does NOT use (to REMOVE on updates).
    pub(super) fn other_attribute(&self) -> String {
        match &self.chunked {
            None => format!("{}_chunks", self.attr),
            Some(_) => self.attr.to_string(),
        }
    }

    /// The sort keys of its chunk items (none if inline).
    pub(super) fn chunk_sks(&self) -> Vec<String> {
        self.chunked
            .as_ref()
            .map(|r| (0..r.count).map(|i| r.sk(i)).collect())
            .unwrap_or_default()
    }

    /// The chunk items to write before the referencing item (none if inline).
    pub(super) fn chunk_items(&self, pk: &str) -> Vec<Item> {
        let Some(r) = &self.chunked else {
            return Vec::new();
        };
        self.json
            .as_bytes()
            .chunks(CHUNK_BYTES)
            .enumerate()
            .map(|(i, piece)| {
                HashMap::from([
                    ("pk".to_string(), s(pk)),
                    ("sk".to_string(), s(r.sk(i))),
                    ("data".to_string(), AttributeValue::B(Blob::new(piece))),
                ])
            })
            .collect()
    }
}

/// Serializes a payload field.
pub(super) fn to_json<T: Serialize>(attr: &'static str, v: &T) -> Result<(&'static str, String)> {
    serde_json::to_string(v)
        .map(|json| (attr, json))
        .map_err(|e| StoreError::Invalid(format!("{attr} cannot be serialized: {e}")))
}

/// Places serialized `fields`, chunking the largest of them until the inline
/// ones fit in `budget` bytes together.
pub(super) fn place(fields: Vec<(&'static str, String)>, budget: usize) -> Vec<Placed> {
    let mut placed: Vec<Placed> = fields
        .into_iter()
        .map(|(attr, json)| Placed {
            attr,
            json,
            chunked: None,
        })
        .collect();
    loop {
        let inline: usize = placed
            .iter()
            .filter(|p| p.chunked.is_none())
            .map(|p| p.json.len())
            .sum();
        if inline <= budget {
            return placed;
        }
        let largest = placed
            .iter_mut()
            .filter(|p| p.chunked.is_none())
            .max_by_key(|p| p.json.len());
        match largest {
            Some(p) => p.chunked = Some(ChunkRef::of(p.json.as_bytes())),
            None => return placed,
        }
    }
}

/// The chunk references `item` holds for `attrs` (to fetch before decoding).
pub(super) fn chunk_refs(item: &Item, attrs: &[&str]) -> Result<Vec<ChunkRef>> {
    attrs
        .iter()
        .filter_map(|a| get_s(item, &format!("{a}_chunks")).transpose())
        .map(|r| r.and_then(ChunkRef::parse))
        .collect()
}

/// Collects a chunk item into `chunks`; false if `item` is not a chunk.
pub(super) fn collect_chunk(item: &Item, chunks: &mut Chunks) -> bool {
    let Some(sk) = get_s(item, "sk").ok().flatten() else {
        return false;
    };
    if !sk.starts_with(CHUNK_PREFIX) {
        return false;
    }
    if let Some(AttributeValue::B(b)) = item.get("data") {
        chunks.insert(sk.to_string(), b.as_ref().to_vec());
    }
    true
}

/// Reads payload field `attr` (inline or chunked) as `T`.
pub(super) fn payload<T: DeserializeOwned>(
    item: &Item,
    attr: &str,
    chunks: &Chunks,
) -> Result<Option<T>> {
    let text = if let Some(inline) = get_s(item, attr)? {
        inline.to_string()
    } else if let Some(r) = get_s(item, &format!("{attr}_chunks"))? {
        ChunkRef::parse(r)?.assemble(chunks)?
    } else {
        return Ok(None);
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| corrupt(format!("{attr} is not valid JSON: {e}")))
}

/// A string attribute.
pub(super) fn get_s<'a>(item: &'a Item, attr: &str) -> Result<Option<&'a str>> {
    match item.get(attr) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::S(v)) => Ok(Some(v)),
        Some(other) => Err(corrupt(format!("{attr} is not a string: {other:?}"))),
    }
}

/// A required string attribute.
pub(super) fn req_s<'a>(item: &'a Item, attr: &str) -> Result<&'a str> {
    get_s(item, attr)?.ok_or_else(|| corrupt(format!("{attr} is missing")))
}

/// A number attribute.
pub(super) fn get_n<T: std::str::FromStr>(item: &Item, attr: &str) -> Result<Option<T>> {
    match item.get(attr) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::N(v)) => v
            .parse()
            .map(Some)
            .map_err(|_| corrupt(format!("{attr} = {v:?} is out of range"))),
        Some(other) => Err(corrupt(format!("{attr} is not a number: {other:?}"))),
    }
}

/// A required number attribute.
pub(super) fn req_n<T: std::str::FromStr>(item: &Item, attr: &str) -> Result<T> {
    get_n(item, attr)?.ok_or_else(|| corrupt(format!("{attr} is missing")))
}

/// A timestamp attribute.
pub(super) fn get_ts(item: &Item, attr: &str) -> Result<Option<Timestamp>> {
    Ok(get_n::<i64>(item, attr)?.map(Timestamp))
}

/// A number attribute value of a timestamp.
pub(super) fn ts(t: Timestamp) -> AttributeValue {
    n(t.0)
}

/// Parses an upper-case enum name (statuses, op kinds) through serde.
pub(super) fn parse_enum<T: DeserializeOwned>(item: &Item, attr: &str) -> Result<T> {
    let raw = req_s(item, attr)?;
    serde_json::from_value(Value::String(raw.to_string()))
        .map_err(|_| corrupt(format!("{attr} = {raw:?} is not known")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn small_payloads_stay_inline_and_large_ones_are_chunked() {
        let small = json!({"a": 1});
        let big = json!("b".repeat(1_000_000));
        let fields = vec![("result", small.to_string()), ("error", big.to_string())];
        let placed = place(fields, OP_INLINE_BUDGET);
        assert_eq!(placed[0].attribute().0, "result");
        assert_eq!(placed[1].attribute().0, "error_chunks");
        assert_eq!(placed[1].other_attribute(), "error");
        let items = placed[1].chunk_items("x#a");
        assert_eq!(items.len(), 3);
        let sks: Vec<String> = items
            .iter()
            .filter_map(|it| it["sk"].as_s().ok().cloned())
            .collect();
        assert_eq!(placed[1].chunk_sks(), sks);
        assert!(placed[0].chunk_sks().is_empty());

        let mut chunks = Chunks::new();
        for it in &items {
            assert!(collect_chunk(it, &mut chunks));
        }
        let mut referencing = Item::new();
        let (k, v) = placed[1].attribute();
        referencing.insert(k, v);
        let back: Option<Value> =
            payload(&referencing, "error", &chunks).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, Some(big));
    }

    #[test]
    fn stitching_detects_missing_or_foreign_chunks() {
        let big = json!("c".repeat(800_000));
        let placed = place(vec![("input", big.to_string())], META_INPUT_BUDGET);
        let items = placed[0].chunk_items("x#a");
        let mut chunks = Chunks::new();
        for it in &items {
            collect_chunk(it, &mut chunks);
        }
        let mut item = Item::new();
        let (k, v) = placed[0].attribute();
        item.insert(k, v);
        let first = items[0]["sk"].as_s().cloned().unwrap_or_default();
        let mut tampered = chunks.clone();
        tampered.insert(first.clone(), b"\"x".to_vec());
        assert!(payload::<Value>(&item, "input", &tampered).is_err());
        chunks.remove(&first);
        let err = payload::<Value>(&item, "input", &chunks)
            .err()
            .map(|e| e.to_string());
        assert!(err.unwrap_or_default().contains("missing"));
    }

    #[test]
    fn chunk_refs_round_trip() {
        let r = ChunkRef::of(b"hello");
        assert_eq!(ChunkRef::parse(&r.encode()).ok(), Some(r.clone()));
        assert!(ChunkRef::parse("zz:1").is_err());
        assert!(r.sk(3).starts_with(&r.prefix()));
        assert_eq!(shard_key(7), "s07");
    }
}
