//! Paused executions and paused functions under the dispatcher, in virtual
//! time (ManualClock), against the SQLite store.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use durafn_runtime::clock::{Clock, ManualClock};
use durafn_runtime::dispatch::pause::{REFRESH, pause_function, unpause_function};
use durafn_runtime::dispatch::{
    Dispatcher, DispatcherConfig, InvocationSummary, InvokeError, Invoker, ResumeRequest,
};
use durafn_runtime::model::{ExecutionId, ExecutionStatus, NewExecution, Timestamp};
use durafn_runtime::store::{Outcome, SqliteStore, Store};
use serde_json::json;

/// Finishes every execution it is handed, counting invocations.
struct Finisher {
    store: Arc<dyn Store>,
    clock: ManualClock,
    calls: Mutex<HashMap<String, u32>>,
}

#[async_trait]
impl Invoker for Finisher {
    async fn invoke(
        &self,
        _function: &str,
        request: &ResumeRequest,
    ) -> Result<InvocationSummary, InvokeError> {
        *self
            .calls
            .lock()
            .unwrap()
            .entry(request.execution_id.to_string())
            .or_insert(0) += 1;
        let outcome = Outcome {
            status: ExecutionStatus::Succeeded,
            output: Some(json!(true)),
            error: None,
            expires_at: None,
        };
        self.store
            .finish(
                &request.execution_id,
                request.epoch,
                &outcome,
                self.clock.now(),
            )
            .await
            .map_err(|e| InvokeError::FunctionError(e.to_string()))?;
        Ok(InvocationSummary {
            status: "SUCCEEDED".into(),
            wake_at: None,
        })
    }
}

struct Setup {
    store: Arc<dyn Store>,
    clock: ManualClock,
    finisher: Arc<Finisher>,
    dispatcher: Dispatcher,
    _dir: tempfile::TempDir,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path().join("d.db")).unwrap());
    let clock = ManualClock::new(Timestamp(1_000_000));
    let finisher = Arc::new(Finisher {
        store: store.clone(),
        clock: clock.clone(),
        calls: Mutex::new(HashMap::new()),
    });
    let dispatcher = Dispatcher::new(
        store.clone(),
        Arc::new(clock.clone()),
        finisher.clone(),
        DispatcherConfig::default(),
    );
    Setup {
        store,
        clock,
        finisher,
        dispatcher,
        _dir: dir,
    }
}

async fn start(s: &Setup, name: &str, function: &str) -> ExecutionId {
    let id = ExecutionId::new(name).unwrap();
    s.store
        .create_execution(&NewExecution {
            id: id.clone(),
            function: function.into(),
            version: "1".into(),
            input: json!(name),
            now: s.clock.now(),
        })
        .await
        .unwrap();
    id
}

async fn round(s: &Setup) {
    s.dispatcher.tick().await.unwrap();
    s.dispatcher.idle().await;
}

fn calls(s: &Setup, name: &str) -> u32 {
    s.finisher
        .calls
        .lock()
        .unwrap()
        .get(name)
        .copied()
        .unwrap_or(0)
}

async fn status(s: &Setup, id: &ExecutionId) -> (ExecutionStatus, bool) {
    let e = s.store.get_execution(id).await.unwrap().unwrap();
    (e.status, e.paused)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_execution_is_not_dispatched_and_catches_up_on_unpause() {
    let s = setup();
    let a = start(&s, "a", "order").await;
    let b = start(&s, "b", "order").await;
    s.store.set_paused(&b, true, s.clock.now()).await.unwrap();
    round(&s).await;
    assert_eq!(calls(&s, "a"), 1);
    assert_eq!(calls(&s, "b"), 0, "a paused execution is not dispatched");
    assert_eq!(status(&s, &b).await, (ExecutionStatus::Pending, true));
    // Even asked for by id, and however long it waits.
    s.dispatcher.handle().dispatch_now(b.clone());
    s.clock.advance(std::time::Duration::from_secs(3600));
    round(&s).await;
    assert_eq!(calls(&s, "b"), 0);
    s.store
        .send_event(&b, "go", &json!(1), s.clock.now())
        .await
        .unwrap();
    round(&s).await;
    assert_eq!(calls(&s, "b"), 0, "a signal does not unpause it");

    s.store.set_paused(&b, false, s.clock.now()).await.unwrap();
    round(&s).await;
    assert_eq!(calls(&s, "b"), 1);
    assert_eq!(status(&s, &b).await, (ExecutionStatus::Succeeded, false));
    assert_eq!(status(&s, &a).await, (ExecutionStatus::Succeeded, false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_function_parks_its_executions_until_it_is_unpaused() {
    let s = setup();
    pause_function(s.store.as_ref(), "order", s.clock.now())
        .await
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(start(&s, &format!("o-{i}"), "order").await);
    }
    let other = start(&s, "other-1", "approval").await;
    round(&s).await;
    assert_eq!(calls(&s, "other-1"), 1, "other functions run");
    for id in &ids {
        assert_eq!(calls(&s, id.as_str()), 0);
        assert_eq!(
            status(&s, id).await,
            (ExecutionStatus::Pending, true),
            "parked"
        );
    }
    // Parked executions leave the due index: scans do not see them again.
    for shard in 0..16 {
        let due = s
            .store
            .due(shard, Timestamp(i64::MAX / 2), 100)
            .await
            .unwrap();
        assert!(due.iter().all(|d| !ids.contains(&d.id)), "{due:?}");
    }
    // New starts wait too.
    let late = start(&s, "o-late", "order").await;
    s.dispatcher.handle().dispatch_now_of(late.clone(), "order");
    round(&s).await;
    assert_eq!(calls(&s, "o-late"), 0);

    let n = unpause_function(s.store.as_ref(), "order", s.clock.now())
        .await
        .unwrap();
    assert_eq!(n, 6);
    // This dispatcher's copy of the paused functions is at most REFRESH old.
    s.clock.advance(REFRESH);
    round(&s).await;
    for id in ids.iter().chain([&late]) {
        assert_eq!(calls(&s, id.as_str()), 1, "{id}");
        assert_eq!(status(&s, id).await, (ExecutionStatus::Succeeded, false));
    }
    assert_eq!(status(&s, &other).await.0, ExecutionStatus::Succeeded);
}
