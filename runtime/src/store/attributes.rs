//! Search attributes: values a handler sets on its execution
//! (`ctx.set_attribute("customer", 42)`) and that executions can be found by
//! (`GET /v1/executions?where=attr.customer=42`), through an index each
//! backend keeps ([`super::Store::put_attribute`],
//! [`super::Store::find_by_attribute`]).
//!
//! - SQLite: a table `attributes` keyed by `(execution_id, name)`, indexed
//!   by `(name, value, created_at, execution_id)`; a row is deleted with its
//!   execution.
//! - DynamoDB: an item per attribute in the execution's partition
//!   (`sk = a#<name>`, its current value) and an index item per value
//!   (`pk = attr#<name>=<value>`, `sk = <created_at>#<id>`), found with one
//!   `Query` newest first. Setting writes the execution's item (returning
//!   the value it replaces), puts the new index item and deletes the old one:
//!   single-item writes only, no GSI, so tables created before work and
//!   ScyllaDB Alternator does too.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Result, StoreError};
use crate::model::{ExecutionId, Timestamp};

/// The longest attribute name (bytes).
pub const MAX_ATTRIBUTE_NAME: usize = 64;
/// The longest attribute value, as JSON (bytes).
pub const MAX_ATTRIBUTE_VALUE: usize = 256;

/// One search attribute of an execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchAttribute {
    /// Its name (`[A-Za-z0-9_-]`, at most [`MAX_ATTRIBUTE_NAME`] bytes).
    pub name: String,
    /// Its value: a string, number or boolean.
    pub value: Value,
    /// The execution's function (so a search can be narrowed to one).
    pub function: String,
    /// The execution's creation time (the index's order: newest first).
    pub created_at: Timestamp,
}

/// A search by one attribute's value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AttributeQuery {
    /// The attribute's name.
    pub name: String,
    /// The value it must have (JSON equality).
    pub value: Value,
    /// Only executions of this function.
    pub function: Option<String>,
    /// Page size (at most 1000; 0 means 100).
    pub limit: usize,
    /// Where the previous page stopped.
    pub cursor: Option<String>,
}

/// One page of a search: execution ids, newest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AttributePage {
    /// The executions whose attribute has the value.
    pub ids: Vec<ExecutionId>,
    /// Pass this as `cursor` for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// Checks a name.
pub fn validate_attribute_name(name: &str) -> Result<()> {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-');
    if name.is_empty() || name.len() > MAX_ATTRIBUTE_NAME || !name.chars().all(ok) {
        return Err(StoreError::Invalid(format!(
            "search attribute name {name:?} is not valid: use 1-{MAX_ATTRIBUTE_NAME} letters, digits, '_' or '-'"
        )));
    }
    Ok(())
}

/// The value as the index keeps it (compact JSON), after checking it.
pub fn index_value(value: &Value) -> Result<String> {
    if !matches!(value, Value::String(_) | Value::Number(_) | Value::Bool(_)) {
        return Err(StoreError::Invalid(format!(
            "a search attribute is a string, number or boolean, not {value}"
        )));
    }
    let text = value.to_string();
    if text.len() > MAX_ATTRIBUTE_VALUE {
        return Err(StoreError::Invalid(format!(
            "a search attribute value is at most {MAX_ATTRIBUTE_VALUE} bytes as JSON, not {}",
            text.len()
        )));
    }
    Ok(text)
}

/// Checks an attribute before it is written; answers its index value.
pub(crate) fn validate(attr: &SearchAttribute) -> Result<String> {
    validate_attribute_name(&attr.name)?;
    index_value(&attr.value)
}

/// A page cursor: `<created_at>#<execution id>` of the last entry.
pub(crate) fn cursor(created_at: Timestamp, id: &str) -> String {
    format!("{:016}#{id}", created_at.0.max(0))
}

/// Reads a cursor back (`None`: not one of ours).
pub(crate) fn parse_cursor(c: &str) -> Option<(i64, String)> {
    let (t, id) = c.split_once('#')?;
    Some((t.parse().ok()?, id.to_string()))
}

/// The page size a query asks for.
pub(crate) fn page_size(limit: usize) -> usize {
    if limit == 0 { 100 } else { limit.min(1000) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_and_values_are_checked() {
        assert!(validate_attribute_name("customer_id-2").is_ok());
        for bad in ["", "a b", "a.b", "é", &"x".repeat(65)] {
            assert!(validate_attribute_name(bad).is_err(), "{bad}");
        }
        assert_eq!(index_value(&json!(42)).unwrap(), "42");
        assert_eq!(index_value(&json!("42")).unwrap(), "\"42\"");
        for bad in [
            json!(null),
            json!([1]),
            json!({"a": 1}),
            json!("x".repeat(300)),
        ] {
            assert!(index_value(&bad).is_err(), "{bad}");
        }
        let c = cursor(Timestamp(12), "a#b");
        assert_eq!(parse_cursor(&c), Some((12, "a#b".to_string())));
        assert_eq!(parse_cursor("nope"), None);
    }
}
