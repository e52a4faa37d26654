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

/// Invokes through a gate: each invocation reports that it started, then
/// waits for a permit from the test. With `suspend_first`, the first
/// invocation of an execution suspends (waiting on nothing: only a signal
/// makes it due again); every other invocation finishes it.
struct Gated {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    suspend_first: bool,
    calls: Mutex<Vec<String>>,
    running: std::sync::atomic::AtomicUsize,
    most_running: std::sync::atomic::AtomicUsize,
    started: tokio::sync::mpsc::UnboundedSender<String>,
    release: tokio::sync::Semaphore,
}

#[async_trait]
impl Invoker for Gated {
    async fn invoke(
        &self,
        _function: &str,
        request: &ResumeRequest,
    ) -> Result<InvocationSummary, InvokeError> {
        use std::sync::atomic::Ordering::SeqCst;
        let id = &request.execution_id;
        let claimed = self.store.get_execution(id).await.unwrap().unwrap();
        let n = {
            let mut calls = self.calls.lock().unwrap();
            calls.push(id.to_string());
            calls.iter().filter(|c| *c == id.as_str()).count()
        };
        let running = self.running.fetch_add(1, SeqCst) + 1;
        self.most_running.fetch_max(running, SeqCst);
        self.started.send(id.to_string()).unwrap();
        self.release.acquire().await.unwrap().forget();
        self.running.fetch_sub(1, SeqCst);
        let now = self.clock.now();
        if self.suspend_first && n == 1 {
            self.store
                .suspend(id, request.epoch, claimed.wakeups, None, now)
                .await
                .unwrap();
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
            .unwrap();
        Ok(InvocationSummary {
            status: "SUCCEEDED".into(),
            wake_at: None,
        })
    }
}

fn gated(
    store: &Arc<dyn Store>,
    clock: &ManualClock,
    suspend_first: bool,
) -> (Arc<Gated>, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let invoker = Arc::new(Gated {
        store: store.clone(),
        clock: Arc::new(clock.clone()),
        suspend_first,
        calls: Mutex::new(Vec::new()),
        running: Default::default(),
        most_running: Default::default(),
        started: tx,
        release: tokio::sync::Semaphore::new(0),
    });
    (invoker, rx)
}

async fn next_change(
    changes: &mut tokio::sync::broadcast::Receiver<durafn_runtime::dispatch::ExecutionChanged>,
) -> (String, String) {
    let c = tokio::time::timeout(Duration::from_secs(30), changes.recv())
        .await
        .expect("the dispatcher reported an invocation")
        .unwrap();
    (c.id.to_string(), c.status)
}

async fn next_start(started: &mut tokio::sync::mpsc::UnboundedReceiver<String>) -> String {
    tokio::time::timeout(Duration::from_secs(30), started.recv())
        .await
        .expect("an invocation started")
        .unwrap()
}

async fn status_of(store: &Arc<dyn Store>, id: &str) -> ExecutionStatus {
    store
        .get_execution(&ExecutionId::new(id).unwrap())
        .await
        .unwrap()
        .unwrap()
        .status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dispatch_now_runs_that_execution_without_a_scan() {
    let (store, clock, finisher, _dir) = setup(3, 0).await;
    // No run loop and no tick: nothing scans the due index.
    let d = dispatcher(&store, &clock, finisher.clone());
    let handle = d.handle();
    let mut changes = handle.subscribe();
    handle.dispatch_now(ExecutionId::new("e-1").unwrap());
    assert_eq!(
        next_change(&mut changes).await,
        ("e-1".to_string(), "SUCCEEDED".to_string())
    );
    d.idle().await;
    let calls = finisher.calls.lock().unwrap().clone();
    assert_eq!(calls, HashMap::from([("e-1".to_string(), 1)]));
    assert_eq!(status_of(&store, "e-0").await, ExecutionStatus::Pending);
    assert_eq!(status_of(&store, "e-2").await, ExecutionStatus::Pending);

    // Asking again for an execution that has ended claims nothing.
    handle.dispatch_now(ExecutionId::new("e-1").unwrap());
    d.idle().await;
    assert_eq!(finisher.calls.lock().unwrap()["e-1"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_during_an_invocation_runs_the_execution_again_when_it_ends() {
    let (store, clock, _finisher, _dir) = setup(1, 0).await;
    let (invoker, mut started) = gated(&store, &clock, true);
    let d = Dispatcher::new(
        store.clone(),
        Arc::new(clock.clone()),
        invoker.clone(),
        DispatcherConfig::default(),
    );
    let handle = d.handle();
    let mut changes = handle.subscribe();
    let id = ExecutionId::new("e-0").unwrap();

    handle.dispatch_now(id.clone());
    assert_eq!(next_start(&mut started).await, "e-0");
    // An event arrives while the first invocation runs: the store counts the
    // wake-up, and the API asks for a dispatch of an execution in flight.
    assert!(store.wake(&id, clock.now()).await.unwrap());
    handle.dispatch_now(id.clone());
    invoker.release.add_permits(1);
    assert_eq!(next_change(&mut changes).await.1, "SUSPENDED");

    // Its suspension became due at once (the signal), and the dispatcher
    // runs it again without a scan.
    assert_eq!(next_start(&mut started).await, "e-0");
    invoker.release.add_permits(1);
    assert_eq!(next_change(&mut changes).await.1, "SUCCEEDED");
    d.idle().await;
    assert_eq!(*invoker.calls.lock().unwrap(), ["e-0", "e-0"]);
    let e = store.get_execution(&id).await.unwrap().unwrap();
    assert_eq!(e.status, ExecutionStatus::Succeeded);
    assert_eq!(e.epoch, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn targeted_dispatches_respect_the_concurrency_limit_and_queue_in_order() {
    let (store, clock, _finisher, _dir) = setup(3, 0).await;
    let (invoker, mut started) = gated(&store, &clock, false);
    let mut config = DispatcherConfig::default();
    config.max_concurrency = 1;
    let d = Dispatcher::new(
        store.clone(),
        Arc::new(clock.clone()),
        invoker.clone(),
        config,
    );
    let handle = d.handle();
    for i in 0..3 {
        handle.dispatch_now(ExecutionId::new(format!("e-{i}")).unwrap());
    }
    for i in 0..3 {
        assert_eq!(next_start(&mut started).await, format!("e-{i}"));
        invoker.release.add_permits(1);
    }
    d.idle().await;
    assert_eq!(*invoker.calls.lock().unwrap(), ["e-0", "e-1", "e-2"]);
    assert_eq!(
        invoker
            .most_running
            .load(std::sync::atomic::Ordering::SeqCst),
        1
    );
    for i in 0..3 {
        assert_eq!(
            status_of(&store, &format!("e-{i}")).await,
            ExecutionStatus::Succeeded
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executions_beyond_the_functions_capacity_wait_unclaimed_until_one_ends() {
    let (store, clock, _finisher, _dir) = setup(5, 0).await;
    let (invoker, mut started) = gated(&store, &clock, false);
    let mut config = DispatcherConfig::default();
    config.capacity_for = Arc::new(|f: &str| (f == "order").then_some(2));
    let d = Dispatcher::new(
        store.clone(),
        Arc::new(clock.clone()),
        invoker.clone(),
        config,
    );
    let handle = d.handle();
    for i in 0..5 {
        handle.dispatch_now(ExecutionId::new(format!("e-{i}")).unwrap());
    }
    let mut first = vec![
        next_start(&mut started).await,
        next_start(&mut started).await,
    ];
    first.sort();
    // Two run; the other three were not claimed (no epoch, still PENDING).
    let mut unclaimed = 0;
    for i in 0..5 {
        let e = store
            .get_execution(&ExecutionId::new(format!("e-{i}")).unwrap())
            .await
            .unwrap()
            .unwrap();
        if e.epoch == 0 {
            assert_eq!(e.status, ExecutionStatus::Pending);
            unclaimed += 1;
        }
    }
    assert_eq!(unclaimed, 3);
    // Each end hands its place to a waiter, until all five have run.
    let mut seen = first.clone();
    for _ in 0..3 {
        invoker.release.add_permits(1);
        seen.push(next_start(&mut started).await);
    }
    invoker.release.add_permits(2);
    d.idle().await;
    seen.sort();
    assert_eq!(seen, ["e-0", "e-1", "e-2", "e-3", "e-4"]);
    assert_eq!(
        invoker
            .most_running
            .load(std::sync::atomic::Ordering::SeqCst),
        2
    );
    for i in 0..5 {
        let e = store
            .get_execution(&ExecutionId::new(format!("e-{i}")).unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(e.status, ExecutionStatus::Succeeded);
        assert_eq!(e.epoch, 1, "claimed once");
    }
}

/// Suspends each execution's first invocation on a timer `after` ahead; the
/// second finishes it.
struct Sleeper {
    store: Arc<dyn Store>,
    clock: ManualClock,
    after: Duration,
    calls: Mutex<HashMap<String, u32>>,
}

#[async_trait]
impl Invoker for Sleeper {
    async fn invoke(
        &self,
        _function: &str,
        request: &ResumeRequest,
    ) -> Result<InvocationSummary, InvokeError> {
        let clock = &self.clock;
        let id = &request.execution_id;
        let n = {
            let mut calls = self.calls.lock().unwrap();
            let n = calls.entry(id.to_string()).or_insert(0);
            *n += 1;
            *n
        };
        let claimed = self.store.get_execution(id).await.unwrap().unwrap();
        if n == 1 {
            let wake_at = clock.now().plus(self.after);
            self.store
                .suspend(
                    id,
                    request.epoch,
                    claimed.wakeups,
                    Some(wake_at),
                    clock.now(),
                )
                .await
                .unwrap();
            return Ok(InvocationSummary {
                status: "SUSPENDED".into(),
                wake_at: Some(wake_at),
            });
        }
        let outcome = Outcome {
            status: ExecutionStatus::Succeeded,
            output: Some(json!(n)),
            error: None,
            expires_at: None,
        };
        self.store
            .finish(id, request.epoch, &outcome, clock.now())
            .await
            .unwrap();
        Ok(InvocationSummary {
            status: "SUCCEEDED".into(),
            wake_at: None,
        })
    }
}

/// Runs `d` until the returned sender is dropped or sent to.
fn run_loop(
    d: &Arc<Dispatcher>,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let d = d.clone();
    let runner = tokio::spawn(async move {
        d.run(async {
            let _ = stop_rx.await;
        })
        .await
    });
    (stop_tx, runner)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timers_rerun_their_executions_without_waiting_for_a_poll() {
    let (store, clock, _finisher, _dir) = setup(0, 0).await;
    for i in 0..20 {
        store
            .create_execution(&NewExecution {
                id: ExecutionId::new(format!("t-{i}")).unwrap(),
                function: "order".into(),
                version: "1".into(),
                input: json!(i),
                now: clock.now(),
            })
            .await
            .unwrap();
    }
    let invoker = Arc::new(Sleeper {
        store: store.clone(),
        clock: clock.clone(),
        after: Duration::from_millis(30),
        calls: Mutex::new(HashMap::new()),
    });
    // Polls once at start; after that only timers can run anything. In
    // virtual time: the clock moves only when nothing happens for a while.
    let mut config = DispatcherConfig::default();
    config.poll_interval = Duration::from_secs(3600);
    let d = Arc::new(Dispatcher::new(
        store.clone(),
        Arc::new(clock.clone()),
        invoker.clone(),
        config,
    ));
    let mut changes = d.handle().subscribe();
    let (stop, runner) = run_loop(&d);
    let started = clock.now();
    let mut succeeded = 0;
    while succeeded < 20 {
        match tokio::time::timeout(Duration::from_millis(100), changes.recv()).await {
            Ok(Ok(c)) if c.status == "SUCCEEDED" => succeeded += 1,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("{e}"),
            Err(_) => {
                assert!(
                    started.until(clock.now()) < Duration::from_secs(60),
                    "{succeeded} of 20 ran after a minute of virtual time"
                );
                clock.advance(Duration::from_millis(10));
            }
        }
    }
    // All ran on their timers, long before the next poll.
    assert!(started.until(clock.now()) < Duration::from_secs(3600));
    stop.send(()).unwrap();
    runner.await.unwrap();
    d.idle().await;
    let calls = invoker.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 20);
    assert!(calls.values().all(|n| *n == 2), "{calls:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_queues_what_falls_due_before_the_next_poll() {
    let (store, clock, finisher, _dir) = setup(0, 0).await;
    // Suspended by another process, on a timer 50 ms ahead: this dispatcher
    // never saw the invocation that set it.
    let id = ExecutionId::new("elsewhere").unwrap();
    store
        .create_execution(&NewExecution {
            id: id.clone(),
            function: "order".into(),
            version: "1".into(),
            input: json!(null),
            now: clock.now(),
        })
        .await
        .unwrap();
    let now = clock.now();
    let claimed = store
        .claim(&id, now, now.plus(Duration::from_secs(60)))
        .await
        .unwrap()
        .unwrap();
    store
        .suspend(
            &id,
            claimed.epoch,
            claimed.wakeups,
            Some(now.plus(Duration::from_millis(50))),
            now,
        )
        .await
        .unwrap();
    // The first scan (at start) sees it coming; the next poll is an hour away.
    let mut config = DispatcherConfig::default();
    config.poll_interval = Duration::from_secs(3600);
    let d = Arc::new(Dispatcher::new(
        store.clone(),
        Arc::new(clock.clone()),
        finisher.clone(),
        config,
    ));
    let mut changes = d.handle().subscribe();
    let (stop, runner) = run_loop(&d);
    // In virtual time: nothing runs before the timer, however long we wait.
    assert!(
        tokio::time::timeout(Duration::from_millis(200), changes.recv())
            .await
            .is_err(),
        "ran before its wake time"
    );
    clock.advance(Duration::from_millis(50));
    assert_eq!(
        next_change(&mut changes).await,
        ("elsewhere".to_string(), "SUCCEEDED".to_string())
    );
    stop.send(()).unwrap();
    runner.await.unwrap();
    assert_eq!(finisher.calls.lock().unwrap()["elsewhere"], 1);
}

/// Two dispatchers sharing the shards through leases: each scans only its
/// own, together they run everything once, no claim is lost, and a
/// `dispatch_now` for an execution of the other's shard is left to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dispatchers_with_shard_leases_split_the_due_index() {
    use durafn_runtime::dispatch::{ShardLeaseConfig, ShardLeaser};
    let (store, clock, finisher, _dir) = setup(200, 0).await;
    let leaser = |id: &str| {
        ShardLeaser::new(
            store.clone(),
            Arc::new(clock.clone()),
            ShardLeaseConfig::new(id),
        )
    };
    let (la, lb) = (leaser("a"), leaser("b"));
    la.step().await.unwrap();
    lb.step().await.unwrap();
    la.step().await.unwrap();
    lb.step().await.unwrap();
    let now = clock.now();
    let (ha, hb) = (la.held().held(now), lb.held().held(now));
    assert_eq!((ha.len(), hb.len()), (8, 8), "{ha:?} {hb:?}");
    assert!(ha.iter().all(|s| !hb.contains(s)));
    let with = |held| {
        let mut config = DispatcherConfig::default();
        config.shards = Some(held);
        Dispatcher::new(
            store.clone(),
            Arc::new(clock.clone()),
            finisher.clone(),
            config,
        )
    };
    let (a, b) = (with(la.held()), with(lb.held()));

    // dispatch_now on a of an execution in b's shard: nothing happens.
    let theirs = (0..200)
        .map(|i| ExecutionId::new(format!("e-{i}")).unwrap())
        .find(|id| hb.contains(&id.due_shard()))
        .unwrap();
    a.handle().dispatch_now(theirs.clone());
    a.idle().await;
    assert_eq!(
        status_of(&store, theirs.as_str()).await,
        ExecutionStatus::Pending
    );

    // a's scan runs exactly the executions of its shards.
    a.tick().await.unwrap();
    a.idle().await;
    let calls = finisher.calls.lock().unwrap().clone();
    let mine = (0..200)
        .filter(|i| ha.contains(&ExecutionId::new(format!("e-{i}")).unwrap().due_shard()))
        .count();
    assert_eq!(calls.len(), mine);
    assert!(
        calls
            .keys()
            .all(|id| ha.contains(&ExecutionId::new(id.as_str()).unwrap().due_shard()))
    );

    let (x, y) = tokio::join!(a.tick(), b.tick());
    x.unwrap();
    y.unwrap();
    tokio::join!(a.idle(), b.idle());
    let calls = finisher.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 200, "every execution was invoked");
    assert!(calls.values().all(|n| *n == 1), "none twice");
    assert_eq!(a.handle().lost_claims() + b.handle().lost_claims(), 0);
}

/// Keeps the resume requests it is handed and does nothing else.
struct Recorder(Mutex<Vec<ResumeRequest>>);

#[async_trait]
impl Invoker for Recorder {
    async fn invoke(
        &self,
        _function: &str,
        request: &ResumeRequest,
    ) -> Result<InvocationSummary, InvokeError> {
        self.0.lock().unwrap().push(request.clone());
        Ok(InvocationSummary {
            status: "RUNNING".into(),
            wake_at: None,
        })
    }
}

/// On SQLite the claim reads the journal, and a small one travels in the
/// resume request (seed included: the handler derives callback tokens from
/// it); a large one the handler reads itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_journals_travel_in_the_resume_request() {
    use durafn_runtime::dispatch::RESUME_JOURNAL_LIMIT;
    use durafn_runtime::model::{OpKind, OpStatus, Operation};
    let (store, clock, _finisher, _dir) = setup(3, 0).await;
    let step = |id: usize, result: serde_json::Value| Operation {
        id: id.to_string(),
        kind: OpKind::Step,
        name: format!("s{id}"),
        status: OpStatus::Succeeded,
        attempt: 1,
        result: Some(result),
        error: None,
        started_at: clock.now(),
        ended_at: Some(clock.now()),
        wake_at: None,
        rev: 1,
    };
    let small = ExecutionId::new("e-0").unwrap();
    store
        .put_operation(&small, &step(1, json!("r-1")))
        .await
        .unwrap();
    store
        .send_event(&small, "approved", &json!({"by": "ann"}), clock.now())
        .await
        .unwrap();
    let large = ExecutionId::new("e-1").unwrap();
    let chunk = "x".repeat(100_000);
    for i in 1..=(RESUME_JOURNAL_LIMIT / 100_000 + 1) {
        store
            .put_operation(&large, &step(i, json!(chunk)))
            .await
            .unwrap();
    }
    // A result offloaded to a blob store: only the handler's own
    // offloading store can read it back.
    let offloaded = ExecutionId::new("e-2").unwrap();
    let reference = json!({ durafn_runtime::store::REFERENCE_KEY: {"sha256": "0".repeat(64), "bytes": 2_000_000} });
    store
        .put_operation(&offloaded, &step(1, reference))
        .await
        .unwrap();
    let recorder = Arc::new(Recorder(Mutex::new(Vec::new())));
    let d = Dispatcher::new(
        store.clone(),
        Arc::new(clock.clone()),
        recorder.clone(),
        DispatcherConfig::default(),
    );
    d.tick().await.unwrap();
    d.idle().await;
    let requests = recorder.0.lock().unwrap().clone();
    assert_eq!(requests.len(), 3, "{requests:?}");
    let of = |id: &ExecutionId| requests.iter().find(|r| r.execution_id == *id).unwrap();
    let carried = of(&small).journal.clone().expect("a small journal travels");
    let stored = store.load_journal(&small).await.unwrap().unwrap();
    assert_eq!(carried.execution.0.epoch, of(&small).epoch);
    assert_eq!(carried.execution.0.seed, stored.execution.seed);
    assert_eq!(carried.operations, stored.operations);
    assert_eq!(carried.events, stored.events);
    // It survives the trip as JSON, seed and all.
    let back: ResumeRequest =
        serde_json::from_value(serde_json::to_value(of(&small)).unwrap()).unwrap();
    assert_eq!(back, *of(&small));
    assert!(!stored.execution.seed.is_empty());
    assert_eq!(
        of(&large).journal,
        None,
        "a large journal is read by the handler"
    );
}

/// Counts the store calls made through it, by method.
struct Counting(
    Arc<dyn Store>,
    Arc<Mutex<std::collections::BTreeMap<&'static str, usize>>>,
);

impl durafn_runtime::store::Wrapper for Counting {
    fn inner(&self) -> &dyn Store {
        &*self.0
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
        *self.1.lock().unwrap().entry(what).or_default() += 1;
        call()
    }
}

/// Finishes what it is handed; the first invocation waits for `gate`.
struct FirstWaits {
    store: Arc<dyn Store>,
    clock: ManualClock,
    gate: tokio::sync::Semaphore,
    seen: Mutex<Vec<ResumeRequest>>,
}

#[async_trait]
impl Invoker for FirstWaits {
    async fn invoke(
        &self,
        _function: &str,
        request: &ResumeRequest,
    ) -> Result<InvocationSummary, InvokeError> {
        let first = {
            let mut seen = self.seen.lock().unwrap();
            seen.push(request.clone());
            seen.len() == 1
        };
        if first {
            let _ = self.gate.acquire().await;
        }
        let outcome = Outcome {
            status: ExecutionStatus::Succeeded,
            output: Some(json!("done")),
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

/// A start through the dispatcher creates and claims in one write and is
/// invoked with its (empty) journal; one beyond the function's process
/// capacity is only created, and runs when a process frees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_is_created_claimed_and_invoked_in_one_write() {
    use durafn_runtime::store::Created;
    let dir = tempfile::tempdir().unwrap();
    let calls = Arc::new(Mutex::new(std::collections::BTreeMap::new()));
    let sqlite: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path().join("d.db")).unwrap());
    let store: Arc<dyn Store> = Arc::new(Counting(sqlite.clone(), calls.clone()));
    let clock = ManualClock::new(Timestamp(1_000_000));
    let invoker = Arc::new(FirstWaits {
        store: sqlite.clone(),
        clock: clock.clone(),
        gate: tokio::sync::Semaphore::new(0),
        seen: Mutex::new(Vec::new()),
    });
    let mut config = DispatcherConfig::default();
    config.capacity_for = Arc::new(|_| Some(1));
    let d = Dispatcher::new(
        store.clone(),
        Arc::new(clock.clone()),
        invoker.clone(),
        config,
    );
    let handle = d.handle();
    let new = |name: &str| NewExecution {
        id: ExecutionId::new(name).unwrap(),
        function: "order".into(),
        version: "1".into(),
        input: json!({"n": name}),
        now: clock.now(),
    };
    let first = handle.start(store.as_ref(), &new("s-1")).await.unwrap();
    assert!(matches!(first, Created::New(_)), "{first:?}");
    // The one process is busy with s-1: s-2 is only created.
    let second = handle.start(store.as_ref(), &new("s-2")).await.unwrap();
    assert!(matches!(second, Created::New(_)), "{second:?}");
    // Starting s-1 again (it is running) answers the existing execution.
    let again = handle.start(store.as_ref(), &new("s-1")).await.unwrap();
    assert!(matches!(again, Created::Existing(_)), "{again:?}");
    {
        let calls = calls.lock().unwrap();
        assert_eq!(calls.get("create_and_claim"), Some(&1), "{calls:?}");
        assert_eq!(calls.get("create_execution"), Some(&2), "{calls:?}");
        assert_eq!(calls.get("claim_with_journal"), None, "{calls:?}");
    }
    invoker.gate.add_permits(1);
    for _ in 0..100 {
        d.idle().await;
        let done = sqlite
            .get_execution(&ExecutionId::new("s-2").unwrap())
            .await
            .unwrap()
            .is_some_and(|e| e.status == ExecutionStatus::Succeeded);
        if done {
            break;
        }
        tokio::task::yield_now().await;
    }
    let seen = invoker.seen.lock().unwrap().clone();
    let ids: Vec<&str> = seen.iter().map(|r| r.execution_id.as_str()).collect();
    assert_eq!(ids, ["s-1", "s-2"], "each invoked once");
    // s-1 came with its empty journal and no claim of its own; s-2 was
    // claimed when s-1's process freed.
    let j = seen[0]
        .journal
        .as_ref()
        .expect("the new execution's journal");
    assert!(j.operations.is_empty() && j.events.is_empty());
    assert!(!j.execution.0.seed.is_empty());
    assert_eq!((seen[0].epoch, seen[1].epoch), (1, 1));
    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls.get("claim_with_journal"), Some(&1), "{calls:?}");
    for id in ["s-1", "s-2"] {
        let e = sqlite
            .get_execution(&ExecutionId::new(id).unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(e.status, ExecutionStatus::Succeeded, "{id}");
    }
}
