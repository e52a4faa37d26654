//! Decisions for `ctx.step`: return, raise, wait, or run an attempt.

use durafn_runtime::model::{
    AttemptError, AttemptOutcome, AttemptRecord, ErrorObject, OpKind, OpStatus, Operation,
    Timestamp,
};
use serde_json::Value;

use super::next_revision;
use crate::retry::RetryPolicy;

/// What the step should do now, given its record.
#[derive(Debug, Clone, PartialEq)]
pub enum StepDecision {
    /// Recorded success: return this result without running.
    Return(Value),
    /// Recorded failure: raise this error again, identically.
    Raise {
        /// The recorded error.
        error: ErrorObject,
        /// The attempt that failed last.
        attempts: u32,
    },
    /// A retry backoff is running: wait until then (suspend).
    Wait(Timestamp),
    /// Run this attempt (1-based).
    Run {
        /// The attempt number.
        attempt: u32,
    },
    /// An at-most-once attempt started but never recorded an outcome: it may
    /// or may not have run, so it counts as failed and is not repeated.
    Interrupted {
        /// The interrupted attempt.
        attempt: u32,
    },
}

/// Decides what a step does at `now`.
pub fn decide(record: Option<&Operation>, now: Timestamp) -> StepDecision {
    let Some(rec) = record else {
        return StepDecision::Run { attempt: 1 };
    };
    match rec.status {
        OpStatus::Succeeded => StepDecision::Return(rec.result.clone().unwrap_or(Value::Null)),
        OpStatus::Failed | OpStatus::Cancelled | OpStatus::TimedOut => StepDecision::Raise {
            error: rec.error.clone().unwrap_or_else(|| {
                ErrorObject::new(
                    rec.status.as_str(),
                    "the step ended without a recorded error",
                )
            }),
            attempts: rec.attempt,
        },
        OpStatus::Pending => match rec.wake_at {
            Some(t) if t > now => StepDecision::Wait(t),
            _ => StepDecision::Run {
                attempt: rec.attempt + 1,
            },
        },
        OpStatus::Started => StepDecision::Interrupted {
            attempt: rec.attempt,
        },
    }
}

/// The record an at-most-once step writes before running `attempt`.
pub fn started(
    prev: Option<&Operation>,
    id: &str,
    name: &str,
    attempt: u32,
    now: Timestamp,
) -> Operation {
    let mut op = next_revision(prev, id, OpKind::Step, name, now);
    op.status = OpStatus::Started;
    op.attempt = attempt;
    op
}

/// The record of a successful attempt.
pub fn succeeded(
    prev: Option<&Operation>,
    id: &str,
    name: &str,
    attempt: u32,
    result: Value,
    now: Timestamp,
) -> Operation {
    let mut op = next_revision(prev, id, OpKind::Step, name, now);
    op.status = OpStatus::Succeeded;
    op.attempt = attempt;
    op.result = Some(result);
    op.ended_at = Some(now);
    op
}

/// The record of a failed attempt: a retry at a later time, or the final failure.
///
/// `retryable` is false for terminal errors; `unit` in `[0, 1)` drives jitter.
#[allow(clippy::too_many_arguments)]
pub fn failed(
    prev: Option<&Operation>,
    id: &str,
    name: &str,
    attempt: u32,
    error: ErrorObject,
    retryable: bool,
    policy: &RetryPolicy,
    now: Timestamp,
    unit: f64,
) -> Operation {
    let mut op = next_revision(prev, id, OpKind::Step, name, now);
    op.attempt = attempt;
    op.error = Some(error);
    if retryable && attempt < policy.max_attempts {
        op.status = OpStatus::Pending;
        op.wake_at = Some(now.plus(policy.delay_after(attempt, unit)));
    } else {
        op.status = OpStatus::Failed;
        op.ended_at = Some(now);
    }
    op
}

