//! The JSON shapes of executions and operations, as the API and CLI show them.

use durafn_runtime::model::{Execution, ExecutionStatus, OpKind, OpStatus, Operation, Timestamp};
use serde_json::{Value, json};

/// A timestamp as RFC 3339 (UTC, milliseconds).
pub fn iso(t: Timestamp) -> String {
    jiff::Timestamp::from_millisecond(t.0).map_or_else(|_| t.0.to_string(), |d| d.to_string())
}

/// A time given to a list filter (`since=`, `until=`): epoch milliseconds or
/// RFC 3339 (`2026-11-25T09:00:00Z`, any offset); empty means none.
pub fn parse_time(what: &str, s: &str) -> Result<Option<Timestamp>, crate::api::ApiError> {
    if s.is_empty() {
        return Ok(None);
    }
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(Some(Timestamp(ms)));
    }
    s.parse::<jiff::Timestamp>()
        .map(|d| Some(Timestamp(d.as_millisecond())))
        .map_err(|_| {
            crate::api::ApiError::bad_request(
                "InvalidRequest",
                format!(
                    "{what}={s:?} is not an RFC 3339 time (2026-11-25T09:00:00Z) or epoch milliseconds"
                ),
            )
        })
}

fn opt_iso(t: Option<Timestamp>) -> Value {
    t.map_or(Value::Null, |t| Value::String(iso(t)))
}

/// What an execution waits for, read off its journal.
pub fn waiting_on(exec: &Execution, ops: &[Operation]) -> Value {
    if exec.status != ExecutionStatus::Suspended {
        return Value::Null;
    }
    let pending: Vec<Value> = ops
        .iter()
        .filter(|o| o.status == OpStatus::Pending)
        .map(|o| {
            let kind = match o.kind {
                OpKind::Sleep => "timer",
                OpKind::Step => "retry",
                OpKind::Callback => "callback",
                OpKind::Event => "event",
                _ => "operation",
            };
            let mut w = json!({
                "kind": kind,
                "op_id": o.id,
                "name": o.name,
                "attempt": o.attempt,
                "until": opt_iso(o.wake_at),
                "since": iso(o.started_at),
            });
            if o.kind == OpKind::Callback {
                w["callback_id"] = json!(durafn_runtime::trigger::callback::token(
                    &exec.id, &exec.seed, &o.id
                ));
            }
            w
        })
        .collect();
    match pending.len() {
        0 => json!({ "kind": "resume", "until": opt_iso(exec.due_at) }),
        1 => pending.into_iter().next().unwrap_or(Value::Null),
        _ => json!({ "kind": "several", "operations": pending, "until": opt_iso(exec.due_at) }),
    }
}

/// The operation the execution is on: the latest one not finished, else the last one.
pub fn current_operation(ops: &[Operation]) -> Value {
    ops.iter()
        .rev()
        .find(|o| !o.status.is_final())
        .or_else(|| ops.last())
        .map_or(
            Value::Null,
            |o| json!({ "op_id": o.id, "type": o.kind, "name": o.name, "status": o.status }),
        )
}

/// The execution that invoked this one (`<parent>::<op id>`), if any.
pub fn parent_id(e: &Execution) -> Value {
    e.id.as_str()
        .rsplit_once("::")
        .filter(|(_, op)| {
            let op = op.split(':').next().unwrap_or(op);
            !op.is_empty() && op.split('.').all(|p| p.parse::<u32>().is_ok())
        })
        .map_or(Value::Null, |(p, _)| Value::String(p.to_string()))
}

/// An execution's summary (for lists).
pub fn summary(e: &Execution) -> Value {
    json!({
        "id": e.id,
        "function": e.function,
        "status": e.status,
        "paused": e.paused,
        "created_at": iso(e.created_at),
        "updated_at": iso(e.updated_at),
        "ended_at": opt_iso(e.ended_at),
    })
}

/// An execution in full (for describe), with its journal-derived state.
pub fn describe(e: &Execution, ops: &[Operation]) -> Value {
    json!({
        "id": e.id,
        "function": e.function,
        "version": e.version,
        "status": e.status,
        "paused": e.paused,
        "priority": e.priority,
        "fairness_key": e.fairness_key,
        "created_at": iso(e.created_at),
        "updated_at": iso(e.updated_at),
        "ended_at": opt_iso(e.ended_at),
        "input": e.input,
        "output": e.output,
        "error": e.error,
        "waiting_on": waiting_on(e, ops),
        "parent_id": parent_id(e),
        "current_operation": current_operation(ops),
        "operations": ops.len(),
    })
}

/// One operation of a history. A callback shows the `callback_id` its
/// record carries (`null` once it succeeded: the result replaces it; the
/// history endpoint fills it in from the execution's seed).
pub fn operation(o: &Operation) -> Value {
    let mut v = json!({
        "id": o.id,
        "type": o.kind,
        "name": o.name,
        "status": o.status,
        "attempt": o.attempt,
        "started_at": iso(o.started_at),
        "ended_at": opt_iso(o.ended_at),
        "wake_at": opt_iso(o.wake_at),
        "result": o.result,
        "error": o.error,
    });
    if o.kind == OpKind::Callback {
        v["callback_id"] = json!(durafn_runtime::trigger::callback::recorded_id(o));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use durafn_runtime::model::ErrorObject;

    fn callback(status: OpStatus, error: Option<ErrorObject>) -> Operation {
        Operation {
            id: "2".into(),
            kind: OpKind::Callback,
            name: "job".into(),
            status,
            attempt: 0,
            result: Some(durafn_runtime::trigger::callback::pending_settings(
                "cb1.78.2.00",
                None,
                Some(60_000),
            )),
            error,
            started_at: Timestamp(0),
            ended_at: None,
            wake_at: Some(Timestamp(60_000)),
            rev: 1,
        }
    }

    #[test]
    fn a_callback_shows_the_id_its_record_carries_and_a_missed_heartbeat() {
        let pending = operation(&callback(OpStatus::Pending, None));
        assert_eq!(pending["callback_id"], "cb1.78.2.00");
        let hb = ErrorObject::new(
            "HeartbeatTimeout",
            "callback \"job\" timed out waiting for a heartbeat",
        );
        let missed = operation(&callback(OpStatus::TimedOut, Some(hb)));
        assert_eq!(missed["status"], "TIMED_OUT");
        assert_eq!(missed["error"]["type"], "HeartbeatTimeout");
        assert_eq!(missed["callback_id"], "cb1.78.2.00");
        let mut step = callback(OpStatus::Succeeded, None);
        step.kind = OpKind::Parallel;
        let batch = operation(&step);
        assert_eq!(batch["type"], "PARALLEL");
        assert!(batch.get("callback_id").is_none());
    }

    #[test]
    fn timestamps_render_as_rfc3339() {
        assert_eq!(
            iso(Timestamp(1_767_225_600_123)),
            "2026-01-01T00:00:00.123Z"
        );
    }
}
