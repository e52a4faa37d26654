//! The store contract: one suite of behaviours every backend must show.
//!
//! A backend's test file calls [`store_contract_tests!`](crate::store_contract_tests)
//! with an async function that returns a [`Fixture`] holding a fresh, empty
//! store. Each case below becomes one `#[tokio::test]`.

// This module is test code shipped behind the `testing` feature: panicking on an
// unexpected answer is how a case fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::any::Any;
use std::sync::Arc;

use serde_json::{Value, json};

use super::{Created, OpWrite, Outcome, Store, SuspendWrite, Transition};

mod attributes;
mod usage;
use crate::error::StoreError;
use crate::model::{
    ErrorObject, ExecutionId, ExecutionStatus, MAX_PAYLOAD_BYTES, NewExecution, OpKind, OpStatus,
    Operation, Timestamp,
};
pub use attributes::search_attributes_are_indexed_replaced_and_paged;
pub use usage::store_calls_are_counted_with_their_bytes;

#[path = "contract_pause.rs"]
mod pause;
pub use pause::{
    ending_an_execution_clears_its_pause, paused_executions_are_not_dispatched_until_unpaused,
    start_options_are_kept_on_the_execution,
};

/// A fresh, empty store and whatever keeps it alive (a temp folder, a table).
pub struct Fixture {
    /// The store under test.
    pub store: Arc<dyn Store>,
    _guard: Box<dyn Any + Send + Sync>,
}

impl Fixture {
    /// A fixture; `guard` is dropped when the test ends.
    pub fn new(store: Arc<dyn Store>, guard: impl Any + Send + Sync) -> Self {
        Fixture {
            store,
            _guard: Box::new(guard),
        }
    }
}

/// Generates one test per contract case for a backend.
///
/// ```text
/// async fn fixture() -> durafn_runtime::store::contract::Fixture { ... }
/// durafn_runtime::store_contract_tests!(fixture);
/// ```
#[macro_export]
macro_rules! store_contract_tests {
    ($fixture:path) => {
        $crate::store_contract_tests!(@cases $fixture;
            create_is_idempotent_by_input,
            create_conflicts_on_other_input_or_function,
            missing_executions_read_as_none,
            claim_bumps_epoch_and_takes_a_lease,
            expired_lease_can_be_reclaimed,
            racing_claims_have_one_winner,
            first_writer_wins_on_operations,
            operation_revisions_are_conditional,
            racing_writers_record_one_result,
            stale_epoch_cannot_finish_or_suspend,
            finish_and_suspend_are_idempotent_for_the_same_claimant,
            suspend_with_writes_the_parked_records_and_suspends,
            suspend_with_stops_at_another_writers_record,
            claim_with_journal_answers_the_claimed_journal,
            suspended_executions_are_due_at_their_wake_time,
            due_index_is_sharded_ordered_and_limited,
            wake_makes_a_suspended_execution_due,
            wake_during_an_invocation_is_not_lost,
            journal_lists_operations_in_start_order,
            history_keeps_the_last_entries_of_each_series,
            payloads_up_to_the_limit_round_trip,
            payloads_over_the_limit_are_rejected,
            finished_and_blocked_executions_leave_the_due_index,
            list_pages_newest_first_with_filters,
            cancel_stops_an_execution,
            paused_executions_are_not_dispatched_until_unpaused,
            ending_an_execution_clears_its_pause,
            start_options_are_kept_on_the_execution,
            events_are_delivered_in_order_and_wake_the_execution,
            resume_restarts_failed_and_blocked_executions,
            executions_get_a_secret_seed,
            schedules_are_created_once_and_updated_by_revision,
            schedules_are_found_through_the_due_index,
            due_scans_never_return_or_change_ended_executions,
            create_and_claim_runs_what_it_starts_once,
            create_and_claim_is_atomic_where_declared,
            queue_messages_are_received_hidden_and_deleted_by_receipt,
            queue_visibility_changes_and_counts,
            racing_receivers_never_share_a_receive,
            leases_are_taken_renewed_released_and_stolen,
            store_calls_are_counted_with_their_bytes,
            search_attributes_are_indexed_replaced_and_paged
        );
    };
    (@cases $fixture:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let fixture = $fixture().await;
                $crate::store::contract::$case(fixture.store.clone()).await;
            }
        )*
    };
}

/// The cases' clock starts in 2093: a backend with native TTL (DynamoDB
/// Local) deletes items whose expiry has passed on the real clock, at any
/// moment, so every expiry a case sets must lie in the real future.
const T0: Timestamp = Timestamp(3_900_000_000_000);

/// The expiry finished executions get in these cases: far in the future,
/// because a backend with native TTL (DynamoDB Local) may delete items whose
/// expiry has passed at any moment, in the middle of a case.
const FAR_EXPIRY: Timestamp = Timestamp(4_000_000_000_000);

fn at(ms: i64) -> Timestamp {
    Timestamp(T0.0 + ms)
}

fn id(name: &str) -> ExecutionId {
    ExecutionId::new(name).unwrap_or_else(|e| panic!("bad test id {name}: {e}"))
}

fn new_exec(name: &str, input: Value) -> NewExecution {
    NewExecution {
        id: id(name),
        function: "order".into(),
        version: "1".into(),
        input,
        now: T0,
    }
}

fn op(op_id: &str, name: &str, rev: u64, result: Value) -> Operation {
    Operation {
        id: op_id.into(),
        kind: OpKind::Step,
        name: name.into(),
        status: OpStatus::Succeeded,
        attempt: 1,
        result: Some(result),
        error: None,
        started_at: T0,
        ended_at: Some(T0),
        wake_at: None,
        rev,
    }
}

fn succeeded(output: Value) -> Outcome {
    Outcome {
        status: ExecutionStatus::Succeeded,
        output: Some(output),
        error: None,
        expires_at: Some(FAR_EXPIRY),
    }
}

async fn created(store: &Arc<dyn Store>, name: &str) -> ExecutionId {
    store
        .create_execution(&new_exec(name, json!({"n": name})))
        .await
        .unwrap_or_else(|e| panic!("create {name}: {e}"));
    id(name)
}

async fn claimed(store: &Arc<dyn Store>, name: &str) -> (ExecutionId, u64) {
    let x = created(store, name).await;
    let c = store
        .claim(&x, T0, at(30_000))
        .await
        .unwrap_or_else(|e| panic!("claim {name}: {e}"))
        .unwrap_or_else(|| panic!("{name} should be claimable"));
    (x, c.epoch)
}

/// Same id + same input returns the existing execution.
pub async fn create_is_idempotent_by_input(store: Arc<dyn Store>) {
    let first = store
        .create_execution(&new_exec("c-1", json!({"order_id": "o-1"})))
        .await
        .unwrap();
    let Created::New(e) = &first else {
        panic!("first create should be New, got {first:?}")
    };
    assert_eq!(e.status, ExecutionStatus::Pending);
    assert_eq!(e.epoch, 0);
    assert_eq!(e.due_at, Some(T0), "a new execution is due at once");
    assert_eq!(e.input, json!({"order_id": "o-1"}));
    let again = store
        .create_execution(&new_exec("c-1", json!({"order_id": "o-1"})))
        .await
        .unwrap();
    assert!(matches!(again, Created::Existing(_)), "{again:?}");
    assert_eq!(again.execution().id, e.id);
}

/// Same id with a different input or function is a conflict, and changes nothing.
pub async fn create_conflicts_on_other_input_or_function(store: Arc<dyn Store>) {
    store
        .create_execution(&new_exec("c-2", json!({"a": 1})))
        .await
        .unwrap();
    let err = store
        .create_execution(&new_exec("c-2", json!({"a": 2})))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { what: "input", .. }),
        "{err:?}"
    );
    let mut other_fn = new_exec("c-2", json!({"a": 1}));
    other_fn.function = "approval".into();
    let err = store.create_execution(&other_fn).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict {
                what: "function",
                ..
            }
        ),
        "{err:?}"
    );
    let kept = store.get_execution(&id("c-2")).await.unwrap().unwrap();
    assert_eq!(kept.input, json!({"a": 1}));
    assert_eq!(kept.function, "order");
}

