//! `GET /v1/executions?where=...`: executions filtered by their data.
//!
//! `where` holds conditions joined by `;`, each `input.PATH=VALUE` or
//! `output.PATH=VALUE` (`PATH` is dot-separated object keys or array
//! indexes; `VALUE` is JSON — `42`, `true`, `"42"` — or else a bare string),
//! all of which must hold; or `attr.NAME=VALUE`, a search attribute the
//! handler set (`ctx.set_attribute`).
//!
//! With an `attr.` condition (at most one) the store's attribute index
//! finds the candidates (`Store::find_by_attribute`, newest first, narrowed
//! to `function`), each is read and checked against the other conditions
//! and filters. Without one, input/output conditions are not indexed: the
//! listing (narrowed by `function`, `status`, `since`, `until`, `q` as
//! usual, through the store's list index) is read page by page and
//! filtered here. Either way at most [`MAX_SCANNED`] executions are read per
//! request; `next_cursor` continues where the scan stopped and `scanned`
//! says how many were read. See `docs/search.md`.

use durafn_runtime::model::Execution;
use durafn_runtime::store::{AttributeQuery, ListFilter, Store};
use serde_json::Value;

use super::ApiError;

/// The most executions one filtered request reads.
pub const MAX_SCANNED: usize = 5000;

/// Which payload a condition looks into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The execution's input.
    Input,
    /// Its output (null until it succeeds).
    Output,
    /// A search attribute (`path` is its one-element name).
    Attr,
}

/// One `SOURCE.PATH=VALUE` condition.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// Input or output.
    pub source: Source,
    /// The keys (or array indexes) down to the field.
    pub path: Vec<String>,
    /// The value it must equal.
    pub value: Value,
}

/// Parses a `where` parameter.
pub fn parse_where(text: &str) -> Result<Vec<Condition>, ApiError> {
    let bad = |why: String| {
        ApiError::bad_request(
            "InvalidWhere",
            format!(
                "{why}; write conditions like input.customer_id=42;output.ok=true;attr.customer=42"
            ),
        )
    };
    let mut out = Vec::new();
    for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (lhs, rhs) = part
            .split_once('=')
            .ok_or_else(|| bad(format!("{part:?} has no `=`")))?;
        let mut keys = lhs.trim().split('.');
        let source = match keys.next() {
            Some("input") => Source::Input,
            Some("output") => Source::Output,
            Some("attr") => Source::Attr,
            _ => {
                return Err(bad(format!(
                    "{lhs:?} must start with input., output. or attr."
                )));
            }
        };
        let path: Vec<String> = keys.map(str::to_string).collect();
        if path.is_empty() || path.iter().any(String::is_empty) {
            return Err(bad(format!("{lhs:?} names no field")));
        }
        let rhs = rhs.trim();
        let value = serde_json::from_str(rhs).unwrap_or_else(|_| Value::String(rhs.to_string()));
        if source == Source::Attr {
            let name = path.join(".");
            durafn_runtime::store::attributes::validate_attribute_name(&name)
                .map_err(|e| bad(e.to_string()))?;
            durafn_runtime::store::attributes::index_value(&value)
                .map_err(|e| bad(format!("attr.{name}: {e}")))?;
        }
        out.push(Condition {
            source,
            path,
            value,
        });
    }
    if out.is_empty() {
        return Err(bad("the where filter is empty".into()));
    }
    if out.iter().filter(|c| c.source == Source::Attr).count() > 1 {
        return Err(bad("at most one attr. condition per search".into()));
    }
    Ok(out)
}

