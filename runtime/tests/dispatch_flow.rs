//! Flow control under the dispatcher — throttle, debounce, batching — in
//! virtual time (ManualClock), against the SQLite store, with two
//! dispatchers sharing it and with a store that fails a fifth of its calls.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use durafn_runtime::clock::{Clock, ManualClock};
use durafn_runtime::dispatch::flow::{Batch, Debounce, FlowControl, InputKey, Throttle};
use durafn_runtime::dispatch::{
    Dispatcher, DispatcherConfig, InvocationSummary, InvokeError, Invoker, ResumeRequest,
};
use durafn_runtime::model::{Execution, ExecutionId, ExecutionStatus, NewExecution, Timestamp};
use durafn_runtime::store::{AttributeQuery, FaultyStore, Outcome, SqliteStore, Store};
use serde_json::{Value, json};

/// Finishes every execution it is handed, recording its input and when.
struct Finisher {
    store: Arc<dyn Store>,
    clock: ManualClock,
    runs: Mutex<Vec<(String, Value, i64)>>,
}

#[async_trait]
impl Invoker for Finisher {
    async fn invoke(
        &self,
        _function: &str,
        request: &ResumeRequest,
    ) -> Result<InvocationSummary, InvokeError> {
        let id = &request.execution_id;
        let e = self
            .store
            .get_execution(id)
            .await
            .map_err(|e| InvokeError::Failed(e.to_string()))?
            .ok_or_else(|| InvokeError::Failed("gone".into()))?;
        self.runs
            .lock()
            .unwrap()
            .push((id.to_string(), e.input.clone(), self.clock.now().0));
        let outcome = Outcome {
            status: ExecutionStatus::Succeeded,
            output: Some(json!("done")),
            error: None,
            expires_at: None,
        };
        self.store
            .finish(id, request.epoch, &outcome, self.clock.now())
            .await
            .map_err(|e| InvokeError::FunctionError(e.to_string()))?;
        Ok(InvocationSummary {
            status: "SUCCEEDED".into(),
            wake_at: None,
        })
    }
}

struct Setup {
    /// The store the dispatchers see (maybe faulty).
    store: Arc<dyn Store>,
    /// The same store without faults, for the test's own reads and writes.
    clean: Arc<dyn Store>,
    clock: ManualClock,
    finisher: Arc<Finisher>,
    dispatchers: Vec<Dispatcher>,
    rounds: usize,
    _dir: tempfile::TempDir,
}

const T0: i64 = 1_000_000;

fn setup(flow: FlowControl, dispatchers: usize, fault_rate: f64) -> Setup {
    setup_with(flow, dispatchers, fault_rate, false)
}

/// With `blobs`, every store is an `OffloadingStore` over a blob folder.
fn setup_with(flow: FlowControl, dispatchers: usize, fault_rate: f64, blobs: bool) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let mut clean: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path().join("d.db")).unwrap());
    if blobs {
        let folder = durafn_runtime::store::blob::DirBlobStore::new(dir.path().join("blobs"));
        clean = Arc::new(durafn_runtime::store::OffloadingStore::new(
            clean,
            Arc::new(folder),
        ));
    }
    let store: Arc<dyn Store> = match fault_rate > 0.0 {
        true => {
            // DURAFN_FLOW_SEED: another fault schedule (default 7).
            let seed = std::env::var("DURAFN_FLOW_SEED")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(7);
            Arc::new(FaultyStore::new(clean.clone(), fault_rate, seed))
        }
        false => clean.clone(),
    };
    let clock = ManualClock::new(Timestamp(T0));
    let finisher = Arc::new(Finisher {
        store: clean.clone(),
        clock: clock.clone(),
        runs: Mutex::new(Vec::new()),
    });
    let mut config = DispatcherConfig::default();
    config.flow = Arc::new(HashMap::from([("f".to_string(), flow)]));
    let dispatchers = (0..dispatchers)
        .map(|_| {
            Dispatcher::new(
                store.clone(),
                Arc::new(clock.clone()),
                finisher.clone(),
                config.clone(),
            )
        })
        .collect();
    Setup {
        store,
        clean,
        clock,
        finisher,
        dispatchers,
        rounds: if fault_rate > 0.0 { 40 } else { 4 },
        _dir: dir,
    }
}