/// Reads of an unknown execution answer "none", not an error.
pub async fn missing_executions_read_as_none(store: Arc<dyn Store>) {
    let x = id("nobody");
    assert!(store.get_execution(&x).await.unwrap().is_none());
    assert!(store.load_journal(&x).await.unwrap().is_none());
    assert!(store.claim(&x, T0, at(1000)).await.unwrap().is_none());
    assert!(!store.wake(&x, T0).await.unwrap());
}

/// A claim bumps the epoch, sets RUNNING and a lease; a second claim fails.
pub async fn claim_bumps_epoch_and_takes_a_lease(store: Arc<dyn Store>) {
    let x = created(&store, "cl-1").await;
    let c = store.claim(&x, T0, at(30_000)).await.unwrap().unwrap();
    assert_eq!(c.epoch, 1);
    assert_eq!(c.status, ExecutionStatus::Running);
    assert_eq!(c.due_at, Some(at(30_000)), "the lease is the next due time");
    assert!(
        store.claim(&x, at(1), at(30_001)).await.unwrap().is_none(),
        "a held lease cannot be claimed"
    );
    let later = store.get_execution(&x).await.unwrap().unwrap();
    assert_eq!(later.epoch, 1);
}

/// A crashed invocation is a lease that expires: the next claim takes over.
pub async fn expired_lease_can_be_reclaimed(store: Arc<dyn Store>) {
    let (x, e1) = claimed(&store, "cl-2").await;
    let c2 = store
        .claim(&x, at(30_000), at(60_000))
        .await
        .unwrap()
        .expect("an expired lease can be claimed");
    assert_eq!(c2.epoch, e1 + 1);
    let due = store.due(x.due_shard(), at(59_999), 10).await.unwrap();
    assert!(
        due.iter().all(|d| d.id != x),
        "not due before the new lease ends"
    );
    let due = store.due(x.due_shard(), at(60_000), 10).await.unwrap();
    assert!(due.iter().any(|d| d.id == x), "due when the new lease ends");
}

/// Concurrent claims of one due execution: exactly one wins.
pub async fn racing_claims_have_one_winner(store: Arc<dyn Store>) {
    let x = created(&store, "cl-3").await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (store, x) = (store.clone(), x.clone());
        tasks.push(tokio::spawn(async move {
            store.claim(&x, T0, at(30_000)).await.unwrap()
        }));
    }
    let mut winners = 0;
    for t in tasks {
        if t.await.unwrap().is_some() {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
    assert_eq!(store.get_execution(&x).await.unwrap().unwrap().epoch, 1);
}

/// Two writers of revision 1: the second gets the first's record back.
pub async fn first_writer_wins_on_operations(store: Arc<dyn Store>) {
    let x = created(&store, "op-1").await;
    let first = op("1", "charge", 1, json!({"charge": "ch-A"}));
    assert_eq!(
        store.put_operation(&x, &first).await.unwrap(),
        OpWrite::Written
    );
    let second = op("1", "charge", 1, json!({"charge": "ch-B"}));
    match store.put_operation(&x, &second).await.unwrap() {
        OpWrite::Conflict(current) => assert_eq!(current, first),
        other => panic!("expected a conflict, got {other:?}"),
    }
    let journal = store.load_journal(&x).await.unwrap().unwrap();
    assert_eq!(journal.operations, vec![first]);
}

/// Revision n+1 replaces revision n once; a stale revision conflicts.
pub async fn operation_revisions_are_conditional(store: Arc<dyn Store>) {
    let x = created(&store, "op-2").await;
    let mut pending = op("1", "reserve", 1, Value::Null);
    pending.status = OpStatus::Pending;
    pending.result = None;
    pending.error = Some(ErrorObject::new("Timeout", "inventory timed out"));
    pending.wake_at = Some(at(2_000));
    store.put_operation(&x, &pending).await.unwrap();
    let done = op("1", "reserve", 2, json!("r-1"));
    assert_eq!(
        store.put_operation(&x, &done).await.unwrap(),
        OpWrite::Written
    );
    let stale = op("1", "reserve", 2, json!("r-2"));
    assert_eq!(
        store.put_operation(&x, &stale).await.unwrap(),
        OpWrite::Conflict(done.clone())
    );
    let skipping = op("1", "reserve", 5, json!("r-3"));
    assert_eq!(
        store.put_operation(&x, &skipping).await.unwrap(),
        OpWrite::Conflict(done)
    );
}

/// Many invocations racing on one operation never record two results.
pub async fn racing_writers_record_one_result(store: Arc<dyn Store>) {
    let x = created(&store, "op-3").await;
    let mut tasks = Vec::new();
    for i in 0..16 {
        let (store, x) = (store.clone(), x.clone());
        tasks.push(tokio::spawn(async move {
            let mine = op("1", "charge", 1, json!({ "writer": i }));
            let answer = store.put_operation(&x, &mine).await.unwrap();
            (mine, answer)
        }));
    }
    let mut winners = Vec::new();
    let mut adopted = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            (mine, OpWrite::Written) => winners.push(mine),
            (_, OpWrite::Conflict(theirs)) => adopted.push(theirs),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one writer wins");
    assert!(
        adopted.iter().all(|a| *a == winners[0]),
        "losers adopt the winner"
    );
    let journal = store.load_journal(&x).await.unwrap().unwrap();
    assert_eq!(journal.operations, winners);
}

/// A zombie invocation (older epoch) cannot complete or suspend the execution.
pub async fn stale_epoch_cannot_finish_or_suspend(store: Arc<dyn Store>) {
    let (x, old) = claimed(&store, "ep-1").await;
    let new = store
        .claim(&x, at(30_000), at(60_000))
        .await
        .unwrap()
        .unwrap()
        .epoch;
    assert_eq!(
        store
            .finish(&x, old, &succeeded(json!("zombie")), at(30_001))
            .await
            .unwrap(),
        Transition::Stale
    );
    assert_eq!(
        store
            .suspend(&x, old, 0, Some(at(99_000)), at(30_001))
            .await
            .unwrap(),
        Transition::Stale
    );
    let e = store.get_execution(&x).await.unwrap().unwrap();
    assert_eq!(e.status, ExecutionStatus::Running);
    assert_eq!(e.output, None);
    assert_eq!(
        store
            .finish(&x, new, &succeeded(json!("real")), at(30_002))
            .await
            .unwrap(),
        Transition::Done
    );
    let e = store.get_execution(&x).await.unwrap().unwrap();
    assert_eq!(e.status, ExecutionStatus::Succeeded);
    assert_eq!(e.output, Some(json!("real")));
    assert_eq!(e.ended_at, Some(at(30_002)));
}

/// Repeating an applied finish or suspend (a retry after a lost answer) is Done.
pub async fn finish_and_suspend_are_idempotent_for_the_same_claimant(store: Arc<dyn Store>) {
    let (x, epoch) = claimed(&store, "ep-2").await;
    for _ in 0..2 {
        assert_eq!(
            store
                .suspend(&x, epoch, 0, Some(at(5_000)), at(1))
                .await
                .unwrap(),
            Transition::Done
        );
    }
    let c = store
        .claim(&x, at(5_000), at(35_000))
        .await
        .unwrap()
        .unwrap();
    for _ in 0..2 {
        assert_eq!(
            store
                .finish(&x, c.epoch, &succeeded(json!(1)), at(5_001))
                .await
                .unwrap(),
            Transition::Done
        );
    }
    let failed = Outcome {
        status: ExecutionStatus::Failed,
        output: None,
        error: Some(ErrorObject::new("X", "y")),
        expires_at: None,
    };
    assert_eq!(
        store.finish(&x, c.epoch, &failed, at(5_002)).await.unwrap(),
        Transition::Stale,
        "a finished execution cannot finish differently"
    );
}

/// `suspend_with` writes its operations and suspends the execution, due
/// at the wake time; repeated (a retry after a lost answer) it is still
/// `Done`; a stale claimant does not suspend it.
pub async fn suspend_with_writes_the_parked_records_and_suspends(store: Arc<dyn Store>) {
    let (x, epoch) = claimed(&store, "sw-1").await;
    let first = op("1", "reserve", 1, json!("r-1"));
    store.put_operation(&x, &first).await.unwrap();
    let mut timer = op("2", "cool-off", 1, Value::Null);
    timer.kind = OpKind::Sleep;
    timer.status = OpStatus::Pending;
    timer.result = None;
    timer.ended_at = None;
    timer.wake_at = Some(at(60_000));
    for _ in 0..2 {
        assert_eq!(
            store
                .suspend_with(
                    &x,
                    epoch,
                    0,
                    std::slice::from_ref(&timer),
                    timer.wake_at,
                    at(10)
                )
                .await
                .unwrap(),
            SuspendWrite::Done
        );
    }
    let j = store.load_journal(&x).await.unwrap().unwrap();
    assert_eq!(j.operations, vec![first, timer.clone()]);
    assert_eq!(j.execution.status, ExecutionStatus::Suspended);
    assert_eq!(j.execution.due_at, Some(at(60_000)));
    // Not due before its wake time, due from it.
    assert!(
        store
            .claim(&x, at(59_999), at(90_000))
            .await
            .unwrap()
            .is_none()
    );

    // A zombie: its records may land (first writer wins), its suspension not.
    let (y, old) = claimed(&store, "sw-2").await;
    let new = store
        .claim(&y, at(30_000), at(60_000))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        store
            .suspend_with(
                &y,
                old,
                0,
                std::slice::from_ref(&timer),
                timer.wake_at,
                at(30_001)
            )
            .await
            .unwrap(),
        SuspendWrite::Stale
    );
    let e = store.get_execution(&y).await.unwrap().unwrap();
    assert_eq!((e.status, e.epoch), (ExecutionStatus::Running, new.epoch));
    // With no operations it is `suspend`; a wake-up since the claim makes
    // it due at once.
    store.wake(&y, at(30_002)).await.unwrap();
    assert_eq!(
        store
            .suspend_with(
                &y,
                new.epoch,
                new.wakeups,
                &[],
                Some(at(99_000)),
                at(30_003)
            )
            .await
            .unwrap(),
        SuspendWrite::Done
    );
    let e = store.get_execution(&y).await.unwrap().unwrap();
    assert_eq!(e.status, ExecutionStatus::Suspended);
    assert_eq!(e.due_at, Some(at(30_003)));
}

