//! Decisions for `ctx.sleep` / `ctx.sleep_until`: start, wait, fire, done.

use durafn_runtime::model::{OpKind, OpStatus, Operation, Timestamp};

use super::next_revision;

/// What the timer should do now, given its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SleepDecision {
    /// No record yet: record the timer, due at the requested time.
    Start,
    /// The timer is not due yet: wait (suspend) until then.
    Wait(Timestamp),
    /// The timer is due but not yet marked done: record that it fired.
    Fire,
    /// The timer has fired.
    Done,
}

/// Decides what a timer does at `now`.
pub fn decide(record: Option<&Operation>, now: Timestamp) -> SleepDecision {
    match record {
        None => SleepDecision::Start,
        Some(rec) if rec.status.is_final() => SleepDecision::Done,
        Some(rec) => match rec.wake_at {
            Some(t) if t > now => SleepDecision::Wait(t),
            _ => SleepDecision::Fire,
        },
    }
}

/// The record of a new timer due at `wake_at`.
pub fn scheduled(id: &str, name: &str, wake_at: Timestamp, now: Timestamp) -> Operation {
    let mut op = next_revision(None, id, OpKind::Sleep, name, now);
    op.status = OpStatus::Pending;
    op.wake_at = Some(wake_at);
    op
}

/// The record of a timer that fired.
pub fn fired(prev: &Operation, now: Timestamp) -> Operation {
    let mut op = next_revision(Some(prev), &prev.id, OpKind::Sleep, &prev.name, now);
    op.status = OpStatus::Succeeded;
    op.wake_at = prev.wake_at;
    op.ended_at = Some(now);
    op
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timer_starts_waits_fires_and_is_done() {
        let now = Timestamp(1_000);
        assert_eq!(decide(None, now), SleepDecision::Start);
        let rec = scheduled("2", "cool-off", Timestamp(11_000), now);
        assert_eq!(
            decide(Some(&rec), now),
            SleepDecision::Wait(Timestamp(11_000))
        );
        assert_eq!(decide(Some(&rec), Timestamp(11_000)), SleepDecision::Fire);
        let done = fired(&rec, Timestamp(11_005));
        assert_eq!((done.rev, done.status), (2, OpStatus::Succeeded));
        assert_eq!(decide(Some(&done), Timestamp(0)), SleepDecision::Done);
    }
}
