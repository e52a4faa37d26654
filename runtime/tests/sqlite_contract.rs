//! The store contract suite against the embedded SQLite store.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::sync::Arc;

use durafn_runtime::model::{ExecutionStatus, Timestamp};
use durafn_runtime::store::contract::Fixture;
use durafn_runtime::store::{FaultyStore, Outcome, RetryingStore, SqliteStore, Store};

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(dir.path().join("durafn.db")).expect("open store");
    Fixture::new(Arc::new(store), dir)
}

durafn_runtime::store_contract_tests!(fixture);

/// The same suite through the retrying wrapper over 20% injected faults (each
/// before the call): retries must make every case behave as on a healthy store.
mod through_faults {
    use super::*;

    async fn fixture() -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(dir.path().join("durafn.db")).expect("open store"));
        let faulty = Arc::new(FaultyStore::new(store, 0.2, 7).before_only());
        Fixture::new(Arc::new(RetryingStore::new(faulty)), dir)
    }

    durafn_runtime::store_contract_tests!(fixture);
}

#[tokio::test]
async fn expired_executions_are_purged() {
    let f = fixture().await;
    let store = f.store.clone();
    let id = durafn_runtime::model::ExecutionId::new("p-1").unwrap();
    store
        .create_execution(&durafn_runtime::model::NewExecution {
            id: id.clone(),
            function: "f".into(),
            version: "1".into(),
            input: serde_json::json!(1),
            now: Timestamp(0),
        })
        .await
        .unwrap();
    let c = store
        .claim(&id, Timestamp(0), Timestamp(10))
        .await
        .unwrap()
        .unwrap();
    let outcome = Outcome {
        status: ExecutionStatus::Succeeded,
        output: Some(serde_json::json!(2)),
        error: None,
        expires_at: Some(Timestamp(1_000)),
    };
    let inv =
        durafn_runtime::model::HistoryEntry::Invocation(durafn_runtime::model::InvocationRecord {
            epoch: c.epoch,
            started_at: Timestamp(0),
            ended_at: Some(Timestamp(1)),
            outcome: Some(durafn_runtime::model::InvocationOutcome::Finished),
            status: Some(ExecutionStatus::Succeeded),
            wake_at: None,
            deadline: None,
            process: None,
            error: None,
            expires_at: Some(Timestamp(1_000)),
            usage: None,
            memory_mb: None,
        });
    store.put_history(&id, &inv, 100).await.unwrap();
    store
        .finish(&id, c.epoch, &outcome, Timestamp(1))
        .await
        .unwrap();
    assert_eq!(store.purge_expired(Timestamp(999)).await.unwrap(), 0);
    assert_eq!(store.load_history(&id).await.unwrap().len(), 1);
    assert_eq!(store.purge_expired(Timestamp(1_000)).await.unwrap(), 1);
    assert!(store.load_journal(&id).await.unwrap().is_none());
    assert!(
        store.load_history(&id).await.unwrap().is_empty(),
        "history expires with its execution"
    );
}

#[test]
fn bad_store_urls_are_clear_errors() {
    let err = durafn_runtime::store::open("postgres://x")
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("sqlite://PATH"), "{err}");
    let err = durafn_runtime::store::open("sqlite://")
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("file path"), "{err}");
}

/// A write whose caller goes away while it is about to commit inline does not
/// wedge the writer: it is committed by the writer thread, and later writes go
/// through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_inline_write_neither_wedges_the_writer_nor_is_lost() {
    let f = fixture().await;
    let store = f.store.clone();
    let new = |name: &str| durafn_runtime::model::NewExecution {
        id: durafn_runtime::model::ExecutionId::new(name).unwrap(),
        function: "f".into(),
        version: "1".into(),
        input: serde_json::json!(1),
        now: Timestamp(0),
    };
    let first = new("dropped-1");
    // Polled once (it takes the lead and yields), then dropped.
    tokio::select! {
        biased;
        _ = store.create_execution(&first) => panic!("the write cannot finish in one poll"),
        _ = std::future::ready(()) => {}
    }
    let second = new("after-1");
    let done = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        store.create_execution(&second),
    )
    .await;
    assert!(done.expect("the writer is wedged").is_ok());
    // The dropped write was queued before the second one, and the writer
    // commits in queue order: it is durable by now.
    let found = store.get_execution(&first.id).await.unwrap();
    assert!(found.is_some(), "the dropped write was lost");
}

/// The contract's `create_and_claim` check fails a start that creates and
/// then claims (as a backend without transactions must) while it declares
/// itself atomic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_contract_fails_a_start_that_claims_atomicity_it_lacks() {
    let f = fixture().await;
    let split: durafn_runtime::store::contract::Start = |store, new, lease| {
        Box::pin(async move {
            let created = store.create_execution(&new).await?;
            // The window a racing claimer needs (a network round trip on DynamoDB).
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            let claimed = store.claim(&new.id, new.now, lease).await?;
            Ok((created, claimed))
        })
    };
    let run = tokio::spawn(durafn_runtime::store::contract::start_race(
        f.store.clone(),
        true,
        split,
    ));
    let err = run
        .await
        .expect_err("a non-atomic start must fail the check");
    assert!(err.is_panic());
    // Declared non-atomic, the same start passes: one claimant, never two.
    let f = fixture().await;
    durafn_runtime::store::contract::start_race(f.store.clone(), false, split).await;
}

/// Records which methods reach it.
struct Calls {
    inner: Arc<dyn Store>,
    seen: std::sync::Mutex<Vec<&'static str>>,
}

impl durafn_runtime::store::Wrapper for Calls {
    fn inner(&self) -> &dyn Store {
        &*self.inner
    }
    fn around<'a, T, F>(
        &'a self,
        what: &'static str,
        mut call: F,
    ) -> impl std::future::Future<Output = durafn_runtime::Result<T>> + Send + 'a
    where
        T: Send + 'a,
        F: FnMut() -> durafn_runtime::store::InnerCall<'a, T> + Send + 'a,
    {
        self.seen.lock().unwrap().push(what);
        call()
    }
}

/// The fault-injecting and retrying wrappers pass `create_and_claim` on as
/// itself (so the fault-injected contract run exercises SQLite's atomic
/// version), not as a create followed by a claim.
#[tokio::test]
async fn wrappers_forward_create_and_claim_as_one_call() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path().join("d.db")).unwrap());
    let calls = Arc::new(Calls {
        inner: sqlite,
        seen: Default::default(),
    });
    let faulty = Arc::new(FaultyStore::new(calls.clone(), 0.0, 1));
    let store = RetryingStore::new(faulty);
    assert!(store.atomic_create_and_claim());
    let new = durafn_runtime::model::NewExecution {
        id: durafn_runtime::model::ExecutionId::new("w-1").unwrap(),
        function: "f".into(),
        version: "1".into(),
        input: serde_json::json!(1),
        now: Timestamp(0),
    };
    let (_, claimed) = store.create_and_claim(&new, Timestamp(10)).await.unwrap();
    assert!(claimed.is_some());
    assert_eq!(*calls.seen.lock().unwrap(), ["create_and_claim"]);
}