/// An operation another writer recorded differently stops `suspend_with`
/// there: nothing after it is written, and the execution stays running.
pub async fn suspend_with_stops_at_another_writers_record(store: Arc<dyn Store>) {
    let (x, epoch) = claimed(&store, "sw-3").await;
    let theirs = op("2", "charge", 1, json!({"charge": "theirs"}));
    store.put_operation(&x, &theirs).await.unwrap();
    let mine = [
        op("1", "reserve", 1, json!("r-1")),
        op("2", "charge", 1, json!({"charge": "mine"})),
        op("3", "ship", 1, json!("s-1")),
    ];
    assert_eq!(
        store
            .suspend_with(&x, epoch, 0, &mine, Some(at(5_000)), at(10))
            .await
            .unwrap(),
        SuspendWrite::Conflict(theirs.clone())
    );
    let j = store.load_journal(&x).await.unwrap().unwrap();
    assert_eq!(j.execution.status, ExecutionStatus::Running);
    assert!(j.operations.contains(&theirs));
    assert!(
        !j.operations.iter().any(|o| o.id == "3"),
        "nothing after the conflict is written: {:?}",
        j.operations
    );
    // The claimant can still suspend (or end) it.
    assert_eq!(
        store
            .suspend(&x, epoch, 0, Some(at(11)), at(11))
            .await
            .unwrap(),
        Transition::Done
    );
}

/// `claim_with_journal` claims as `claim` does; a journal it answers with
/// is the claimed execution's, as `load_journal` reads it.
pub async fn claim_with_journal_answers_the_claimed_journal(store: Arc<dyn Store>) {
    let x = created(&store, "cj-1").await;
    let recorded = op("1", "reserve", 1, json!("r-1"));
    store.put_operation(&x, &recorded).await.unwrap();
    store
        .send_event(&x, "approved", &json!({"by": "ann"}), at(1))
        .await
        .unwrap();
    let (claimed, journal) = store
        .claim_with_journal(&x, at(2), at(30_000))
        .await
        .unwrap()
        .expect("due, so claimable");
    assert_eq!(claimed.status, ExecutionStatus::Running);
    assert_eq!(claimed.epoch, 1);
    assert!(!claimed.seed.is_empty(), "the claim carries the seed");
    // SQLite reads it with the claim; the others leave it to the caller.
    assert_eq!(journal.is_some(), store.backend() == "sqlite");
    if let Some(j) = journal {
        assert_eq!(j.execution.epoch, claimed.epoch);
        assert_eq!(j.execution.seed, claimed.seed);
        assert_eq!(j.operations, vec![recorded]);
        assert_eq!(j.events.len(), 1);
        assert_eq!(j.events[0].payload, json!({"by": "ann"}));
    }
    // Not due any more: nothing to claim.
    assert!(
        store
            .claim_with_journal(&x, at(3), at(30_000))
            .await
            .unwrap()
            .is_none()
    );
}

/// A suspended execution is due exactly from its wake time.
pub async fn suspended_executions_are_due_at_their_wake_time(store: Arc<dyn Store>) {
    let (x, epoch) = claimed(&store, "due-1").await;
    store
        .suspend(&x, epoch, 0, Some(at(10_000)), at(5))
        .await
        .unwrap();
    let e = store.get_execution(&x).await.unwrap().unwrap();
    assert_eq!(e.status, ExecutionStatus::Suspended);
    assert_eq!(e.due_at, Some(at(10_000)));
    let shard = x.due_shard();
    assert!(store.due(shard, at(9_999), 10).await.unwrap().is_empty());
    assert!(
        store
            .claim(&x, at(9_999), at(40_000))
            .await
            .unwrap()
            .is_none(),
        "not claimable before its wake time"
    );
    let due = store.due(shard, at(10_000), 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].id, x);
    assert_eq!(due[0].due_at, at(10_000));
    assert!(
        store
            .claim(&x, at(10_000), at(40_000))
            .await
            .unwrap()
            .is_some()
    );

    let (y, epoch) = claimed(&store, "due-2").await;
    store.suspend(&y, epoch, 0, None, at(5)).await.unwrap();
    let far = Timestamp(i64::MAX / 2);
    assert!(
        store
            .due(y.due_shard(), far, 10)
            .await
            .unwrap()
            .iter()
            .all(|d| d.id != y),
        "waiting on the outside world is never due by time"
    );
}

/// The due index answers per shard, earliest first, up to a limit.
pub async fn due_index_is_sharded_ordered_and_limited(store: Arc<dyn Store>) {
    let mut by_shard: std::collections::BTreeMap<u32, Vec<(ExecutionId, Timestamp)>> =
        Default::default();
    for i in 0..24i64 {
        let name = format!("sh-{i}");
        let (x, epoch) = claimed(&store, &name).await;
        // Wake times in reverse creation order, so ordering is the store's work.
        let wake = at(100_000 - i * 100);
        store
            .suspend(&x, epoch, 0, Some(wake), at(1))
            .await
            .unwrap();
        by_shard.entry(x.due_shard()).or_default().push((x, wake));
    }
    let now = at(200_000);
    for (shard, mut expected) in by_shard {
        expected.sort_by_key(|(_, t)| *t);
        let got = store.due(shard, now, 100).await.unwrap();
        let got: Vec<_> = got.into_iter().map(|d| (d.id, d.due_at)).collect();
        assert_eq!(got, expected, "shard {shard}");
        let limited = store.due(shard, now, 1).await.unwrap();
        assert_eq!(limited.len(), 1);
        assert_eq!(limited[0].id, expected[0].0);
    }
}

