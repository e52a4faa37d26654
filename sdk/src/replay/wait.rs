//! Decisions for operations that wait on the outside world: callbacks and events.
//!
//! Both record a `PENDING` operation when first reached (with its timeout as
//! `wake_at`), then end `SUCCEEDED` (a result arrived), `FAILED` (a callback
//! was failed) or `TIMED_OUT` (first writer wins between a late result and the
//! timeout).

use durafn_runtime::model::{ErrorObject, EventRecord, OpKind, OpStatus, Operation, Timestamp};
use serde_json::{Value, json};

use super::next_revision;

/// What a waiting operation should do now.
#[derive(Debug, Clone, PartialEq)]
pub enum WaitDecision {
    /// Not recorded yet: record it as pending.
    Register,
    /// Nothing arrived yet: wait (suspend) until the timeout, or indefinitely.
    Wait(Option<Timestamp>),
    /// The timeout has passed: record that.
    TimeOut,
    /// An event arrived (events only): record its delivery.
    Deliver(EventRecord),
    /// Recorded result.
    Return(Value),
    /// Recorded failure.
    Raise(ErrorObject),
    /// Recorded timeout.
    TimedOut,
}

fn settled(rec: &Operation) -> Option<WaitDecision> {
    match rec.status {
        OpStatus::Succeeded => Some(WaitDecision::Return(
            rec.result.clone().unwrap_or(Value::Null),
        )),
        OpStatus::Failed | OpStatus::Cancelled => {
            Some(WaitDecision::Raise(rec.error.clone().unwrap_or_else(
                || ErrorObject::new("CallbackFailed", "failed without an error"),
            )))
        }
        OpStatus::TimedOut => Some(WaitDecision::TimedOut),
        OpStatus::Pending | OpStatus::Started => None,
    }
}

/// Decides what a callback does at `now`.
pub fn callback(record: Option<&Operation>, now: Timestamp) -> WaitDecision {
    let Some(rec) = record else {
        return WaitDecision::Register;
    };
    if let Some(d) = settled(rec) {
        return d;
    }
    match rec.wake_at {
        Some(t) if t <= now => WaitDecision::TimeOut,
        other => WaitDecision::Wait(other),
    }
}

/// The sequence numbers of events already consumed by `wait_for_event` operations.
pub fn consumed_events<'a>(ops: impl Iterator<Item = &'a Operation>) -> Vec<String> {
    ops.filter(|o| o.kind == OpKind::Event && o.status == OpStatus::Succeeded)
        .filter_map(|o| o.result.as_ref()?.get("seq")?.as_str().map(str::to_string))
        .collect()
}

/// Decides what `wait_for_event` does at `now`, given the execution's events
/// and the ones other operations already consumed.
pub fn event(
    record: Option<&Operation>,
    now: Timestamp,
    events: &[EventRecord],
    consumed: &[String],
) -> WaitDecision {
    let Some(rec) = record else {
        return WaitDecision::Register;
    };
    if let Some(d) = settled(rec) {
        return match d {
            WaitDecision::Return(v) => {
                WaitDecision::Return(v.get("payload").cloned().unwrap_or(Value::Null))
            }
            other => other,
        };
    }
    let next = events
        .iter()
        .find(|e| e.name == rec.name && !consumed.contains(&e.seq));
    if let Some(e) = next {
        return WaitDecision::Deliver(e.clone());
    }
    match rec.wake_at {
        Some(t) if t <= now => WaitDecision::TimeOut,
        other => WaitDecision::Wait(other),
    }
}

/// The pending record of a new callback or event wait.
pub fn registered(
    kind: OpKind,
    id: &str,
    name: &str,
    timeout_at: Option<Timestamp>,
    settings: Option<Value>,
    now: Timestamp,
) -> Operation {
    let mut op = next_revision(None, id, kind, name, now);
    op.status = OpStatus::Pending;
    op.wake_at = timeout_at;
    op.result = settings;
    op
}

/// The record of an event's delivery to a waiting operation.
pub fn delivered(prev: &Operation, event: &EventRecord, now: Timestamp) -> Operation {
    let mut op = next_revision(Some(prev), &prev.id, prev.kind, &prev.name, now);
    op.status = OpStatus::Succeeded;
    op.result = Some(json!({ "seq": event.seq, "payload": event.payload }));
    op.ended_at = Some(now);
    op
}

/// The record of a wait that timed out.
pub fn timed_out(prev: &Operation, now: Timestamp) -> Operation {
    let mut op = next_revision(Some(prev), &prev.id, prev.kind, &prev.name, now);
    op.status = OpStatus::TimedOut;
    op.wake_at = prev.wake_at;
    op.error = Some(ErrorObject::new(
        "Timeout",
        format!("{} {:?} timed out", prev.kind, prev.name),
    ));
    op.ended_at = Some(now);
    op
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(seq: &str, name: &str, payload: Value) -> EventRecord {
        EventRecord {
            seq: seq.into(),
            name: name.into(),
            payload,
            sent_at: Timestamp(0),
        }
    }

    #[test]
    fn a_callback_waits_then_times_out() {
        let now = Timestamp(1_000);
        assert_eq!(callback(None, now), WaitDecision::Register);
        let rec = registered(
            OpKind::Callback,
            "1",
            "approval",
            Some(Timestamp(5_000)),
            None,
            now,
        );
        assert_eq!(
            callback(Some(&rec), now),
            WaitDecision::Wait(Some(Timestamp(5_000)))
        );
        assert_eq!(
            callback(Some(&rec), Timestamp(5_000)),
            WaitDecision::TimeOut
        );
        let t = timed_out(&rec, Timestamp(5_000));
        assert_eq!(callback(Some(&t), Timestamp(0)), WaitDecision::TimedOut);
        let forever = registered(OpKind::Callback, "1", "approval", None, None, now);
        assert_eq!(
            callback(Some(&forever), Timestamp(i64::MAX)),
            WaitDecision::Wait(None)
        );
    }

    #[test]
    fn events_are_consumed_once_in_order() {
        let now = Timestamp(1);
        let events = vec![
            ev("01", "ack", json!(1)),
            ev("02", "other", json!(2)),
            ev("03", "ack", json!(3)),
        ];
        let a = registered(OpKind::Event, "1", "ack", None, None, now);
        let WaitDecision::Deliver(first) = event(Some(&a), now, &events, &[]) else {
            panic!()
        };
        assert_eq!(first.seq, "01");
        let a_done = delivered(&a, &first, now);
        let consumed = consumed_events([&a_done].into_iter());
        assert_eq!(consumed, vec!["01".to_string()]);
        let b = registered(OpKind::Event, "2", "ack", None, None, now);
        let WaitDecision::Deliver(second) = event(Some(&b), now, &events, &consumed) else {
            panic!()
        };
        assert_eq!(second.payload, json!(3));
        assert_eq!(
            event(Some(&a_done), now, &events, &consumed),
            WaitDecision::Return(json!(1))
        );
        let c = registered(OpKind::Event, "3", "ack", Some(Timestamp(9)), None, now);
        let all = vec!["01".to_string(), "03".to_string()];
        assert_eq!(
            event(Some(&c), now, &events, &all),
            WaitDecision::Wait(Some(Timestamp(9)))
        );
        assert_eq!(
            event(Some(&c), Timestamp(9), &events, &all),
            WaitDecision::TimeOut
        );
    }
}
