//! Listing executions newest first, across functions or for one, page by page.
//!
//! Two sparse GSIs, created with the table (`table.rs`), hold one entry per meta
//! item, both ranged on `list_key` (S) and projecting `status`:
//! - `recent`: hash `list_bucket` = `b00`..`b15`: every execution;
//! - `list`: hash `fn_bucket` = `<function>#b00`..`<function>#b15`: one function's.
//!
//! `list_key` is `<created_at>#<id>`, the time as 16 hex digits of its
//! big-endian bits with the sign bit flipped, so the index's byte order is
//! (`created_at`, id) order — the order the SQLite store lists in — and every
//! key is unique: a cursor names one exact position. `list_key`, `list_bucket`
//! and `fn_bucket` are written once, at creation, and never change.
//!
//! **Why 16 buckets, constant over time.** A GSI's writes to one partition-key
//! value go to one partition, which takes about 1,000 writes/s; a throttled GSI
//! throttles the base table's writes too. One bucket per index — a constant, or
//! the month of `created_at` — would put every execution started now (and, with
//! `status` projected, each of its status changes: create, claim, suspend,
//! finish) on one key, capping the whole platform (or one busy function) near
//! 300 executions/s. Sixteen buckets, picked by a hash of the id, spread them to
//! about 16,000 index writes/s per index. There is no size limit to run into:
//! the 10 GB item-collection limit only applies to tables with local secondary
//! indexes, which this one has none of, and TTL removes finished executions.
//! Time buckets would also make a listing walk back over empty periods with no
//! natural place to stop; constant buckets never need that.
//!
//! **A page** is a k-way merge: one descending `Query` per bucket (in parallel,
//! page sizes doubling as a bucket is drained), merged by `list_key`. The key
//! range carries `created_after` / `created_before` and the cursor; `status` and
//! `id_contains` are checked on the index entries; the survivors' meta items are
//! then read with strongly consistent `BatchGetItem` (100 keys at a time) and
//! their status checked again, since the index may lag. One execution more
//! than the page is read, to know whether another page follows.
//!
//! Index reads are eventually consistent: an execution created or changed a
//! moment ago may be missing from a page, or filtered by its previous status.
//! What a page returns is always the base item as it is now.

use std::collections::{HashMap, VecDeque};

use aws_sdk_dynamodb::types::KeysAndAttributes;
use tokio::task::JoinSet;

use super::DynamoStore;
use super::expr::{Expr, s};
use super::items::{Item, META_SK, fnv64, id_of_pk, parse_enum, req_s};
use super::records::{META_PAYLOADS, decode_execution, key};
use super::retry::call;
use super::table::{LIST_INDEX, RECENT_INDEX};
use crate::error::{Result, StoreError};
use crate::model::{ExecutionId, ExecutionStatus, Timestamp};
use crate::store::{ExecutionPage, ListFilter};

/// How many buckets each listing index is split into. Changing it changes
/// where existing executions are found: it is part of the table's layout.
pub(super) const LIST_BUCKETS: u64 = 16;
/// The `recent` index's hash attribute.
pub(super) const LIST_BUCKET_ATTR: &str = "list_bucket";
/// The `list` index's hash attribute.
pub(super) const FN_BUCKET_ATTR: &str = "fn_bucket";
/// Both listing indexes' range attribute.
pub(super) const LIST_KEY_ATTR: &str = "list_key";

/// The page size when the filter asks for none.
const DEFAULT_PAGE: usize = 100;
/// The largest page.
const MAX_PAGE: usize = 1000;
/// The largest `Limit` of one index query.
const MAX_QUERY_LIMIT: i32 = 1000;
/// The most keys one `BatchGetItem` may ask for.
const BATCH_GET_MAX: usize = 100;