/// A wake signal makes a suspended execution due at once.
pub async fn wake_makes_a_suspended_execution_due(store: Arc<dyn Store>) {
    let (x, epoch) = claimed(&store, "wk-1").await;
    store.suspend(&x, epoch, 0, None, at(1)).await.unwrap();
    assert!(store.wake(&x, at(500)).await.unwrap());
    let e = store.get_execution(&x).await.unwrap().unwrap();
    assert_eq!(e.due_at, Some(at(500)));
    assert_eq!(e.wakeups, 1);
    let c = store.claim(&x, at(500), at(30_500)).await.unwrap().unwrap();
    assert_eq!(c.wakeups, 1);

    let (y, epoch) = claimed(&store, "wk-2").await;
    store
        .suspend(&y, epoch, 0, Some(at(100)), at(1))
        .await
        .unwrap();
    store.wake(&y, at(500)).await.unwrap();
    let e = store.get_execution(&y).await.unwrap().unwrap();
    assert_eq!(e.due_at, Some(at(100)), "an earlier wake time is kept");
}

/// A signal that lands while the invocation runs turns its suspension into "due now".
pub async fn wake_during_an_invocation_is_not_lost(store: Arc<dyn Store>) {
    let (x, epoch) = claimed(&store, "wk-3").await;
    let seen = store.get_execution(&x).await.unwrap().unwrap().wakeups;
    store.wake(&x, at(10)).await.unwrap();
    let running = store.get_execution(&x).await.unwrap().unwrap();
    assert_eq!(running.status, ExecutionStatus::Running);
    assert_eq!(running.due_at, Some(at(30_000)), "the lease is untouched");
    store.suspend(&x, epoch, seen, None, at(20)).await.unwrap();
    let e = store.get_execution(&x).await.unwrap().unwrap();
    assert_eq!(e.status, ExecutionStatus::Suspended);
    assert_eq!(
        e.due_at,
        Some(at(20)),
        "due at once: it may have missed the signal"
    );
}

/// The journal holds every operation, in start order, with its latest revision.
pub async fn journal_lists_operations_in_start_order(store: Arc<dyn Store>) {
    let x = created(&store, "j-1").await;
    for op_id in ["10", "2", "2.1", "1", "3", "2.2"] {
        store
            .put_operation(&x, &op(op_id, &format!("s{op_id}"), 1, json!(op_id)))
            .await
            .unwrap();
    }
    store
        .put_operation(&x, &op("3", "s3", 2, json!("three")))
        .await
        .unwrap();
    let journal = store.load_journal(&x).await.unwrap().unwrap();
    let ids: Vec<_> = journal.operations.iter().map(|o| o.id.as_str()).collect();
    assert_eq!(ids, vec!["1", "2", "2.1", "2.2", "3", "10"]);
    let three = &journal.operations[4];
    assert_eq!((three.rev, three.result.clone()), (2, Some(json!("three"))));
    assert_eq!(journal.execution.id, x);
}

fn attempt_entry(op_id: &str, attempt: u32, message: &str) -> crate::model::HistoryEntry {
    use crate::model::{AttemptError, AttemptOutcome, AttemptRecord, HistoryEntry};
    HistoryEntry::Attempt(AttemptRecord {
        op_id: op_id.into(),
        kind: OpKind::Step,
        name: format!("s{op_id}"),
        attempt,
        epoch: u64::from(attempt),
        started_at: at(i64::from(attempt) * 1_000),
        ended_at: at(i64::from(attempt) * 1_000 + 10),
        outcome: AttemptOutcome::Retrying,
        error: Some(AttemptError::of(&ErrorObject::new("Flaky", message))),
        retry_at: Some(at(i64::from(attempt) * 1_000 + 500)),
    })
}

/// History records: each series keeps its last `keep` entries (so a kept
/// series starting above 1 is marked truncated), a rewrite replaces, other
/// executions and the journal are unaffected.
pub async fn history_keeps_the_last_entries_of_each_series(store: Arc<dyn Store>) {
    use crate::model::history::assemble;
    use crate::model::{HistoryEntry, InvocationOutcome, InvocationRecord};
    let (x, epoch) = claimed(&store, "h-1").await;
    let other = created(&store, "h-2").await;
    let mut inv = InvocationRecord {
        epoch,
        started_at: T0,
        ended_at: None,
        outcome: None,
        status: None,
        wake_at: None,
        deadline: Some(at(30_000)),
        process: Some("host/42".into()),
        error: None,
        expires_at: None,
        usage: None,
        memory_mb: None,
    };
    store
        .put_history(&x, &HistoryEntry::Invocation(inv.clone()), 3)
        .await
        .unwrap();
    for n in 1..=5 {
        let entry = attempt_entry("1", n, &format!("attempt {n} <failed> \"quoted\""));
        store.put_history(&x, &entry, 3).await.unwrap();
    }
    store
        .put_history(&x, &attempt_entry("2", 1, "two"), 3)
        .await
        .unwrap();
    store
        .put_history(&other, &attempt_entry("1", 1, "elsewhere"), 3)
        .await
        .unwrap();
    inv.ended_at = Some(at(20));
    inv.outcome = Some(InvocationOutcome::Suspended);
    inv.status = Some(ExecutionStatus::Suspended);
    store
        .put_history(&x, &HistoryEntry::Invocation(inv.clone()), 3)
        .await
        .unwrap();
    let mut done = op("1", "s1", 1, json!("done"));
    done.attempt = 6;
    store.put_operation(&x, &done).await.unwrap();

    let got = store.load_history(&x).await.unwrap();
    let keys: Vec<String> = got.iter().map(HistoryEntry::key).collect();
    assert_eq!(
        keys,
        vec![
            "att#1#0000000003",
            "att#1#0000000004",
            "att#1#0000000005",
            "att#2#0000000001",
            "inv#00000000000000000001",
        ]
    );
    assert_eq!(got[4], HistoryEntry::Invocation(inv), "rewrite replaces");
    assert_eq!(
        got[0],
        attempt_entry("1", 3, "attempt 3 <failed> \"quoted\"")
    );
    assert_eq!(store.load_history(&other).await.unwrap().len(), 1);
    assert!(store.load_history(&id("h-none")).await.unwrap().is_empty());

    let journal = store.load_journal(&x).await.unwrap().unwrap();
    assert_eq!(journal.operations.len(), 1, "history is not in the journal");
    let history = assemble(
        &journal.operations,
        got,
        epoch,
        ExecutionStatus::Running,
        T0,
    );
    let one = &history.operations[0];
    assert_eq!(one.dropped, 2, "attempts 1 and 2 are marked as dropped");
    let numbers: Vec<u32> = one.attempts.iter().map(|a| a.attempt).collect();
    assert_eq!(
        numbers,
        vec![3, 4, 5, 6],
        "the 6th is the operation's record"
    );
    assert_eq!(history.invocations_dropped, 0);
    assert_eq!(
        history.invocations[0].outcome,
        Some(InvocationOutcome::Suspended)
    );
}

