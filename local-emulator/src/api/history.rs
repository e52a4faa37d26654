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
