//! A small builder for DynamoDB expressions.
//!
//! Many of the store's attribute names are DynamoDB reserved words (`status`,
//! `function`, `name`, `input`, ...), so every attribute is referenced through a
//! `#name` placeholder and every value through a `:vN` placeholder. Only the
//! placeholders an expression uses are sent (DynamoDB rejects unused ones).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

/// A string attribute value.
pub(super) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

/// A number attribute value.
pub(super) fn n(v: impl std::fmt::Display) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// Placeholders plus the SET / REMOVE clauses of an update expression.
#[derive(Debug, Default)]
pub(super) struct Expr {
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
    sets: Vec<String>,
    removes: Vec<String>,
}

impl Expr {
    pub(super) fn new() -> Self {
        Self::default()
    }

    /// The placeholder of attribute `attr` (a plain `[A-Za-z0-9_]` name).
    pub(super) fn name(&mut self, attr: &str) -> String {
        let placeholder = format!("#{attr}");
        self.names
            .entry(placeholder.clone())
            .or_insert_with(|| attr.to_string());
        placeholder
    }

    /// A fresh placeholder bound to `value`.
    pub(super) fn value(&mut self, value: AttributeValue) -> String {
        let placeholder = format!(":v{}", self.values.len());
        self.values.insert(placeholder.clone(), value);
        placeholder
    }

    /// `SET attr = value`.
    pub(super) fn set(&mut self, attr: &str, value: AttributeValue) {
        let (name, value) = (self.name(attr), self.value(value));
        self.sets.push(format!("{name} = {value}"));
    }

    /// `SET attr = attr + by` (a counter).
    pub(super) fn add(&mut self, attr: &str, by: i64) {
        let (name, value) = (self.name(attr), self.value(n(by)));
        self.sets.push(format!("{name} = {name} + {value}"));
    }

    /// `REMOVE attr`.
    pub(super) fn remove(&mut self, attr: &str) {
        let name = self.name(attr);
        self.removes.push(name);
    }

    /// `SET attr = value` for `Some`, `REMOVE attr` for `None`.
    pub(super) fn set_or_remove(&mut self, attr: &str, value: Option<AttributeValue>) {
        match value {
            Some(v) => self.set(attr, v),
            None => self.remove(attr),
        }
    }

    /// The update expression of the SET and REMOVE clauses so far.
    pub(super) fn update_expression(&self) -> String {
        let mut out = String::new();
        if !self.sets.is_empty() {
            out.push_str("SET ");
            out.push_str(&self.sets.join(", "));
        }
        if !self.removes.is_empty() {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str("REMOVE ");
            out.push_str(&self.removes.join(", "));
        }
        out
    }

    /// The `ExpressionAttributeNames` to send.
    pub(super) fn names(&self) -> Option<HashMap<String, String>> {
        (!self.names.is_empty()).then(|| self.names.clone())
    }

    /// The `ExpressionAttributeValues` to send.
    pub(super) fn values(&self) -> Option<HashMap<String, AttributeValue>> {
        (!self.values.is_empty()).then(|| self.values.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_set_and_remove_with_placeholders() {
        let mut e = Expr::new();
        e.set("status", s("RUNNING"));
        e.add("epoch", 1);
        e.remove("due_at");
        let cond = format!("{} = {}", e.name("status"), e.value(s("PENDING")));
        assert_eq!(
            e.update_expression(),
            "SET #status = :v0, #epoch = #epoch + :v1 REMOVE #due_at"
        );
        assert_eq!(cond, "#status = :v2");
        assert_eq!(e.names().map(|m| m.len()), Some(3));
        assert_eq!(e.values().map(|m| m.len()), Some(3));
        assert!(Expr::new().names().is_none());
    }
}