/// Payloads up to the limit survive intact (backends may split them).
pub async fn payloads_up_to_the_limit_round_trip(store: Arc<dyn Store>) {
    let big_input = json!({ "blob": "i".repeat(1_000_000) });
    store
        .create_execution(&new_exec("big-1", big_input.clone()))
        .await
        .unwrap();
    let x = id("big-1");
    let big_result = json!({ "blob": "r".repeat(3_000_000), "tail": [1, 2, 3] });
    store
        .put_operation(&x, &op("1", "download", 1, big_result.clone()))
        .await
        .unwrap();
    let mut small = op("2", "small", 1, json!("s"));
    small.result = Some(json!({"ok": true}));
    store.put_operation(&x, &small).await.unwrap();
    let journal = store.load_journal(&x).await.unwrap().unwrap();
    assert_eq!(journal.execution.input, big_input);
    assert_eq!(journal.operations.len(), 2);
    assert_eq!(journal.operations[0].result.as_ref(), Some(&big_result));
    assert_eq!(journal.operations[1], small);
    let c = store.claim(&x, T0, at(30_000)).await.unwrap().unwrap();
    let out = json!("o".repeat(2_000_000));
    store
        .finish(&x, c.epoch, &succeeded(out.clone()), at(1))
        .await
        .unwrap();
    let e = store.get_execution(&x).await.unwrap().unwrap();
    assert_eq!(e.output, Some(out));
}

/// Payloads over the limit are a clear error naming the limit; nothing is written.
pub async fn payloads_over_the_limit_are_rejected(store: Arc<dyn Store>) {
    let huge = json!("h".repeat(MAX_PAYLOAD_BYTES + 10));
    let err = store
        .create_execution(&new_exec("big-2", huge.clone()))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::PayloadTooLarge { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&MAX_PAYLOAD_BYTES.to_string()),
        "{err}"
    );
    assert!(store.get_execution(&id("big-2")).await.unwrap().is_none());

    let x = created(&store, "big-3").await;
    let err = store
        .put_operation(&x, &op("1", "download", 1, huge.clone()))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::PayloadTooLarge { .. }), "{err:?}");
    assert!(err.to_string().contains("\"download\""), "{err}");
    let journal = store.load_journal(&x).await.unwrap().unwrap();
    assert!(journal.operations.is_empty());
}

/// Finished executions carry their expiry and are never due; blocked ones wait for a resume.
pub async fn finished_and_blocked_executions_leave_the_due_index(store: Arc<dyn Store>) {
    let (x, epoch) = claimed(&store, "fin-1").await;
    store
        .finish(&x, epoch, &succeeded(json!(1)), at(1))
        .await
        .unwrap();
    let e = store.get_execution(&x).await.unwrap().unwrap();
    assert_eq!(e.due_at, None);
    assert_eq!(e.expires_at, Some(FAR_EXPIRY));
    assert!(
        store
            .claim(&x, at(90_000), at(99_000))
            .await
            .unwrap()
            .is_none()
    );

    let (y, epoch) = claimed(&store, "fin-2").await;
    let blocked = Outcome {
        status: ExecutionStatus::Blocked,
        output: None,
        error: Some(ErrorObject::new("NonDeterministic", "op 1 changed")),
        expires_at: None,
    };
    store.finish(&y, epoch, &blocked, at(2)).await.unwrap();
    let e = store.get_execution(&y).await.unwrap().unwrap();
    assert_eq!(e.status, ExecutionStatus::Blocked);
    assert_eq!(e.ended_at, None, "a blocked execution has not ended");
    assert_eq!(
        e.error.map(|e| e.error_type),
        Some("NonDeterministic".into())
    );
    let far = Timestamp(i64::MAX / 2);
    for shard in [x.due_shard(), y.due_shard()] {
        let due = store.due(shard, far, 100).await.unwrap();
        assert!(due.iter().all(|d| d.id != x && d.id != y));
    }
}