/// The history record of the attempt `next` (the record it ends with) ends,
/// run from `started` to `ended` by the invocation of `epoch`; `None` when
/// `next` keeps all of it already (a first attempt that succeeded).
/// `interrupted`: the attempt is an at-most-once one found started.
pub fn attempt_record(
    next: &Operation,
    (started, ended): (Timestamp, Timestamp),
    epoch: u64,
    interrupted: bool,
) -> Option<AttemptRecord> {
    let outcome = match next.status {
        _ if interrupted => AttemptOutcome::Interrupted,
        OpStatus::Succeeded if next.attempt <= 1 => return None,
        OpStatus::Succeeded => AttemptOutcome::Succeeded,
        OpStatus::Pending => AttemptOutcome::Retrying,
        OpStatus::Started => return None,
        OpStatus::Failed | OpStatus::Cancelled | OpStatus::TimedOut => AttemptOutcome::Failed,
    };
    Some(AttemptRecord {
        op_id: next.id.clone(),
        kind: next.kind,
        name: next.name.clone(),
        attempt: next.attempt,
        epoch,
        started_at: started,
        ended_at: ended,
        outcome,
        error: next.error.as_ref().map(AttemptError::of),
        retry_at: if next.status == OpStatus::Pending {
            next.wake_at
        } else {
            None
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const NOW: Timestamp = Timestamp(1_000_000);

    #[test]
    fn a_new_step_runs_its_first_attempt() {
        assert_eq!(decide(None, NOW), StepDecision::Run { attempt: 1 });
    }

    #[test]
    fn recorded_outcomes_are_returned_or_raised() {
        let ok = succeeded(None, "1", "charge", 1, Value::from("ch-1"), NOW);
        assert_eq!(
            decide(Some(&ok), NOW),
            StepDecision::Return(Value::from("ch-1"))
        );
        let err = ErrorObject::new("Declined", "card declined");
        let bad = failed(
            None,
            "1",
            "charge",
            2,
            err.clone(),
            false,
            &RetryPolicy::default(),
            NOW,
            0.0,
        );
        assert_eq!(bad.status, OpStatus::Failed);
        assert_eq!(
            decide(Some(&bad), NOW),
            StepDecision::Raise {
                error: err,
                attempts: 2
            }
        );
    }

    #[test]
    fn a_retryable_failure_waits_then_runs_the_next_attempt() {
        let policy = RetryPolicy::fixed(Duration::from_secs(10));
        let err = ErrorObject::new("Timeout", "slow");
        let rec = failed(None, "1", "reserve", 1, err, true, &policy, NOW, 0.3);
        assert_eq!(rec.status, OpStatus::Pending);
        let wake = NOW.plus(Duration::from_secs(10));
        assert_eq!(rec.wake_at, Some(wake));
        assert_eq!(decide(Some(&rec), NOW), StepDecision::Wait(wake));
        assert_eq!(decide(Some(&rec), wake), StepDecision::Run { attempt: 2 });
    }

    #[test]
    fn the_last_attempt_fails_for_good() {
        let policy = RetryPolicy::exponential().max_attempts(2);
        let err = ErrorObject::new("E", "x");
        let rec = failed(None, "1", "s", 2, err, true, &policy, NOW, 0.5);
        assert_eq!(rec.status, OpStatus::Failed);
        assert_eq!(rec.ended_at, Some(NOW));
    }

    #[test]
    fn an_interrupted_at_most_once_attempt_is_not_rerun() {
        let rec = started(None, "1", "charge", 1, NOW);
        assert_eq!(
            decide(Some(&rec), NOW),
            StepDecision::Interrupted { attempt: 1 }
        );
    }

    #[test]
    fn attempts_the_record_does_not_keep_get_a_history_record() {
        let t = (NOW, NOW.plus(Duration::from_secs(2)));
        let first = succeeded(None, "1", "s", 1, Value::Null, t.1);
        assert_eq!(attempt_record(&first, t, 1, false), None);
        let policy = RetryPolicy::fixed(Duration::from_secs(10));
        let err = ErrorObject::new("Flaky", "no");
        let retry = failed(None, "1", "s", 1, err.clone(), true, &policy, t.1, 0.0);
        let rec = attempt_record(&retry, t, 4, false).unwrap_or_else(|| panic!("recorded"));
        assert_eq!(rec.outcome, AttemptOutcome::Retrying);
        assert_eq!((rec.started_at, rec.ended_at, rec.epoch), (NOW, t.1, 4));
        assert_eq!(rec.retry_at, retry.wake_at);
        assert_eq!(rec.error.map(|e| e.message), Some("no".to_string()));
        let last = succeeded(Some(&retry), "1", "s", 2, Value::Null, t.1);
        let rec = attempt_record(&last, t, 5, false).unwrap_or_else(|| panic!("recorded"));
        assert_eq!(
            (rec.attempt, rec.outcome, rec.retry_at),
            (2, AttemptOutcome::Succeeded, None)
        );
        let cut = failed(None, "1", "s", 1, err, true, &policy, t.1, 0.0);
        let rec = attempt_record(&cut, t, 5, true).unwrap_or_else(|| panic!("recorded"));
        assert_eq!(rec.outcome, AttemptOutcome::Interrupted);
    }

    #[test]
    fn revisions_advance_with_each_record() {
        let a = started(None, "1", "s", 1, NOW);
        let b = succeeded(
            Some(&a),
            "1",
            "s",
            1,
            Value::Null,
            NOW.plus(Duration::from_secs(1)),
        );
        assert_eq!((a.rev, b.rev), (1, 2));
        assert_eq!(b.started_at, NOW);
    }
}