impl Setup {
    async fn start(&self, id: &str, input: Value) {
        self.clean
            .create_execution(&NewExecution {
                id: ExecutionId::new(id).unwrap(),
                function: "f".into(),
                version: "1".into(),
                input,
                now: self.clock.now(),
            })
            .await
            .unwrap();
    }

    /// Every dispatcher scans (a few rounds, so what one round decided is
    /// followed up; many on a faulty store, where most scans of the 16
    /// shards fail somewhere), and their invocations end.
    async fn tick(&self) {
        for _ in 0..self.rounds {
            for d in &self.dispatchers {
                // A faulty store fails some scans: the next round scans again.
                let _ = d.tick().await;
            }
            for d in &self.dispatchers {
                d.idle().await;
            }
        }
    }

    fn advance_to(&self, ms_after_t0: i64) {
        let now = self.clock.now().0;
        let to = T0 + ms_after_t0;
        assert!(to >= now);
        self.clock
            .advance(Duration::from_millis((to - now).unsigned_abs()));
    }

    fn ran(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .finisher
            .runs
            .lock()
            .unwrap()
            .iter()
            .map(|(id, _, _)| id.clone())
            .collect();
        ids.sort();
        ids
    }

    async fn get(&self, id: &str) -> Execution {
        self.clean
            .get_execution(&ExecutionId::new(id).unwrap())
            .await
            .unwrap()
            .unwrap()
    }
}