/// Listing pages through executions newest first, with filters and a cursor.
pub async fn list_pages_newest_first_with_filters(store: Arc<dyn Store>) {
    for i in 0..7i64 {
        let mut n = new_exec(&format!("ls-{i}"), json!(i));
        n.now = at(i * 1000);
        if i % 2 == 1 {
            n.function = "approval".into();
        }
        store.create_execution(&n).await.unwrap();
    }
    let x = id("ls-4");
    store
        .claim(&x, at(10_000), at(40_000))
        .await
        .unwrap()
        .unwrap();

    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .list_executions(&super::ListFilter {
                limit: 3,
                cursor: cursor.clone(),
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(page.executions.len() <= 3);
        seen.extend(page.executions.into_iter().map(|e| e.id.to_string()));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(
        seen,
        ["ls-6", "ls-5", "ls-4", "ls-3", "ls-2", "ls-1", "ls-0"]
    );

    let names = |page: super::ExecutionPage| -> Vec<String> {
        page.executions
            .into_iter()
            .map(|e| e.id.to_string())
            .collect()
    };
    let only_approval = super::ListFilter {
        function: Some("approval".into()),
        ..Default::default()
    };
    assert_eq!(
        names(store.list_executions(&only_approval).await.unwrap()),
        ["ls-5", "ls-3", "ls-1"]
    );
    let running = super::ListFilter {
        status: Some(ExecutionStatus::Running),
        ..Default::default()
    };
    assert_eq!(
        names(store.list_executions(&running).await.unwrap()),
        ["ls-4"]
    );
    let window = super::ListFilter {
        created_after: Some(at(2_000)),
        created_before: Some(at(4_000)),
        ..Default::default()
    };
    assert_eq!(
        names(store.list_executions(&window).await.unwrap()),
        ["ls-3", "ls-2"]
    );
    let search = super::ListFilter {
        id_contains: Some("s-6".into()),
        ..Default::default()
    };
    assert_eq!(
        names(store.list_executions(&search).await.unwrap()),
        ["ls-6"]
    );
    let bad = super::ListFilter {
        cursor: Some("nonsense".into()),
        ..Default::default()
    };
    assert!(matches!(
        store.list_executions(&bad).await,
        Err(StoreError::Invalid(_))
    ));
}

/// Cancelling stops an unfinished execution; a running invocation then finds itself stale.
pub async fn cancel_stops_an_execution(store: Arc<dyn Store>) {
    let (x, epoch) = claimed(&store, "cn-1").await;
    // Cancelled far in the future: the store's retention counts from `now`,
    // and DynamoDB Local's TTL deletes items whose expiry has passed.
    let e = store.cancel(&x, FAR_EXPIRY).await.unwrap().unwrap();
    assert_eq!(e.status, ExecutionStatus::Cancelled);
    assert_eq!(e.due_at, None);
    assert_eq!(e.ended_at, Some(FAR_EXPIRY));
    assert!(e.expires_at.is_some());
    assert_eq!(
        store
            .finish(&x, epoch, &succeeded(json!(1)), at(6))
            .await
            .unwrap(),
        Transition::Stale
    );
    assert_eq!(
        store
            .suspend(&x, epoch, 0, Some(at(9)), at(6))
            .await
            .unwrap(),
        Transition::Stale
    );
    let (y, epoch) = claimed(&store, "cn-2").await;
    store
        .finish(&y, epoch, &succeeded(json!(2)), at(1))
        .await
        .unwrap();
    let e = store.cancel(&y, at(5)).await.unwrap().unwrap();
    assert_eq!(
        e.status,
        ExecutionStatus::Succeeded,
        "a finished execution stays finished"
    );
    assert!(store.cancel(&id("cn-none"), at(5)).await.unwrap().is_none());
}

/// Events are stored in order, wake the execution, and are refused once it ended.
pub async fn events_are_delivered_in_order_and_wake_the_execution(store: Arc<dyn Store>) {
    let (x, epoch) = claimed(&store, "ev-1").await;
    store.suspend(&x, epoch, 0, None, at(1)).await.unwrap();
    let first = store
        .send_event(&x, "approved", &json!({"by": "ops"}), at(10))
        .await
        .unwrap();
    let super::SentEvent::Delivered(first) = first else {
        panic!("not delivered: {first:?}")
    };
    assert_eq!(first.name, "approved");
    let e = store.get_execution(&x).await.unwrap().unwrap();
    assert_eq!(e.due_at, Some(at(10)), "the event woke it");
    assert_eq!(e.wakeups, 1);
    for i in 0..3 {
        store
            .send_event(&x, "tick", &json!(i), at(20 + i))
            .await
            .unwrap();
    }
    let journal = store.load_journal(&x).await.unwrap().unwrap();
    let got: Vec<_> = journal
        .events
        .iter()
        .map(|e| (e.name.clone(), e.payload.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("approved".to_string(), json!({"by": "ops"})),
            ("tick".into(), json!(0)),
            ("tick".into(), json!(1)),
            ("tick".into(), json!(2)),
        ]
    );
    let seqs: Vec<_> = journal.events.iter().map(|e| e.seq.clone()).collect();
    let mut sorted = seqs.clone();
    sorted.sort();
    assert_eq!(seqs, sorted, "seq sorts in delivery order");
    assert_eq!(journal.events[0], first);

    assert_eq!(
        store
            .send_event(&id("ev-none"), "x", &json!(1), at(1))
            .await
            .unwrap(),
        super::SentEvent::NotFound
    );
    let (y, epoch) = claimed(&store, "ev-2").await;
    store
        .finish(&y, epoch, &succeeded(json!(1)), at(2))
        .await
        .unwrap();
    assert_eq!(
        store.send_event(&y, "x", &json!(1), at(3)).await.unwrap(),
        super::SentEvent::Ended(ExecutionStatus::Succeeded)
    );
    assert!(
        store
            .load_journal(&y)
            .await
            .unwrap()
            .unwrap()
            .events
            .is_empty()
    );
    let huge = json!("e".repeat(MAX_PAYLOAD_BYTES + 1));
    assert!(matches!(
        store.send_event(&x, "big", &huge, at(4)).await,
        Err(StoreError::PayloadTooLarge { .. })
    ));
}

/// A failed or blocked execution can be resumed; a finished one cannot.
pub async fn resume_restarts_failed_and_blocked_executions(store: Arc<dyn Store>) {
    let (x, epoch) = claimed(&store, "rs-1").await;
    let failed = Outcome {
        status: ExecutionStatus::Failed,
        output: None,
        error: Some(ErrorObject::new("E", "boom")),
        expires_at: Some(FAR_EXPIRY),
    };
    store.finish(&x, epoch, &failed, at(5)).await.unwrap();
    let e = store.resume(&x, at(7)).await.unwrap().unwrap();
    assert_eq!(e.status, ExecutionStatus::Suspended);
    assert_eq!(e.due_at, Some(at(7)));
    assert_eq!((e.error, e.ended_at, e.expires_at), (None, None, None));
    let c = store.claim(&x, at(7), at(30_000)).await.unwrap().unwrap();
    assert_eq!(c.epoch, epoch + 1);

    let (y, epoch) = claimed(&store, "rs-2").await;
    store
        .finish(&y, epoch, &succeeded(json!(1)), at(5))
        .await
        .unwrap();
    let e = store.resume(&y, at(7)).await.unwrap().unwrap();
    assert_eq!(
        e.status,
        ExecutionStatus::Succeeded,
        "a success stays a success"
    );
    assert!(store.resume(&id("rs-none"), at(7)).await.unwrap().is_none());
}

/// Every execution gets its own unguessable seed, kept across reads.
pub async fn executions_get_a_secret_seed(store: Arc<dyn Store>) {
    let a = created(&store, "sd-1").await;
    let b = created(&store, "sd-2").await;
    let ea = store.get_execution(&a).await.unwrap().unwrap();
    let eb = store.get_execution(&b).await.unwrap().unwrap();
    assert!(ea.seed.len() >= 32, "{:?}", ea.seed);
    assert_ne!(ea.seed, eb.seed);
    let again = store.load_journal(&a).await.unwrap().unwrap().execution;
    assert_eq!(again.seed, ea.seed);
    let claimed = store.claim(&a, T0, at(1000)).await.unwrap().unwrap();
    assert_eq!(claimed.seed, ea.seed);
}

fn schedule(name: &str, due_at: Option<Timestamp>) -> super::Schedule {
    super::Schedule {
        name: name.into(),
        function: "backup".into(),
        expression: "cron(0 3 * * ? *)".into(),
        timezone: Some("Europe/Paris".into()),
        input: json!({"bucket": "b"}),
        enabled: true,
        paused: false,
        catch_up: super::CatchUp::Latest,
        overlap: super::Overlap::Skip,
        anchor: T0,
        next_fire_at: due_at,
        pending_fire_at: None,
        last_fire_at: None,
        last_execution: None,
        fires: 0,
        skipped: 0,
        due_at,
        created_at: T0,
        updated_at: T0,
        rev: 1,
    }
}

/// Schedules: created once, then replaced revision by revision (first
/// writer wins), read back whole.
pub async fn schedules_are_created_once_and_updated_by_revision(store: Arc<dyn Store>) {
    use super::ScheduleWrite;
    let s = schedule("nightly", Some(at(1_000)));
    assert_eq!(store.get_schedule("nightly").await.unwrap(), None);
    assert_eq!(
        store.create_schedule(&s).await.unwrap(),
        ScheduleWrite::Written
    );
    assert_eq!(
        store.get_schedule("nightly").await.unwrap(),
        Some(s.clone())
    );
    let mut other = s.clone();
    other.function = "other".into();
    assert_eq!(
        store.create_schedule(&other).await.unwrap(),
        ScheduleWrite::Conflict(s.clone())
    );
    let mut v2 = s.clone();
    v2.rev = 2;
    v2.last_execution = Some(id("nightly:20231114T221320Z"));
    v2.next_fire_at = Some(at(2_000));
    v2.due_at = Some(at(2_000));
    let mut racing = s.clone();
    racing.rev = 2;
    racing.paused = true;
    racing.due_at = None;
    assert_eq!(
        store.update_schedule(&v2).await.unwrap(),
        ScheduleWrite::Written
    );
    assert_eq!(
        store.update_schedule(&racing).await.unwrap(),
        ScheduleWrite::Conflict(v2.clone())
    );
    assert_eq!(store.get_schedule("nightly").await.unwrap(), Some(v2));
    let mut missing = schedule("missing", None);
    missing.rev = 2;
    assert_eq!(
        store.update_schedule(&missing).await.unwrap(),
        ScheduleWrite::Missing
    );
    let mut bad = schedule("bad name", None);
    bad.rev = 1;
    assert!(matches!(
        store.create_schedule(&bad).await,
        Err(StoreError::Invalid(_))
    ));
}

/// Schedules have their own part of the due index: due ones earliest first,
/// paused or finished ones (no `due_at`) never; listing shows them all by name.
pub async fn schedules_are_found_through_the_due_index(store: Arc<dyn Store>) {
    for (name, due) in [
        ("c-late", Some(at(3_000))),
        ("a-early", Some(at(1_000))),
        ("b-paused", None),
        ("d-mid", Some(at(2_000))),
    ] {
        store.create_schedule(&schedule(name, due)).await.unwrap();
    }
    // An execution due at the same time does not show up among schedules.
    store
        .create_execution(&new_exec("x-1", json!(1)))
        .await
        .unwrap();
    let names = |v: Vec<super::Schedule>| v.into_iter().map(|s| s.name).collect::<Vec<_>>();
    assert_eq!(
        names(store.due_schedules(at(2_000), 10).await.unwrap()),
        ["a-early", "d-mid"]
    );
    assert_eq!(
        names(store.due_schedules(at(5_000), 2).await.unwrap()),
        ["a-early", "d-mid"]
    );
    assert!(store.due_schedules(at(999), 10).await.unwrap().is_empty());
    assert_eq!(
        names(store.list_schedules().await.unwrap()),
        ["a-early", "b-paused", "c-late", "d-mid"]
    );
    // Executions' shards never see schedules.
    let mut seen = 0;
    for shard in 0..crate::model::DUE_SHARDS {
        seen += store.due(shard, at(5_000), 100).await.unwrap().len();
    }
    assert_eq!(seen, 1);
}

/// `create_and_claim` claims a new execution for its starter; a second start
/// of the same execution finds it running and claims nothing; a start of a
/// finished one returns it, unclaimed.
pub async fn create_and_claim_runs_what_it_starts_once(store: Arc<dyn Store>) {
    let new = new_exec("cc-1", json!({"n": 1}));
    let (created, claimed) = store.create_and_claim(&new, at(30_000)).await.unwrap();
    // (`Existing` when a retry repeated a create that had gone through.)
    assert_eq!(created.execution().id, new.id);
    let claimed = claimed.expect("a new execution is claimed by its starter");
    assert_eq!(claimed.status, ExecutionStatus::Running);
    assert_eq!(claimed.epoch, 1);
    assert_eq!(
        claimed.due_at,
        Some(at(30_000)),
        "the lease is its due time"
    );
    assert!(!claimed.seed.is_empty(), "the claim carries the seed");
    // Nothing woke it yet: a starter may take its journal to be empty.
    assert_eq!(claimed.wakeups, 0);
    // Nobody else can claim it while the lease runs.
    assert!(
        store
            .claim(&new.id, at(1), at(60_000))
            .await
            .unwrap()
            .is_none()
    );

    let (again, none) = store.create_and_claim(&new, at(30_000)).await.unwrap();
    assert!(matches!(again, Created::Existing(_)), "{again:?}");
    assert!(none.is_none(), "a running execution is not claimed twice");

    let done = store
        .finish(
            &new.id,
            claimed.epoch,
            &Outcome {
                expires_at: Some(FAR_EXPIRY),
                ..succeeded(json!(1))
            },
            at(2),
        )
        .await
        .unwrap();
    assert_eq!(done, Transition::Done);
    let (_, none) = store.create_and_claim(&new, at(30_000)).await.unwrap();
    assert!(none.is_none(), "a finished execution is not claimed");

    let other = new_exec("cc-1", json!({"n": 2}));
    assert!(matches!(
        store.create_and_claim(&other, at(30_000)).await,
        Err(StoreError::Conflict { what: "input", .. })
    ));
}

/// A store's `create_and_claim`, or a stand-in for it (see [`start_race`]).
pub type Start = fn(Arc<dyn Store>, NewExecution, Timestamp) -> StartCall;

/// What a [`Start`] returns.
pub type StartCall = std::pin::Pin<
    Box<
        dyn std::future::Future<
                Output = crate::error::Result<(Created, Option<crate::model::Execution>)>,
            > + Send,
    >,
>;

/// A store that declares `create_and_claim` atomic leaves no moment in which
/// another claimer takes the new execution from its starter; one that does
/// not (DynamoDB) may lose it to the claimer, but never both claim it.
pub async fn create_and_claim_is_atomic_where_declared(store: Arc<dyn Store>) {
    let atomic = store.atomic_create_and_claim();
    start_race(store, atomic, |s, new, lease| {
        Box::pin(async move { s.create_and_claim(&new, lease).await })
    })
    .await;
}

/// Starts executions with `start` while a claimer keeps claiming each one,
/// and checks that at most one of them claims it, and, when `atomic`, that
/// the starter always does. Public so that a test can show the check fails
/// for a start that is not atomic but says it is.
pub async fn start_race(store: Arc<dyn Store>, atomic: bool, start: Start) {
    for round in 0..8 {
        let new = new_exec(&format!("race-{round}"), json!({"round": round}));
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let racer = tokio::spawn({
            let (store, done, id) = (store.clone(), done.clone(), new.id.clone());
            async move {
                while !done.load(std::sync::atomic::Ordering::Acquire) {
                    if let Some(e) = store.claim(&id, T0, at(60_000)).await.unwrap() {
                        return Some(e);
                    }
                    tokio::task::yield_now().await;
                }
                None
            }
        });
        let (created, claimed) = start(store.clone(), new.clone(), at(30_000)).await.unwrap();
        done.store(true, std::sync::atomic::Ordering::Release);
        let stolen = racer.await.unwrap();
        assert_eq!(created.execution().id, new.id);
        assert!(
            claimed.is_none() || stolen.is_none(),
            "execution {} was claimed twice: by its starter and by a racing claimer",
            new.id
        );
        if atomic {
            assert!(
                stolen.is_none() && claimed.is_some(),
                "a racing claimer took execution {} between its creation and its \
                 starter's claim: this store's create_and_claim is not atomic",
                new.id
            );
        } else {
            assert!(
                claimed.is_some() || stolen.is_some(),
                "nobody claimed {}",
                new.id
            );
        }
    }
}

/// What reading, loading and listing show of some executions.
async fn views(
    store: &Arc<dyn Store>,
    ids: &[&ExecutionId],
) -> (Vec<crate::model::Journal>, super::ExecutionPage) {
    let mut journals = Vec::new();
    for x in ids {
        let j = store.load_journal(x).await.unwrap().unwrap();
        assert_eq!(
            store.get_execution(x).await.unwrap().as_ref(),
            Some(&j.execution)
        );
        journals.push(j);
    }
    let listed = store
        .list_executions(&super::ListFilter::default())
        .await
        .unwrap();
    (journals, listed)
}

/// Ended executions are never due work, and due-index scans (where a backend
/// may do its housekeeping, such as DynamoDB's expiry sweep) change nothing
/// that reading, loading or listing them shows.
pub async fn due_scans_never_return_or_change_ended_executions(store: Arc<dyn Store>) {
    let far = FAR_EXPIRY;
    let (x, epoch) = claimed(&store, "se-1").await;
    store
        .put_operation(&x, &op("1", "a", 1, json!(1)))
        .await
        .unwrap();
    let outcome = Outcome {
        expires_at: Some(far),
        ..succeeded(json!(1))
    };
    store.finish(&x, epoch, &outcome, at(1)).await.unwrap();
    let (y, _) = claimed(&store, "se-2").await;
    store
        .put_operation(&y, &op("1", "a", 1, json!(2)))
        .await
        .unwrap();
    store.cancel(&y, far).await.unwrap().unwrap();
    let before = views(&store, &[&x, &y]).await;
    for j in &before.0 {
        assert!(j.execution.status.is_final());
        assert_eq!(j.execution.due_at, None);
    }
    assert_eq!(before.1.executions.len(), 2);
    for now in [at(3), at(90_000), Timestamp(i64::MAX / 4)] {
        for shard in 0..crate::model::DUE_SHARDS {
            let due = store.due(shard, now, 100).await.unwrap();
            assert!(due.iter().all(|d| d.id != x && d.id != y), "{due:?}");
        }
    }
    assert_eq!(views(&store, &[&x, &y]).await, before);
}

fn message(queue: &str, id: &str, now: i64, delay: i64) -> super::QueueMessage {
    super::QueueMessage {
        queue: queue.into(),
        id: id.into(),
        body: json!({ "body": format!("hello {id}") }),
        sent_at: Timestamp(now),
        visible_at: Timestamp(now + delay),
        receive_count: 0,
        first_received_at: None,
        receipt: None,
    }
}

/// Messages are sent once per id, received while visible (hidden for the
/// visibility timeout, receive count bumped), deleted only by their latest
/// receipt.
pub async fn queue_messages_are_received_hidden_and_deleted_by_receipt(store: Arc<dyn Store>) {
    assert!(
        store
            .send_message(&message("jobs", "a", 1_000, 0))
            .await
            .unwrap()
    );
    assert!(
        !store
            .send_message(&message("jobs", "a", 1_000, 0))
            .await
            .unwrap()
    );
    assert!(
        store
            .send_message(&message("jobs", "b", 1_001, 0))
            .await
            .unwrap()
    );
    assert!(
        store
            .send_message(&message("other", "a", 1_000, 0))
            .await
            .unwrap()
    );
    let got = store
        .receive_messages("jobs", Timestamp(2_000), Timestamp(32_000), 10)
        .await
        .unwrap();
    let mut ids: Vec<&str> = got.iter().map(|m| m.id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["a", "b"]);
    let a = got.iter().find(|m| m.id == "a").unwrap();
    assert_eq!(a.receive_count, 1);
    assert_eq!(a.first_received_at, Some(Timestamp(2_000)));
    assert_eq!(a.visible_at, Timestamp(32_000));
    assert_eq!(a.body, json!({ "body": "hello a" }));
    let receipt = a.receipt.clone().unwrap();
    // Hidden: nothing to receive until the timeout passes.
    let none = store
        .receive_messages("jobs", Timestamp(31_999), Timestamp(40_000), 10)
        .await
        .unwrap();
    assert!(none.is_empty(), "{none:?}");
    let again = store
        .receive_messages("jobs", Timestamp(32_000), Timestamp(62_000), 1)
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].receive_count, 2);
    assert_eq!(again[0].first_received_at, Some(Timestamp(2_000)));
    let newer = again[0].receipt.clone().unwrap();
    assert_ne!(newer, receipt);
    let id = again[0].id.clone();
    if id == "a" {
        assert!(!store.delete_message("jobs", "a", &receipt).await.unwrap());
    }
    assert!(store.delete_message("jobs", &id, &newer).await.unwrap());
    assert!(!store.delete_message("jobs", &id, &newer).await.unwrap());
    // The other queue is untouched.
    let other = store
        .receive_messages("other", Timestamp(2_000), Timestamp(3_000), 10)
        .await
        .unwrap();
    assert_eq!(other.len(), 1);
    assert_eq!(other[0].receive_count, 1);
}