fn field<'a>(mut v: &'a Value, path: &[String]) -> Option<&'a Value> {
    for key in path {
        v = match v {
            Value::Object(m) => m.get(key)?,
            Value::Array(a) => a.get(key.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(v)
}

/// True if the execution meets every condition.
pub fn matches(e: &Execution, conditions: &[Condition]) -> bool {
    conditions.iter().all(|c| {
        let root = match c.source {
            Source::Input => Some(&e.input),
            Source::Output => e.output.as_ref(),
            // Held by the index the candidates came from.
            Source::Attr => return true,
        };
        root.and_then(|r| field(r, &c.path)) == Some(&c.value)
    })
}

/// A filtered page: the matches (at most `filter.limit`), where to go on,
/// and how many executions were read.
pub struct Found {
    /// The executions that match, newest first.
    pub executions: Vec<Execution>,
    /// Continue the scan from here (`None`: the listing is exhausted).
    pub next_cursor: Option<String>,
    /// How many executions this request read.
    pub scanned: usize,
}

/// Reads the listing page by page until `filter.limit` match, the listing
/// ends, or [`MAX_SCANNED`] were read. Each page asks for no more than the
/// matches still wanted, so no page is cut and the cursor stays exact.
pub async fn search(
    store: &dyn Store,
    filter: ListFilter,
    conditions: &[Condition],
) -> Result<Found, ApiError> {
    match conditions.iter().find(|c| c.source == Source::Attr) {
        Some(attr) => by_attribute(store, filter, attr, conditions).await,
        None => scan(store, filter, conditions).await,
    }
}

/// The listing's own filters, for candidates that did not come through it.
fn listed(e: &Execution, f: &ListFilter) -> bool {
    f.status.is_none_or(|s| e.status == s)
        && f.created_after.is_none_or(|t| e.created_at >= t)
        && f.created_before.is_none_or(|t| e.created_at < t)
        && f.id_contains
            .as_ref()
            .is_none_or(|q| e.id.as_str().contains(q.as_str()))
}

/// The candidates of the attribute index, page by page, each read and
/// checked, until `filter.limit` match, the index ends, or [`MAX_SCANNED`]
/// were read (pages as in [`scan`], so the cursor stays exact).
async fn by_attribute(
    store: &dyn Store,
    filter: ListFilter,
    attr: &Condition,
    conditions: &[Condition],
) -> Result<Found, ApiError> {
    let want = filter.limit.clamp(1, 1000);
    let mut query = AttributeQuery {
        name: attr.path.join("."),
        value: attr.value.clone(),
        function: filter.function.clone(),
        limit: 0,
        cursor: filter.cursor.clone(),
    };
    let mut found = Found {
        executions: Vec::new(),
        next_cursor: filter.cursor.clone(),
        scanned: 0,
    };
    loop {
        let remaining = want - found.executions.len();
        query.limit = remaining.min(MAX_SCANNED - found.scanned).min(100);
        let page = store.find_by_attribute(&query).await?;
        found.scanned += page.ids.len();
        let mut read = Vec::with_capacity(page.ids.len());
        for ids in page.ids.chunks(16) {
            read.extend(
                futures::future::join_all(ids.iter().map(|id| store.get_execution(id))).await,
            );
        }
        for e in read {
            // An index entry whose execution is gone (purged) is skipped.
            if let Some(e) = e? {
                if listed(&e, &filter) && matches(&e, conditions) {
                    found.executions.push(e);
                }
            }
        }
        found.next_cursor = page.next_cursor.clone();
        let done = found.executions.len() >= want || found.scanned >= MAX_SCANNED;
        match page.next_cursor {
            Some(c) if !done => query.cursor = Some(c),
            _ => return Ok(found),
        }
    }
}

async fn scan(
    store: &dyn Store,
    mut filter: ListFilter,
    conditions: &[Condition],
) -> Result<Found, ApiError> {
    let want = filter.limit.clamp(1, 1000);
    let mut found = Found {
        executions: Vec::new(),
        next_cursor: filter.cursor.clone(),
        scanned: 0,
    };
    loop {
        let remaining = want - found.executions.len();
        filter.limit = remaining.min(MAX_SCANNED - found.scanned).min(100);
        let page = store.list_executions(&filter).await?;
        found.scanned += page.executions.len();
        found.executions.extend(
            page.executions
                .into_iter()
                .filter(|e| matches(e, conditions)),
        );
        found.next_cursor = page.next_cursor.clone();
        let done = found.executions.len() >= want || found.scanned >= MAX_SCANNED;
        match page.next_cursor {
            Some(c) if !done => filter.cursor = Some(c),
            _ => return Ok(found),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn exec(input: Value, output: Option<Value>) -> Execution {
        Execution {
            id: durafn_runtime::model::ExecutionId::new("x").unwrap(),
            function: "f".into(),
            version: "$LATEST".into(),
            status: durafn_runtime::model::ExecutionStatus::Succeeded,
            input,
            output,
            error: None,
            epoch: 0,
            wakeups: 0,
            due_at: None,
            created_at: durafn_runtime::model::Timestamp(0),
            updated_at: durafn_runtime::model::Timestamp(0),
            ended_at: None,
            expires_at: None,
            paused: false,
            priority: durafn_runtime::model::DEFAULT_PRIORITY,
            fairness_key: None,
            seed: String::new(),
        }
    }

    #[test]
    fn conditions_parse_json_values_or_strings() {
        let c = parse_where("input.customer_id=42; output.tags.0 = vip;input.ok=true").unwrap();
        assert_eq!(c.len(), 3);
        assert_eq!(
            (c[0].source, c[0].path.clone(), c[0].value.clone()),
            (Source::Input, vec!["customer_id".to_string()], json!(42))
        );
        assert_eq!(
            (c[1].source, c[1].value.clone()),
            (Source::Output, json!("vip"))
        );
        assert_eq!(c[2].value, json!(true));
        let a = parse_where("attr.customer=42;input.x=1").unwrap();
        assert_eq!(
            (a[0].source, a[0].path.clone()),
            (Source::Attr, vec!["customer".to_string()])
        );
        for bad in [
            "",
            "nonsense",
            "customer=1",
            "input=1",
            "input.a",
            "input..a=1",
            "attr.a b=1",
            "attr.c=[1]",
            "attr.a=1;attr.b=2",
        ] {
            assert!(parse_where(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_condition_must_hold_by_json_equality() {
        let e = exec(
            json!({"customer_id": 42, "items": [{"sku": "a"}]}),
            Some(json!({"ok": true})),
        );
        let m = |w: &str| matches(&e, &parse_where(w).unwrap());
        assert!(m("input.customer_id=42"));
        assert!(!m("input.customer_id=\"42\""), "a number is not a string");
        assert!(m("input.items.0.sku=a;output.ok=true"));
        assert!(!m("input.items.0.sku=a;output.ok=false"));
        assert!(!m("input.missing=1"));
        assert!(!matches(
            &exec(json!({}), None),
            &parse_where("output.ok=true").unwrap()
        ));
    }
}