/// `created_at` as 16 hex digits that sort like the signed number.
pub(super) fn time_key(t: Timestamp) -> String {
    let mut bytes = t.0.to_be_bytes();
    bytes[0] ^= 0x80;
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The range key of both listing indexes.
pub(super) fn list_key(created_at: Timestamp, id: &ExecutionId) -> String {
    format!("{}#{id}", time_key(created_at))
}

/// The listing bucket of an execution: `b00`..`b15`, from a hash of its id.
pub(super) fn list_bucket(id: &ExecutionId) -> String {
    bucket_name(fnv64(id.as_str().as_bytes()) % LIST_BUCKETS)
}

fn bucket_name(n: u64) -> String {
    format!("b{n:02}")
}

/// The `list` index's hash value: the function and the bucket. The bucket is
/// a fixed-length suffix, so distinct functions never share a value.
pub(super) fn fn_bucket(function: &str, bucket: &str) -> String {
    format!("{function}#{bucket}")
}

/// A cursor: `<created_at>:<id>` of the last execution of a page (the same
/// text the SQLite store uses).
fn parse_cursor(cursor: &str) -> Result<(Timestamp, ExecutionId)> {
    let bad = || {
        StoreError::Invalid(format!(
            "bad cursor {cursor:?}: pass the next_cursor of a previous page"
        ))
    };
    let (at, id) = cursor.split_once(':').ok_or_else(bad)?;
    let at = at.parse().map_err(|_| bad())?;
    let id = ExecutionId::new(id).map_err(|_| bad())?;
    Ok((Timestamp(at), id))
}

/// The `list_key` range a page reads: `lo` inclusive, `hi` exclusive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct KeyRange {
    lo: Option<String>,
    hi: Option<String>,
}

impl KeyRange {
    fn of(filter: &ListFilter) -> Result<Self> {
        // A bare time key sorts before every key of that time and after every
        // key of an earlier one.
        let mut hi = filter.created_before.map(time_key);
        if let Some(cursor) = &filter.cursor {
            let (at, id) = parse_cursor(cursor)?;
            let after_cursor = list_key(at, &id);
            if hi.as_ref().is_none_or(|h| after_cursor < *h) {
                hi = Some(after_cursor);
            }
        }
        Ok(KeyRange {
            lo: filter.created_after.map(time_key),
            hi,
        })
    }

    fn is_empty(&self) -> bool {
        matches!((&self.lo, &self.hi), (Some(lo), Some(hi)) if lo >= hi)
    }

    fn contains(&self, key: &str) -> bool {
        self.lo.as_deref().is_none_or(|lo| key >= lo)
            && self.hi.as_deref().is_none_or(|hi| key < hi)
    }

    /// The key condition on bucket `hash` of an index hashed on `hash_attr`.
    /// `BETWEEN` includes its upper end: [`KeyRange::contains`] drops it.
    fn condition(&self, e: &mut Expr, hash_attr: &str, hash: &str) -> String {
        let mut cond = format!("{} = {}", e.name(hash_attr), e.value(s(hash)));
        let k = e.name(LIST_KEY_ATTR);
        match (&self.lo, &self.hi) {
            (Some(lo), Some(hi)) => {
                let (lo, hi) = (e.value(s(lo.as_str())), e.value(s(hi.as_str())));
                cond.push_str(&format!(" AND {k} BETWEEN {lo} AND {hi}"));
            }
            (Some(lo), None) => cond.push_str(&format!(" AND {k} >= {}", e.value(s(lo.as_str())))),
            (None, Some(hi)) => cond.push_str(&format!(" AND {k} < {}", e.value(s(hi.as_str())))),
            (None, None) => {}
        }
        cond
    }
}

/// One index entry.
#[derive(Debug)]
struct Entry {
    key: String,
    pk: String,
    id: ExecutionId,
    /// As the index saw it; `None` if the index does not project it.
    status: Option<ExecutionStatus>,
}

impl Entry {
    fn of(item: &Item) -> Result<Self> {
        let pk = req_s(item, "pk")?.to_string();
        Ok(Entry {
            key: req_s(item, LIST_KEY_ATTR)?.to_string(),
            id: id_of_pk(&pk)?,
            pk,
            status: match item.get("status") {
                Some(_) => Some(parse_enum(item, "status")?),
                None => None,
            },
        })
    }