/// Delays and visibility changes move when a message can be received; stats
/// count visible, in-flight and delayed messages; purge empties a queue.
pub async fn queue_visibility_changes_and_counts(store: Arc<dyn Store>) {
    store
        .send_message(&message("q", "now", 0, 0))
        .await
        .unwrap();
    store
        .send_message(&message("q", "later", 0, 5_000))
        .await
        .unwrap();
    store
        .send_message(&message("q", "taken", 0, 0))
        .await
        .unwrap();
    let stats = store.queue_stats("q", Timestamp(1)).await.unwrap();
    assert_eq!((stats.visible, stats.in_flight, stats.delayed), (2, 0, 1));
    assert_eq!(stats.next_visible_at, Some(Timestamp(5_000)));
    let got = store
        .receive_messages("q", Timestamp(10), Timestamp(30_010), 1)
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    let m = &got[0];
    let receipt = m.receipt.clone().unwrap();
    let stats = store.queue_stats("q", Timestamp(10)).await.unwrap();
    assert_eq!((stats.visible, stats.in_flight, stats.delayed), (1, 1, 1));
    assert!(
        !store
            .change_message_visibility("q", &m.id, "not-the-receipt", Timestamp(10), Timestamp(10))
            .await
            .unwrap()
    );
    assert!(
        store
            .change_message_visibility("q", &m.id, &receipt, Timestamp(20), Timestamp(10))
            .await
            .unwrap()
    );
    // Visible again: no longer in flight, so its visibility cannot change.
    assert!(
        !store
            .change_message_visibility("q", &m.id, &receipt, Timestamp(99), Timestamp(20))
            .await
            .unwrap()
    );
    let stats = store.queue_stats("q", Timestamp(20)).await.unwrap();
    assert_eq!((stats.visible, stats.in_flight, stats.delayed), (2, 0, 1));
    let all = store
        .receive_messages("q", Timestamp(6_000), Timestamp(9_000), 10)
        .await
        .unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(store.purge_queue("q").await.unwrap(), 3);
    assert_eq!(
        store.queue_stats("q", Timestamp(6_000)).await.unwrap(),
        super::QueueStats::default()
    );
    let big = super::QueueMessage {
        body: json!("x".repeat(super::queue::MAX_QUEUE_MESSAGE_BYTES + 1)),
        ..message("q", "big", 0, 0)
    };
    assert!(matches!(
        store.send_message(&big).await,
        Err(StoreError::PayloadTooLarge { .. })
    ));
}

