//! Decisions for operations that wait on the outside world: callbacks and events.
//!
//! A callback is recorded `PENDING` when it is *created* (its id, timeout and
//! heartbeat settings in `result`, the earlier of both deadlines as
//! `wake_at`), so it can be completed before anything awaits it; an event
//! wait is recorded when first awaited. Both then end `SUCCEEDED` (a result
//! arrived), `FAILED` (a callback was failed) or `TIMED_OUT` (first writer
//! wins between a late result and the timeout). A callback that missed its
//! heartbeat is `TIMED_OUT` with the error type `HeartbeatTimeout`, apart
//! from the overall `Timeout`.

use std::time::Duration;

use durafn_runtime::model::{ErrorObject, EventRecord, OpKind, OpStatus, Operation, Timestamp};
use durafn_runtime::trigger::callback::pending_settings;
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
    /// Recorded missed heartbeat (callbacks only).
    HeartbeatTimedOut,
}

/// The error type of a callback that missed its heartbeat.
pub const HEARTBEAT_TIMEOUT: &str = "HeartbeatTimeout";

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
        OpStatus::TimedOut
            if rec
                .error
                .as_ref()
                .is_some_and(|e| e.error_type == HEARTBEAT_TIMEOUT) =>
        {
            Some(WaitDecision::HeartbeatTimedOut)
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

/// The pending record of a callback created at `now`: its id and settings
/// kept in `result`; `wake_at` the earlier of its timeout and its first
/// heartbeat deadline (both clocks start at creation).
pub fn callback_created(
    id: &str,
    name: &str,
    callback_id: &str,
    timeout: Option<Duration>,
    heartbeat: Option<Duration>,
    now: Timestamp,
) -> Operation {
    let timeout_at = timeout.map(|d| now.plus(d));
    let heartbeat_at = heartbeat.map(|d| now.plus(d));
    let wake = match (timeout_at, heartbeat_at) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let hb_ms = heartbeat.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let settings = pending_settings(callback_id, timeout_at, hb_ms);
    registered(OpKind::Callback, id, name, wake, Some(settings), now)
}

/// The record of a callback whose deadline (`wake_at`) has passed: a missed
/// heartbeat if it has a heartbeat timeout and the deadline came before its
/// overall timeout, else its overall timeout. Its settings stay in `result`.
pub fn callback_timed_out(prev: &Operation, now: Timestamp) -> Operation {
    let settings = prev.result.as_ref();
    let heartbeat_ms = settings.and_then(|s| s.get("heartbeat_timeout_ms")?.as_u64());
    let timeout_at = settings.and_then(|s| s.get("timeout_at")?.as_i64());
    let heartbeat_missed = heartbeat_ms.is_some()
        && match (prev.wake_at, timeout_at) {
            (Some(wake), Some(t)) => wake.0 < t,
            _ => true,
        };
    let mut op = timed_out(prev, now);
    op.result = prev.result.clone();
    if let Some(ms) = heartbeat_ms.filter(|_| heartbeat_missed) {
        op.error = Some(ErrorObject::new(
            HEARTBEAT_TIMEOUT,
            format!(
                "callback {:?} timed out waiting for a heartbeat: none arrived within {}",
                prev.name,
                humanize(Duration::from_millis(ms))
            ),
        ));
    }
    op
}

fn humanize(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
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
    fn a_missed_heartbeat_is_told_apart_from_the_overall_timeout() {
        let now = Timestamp(0);
        let both = callback_created(
            "1",
            "job",
            "cb1.x",
            Some(Duration::from_secs(3600)),
            Some(Duration::from_secs(60)),
            now,
        );
        assert_eq!(both.wake_at, Some(Timestamp(60_000)), "heartbeat first");
        assert_eq!(both.result.as_ref().unwrap()["callback_id"], "cb1.x");
        let hb = callback_timed_out(&both, Timestamp(60_000));
        let err = hb.error.clone().unwrap();
        assert_eq!(err.error_type, HEARTBEAT_TIMEOUT);
        assert!(err.message.contains("heartbeat"), "{err}");
        assert!(err.message.contains("60 s"), "{err}");
        assert_eq!(hb.status, OpStatus::TimedOut);
        assert_eq!(hb.result, both.result, "the settings and id stay");
        assert_eq!(
            callback(Some(&hb), Timestamp(0)),
            WaitDecision::HeartbeatTimedOut
        );

        // Heartbeats pushed the deadline to the overall timeout: that is what ran out.
        let mut late = both.clone();
        late.wake_at = Some(Timestamp(3_600_000));
        let overall = callback_timed_out(&late, Timestamp(3_600_000));
        assert_eq!(overall.error.unwrap().error_type, "Timeout");
        assert_eq!(
            callback(Some(&overall_rec(&late)), now),
            WaitDecision::TimedOut
        );

        // A heartbeat timeout alone.
        let only_hb = callback_created(
            "1",
            "job",
            "cb1.x",
            None,
            Some(Duration::from_millis(1500)),
            now,
        );
        let e = callback_timed_out(&only_hb, Timestamp(1_500))
            .error
            .unwrap();
        assert_eq!(
            (e.error_type.as_str(), e.message.contains("1500 ms")),
            (HEARTBEAT_TIMEOUT, true)
        );
        // A timeout alone.
        let only_t = callback_created("1", "job", "cb1.x", Some(Duration::from_secs(5)), None, now);
        assert_eq!(
            callback_timed_out(&only_t, Timestamp(5_000))
                .error
                .unwrap()
                .error_type,
            "Timeout"
        );
    }

    fn overall_rec(prev: &Operation) -> Operation {
        callback_timed_out(prev, prev.wake_at.unwrap_or(Timestamp(0)))
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
