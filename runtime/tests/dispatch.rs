//! The dispatcher against the SQLite store, with a stand-in invoker (the real
//! invokers — the emulator's process pool, the SDK in process — are tested in
//! their own crates).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use durafn_runtime::clock::{Clock, ManualClock};
use durafn_runtime::dispatch::{
    Dispatcher, DispatcherConfig, InvocationSummary, InvokeError, Invoker, ResumeRequest,
};
use durafn_runtime::model::{ExecutionId, ExecutionStatus, NewExecution, Timestamp};
use durafn_runtime::store::{Outcome, SqliteStore, Store};
use serde_json::json;

/// Finishes every execution it is handed, counting invocations; fails the
/// first `fail_first` invocations of each execution.
struct Finisher {
    store: Arc<dyn Store>,
    clock: ManualClock,
    calls: Mutex<HashMap<String, u32>>,
    fail_first: u32,
}

#[async_trait]
impl Invoker for Finisher {
    async fn invoke(
        &self,
        function: &str,
        request: &ResumeRequest,
    ) -> Result<InvocationSummary, InvokeError> {
        assert_eq!(function, "order");
        let n = {
            let mut calls = self.calls.lock().unwrap();
            let n = calls.entry(request.execution_id.to_string()).or_insert(0);
            *n += 1;
            *n
        };
        if n <= self.fail_first {
            return Err(InvokeError::Failed("process exited with signal 9".into()));
        }
        let outcome = Outcome {
            status: ExecutionStatus::Succeeded,
            output: Some(json!(n)),
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

async fn setup(
    n: usize,
    fail_first: u32,
) -> (
    Arc<dyn Store>,
    ManualClock,
    Arc<Finisher>,
    tempfile::TempDir,
) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path().join("d.db")).unwrap());
    let clock = ManualClock::new(Timestamp(1_000_000));
    for i in 0..n {
        store
            .create_execution(&NewExecution {
                id: ExecutionId::new(format!("e-{i}")).unwrap(),
                function: "order".into(),
                version: "1".into(),
                input: json!(i),
                now: clock.now(),
            })
            .await
            .unwrap();
    }
    let finisher = Arc::new(Finisher {
        store: store.clone(),
        clock: clock.clone(),
        calls: Mutex::new(HashMap::new()),
        fail_first,
    });
    (store, clock, finisher, dir)
}

fn dispatcher(store: &Arc<dyn Store>, clock: &ManualClock, invoker: Arc<Finisher>) -> Dispatcher {
    Dispatcher::new(
        store.clone(),
        Arc::new(clock.clone()),
        invoker,
        DispatcherConfig::default(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_dispatchers_on_one_store_never_dispatch_twice() {
    let (store, clock, finisher, _dir) = setup(200, 0).await;
    let a = dispatcher(&store, &clock, finisher.clone());
    let b = dispatcher(&store, &clock, finisher.clone());
    for _ in 0..3 {
        let (x, y) = tokio::join!(a.tick(), b.tick());
        x.unwrap();
        y.unwrap();
        tokio::join!(a.idle(), b.idle());
    }
    let calls = finisher.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 200, "every execution was invoked");
    assert!(calls.values().all(|n| *n == 1), "none twice: {calls:?}");
    for i in 0..200 {
        let e = store
            .get_execution(&ExecutionId::new(format!("e-{i}")).unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(e.status, ExecutionStatus::Succeeded);
        assert_eq!(e.epoch, 1);
    }
}

#[tokio::test]
async fn a_failed_invocation_is_rescheduled_with_backoff_not_left_to_its_lease() {
    let (store, clock, finisher, _dir) = setup(1, 2).await;
    let d = dispatcher(&store, &clock, finisher.clone());
    let id = ExecutionId::new("e-0").unwrap();

    assert_eq!(d.tick().await.unwrap(), 1);
    d.idle().await;
    let e = store.get_execution(&id).await.unwrap().unwrap();
    assert_eq!(e.status, ExecutionStatus::Suspended);
    assert_eq!(
        e.due_at,
        Some(clock.now().plus(Duration::from_millis(200))),
        "first backoff"
    );

    assert_eq!(d.tick().await.unwrap(), 0, "not due during the backoff");
    clock.advance(Duration::from_millis(200));
    d.tick().await.unwrap();
    d.idle().await;
    let e = store.get_execution(&id).await.unwrap().unwrap();
    assert_eq!(
        e.due_at,
        Some(clock.now().plus(Duration::from_millis(400))),
        "doubled"
    );

    clock.advance(Duration::from_millis(400));
    d.tick().await.unwrap();
    d.idle().await;
    let e = store.get_execution(&id).await.unwrap().unwrap();
    assert_eq!(e.status, ExecutionStatus::Succeeded);
    assert_eq!(e.output, Some(json!(3)));
}

#[tokio::test]
async fn results_are_published_to_subscribers() {
    let (store, clock, finisher, _dir) = setup(1, 0).await;
    let d = dispatcher(&store, &clock, finisher);
    let mut changes = d.handle().subscribe();
    d.tick().await.unwrap();
    let change = changes.recv().await.unwrap();
    assert_eq!(change.id.as_str(), "e-0");
    assert_eq!(change.status, "SUCCEEDED");
}

#[tokio::test]
async fn the_run_loop_stops_on_shutdown_and_wakes_on_demand() {
    let (store, _clock, finisher, _dir) = setup(0, 0).await;
    let clock = durafn_runtime::clock::SystemClock;
    let d = Arc::new(Dispatcher::new(
        store.clone(),
        Arc::new(clock),
        finisher,
        DispatcherConfig::default(),
    ));
    let handle = d.handle();
    let mut changes = handle.subscribe();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let runner = {
        let d = d.clone();
        tokio::spawn(async move {
            d.run(async {
                let _ = stop_rx.await;
            })
            .await
        })
    };
    store
        .create_execution(&NewExecution {
            id: ExecutionId::new("late").unwrap(),
            function: "order".into(),
            version: "1".into(),
            input: json!(null),
            now: clock.now(),
        })
        .await
        .unwrap();
    handle.wake();
    let change = tokio::time::timeout(Duration::from_secs(10), changes.recv())
        .await
        .expect("woken dispatcher ran the new execution")
        .unwrap();
    assert_eq!(change.id.as_str(), "late");
    stop_tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), runner)
        .await
        .unwrap()
        .unwrap();
}