/// Receivers racing for the same messages never get the same receive.
pub async fn racing_receivers_never_share_a_receive(store: Arc<dyn Store>) {
    for i in 0..20 {
        store
            .send_message(&message("race", &format!("m{i:02}"), 0, 0))
            .await
            .unwrap();
    }
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for _ in 0..10 {
                let batch = store
                    .receive_messages("race", Timestamp(100), Timestamp(1_000_000), 3)
                    .await
                    .unwrap();
                got.extend(batch.into_iter().map(|m| m.id));
            }
            got
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    let before = all.len();
    all.dedup();
    assert_eq!(before, all.len(), "a message was received twice at once");
    assert_eq!(all.len(), 20, "every message is received once");
}

/// A lease is taken when free, renewed by its owner, refused to others
/// while live, taken over once expired or from a named gone owner, and
/// released only by its owner.
pub async fn leases_are_taken_renewed_released_and_stolen(store: Arc<dyn Store>) {
    let req = |owner: &str, until: i64, steal: Option<&str>| super::LeaseRequest {
        group: "dispatch".into(),
        name: "shard#00".into(),
        owner: owner.into(),
        until: Timestamp(until),
        steal_from: steal.map(str::to_string),
    };
    let t = store
        .take_lease(&req("a", 10_000, None), Timestamp(0))
        .await
        .unwrap();
    assert!(t.is_taken());
    // Renewed by its owner.
    assert!(
        store
            .take_lease(&req("a", 20_000, None), Timestamp(5_000))
            .await
            .unwrap()
            .is_taken()
    );
    match store
        .take_lease(&req("b", 30_000, None), Timestamp(6_000))
        .await
        .unwrap()
    {
        super::LeaseTake::Held(l) => {
            assert_eq!((l.owner.as_str(), l.until), ("a", Timestamp(20_000)));
        }
        other => panic!("b took a live lease: {other:?}"),
    }
    // Expired: b takes it over.
    assert!(
        store
            .take_lease(&req("b", 30_000, None), Timestamp(20_001))
            .await
            .unwrap()
            .is_taken()
    );
    // From a named gone owner.
    assert!(
        store
            .take_lease(&req("c", 90_000, Some("b")), Timestamp(20_002))
            .await
            .unwrap()
            .is_taken()
    );
    assert!(
        !store
            .release_lease("dispatch", "shard#00", "b")
            .await
            .unwrap()
    );
    let other = super::LeaseRequest {
        name: "member#c".into(),
        ..req("c", 90_000, None)
    };
    assert!(
        store
            .take_lease(&other, Timestamp(0))
            .await
            .unwrap()
            .is_taken()
    );
    let listed = store.list_leases("dispatch").await.unwrap();
    let names: Vec<(&str, &str)> = listed
        .iter()
        .map(|l| (l.name.as_str(), l.owner.as_str()))
        .collect();
    assert_eq!(names, [("member#c", "c"), ("shard#00", "c")]);
    assert!(store.list_leases("elsewhere").await.unwrap().is_empty());
    assert!(
        store
            .release_lease("dispatch", "shard#00", "c")
            .await
            .unwrap()
    );
    assert_eq!(store.list_leases("dispatch").await.unwrap().len(), 1);
    // Racing takers of a free lease: one wins.
    let mut tasks = Vec::new();
    for i in 0..6 {
        let store = store.clone();
        let r = super::LeaseRequest {
            name: "shard#01".into(),
            ..req(&format!("r{i}"), 50_000, None)
        };
        tasks.push(tokio::spawn(async move {
            store.take_lease(&r, Timestamp(0)).await.unwrap().is_taken()
        }));
    }
    let mut winners = 0;
    for t in tasks {
        winners += usize::from(t.await.unwrap());
    }
    assert_eq!(winners, 1);
}