    /// Whether the entry passes the filters the index can answer.
    fn may_match(&self, status: Option<ExecutionStatus>, id_text: Option<&str>) -> bool {
        let status_ok = match (status, self.status) {
            (Some(want), Some(seen)) => want == seen,
            _ => true,
        };
        status_ok && id_text.is_none_or(|t| self.id.as_str().contains(t))
    }
}

/// One bucket's stream of entries, newest first.
#[derive(Debug)]
struct Bucket {
    hash: String,
    buffered: VecDeque<Entry>,
    start: Option<Item>,
    done: bool,
    limit: i32,
}

/// The merge of every bucket of one index over one key range.
#[derive(Debug)]
struct Merge {
    index: &'static str,
    hash_attr: &'static str,
    range: KeyRange,
    buckets: Vec<Bucket>,
}

impl Merge {
    fn new(filter: &ListFilter, range: KeyRange, limit: usize) -> Self {
        let (index, hash_attr) = match filter.function {
            Some(_) => (LIST_INDEX, FN_BUCKET_ATTR),
            None => (RECENT_INDEX, LIST_BUCKET_ATTR),
        };
        // Each bucket holds about 1/16 of the page; start at twice that and
        // double whenever a bucket runs dry.
        let first = i32::try_from((limit + 1) * 2 / LIST_BUCKETS as usize + 2)
            .unwrap_or(MAX_QUERY_LIMIT)
            .min(MAX_QUERY_LIMIT);
        let buckets = (0..LIST_BUCKETS)
            .map(|n| {
                let bucket = bucket_name(n);
                Bucket {
                    hash: match &filter.function {
                        Some(f) => fn_bucket(f, &bucket),
                        None => bucket,
                    },
                    buffered: VecDeque::new(),
                    start: None,
                    done: false,
                    limit: first,
                }
            })
            .collect();
        Merge {
            index,
            hash_attr,
            range,
            buckets,
        }
    }
}

impl DynamoStore {
    /// [`Store::list_executions`](crate::store::Store::list_executions).
    pub(super) async fn list_page(&self, filter: &ListFilter) -> Result<ExecutionPage> {
        let limit = match filter.limit {
            0 => DEFAULT_PAGE,
            n => n.min(MAX_PAGE),
        };
        let range = KeyRange::of(filter)?;
        if range.is_empty() {
            return Ok(ExecutionPage {
                executions: Vec::new(),
                next_cursor: None,
            });
        }
        let id_text = filter.id_contains.as_deref().filter(|t| !t.is_empty());
        let mut merge = Merge::new(filter, range, limit);
        // Meta items of matching executions, newest first: one more than the
        // page, to know whether another page follows.
        let mut found: Vec<Item> = Vec::new();
        let mut exhausted = false;
        while !exhausted && found.len() <= limit {
            let want = limit + 1 - found.len();
            let mut batch = Vec::with_capacity(want);
            while batch.len() < want {
                match self.next_entry(&mut merge).await? {
                    Some(e) if e.may_match(filter.status, id_text) => batch.push(e),
                    Some(_) => {}
                    None => {
                        exhausted = true;
                        break;
                    }
                }
            }
            let mut metas = self.batch_get_meta(&batch).await?;
            for entry in batch {
                // Missing: expired since the index saw it.
                let Some(item) = metas.remove(&entry.pk) else {
                    continue;
                };
                if let Some(want) = filter.status {
                    if parse_enum::<ExecutionStatus>(&item, "status")? != want {
                        continue;
                    }
                }
                found.push(item);
            }
        }
        let more = found.len() > limit;
        found.truncate(limit);
        let mut executions = Vec::with_capacity(found.len());
        for item in &found {
            let chunks = self
                .chunks_for(req_s(item, "pk")?, item, &META_PAYLOADS)
                .await?;
            executions.push(decode_execution(item, &chunks)?);
        }
        let next_cursor = more
            .then(|| executions.last())
            .flatten()
            .map(|e| format!("{}:{}", e.created_at.0, e.id));
        Ok(ExecutionPage {
            executions,
            next_cursor,
        })
    }