fn key(k: &str) -> Option<InputKey> {
    InputKey::parse(k)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttle_lets_limit_starts_run_per_period_across_two_dispatchers() {
    let throttle = Throttle {
        limit: 2,
        period: Duration::from_secs(10),
        key: None,
    };
    let s = setup(FlowControl::new(Some(throttle), None, None), 2, 0.0);
    for i in 0..5 {
        s.start(&format!("t-{i}"), json!(i)).await;
    }
    s.tick().await;
    assert_eq!(s.ran().len(), 2, "two in the first period: {:?}", s.ran());
    let mut pending = 0;
    for i in 0..5 {
        if s.get(&format!("t-{i}")).await.status == ExecutionStatus::Pending {
            pending += 1;
        }
    }
    assert_eq!(pending, 3, "the others wait as PENDING (in any order)");
    // Halfway through the period: nothing more.
    s.advance_to(5_000);
    s.tick().await;
    assert_eq!(s.ran().len(), 2);
    // The first two slots free 10 s after their starts.
    s.advance_to(10_001);
    s.tick().await;
    assert_eq!(s.ran().len(), 4, "{:?}", s.ran());
    s.advance_to(20_002);
    s.tick().await;
    assert_eq!(s.ran().len(), 5, "the last one runs: nothing is dropped");
    // At most two starts in any 10-second window.
    let times: Vec<i64> = {
        let mut t: Vec<i64> = s
            .finisher
            .runs
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.2)
            .collect();
        t.sort();
        t
    };
    for w in times.windows(3) {
        assert!(
            w[2] - w[0] > 10_000,
            "three starts within a period: {times:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_throttle_counts_each_key_apart() {
    let throttle = Throttle {
        limit: 1,
        period: Duration::from_secs(60),
        key: key("input.customer"),
    };
    let s = setup(FlowControl::new(Some(throttle), None, None), 1, 0.0);
    s.start("a-1", json!({"customer": "a"})).await;
    s.start("a-2", json!({"customer": "a"})).await;
    s.start("b-1", json!({"customer": "b"})).await;
    s.tick().await;
    // One of customer a's (they are due at the same instant and dispatched
    // at once: either may win the key's one start), and b's.
    let ran = s.ran();
    assert_eq!(ran.len(), 2, "{ran:?}");
    assert!(ran.contains(&"b-1".to_string()), "{ran:?}");
    assert!(
        ran.iter().filter(|r| r.starts_with("a-")).count() == 1,
        "{ran:?}"
    );
    s.advance_to(60_001);
    s.tick().await;
    assert_eq!(s.ran(), ["a-1", "a-2", "b-1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_debounce_runs_only_the_last_start_of_a_key_within_the_period() {
    let debounce = Debounce {
        period: Duration::from_secs(5),
        key: key("input.user"),
    };
    let s = setup(FlowControl::new(None, Some(debounce), None), 2, 0.0);
    s.start("u1-a", json!({"user": 1, "n": 1})).await;
    s.tick().await;
    s.advance_to(1_000);
    s.start("u2-a", json!({"user": 2})).await;
    s.tick().await;
    s.advance_to(2_000);
    s.start("u1-b", json!({"user": 1, "n": 2})).await;
    s.tick().await;
    assert!(s.ran().is_empty(), "each waits its period: {:?}", s.ran());
    // u1-a's wait is over: a later start of its key replaced it.
    s.advance_to(5_001);
    s.tick().await;
    let first = s.get("u1-a").await;
    assert_eq!(first.status, ExecutionStatus::Cancelled);
    let by = s
        .clean
        .find_by_attribute(&AttributeQuery {
            name: "debounced_by".into(),
            value: json!("u1-b"),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(by.ids, [ExecutionId::new("u1-a").unwrap()]);
    assert!(s.ran().is_empty());
    s.advance_to(6_001);
    s.tick().await;
    assert_eq!(s.ran(), ["u2-a"], "user 2 had no later start");
    s.advance_to(7_001);
    s.tick().await;
    assert_eq!(s.ran(), ["u1-b", "u2-a"]);
    // A start after the last one ran waits its own period, and runs.
    s.advance_to(8_000);
    s.start("u1-c", json!({"user": 1, "n": 3})).await;
    s.tick().await;
    assert_eq!(s.ran().len(), 2);
    s.advance_to(13_001);
    s.tick().await;
    assert_eq!(s.ran(), ["u1-b", "u1-c", "u2-a"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_are_batched_by_size_or_time_and_each_lands_in_exactly_one_batch() {
    let batch = Batch {
        max_size: 3,
        timeout: Duration::from_secs(10),
        key: None,
    };
    let s = setup(FlowControl::new(None, None, Some(batch)), 2, 0.0);
    // One at a time, as starts trickle in (at once, members register in
    // any order and a batch may close smaller: see the next test).
    for i in 0..7 {
        s.start(&format!("m-{i}"), json!({"n": i})).await;
        s.clock.advance(Duration::from_millis(10));
        s.tick().await;
    }
    // Two full batches at once; the seventh waits for its timeout.
    let runs = s.finisher.runs.lock().unwrap().clone();
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert!(
        runs.iter()
            .all(|(id, _, _)| id.starts_with("_durafn.batch."))
    );
    assert_eq!(s.get("m-6").await.status, ExecutionStatus::Pending);
    s.advance_to(10_061);
    s.tick().await;
    let runs = s.finisher.runs.lock().unwrap().clone();
    assert_eq!(runs.len(), 3, "the last batch ran at its timeout: {runs:?}");
    assert_batched_once(&s, &runs, 7, 3).await;
    // In order: the oldest members first.
    let first: Vec<&str> = runs[0]
        .1
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(first, ["m-0", "m-1", "m-2"]);
    assert_eq!(runs[0].1[1]["input"], json!({"n": 1}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batching_loses_and_doubles_nothing_on_a_store_failing_a_fifth_of_its_calls() {
    let batch = Batch {
        max_size: 4,
        timeout: Duration::from_secs(2),
        key: key("input.tenant"),
    };
    let s = setup(FlowControl::new(None, None, Some(batch)), 2, 0.2);
    for i in 0..30 {
        let tenant = if i % 3 == 0 { "x" } else { "y" };
        s.start(&format!("m-{i:02}"), json!({"tenant": tenant, "n": i}))
            .await;
        s.clock.advance(Duration::from_millis(100));
        s.tick().await;
    }
    // Let every timeout and every held-up member's lease run out.
    for step in 1..=20 {
        s.advance_to(3_000 + step * 10_000);
        s.tick().await;
    }
    let runs = s.finisher.runs.lock().unwrap().clone();
    assert_batched_once(&s, &runs, 30, 4).await;
    for (_, input, _) in &runs {
        let tenants: Vec<&Value> = input
            .as_array()
            .unwrap()
            .iter()
            .map(|m| &m["input"]["tenant"])
            .collect();
        assert!(
            tenants.windows(2).all(|w| w[0] == w[1]),
            "one tenant per batch: {tenants:?}"
        );
    }
    let _ = &s.store;
}

/// Every member ran in exactly one batch (and never alone), ended
/// `SUCCEEDED` naming it, and no batch is over `max`.
async fn assert_batched_once(s: &Setup, runs: &[(String, Value, i64)], members: usize, max: usize) {
    let mut seen: BTreeMap<String, (String, usize)> = BTreeMap::new();
    for (batch, input, _) in runs {
        assert!(
            batch.starts_with("_durafn.batch."),
            "a member ran alone: {batch}"
        );
        let items = input.as_array().unwrap();
        assert!(!items.is_empty() && items.len() <= max, "{input}");
        for (i, m) in items.iter().enumerate() {
            let id = m["id"].as_str().unwrap().to_string();
            assert!(
                seen.insert(id.clone(), (batch.clone(), i)).is_none(),
                "{id} in two batches"
            );
        }
    }
    assert_eq!(seen.len(), members, "every member in a batch: {seen:?}");
    for (id, (batch, index)) in &seen {
        let e = s.get(id).await;
        assert_eq!(e.status, ExecutionStatus::Succeeded, "{id}: {e:?}");
        assert_eq!(
            e.output,
            Some(json!({"batched_into": batch, "index": index}))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_without_the_key_fails_clearly_and_runs_nothing() {
    let debounce = Debounce {
        period: Duration::from_secs(1),
        key: key("input.user"),
    };
    let s = setup(FlowControl::new(None, Some(debounce), None), 1, 0.0);
    s.start("nokey", json!({"other": 1})).await;
    s.tick().await;
    let e = s.get("nokey").await;
    assert_eq!(e.status, ExecutionStatus::Failed);
    let err = e.error.unwrap();
    assert_eq!(err.error_type, "InvalidFlowKey");
    assert!(err.message.contains("input.user"), "{}", err.message);
    assert!(s.ran().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_large_inputs_gets_them_whole_through_the_blob_store() {
    let batch = Batch {
        max_size: 2,
        timeout: Duration::from_secs(10),
        key: None,
    };
    let s = setup_with(FlowControl::new(None, None, Some(batch)), 1, 0.0, true);
    let pad = "p".repeat(2 << 20);
    for i in 0..2 {
        s.start(&format!("big-{i}"), json!({ "n": i, "pad": pad }))
            .await;
        s.clock.advance(Duration::from_millis(10));
        s.tick().await;
    }
    let runs = s.finisher.runs.lock().unwrap().clone();
    assert_eq!(runs.len(), 1, "{}", runs.len());
    let items = runs[0].1.as_array().unwrap();
    assert_eq!(items.len(), 2);
    for (i, item) in items.iter().enumerate() {
        assert_eq!(item["input"]["n"], json!(i));
        assert_eq!(item["input"]["pad"].as_str().map(str::len), Some(2 << 20));
    }
}
