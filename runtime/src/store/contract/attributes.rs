//! Contract case for search attributes (`store/attributes.rs`): set,
//! replaced, found newest first through the index, paged, narrowed to a
//! function, typed values kept apart, bad names refused.

use std::sync::Arc;

use serde_json::{Value, json};

use super::{T0, at, created};
use crate::error::StoreError;
use crate::model::{ExecutionId, Timestamp};
use crate::store::{AttributeQuery, SearchAttribute, Store};

fn attr(name: &str, value: Value, function: &str, created_at: Timestamp) -> SearchAttribute {
    SearchAttribute {
        name: name.into(),
        value,
        function: function.into(),
        created_at,
    }
}

async fn find(store: &Arc<dyn Store>, value: Value, function: Option<&str>) -> Vec<String> {
    let q = AttributeQuery {
        name: "customer".into(),
        value,
        function: function.map(String::from),
        limit: 100,
        cursor: None,
    };
    let page = store.find_by_attribute(&q).await.unwrap();
    assert_eq!(page.next_cursor, None);
    page.ids.iter().map(|i| i.as_str().to_string()).collect()
}

/// Attributes are found by value, newest first, and a replaced value moves.
pub async fn search_attributes_are_indexed_replaced_and_paged(store: Arc<dyn Store>) {
    let mut ids: Vec<ExecutionId> = Vec::new();
    for n in ["sa-1", "sa-2", "sa-3", "sa-4"] {
        ids.push(created(&store, n).await);
    }
    let sets = [
        (0, json!(42), "order", at(1)),
        (1, json!(42), "order", at(2)),
        (2, json!(42), "other", at(3)),
        (3, json!("42"), "order", at(4)),
    ];
    for (i, v, f, t) in sets {
        store
            .put_attribute(&ids[i], &attr("customer", v, f, t))
            .await
            .unwrap();
    }
    assert_eq!(
        find(&store, json!(42), None).await,
        ["sa-3", "sa-2", "sa-1"]
    );
    assert_eq!(
        find(&store, json!(42), Some("order")).await,
        ["sa-2", "sa-1"]
    );
    assert_eq!(
        find(&store, json!("42"), None).await,
        ["sa-4"],
        "a string is not a number"
    );
    assert!(find(&store, json!(43), None).await.is_empty());

    // Pages of one, each continuing where the last stopped.
    let mut q = AttributeQuery {
        name: "customer".into(),
        value: json!(42),
        function: None,
        limit: 1,
        cursor: None,
    };
    let mut seen = Vec::new();
    loop {
        let page = store.find_by_attribute(&q).await.unwrap();
        assert!(page.ids.len() <= 1);
        seen.extend(page.ids.iter().map(|i| i.as_str().to_string()));
        match page.next_cursor {
            Some(c) => q.cursor = Some(c),
            None => break,
        }
        assert!(seen.len() <= 3, "the pages end: {seen:?}");
    }
    assert_eq!(seen, ["sa-3", "sa-2", "sa-1"]);

    // A new value replaces the old one, in the index too; setting it again changes nothing.
    for _ in 0..2 {
        store
            .put_attribute(&ids[1], &attr("customer", json!(7), "order", at(2)))
            .await
            .unwrap();
    }
    assert_eq!(find(&store, json!(42), None).await, ["sa-3", "sa-1"]);
    assert_eq!(find(&store, json!(7), None).await, ["sa-2"]);
    // Another name is another attribute.
    store
        .put_attribute(&ids[0], &attr("region", json!("eu"), "order", at(1)))
        .await
        .unwrap();
    assert_eq!(find(&store, json!(42), None).await, ["sa-3", "sa-1"]);

    // The journal is untouched by attributes.
    let j = store.load_journal(&ids[0]).await.unwrap().unwrap();
    assert!(j.operations.is_empty() && j.events.is_empty());
    assert_eq!(j.execution.created_at, T0);

    for bad in [
        attr("bad name", json!(1), "order", T0),
        attr("customer", json!({"a": 1}), "order", T0),
        attr("customer", json!(null), "order", T0),
    ] {
        match store.put_attribute(&ids[0], &bad).await {
            Err(StoreError::Invalid(_)) => {}
            other => panic!("{bad:?} should be refused, got {other:?}"),
        }
    }
}