    /// The next entry of the merge (the largest key of all buckets' heads).
    async fn next_entry(&self, merge: &mut Merge) -> Result<Option<Entry>> {
        self.refill(merge).await?;
        let newest = merge
            .buckets
            .iter()
            .enumerate()
            .filter_map(|(i, b)| b.buffered.front().map(|e| (i, &e.key)))
            .max_by(|a, b| a.1.cmp(b.1))
            .map(|(i, _)| i);
        Ok(newest.and_then(|i| merge.buckets[i].buffered.pop_front()))
    }

    /// Queries, in parallel, every bucket that has run dry but is not done,
    /// until each has an entry or is done.
    async fn refill(&self, merge: &mut Merge) -> Result<()> {
        loop {
            let dry: Vec<usize> = (0..merge.buckets.len())
                .filter(|&i| merge.buckets[i].buffered.is_empty() && !merge.buckets[i].done)
                .collect();
            if dry.is_empty() {
                return Ok(());
            }
            let client = self.client().await?;
            let mut tasks = JoinSet::new();
            for i in dry {
                let bucket = &mut merge.buckets[i];
                let mut e = Expr::new();
                let cond = merge.range.condition(&mut e, merge.hash_attr, &bucket.hash);
                let projection = format!(
                    "{}, {}, {}",
                    e.name("pk"),
                    e.name(LIST_KEY_ATTR),
                    e.name("status")
                );
                let req = client
                    .query()
                    .table_name(&self.table)
                    .index_name(merge.index)
                    .key_condition_expression(cond)
                    .projection_expression(projection)
                    .set_expression_attribute_names(e.names())
                    .set_expression_attribute_values(e.values())
                    .scan_index_forward(false)
                    .limit(bucket.limit)
                    .set_exclusive_start_key(bucket.start.take());
                bucket.limit = bucket.limit.saturating_mul(2).min(MAX_QUERY_LIMIT);
                let what = format!("Query {} {} on {}", merge.index, bucket.hash, self.table);
                let policy = self.retry.clone();
                tasks.spawn(async move {
                    let out = call(&policy, &what, || req.clone().send())
                        .await
                        .map_err(|err| err.into_store(&what))?;
                    Ok::<_, StoreError>((i, out.items.unwrap_or_default(), out.last_evaluated_key))
                });
            }
            while let Some(joined) = tasks.join_next().await {
                let (i, items, last) = joined.map_err(|e| {
                    StoreError::Backend(format!("listing query task failed: {e}"))
                })??;
                let bucket = &mut merge.buckets[i];
                for item in &items {
                    let entry = Entry::of(item)?;
                    if merge.range.contains(&entry.key) {
                        bucket.buffered.push_back(entry);
                    }
                }
                match last {
                    Some(k) if !k.is_empty() => bucket.start = Some(k),
                    _ => bucket.done = true,
                }
            }
        }
    }

