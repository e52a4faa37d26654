//! Priority and fairness under the dispatcher, in virtual time (ManualClock),
//! against the SQLite store: the ready queue serves higher priorities first,
//! and at a concurrency limit the freed slot goes by priority, then to the
//! fairness key holding the fewest slots.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use durafn_runtime::clock::{Clock, ManualClock};
use durafn_runtime::dispatch::{
    ConcurrencyLimit, Dispatcher, DispatcherConfig, InvocationSummary, InvokeError, Invoker,
    ResumeRequest,
};
use durafn_runtime::model::{ExecutionId, ExecutionStatus, NewExecution, StartOptions, Timestamp};
use durafn_runtime::store::{Outcome, SqliteStore, Store};
use serde_json::json;

/// Suspends each execution on its first invocation (it then holds its slot
/// until woken) and finishes it on the next; records the order of first
/// invocations. With `gate`, each invocation first waits for a permit.
struct Holder {
    store: Arc<dyn Store>,
    clock: ManualClock,
    calls: Mutex<HashMap<String, u32>>,
    order: Mutex<Vec<String>>,
    gate: Option<tokio::sync::Semaphore>,
}

#[async_trait]
impl Invoker for Holder {
    async fn invoke(
        &self,
        _function: &str,
        request: &ResumeRequest,
    ) -> Result<InvocationSummary, InvokeError> {
        if let Some(gate) = &self.gate {
            gate.acquire().await.unwrap().forget();
        }
        let id = &request.execution_id;
        let n = {
            let mut calls = self.calls.lock().unwrap();
            let n = calls.entry(id.to_string()).or_insert(0);
            *n += 1;
            *n
        };
        let now = self.clock.now();
        let fail = |e: durafn_runtime::StoreError| InvokeError::FunctionError(e.to_string());
        if n == 1 {
            self.order.lock().unwrap().push(id.to_string());
            let e = self.store.get_execution(id).await.map_err(fail)?.unwrap();
            self.store
                .suspend(id, request.epoch, e.wakeups, None, now)
                .await
                .map_err(fail)?;
            return Ok(InvocationSummary {
                status: "SUSPENDED".into(),
                wake_at: None,
            });
        }
        let outcome = Outcome {
            status: ExecutionStatus::Succeeded,
            output: Some(json!(n)),
            error: None,
            expires_at: None,
        };
        self.store
            .finish(id, request.epoch, &outcome, now)
            .await
            .map_err(fail)?;
        Ok(InvocationSummary {
            status: "SUCCEEDED".into(),
            wake_at: None,
        })
    }
}

struct Setup {
    store: Arc<dyn Store>,
    clock: ManualClock,
    holder: Arc<Holder>,
    dispatcher: Dispatcher,
    _dir: tempfile::TempDir,
}

fn setup(config: DispatcherConfig, gated: bool) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path().join("d.db")).unwrap());
    let clock = ManualClock::new(Timestamp(1_000_000));
    let holder = Arc::new(Holder {
        store: store.clone(),
        clock: clock.clone(),
        calls: Mutex::new(HashMap::new()),
        order: Mutex::new(Vec::new()),
        gate: gated.then(|| tokio::sync::Semaphore::new(0)),
    });
    let dispatcher = Dispatcher::new(
        store.clone(),
        Arc::new(clock.clone()),
        holder.clone(),
        config,
    );
    Setup {
        store,
        clock,
        holder,
        dispatcher,
        _dir: dir,
    }
}

/// Creates `name` with a priority and key (one millisecond after the last).
async fn start(s: &Setup, name: &str, priority: u8, key: Option<&str>) -> ExecutionId {
    s.clock.advance(Duration::from_millis(1));
    let id = ExecutionId::new(name).unwrap();
    s.store
        .create_execution(&NewExecution {
            id: id.clone(),
            function: "order".into(),
            version: "1".into(),
            input: json!(name),
            now: s.clock.now(),
        })
        .await
        .unwrap();
    let options = StartOptions {
        priority,
        fairness_key: key.map(str::to_string),
    };
    s.store
        .set_start_options(&id, &options, s.clock.now())
        .await
        .unwrap();
    id
}

async fn round(s: &Setup) {
    s.dispatcher.tick().await.unwrap();
    s.dispatcher.idle().await;
}

fn order(s: &Setup) -> Vec<String> {
    s.holder.order.lock().unwrap().clone()
}

/// Lets `id` finish (it holds its slot until then) and dispatches what follows.
async fn finish(s: &Setup, id: &ExecutionId) {
    s.store.wake(id, s.clock.now()).await.unwrap();
    round(s).await;
    let e = s.store.get_execution(id).await.unwrap().unwrap();
    assert_eq!(e.status, ExecutionStatus::Succeeded, "{id}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_limit_the_freed_slot_goes_by_priority_then_to_the_key_holding_least() {
    let mut config = DispatcherConfig::default();
    config.limits = Arc::new(HashMap::from([(
        "order".to_string(),
        ConcurrencyLimit::new(Some(2), None),
    )]));
    let s = setup(config, false);
    let h = start(&s, "h", 3, None).await;
    let a1 = start(&s, "a-1", 3, Some("a")).await;
    round(&s).await;
    let mut first = order(&s);
    first.sort();
    assert_eq!(
        first,
        ["a-1", "h"],
        "both slots taken (at once, in either order)"
    );
    for (name, key) in [("a-2", "a"), ("a-3", "a"), ("b-1", "b")] {
        start(&s, name, 3, Some(key)).await;
    }
    let hi = start(&s, "hi", 5, Some("a")).await;
    round(&s).await;
    assert_eq!(order(&s).len(), 2, "the rest wait as PENDING");

    // A slot frees: the newest, of the highest priority, goes first.
    finish(&s, &h).await;
    assert_eq!(order(&s)[2..], ["hi"]);
    // Then the same priority: key a holds a slot (a-1), key b none — the
    // newer b-1 goes before the older a-2.
    finish(&s, &hi).await;
    assert_eq!(order(&s)[3..], ["b-1"]);
    // Both keys hold one now; a-1 ends: key a holds none — its oldest goes.
    finish(&s, &a1).await;
    assert_eq!(order(&s)[4..], ["a-2"]);
    finish(&s, &ExecutionId::new("b-1").unwrap()).await;
    assert_eq!(order(&s)[5..], ["a-3"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_workers_take_the_highest_priority_first() {
    let mut config = DispatcherConfig::default();
    config.max_concurrency = 1;
    let s = setup(config, true);
    let handle = s.dispatcher.handle();
    let first = start(&s, "first", 3, None).await;
    handle.dispatch_now_of(first, "order");
    // The one worker is busy with "first": the others queue.
    let queued = [
        ("low", 1),
        ("mid", 3),
        ("top", 5),
        ("mid-2", 3),
        ("high", 4),
    ];
    for (name, p) in queued {
        let id = start(&s, name, p, None).await;
        handle.dispatch_now_with_priority(id, "order", p);
    }
    s.holder.gate.as_ref().unwrap().add_permits(6);
    s.dispatcher.idle().await;
    assert_eq!(order(&s), ["first", "top", "high", "mid", "mid-2", "low"]);
}
