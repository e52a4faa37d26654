//! `GET /v1/executions/{id}/history`: every operation with its attempts,
//! every invocation, and the waits, from the journal and the execution's
//! history records (`durafn_runtime::model::history`).

use durafn_runtime::model::history::{History, assemble};
use durafn_runtime::model::{
    AttemptRecord, ExecutionId, InvocationRecord, Journal, OpKind, Operation, Timestamp,
    history_limit,
};
use serde_json::{Value, json};

use super::render::{self, iso};

fn opt_iso(t: Option<Timestamp>) -> Value {
    t.map_or(Value::Null, |t| Value::String(iso(t)))
}

/// One attempt as shown.
pub fn attempt(a: &AttemptRecord) -> Value {
    json!({
        "attempt": a.attempt,
        "epoch": if a.epoch == 0 { Value::Null } else { json!(a.epoch) },
        "started_at": iso(a.started_at),
        "ended_at": iso(a.ended_at),
        "duration_ms": a.ended_at.0.saturating_sub(a.started_at.0).max(0),
        "outcome": a.outcome,
        "error": a.error,
        "retry_at": opt_iso(a.retry_at),
    })
}

/// One invocation as shown.
pub fn invocation(i: &InvocationRecord) -> Value {
    json!({
        "epoch": i.epoch,
        "started_at": iso(i.started_at),
        "ended_at": opt_iso(i.ended_at),
        "duration_ms": i.ended_at.map(|e| e.0.saturating_sub(i.started_at.0).max(0)),
        // `null` while it runs.
        "outcome": i.outcome,
        "status": i.status,
        "wake_at": opt_iso(i.wake_at),
        "deadline": opt_iso(i.deadline),
        "process": i.process,
        "error": i.error,
    })
}

/// The waits: timers, callbacks, events, conditions and invokes, from their
/// operation records (created → ended; `wake_at` the planned end).
fn waits(ops: &[Operation]) -> Vec<Value> {
    ops.iter()
        .filter(|o| {
            matches!(
                o.kind,
                OpKind::Sleep
                    | OpKind::Callback
                    | OpKind::Event
                    | OpKind::Condition
                    | OpKind::Invoke
            )
        })
        .map(|o| {
            json!({
                "op_id": o.id,
                "type": o.kind,
                "name": o.name,
                "status": o.status,
                "started_at": iso(o.started_at),
                "ended_at": opt_iso(o.ended_at),
                "wake_at": opt_iso(o.wake_at),
            })
        })
        .collect()
}

/// The whole history body; `callback_id` is filled in for callbacks from
/// the execution's seed.
pub fn body(id: &ExecutionId, journal: &Journal, history: &History) -> Value {
    let seed = &journal.execution.seed;
    let limit = history_limit();
    let ops: Vec<Value> = journal
        .operations
        .iter()
        .map(|o| {
            let mut v = render::operation(o);
            if o.kind == OpKind::Callback {
                v["callback_id"] = json!(durafn_runtime::trigger::callback::token(id, seed, &o.id));
            }
            let attempts = history.operations.iter().find(|a| a.op_id == o.id);
            let dropped = attempts.map_or(0, |a| a.dropped);
            v["attempts"] = attempts.map_or_else(
                || json!([]),
                |a| Value::Array(a.attempts.iter().map(attempt).collect()),
            );
            v["attempts_dropped"] = json!(dropped);
            v["attempts_truncated"] = json!(dropped > 0);
            v
        })
        .collect();
    json!({
        "execution_id": id,
        "status": journal.execution.status,
        "epoch": journal.execution.epoch,
        "history_limit": limit,
        "operations": ops,
        "invocations": history.invocations.iter().map(invocation).collect::<Vec<_>>(),
        "invocations_dropped": history.invocations_dropped,
        "invocations_truncated": history.invocations_dropped > 0,
        "waits": waits(&journal.operations),
    })
}

/// Assembles the history of a loaded journal.
pub fn of(
    journal: &Journal,
    entries: Vec<durafn_runtime::model::HistoryEntry>,
    now: Timestamp,
) -> History {
    assemble(
        &journal.operations,
        entries,
        journal.execution.epoch,
        journal.execution.status,
        now,
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::BTreeSet;
    use std::sync::Arc;

    use axum::body::Body;
    use axum::http::Request;
    use durafn_runtime::clock::SystemClock;
    use durafn_runtime::model::{
        AttemptError, AttemptOutcome, AttemptRecord, ErrorObject, HistoryEntry, NewExecution,
        OpStatus,
    };
    use durafn_runtime::store::{SqliteStore, Store};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;
    use crate::api::{ApiState, Metrics, router};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_route_shows_kept_attempts_and_marks_the_dropped_ones() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path().join("h.db")).unwrap());
        let id = ExecutionId::new("h-1").unwrap();
        store
            .create_execution(&NewExecution {
                id: id.clone(),
                function: "f".into(),
                version: "1".into(),
                input: json!({}),
                now: Timestamp(1_000),
            })
            .await
            .unwrap();
        for n in 1..=5 {
            let entry = HistoryEntry::Attempt(AttemptRecord {
                op_id: "1".into(),
                kind: OpKind::Step,
                name: "flaky".into(),
                attempt: n,
                epoch: u64::from(n),
                started_at: Timestamp(1_000 + i64::from(n) * 100),
                ended_at: Timestamp(1_010 + i64::from(n) * 100),
                outcome: AttemptOutcome::Retrying,
                error: Some(AttemptError::of(&ErrorObject::new(
                    "Flaky",
                    format!("<i>no</i> {n}"),
                ))),
                retry_at: None,
            });
            store.put_history(&id, &entry, 3).await.unwrap();
        }
        let op = Operation {
            id: "1".into(),
            kind: OpKind::Step,
            name: "flaky".into(),
            status: OpStatus::Succeeded,
            attempt: 6,
            result: Some(json!(6)),
            error: None,
            started_at: Timestamp(1_100),
            ended_at: Some(Timestamp(1_700)),
            wake_at: None,
            rev: 1,
        };
        store.put_operation(&id, &op).await.unwrap();
        let state = ApiState {
            store,
            clock: Arc::new(SystemClock),
            functions: Arc::new(BTreeSet::from(["f".to_string()])),
            flow: Default::default(),
            dispatch: None,
            token: None,
            metrics: Arc::new(Metrics::default()),
        };
        let req = Request::get("/v1/executions/h-1/history")
            .body(Body::empty())
            .unwrap();
        let res = router(state).oneshot(req).await.unwrap();
        assert_eq!(res.status(), 200);
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        let flaky = &v["operations"][0];
        assert_eq!(flaky["attempts_truncated"], true, "{v}");
        assert_eq!(flaky["attempts_dropped"], 2, "{v}");
        let numbers: Vec<u64> = flaky["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["attempt"].as_u64().unwrap())
            .collect();
        assert_eq!(numbers, vec![3, 4, 5, 6]);
        assert_eq!(flaky["attempts"][0]["error"]["message"], "<i>no</i> 3");
        assert_eq!(flaky["attempts"][0]["duration_ms"], 10);
        assert_eq!(flaky["attempts"][3]["outcome"], "SUCCEEDED");
        assert_eq!(v["invocations"], json!([]));
        assert_eq!(v["invocations_truncated"], false);
        assert_eq!(v["history_limit"], history_limit());
    }
}
