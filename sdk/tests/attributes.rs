//! `ctx.set_attribute`: indexed, found by value, and not written again when
//! the handler replays.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use durafn::prelude::*;
use durafn::testing::TestRuntime;
use durafn_runtime::store::{AttributeQuery, InnerCall, SqliteStore, Store, Wrapper};
use serde_json::{Value, json};

/// Counts the attribute writes that reach the store.
struct CountAttributeWrites {
    inner: Arc<dyn Store>,
    writes: Arc<AtomicU32>,
}

impl Wrapper for CountAttributeWrites {
    fn inner(&self) -> &dyn Store {
        self.inner.as_ref()
    }

    fn around<'a, T, F>(
        &'a self,
        what: &'static str,
        mut call: F,
    ) -> impl Future<Output = durafn_runtime::Result<T>> + Send + 'a
    where
        T: Send + 'a,
        F: FnMut() -> InnerCall<'a, T> + Send + 'a,
    {
        if what == "put_attribute" {
            self.writes.fetch_add(1, Ordering::SeqCst);
        }
        call()
    }
}

#[tokio::test]
async fn attributes_are_found_by_value_and_not_rewritten_on_replay() {
    let dir = tempfile::tempdir().unwrap();
    let writes = Arc::new(AtomicU32::new(0));
    let store: Arc<dyn Store> = Arc::new(CountAttributeWrites {
        inner: Arc::new(SqliteStore::open(dir.path().join("t.db")).unwrap()),
        writes: writes.clone(),
    });
    let h = durafn::handler(|ctx: DurableContext, input: Value| async move {
        ctx.set_attribute("customer", &input["customer"]).await?;
        ctx.sleep("wait", Duration::from_secs(60)).await?;
        ctx.set_attribute("stage", "shipped").await?;
        Ok(input["customer"].clone())
    });
    let rt = TestRuntime::with_store(store.clone());
    let exec = rt.start(h, json!({"customer": 42})).await.unwrap();
    exec.run_until_settled().await.unwrap();
    assert_eq!(exec.status().await.unwrap(), Status::Succeeded);
    assert_eq!(
        writes.load(Ordering::SeqCst),
        2,
        "two attributes, each written once: the replay after the sleep writes none"
    );
    let find = |name: &str, value: Value| AttributeQuery {
        name: name.into(),
        value,
        function: None,
        limit: 10,
        cursor: None,
    };
    let page = store
        .find_by_attribute(&find("customer", json!(42)))
        .await
        .unwrap();
    assert_eq!(page.ids, vec![exec.id().clone()]);
    let page = store
        .find_by_attribute(&find("stage", json!("shipped")))
        .await
        .unwrap();
    assert_eq!(page.ids, vec![exec.id().clone()]);
    // Recorded as steps, visible in the history.
    let names: Vec<String> = exec
        .operations()
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.name)
        .collect();
    assert_eq!(
        names,
        ["set_attribute:customer", "wait", "set_attribute:stage"]
    );
}

#[tokio::test]
async fn a_bad_attribute_fails_at_once_with_invalid_argument() {
    let h = durafn::handler(|ctx: DurableContext, _: Value| async move {
        match ctx.set_attribute("customer", json!({"nested": 1})).await {
            Err(DurableError::Invalid(m)) => {
                assert!(m.contains("string, number or boolean"), "{m}")
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
        match ctx.set_attribute("not ok", 1).await {
            Err(DurableError::Invalid(_)) => {}
            other => panic!("expected Invalid, got {other:?}"),
        }
        Ok(0)
    });
    let rt = TestRuntime::new();
    let exec = rt.start(h, json!(null)).await.unwrap();
    exec.run_until_settled().await.unwrap();
    assert_eq!(exec.status().await.unwrap(), Status::Succeeded);
    assert!(
        exec.operations().await.unwrap().is_empty(),
        "nothing recorded"
    );
}
