//! `GET /v1/executions?where=...`: executions filtered by their data.
//!
//! `where` holds conditions joined by `;`, each `input.PATH=VALUE` or
//! `output.PATH=VALUE` (`PATH` is dot-separated object keys or array
//! indexes; `VALUE` is JSON — `42`, `true`, `"42"` — or else a bare string),
//! all of which must hold. This is not indexed: the listing (narrowed by
//! `function`, `status`, `since`, `until`, `q` as usual, through the store's
//! list index) is read page by page and filtered here, at most
//! [`MAX_SCANNED`] executions per request; `next_cursor` continues where the
//! scan stopped and `scanned` says how many were read.

use durafn_runtime::model::Execution;
use durafn_runtime::store::{ListFilter, Store};
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
            format!("{why}; write conditions like input.customer_id=42;output.ok=true"),
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
            _ => return Err(bad(format!("{lhs:?} must start with input. or output."))),
        };
        let path: Vec<String> = keys.map(str::to_string).collect();
        if path.is_empty() || path.iter().any(String::is_empty) {
            return Err(bad(format!("{lhs:?} names no field")));
        }
        let rhs = rhs.trim();
        let value = serde_json::from_str(rhs).unwrap_or_else(|_| Value::String(rhs.to_string()));
        out.push(Condition {
            source,
            path,
            value,
        });
    }
    if out.is_empty() {
        return Err(bad("the where filter is empty".into()));
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
        for bad in ["", "customer=1", "input=1", "input.a", "input..a=1"] {
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