    /// The meta items of `entries`, strongly consistent, by partition key;
    /// those that no longer exist are absent.
    async fn batch_get_meta(&self, entries: &[Entry]) -> Result<HashMap<String, Item>> {
        let mut found = HashMap::with_capacity(entries.len());
        if entries.is_empty() {
            return Ok(found);
        }
        let client = self.client().await?;
        for group in entries.chunks(BATCH_GET_MAX) {
            let mut keys: Vec<Item> = group.iter().map(|e| key(&e.pk, META_SK)).collect();
            let mut stalled = 0u32;
            while !keys.is_empty() {
                let wanted = KeysAndAttributes::builder()
                    .set_keys(Some(keys))
                    .consistent_read(true)
                    .build()
                    .map_err(|e| {
                        StoreError::Backend(format!("cannot build a BatchGetItem request: {e}"))
                    })?;
                let what = format!(
                    "BatchGetItem {} meta items on {}",
                    wanted.keys.len(),
                    self.table
                );
                let req = client.batch_get_item().request_items(&self.table, wanted);
                let out = call(&self.retry, &what, || req.clone().send())
                    .await
                    .map_err(|err| err.into_store(&what))?;
                let got = out
                    .responses
                    .and_then(|mut r| r.remove(&self.table))
                    .unwrap_or_default();
                let progressed = !got.is_empty();
                for item in got {
                    found.insert(req_s(&item, "pk")?.to_string(), item);
                }
                keys = out
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(&self.table))
                    .map(|k| k.keys)
                    .unwrap_or_default();
                if keys.is_empty() {
                    break;
                }
                // Throttled or over the 16 MB answer size: back off, ask for the rest.
                stalled = if progressed { 0 } else { stalled + 1 };
                if stalled >= self.retry.max_attempts {
                    return Err(StoreError::Transient(format!(
                        "{what}: {} keys stayed unprocessed after {stalled} attempts",
                        keys.len()
                    )));
                }
                tokio::time::sleep(self.retry.backoff(stalled.max(1))).await;
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xid(s: &str) -> ExecutionId {
        ExecutionId::new(s).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn list_keys_sort_by_time_then_id() {
        let times = [i64::MIN, -5, -1, 0, 1, 999, 1_700_000_000_000, i64::MAX];
        let keys: Vec<String> = times.iter().map(|t| time_key(Timestamp(*t))).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        assert!(keys.iter().all(|k| k.len() == 16));
        let t = Timestamp(5);
        assert!(list_key(t, &xid("a")) < list_key(t, &xid("a.")));
        assert!(list_key(t, &xid("a.")) < list_key(t, &xid("b")));
        assert!(list_key(t, &xid("zzz")) < list_key(Timestamp(6), &xid("A")));
    }

    #[test]
    fn ranges_bound_by_time_and_cursor() {
        let filter = ListFilter {
            created_after: Some(Timestamp(10)),
            created_before: Some(Timestamp(20)),
            cursor: Some("15:x-1".into()),
            ..Default::default()
        };
        let r = KeyRange::of(&filter).unwrap_or_else(|e| panic!("{e}"));
        assert!(r.contains(&list_key(Timestamp(10), &xid("a"))));
        assert!(r.contains(&list_key(Timestamp(15), &xid("x-0"))));
        assert!(
            !r.contains(&list_key(Timestamp(15), &xid("x-1"))),
            "the cursor itself"
        );
        assert!(!r.contains(&list_key(Timestamp(15), &xid("x-2"))));
        assert!(!r.contains(&list_key(Timestamp(9), &xid("z"))));
        let window = ListFilter {
            created_after: Some(Timestamp(20)),
            created_before: Some(Timestamp(20)),
            ..Default::default()
        };
        assert!(KeyRange::of(&window).map(|r| r.is_empty()).unwrap_or(false));
        for bad in ["nonsense", "x:a", "5:", "5:a b"] {
            let f = ListFilter {
                cursor: Some(bad.into()),
                ..Default::default()
            };
            assert!(
                matches!(KeyRange::of(&f), Err(StoreError::Invalid(_))),
                "{bad}"
            );
        }
        assert_eq!(
            parse_cursor("7:a:b")
                .map(|(t, id)| (t, id.to_string()))
                .ok(),
            Some((Timestamp(7), "a:b".to_string())),
            "ids may hold ':'"
        );
    }

    #[test]
    fn buckets_are_stable_and_in_range() {
        let b = list_bucket(&xid("o-1"));
        assert_eq!(b, list_bucket(&xid("o-1")));
        assert!(b.len() == 3 && b.starts_with('b'));
        assert_eq!(fn_bucket("order", &b), format!("order#{b}"));
        let distinct: std::collections::HashSet<String> = (0..200)
            .map(|i| list_bucket(&xid(&format!("e-{i}"))))
            .collect();
        assert_eq!(distinct.len(), LIST_BUCKETS as usize);
    }
}
