//! Contract cases for pausing executions ([`Store::set_paused`]).

use std::sync::Arc;

use serde_json::json;

use super::{T0, at, claimed, created, succeeded};
use crate::model::{ExecutionId, ExecutionStatus, Timestamp};
use crate::store::{SentEvent, Store, Transition};

const FAR: Timestamp = Timestamp(i64::MAX / 2);

async fn in_due_scan(store: &Arc<dyn Store>, x: &ExecutionId) -> bool {
    store
        .due(x.due_shard(), FAR, 1000)
        .await
        .unwrap()
        .iter()
        .any(|d| &d.id == x)
}

/// A paused execution is neither due nor claimable, its signals are still
/// recorded, and an unpause makes it due at once.
pub async fn paused_executions_are_not_dispatched_until_unpaused(store: Arc<dyn Store>) {
    // PENDING.
    let x = created(&store, "pz-1").await;
    let e = store.set_paused(&x, true, at(1)).await.unwrap().unwrap();
    assert!(e.paused);
    assert_eq!(e.status, ExecutionStatus::Pending);
    assert!(
        !in_due_scan(&store, &x).await,
        "a paused execution leaves the due index"
    );
    assert!(store.claim(&x, at(2), at(30_000)).await.unwrap().is_none());
    assert!(store.wake(&x, at(3)).await.unwrap());
    let sent = store.send_event(&x, "go", &json!(1), at(4)).await.unwrap();
    assert!(matches!(sent, SentEvent::Delivered(_)), "{sent:?}");
    assert!(!in_due_scan(&store, &x).await, "signals do not unpause it");
    // Pausing twice changes nothing.
    assert!(
        store
            .set_paused(&x, true, at(5))
            .await
            .unwrap()
            .unwrap()
            .paused
    );
    let e = store.set_paused(&x, false, at(100)).await.unwrap().unwrap();
    assert!(!e.paused);
    assert_eq!(e.due_at, Some(at(100)), "due at once on unpause");
    assert!(in_due_scan(&store, &x).await);
    let c = store.claim(&x, at(100), at(30_100)).await.unwrap().unwrap();
    assert_eq!(c.wakeups, 2, "the signals sent while paused are there");
    assert_eq!(
        store.load_journal(&x).await.unwrap().unwrap().events.len(),
        1
    );

    // RUNNING: its invocation may still suspend it, out of the due index.
    let (y, epoch) = claimed(&store, "pz-2").await;
    assert!(
        store
            .set_paused(&y, true, at(10))
            .await
            .unwrap()
            .unwrap()
            .paused
    );
    store.wake(&y, at(11)).await.unwrap();
    let t = store
        .suspend(&y, epoch, 0, Some(at(50_000)), at(12))
        .await
        .unwrap();
    assert_eq!(t, Transition::Done);
    let e = store.get_execution(&y).await.unwrap().unwrap();
    assert_eq!((e.status, e.paused), (ExecutionStatus::Suspended, true));
    assert!(!in_due_scan(&store, &y).await);
    assert!(store.claim(&y, FAR, FAR).await.unwrap().is_none());
    let e = store.set_paused(&y, false, at(20)).await.unwrap().unwrap();
    assert_eq!((e.paused, e.due_at), (false, Some(at(20))));
    assert!(store.claim(&y, at(20), at(30_020)).await.unwrap().is_some());

    // RUNNING, unpaused before it suspends: due again at its lease's end.
    let (z, _) = claimed(&store, "pz-3").await;
    store.set_paused(&z, true, at(1)).await.unwrap();
    let e = store.set_paused(&z, false, at(2)).await.unwrap().unwrap();
    assert_eq!((e.status, e.paused), (ExecutionStatus::Running, false));
    assert_eq!(e.due_at, Some(at(30_000)));
    assert!(
        in_due_scan(&store, &z).await,
        "an expired lease is found again"
    );

    // Not paused: unpausing changes nothing.
    let w = created(&store, "pz-4").await;
    let e = store.set_paused(&w, false, at(7)).await.unwrap().unwrap();
    assert_eq!((e.paused, e.due_at), (false, Some(T0)));
    assert!(
        store
            .set_paused(
                &crate::model::ExecutionId::new("pz-none").unwrap(),
                true,
                at(1)
            )
            .await
            .unwrap()
            .is_none()
    );
}

/// Only unfinished executions can be paused; ending or cancelling clears a pause.
pub async fn ending_an_execution_clears_its_pause(store: Arc<dyn Store>) {
    let (x, epoch) = claimed(&store, "pe-1").await;
    store.set_paused(&x, true, at(1)).await.unwrap();
    let t = store
        .finish(&x, epoch, &succeeded(json!(1)), at(2))
        .await
        .unwrap();
    assert_eq!(t, Transition::Done, "a paused invocation may still finish");
    let e = store.set_paused(&x, true, at(3)).await.unwrap().unwrap();
    assert_eq!((e.status, e.paused), (ExecutionStatus::Succeeded, false));

    let y = created(&store, "pe-2").await;
    store.set_paused(&y, true, at(1)).await.unwrap();
    let e = store.cancel(&y, at(2)).await.unwrap().unwrap();
    assert_eq!((e.status, e.paused), (ExecutionStatus::Cancelled, false));
    assert!(!in_due_scan(&store, &y).await);
    let e = store.set_paused(&y, false, at(3)).await.unwrap().unwrap();
    assert_eq!(e.status, ExecutionStatus::Cancelled);
    assert!(!in_due_scan(&store, &y).await);
}

/// A start's priority and fairness key are kept on the execution record.
pub async fn start_options_are_kept_on_the_execution(store: Arc<dyn Store>) {
    use crate::model::{DEFAULT_PRIORITY, StartOptions};
    let x = created(&store, "so-1").await;
    let e = store.get_execution(&x).await.unwrap().unwrap();
    assert_eq!((e.priority, e.fairness_key), (DEFAULT_PRIORITY, None));
    let options = StartOptions {
        priority: 5,
        fairness_key: Some("tenant-7".into()),
    };
    let e = store
        .set_start_options(&x, &options, at(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (e.priority, e.fairness_key.as_deref()),
        (5, Some("tenant-7"))
    );
    let j = store.load_journal(&x).await.unwrap().unwrap();
    assert_eq!(j.execution.priority, 5);
    let c = store.claim(&x, at(2), at(30_000)).await.unwrap().unwrap();
    assert_eq!(
        (c.priority, c.fairness_key.as_deref()),
        (5, Some("tenant-7"))
    );
    // Back to the defaults: the key goes.
    let e = store
        .set_start_options(&x, &StartOptions::default(), at(3))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((e.priority, e.fairness_key), (DEFAULT_PRIORITY, None));
    // Nothing changes on an ended execution, or a missing one.
    let (y, epoch) = claimed(&store, "so-2").await;
    store
        .finish(&y, epoch, &succeeded(json!(1)), at(4))
        .await
        .unwrap();
    let e = store
        .set_start_options(&y, &options, at(5))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(e.priority, DEFAULT_PRIORITY);
    let none = ExecutionId::new("so-none").unwrap();
    assert!(
        store
            .set_start_options(&none, &options, at(5))
            .await
            .unwrap()
            .is_none()
    );
}
