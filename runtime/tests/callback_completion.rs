//! Completing a callback is two writes (the operation record, then the
//! execution's wake-up). A completion that died between them is retried by
//! its caller: the retry must send the wake-up the first try never sent.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use durafn_runtime::model::{
    ExecutionId, ExecutionStatus, NewExecution, OpKind, OpStatus, Operation, Timestamp,
};
use durafn_runtime::store::{OpWrite, SqliteStore, Store};
use durafn_runtime::trigger::callback::{CompleteError, Completion, complete};
use serde_json::json;

fn callback_op(status: OpStatus, rev: u64) -> Operation {
    Operation {
        id: "1".into(),
        kind: OpKind::Callback,
        name: "approval".into(),
        status,
        attempt: 0,
        result: Some(json!({"approved": true})),
        error: None,
        started_at: Timestamp(1_000),
        ended_at: (status != OpStatus::Pending).then_some(Timestamp(3_000)),
        wake_at: None,
        rev,
    }
}

#[tokio::test]
async fn a_retried_completion_wakes_an_execution_the_first_try_left_asleep() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("s.db")).unwrap();
    let id = ExecutionId::new("waits-on-a-callback").unwrap();
    store
        .create_execution(&NewExecution {
            id: id.clone(),
            function: "approval".into(),
            version: "$LATEST".into(),
            input: json!({}),
            now: Timestamp(1_000),
        })
        .await
        .unwrap();
    let claimed = store
        .claim(&id, Timestamp(1_000), Timestamp(60_000))
        .await
        .unwrap()
        .unwrap();
    let pending = callback_op(OpStatus::Pending, 1);
    assert_eq!(
        store.put_operation(&id, &pending).await.unwrap(),
        OpWrite::Written
    );
    // The invocation suspends waiting on the outside world: no timer.
    store
        .suspend(&id, claimed.epoch, claimed.wakeups, None, Timestamp(2_000))
        .await
        .unwrap();
    // The first completion wrote the record, then died before its wake-up.
    store
        .put_operation(&id, &callback_op(OpStatus::Succeeded, 2))
        .await
        .unwrap();
    let asleep = store.get_execution(&id).await.unwrap().unwrap();
    assert_eq!(asleep.status, ExecutionStatus::Suspended);
    assert_eq!(asleep.due_at, None, "nothing would ever run it again");

    // The caller retries: told it is already completed, and the execution is due.
    let retried = complete(
        &store,
        &id,
        "1",
        Completion::Succeed(json!({"approved": true})),
        Timestamp(4_000),
    )
    .await
    .unwrap();
    assert!(
        matches!(retried, Err(CompleteError::AlreadyEnded(_))),
        "{retried:?}"
    );
    let woken = store.get_execution(&id).await.unwrap().unwrap();
    assert!(
        woken.due_at.is_some_and(|t| t <= Timestamp(4_000)),
        "the retry sent the wake-up: {woken:?}"
    );
    assert!(woken.wakeups > asleep.wakeups);
}
