//! Writing an execution's history records (see
//! `durafn_runtime::model::history`): each step attempt its operation record
//! does not keep, and each invocation's start and end.
//!
//! Best effort: a history write that fails is logged and dropped, never a
//! reason to fail or abort an invocation (the journal is the truth).

use std::sync::OnceLock;

use durafn_runtime::cost::{StoreUsage, UsageMeter};
use durafn_runtime::model::{Execution, json_len};
use durafn_runtime::model::{
    ExecutionId, ExecutionStatus, HistoryEntry, InvocationOutcome, InvocationRecord, Timestamp,
};
use durafn_runtime::store::{Outcome, Store};
use std::sync::Arc;

use crate::invocation::InvocationReport;

/// This process, as invocation records name it: the log stream (Lambda's
/// sandbox, the emulator's `<function>/<instance>`) and the pid.
pub(crate) fn process_name() -> String {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        let pid = std::process::id();
        match std::env::var("AWS_LAMBDA_LOG_STREAM_NAME") {
            Ok(stream) if !stream.is_empty() => format!("{stream} (pid {pid})"),
            _ => format!("pid {pid}"),
        }
    })
    .clone()
}

/// Writes one record, logging a failure.
pub(crate) async fn write(store: &dyn Store, id: &ExecutionId, entry: &HistoryEntry, keep: u32) {
    if let Err(e) = store.put_history(id, entry, keep).await {
        tracing::warn!(execution_id = %id, key = %entry.key(), error = %e, "could not record history");
    }
}

/// The end of an invocation's record, written once per distinct ending:
/// first beside the invocation's last update (`suspend` or `finish`, so a
/// store that defers history sends it in the same request), then again only
/// if that update turned out otherwise (superseded, or a store error).
pub(crate) struct Ending {
    start: InvocationRecord,
    keep: u32,
    retention: std::time::Duration,
    written: std::sync::Mutex<Option<InvocationRecord>>,
    meter: Arc<UsageMeter>,
}

impl Ending {
    pub(crate) fn new(
        start: InvocationRecord,
        retention: std::time::Duration,
        meter: Arc<UsageMeter>,
    ) -> Self {
        Ending {
            start,
            keep: durafn_runtime::model::history_limit(),
            retention,
            written: std::sync::Mutex::new(None),
            meter,
        }
    }

    /// How many invocation records the execution keeps.
    pub(crate) fn keep(&self) -> u32 {
        self.keep
    }

    /// Records how the invocation ended, unless the record already says so.
    /// Its usage is every store call counted so far, plus its own write.
    pub(crate) async fn record(
        &self,
        store: &dyn Store,
        id: &ExecutionId,
        result: Result<&InvocationReport, String>,
        now: Timestamp,
    ) {
        self.record_inner(store, id, result, now, &[]).await;
    }

    /// [`Ending::record`] written beside the invocation's last update (a
    /// suspend or finish, and the checkpoints and records that go with it,
    /// of about `update_bytes` each), whose writes it counts too:
    /// the two go at once, so neither can wait for the other's measured
    /// cost; both are counted as one write each, units from their bytes.
    pub(crate) async fn record_with_update(
        &self,
        store: &dyn Store,
        id: &ExecutionId,
        result: Result<&InvocationReport, String>,
        now: Timestamp,
        update_bytes: &[usize],
    ) {
        self.record_inner(store, id, result, now, update_bytes)
            .await;
    }

    async fn record_inner(
        &self,
        store: &dyn Store,
        id: &ExecutionId,
        result: Result<&InvocationReport, String>,
        now: Timestamp,
        update_bytes: &[usize],
    ) {
        let mut end = ended(self.start.clone(), result, now, self.retention);
        let mut usage = self.meter.snapshot();
        for bytes in update_bytes {
            usage.add(&one_write(*bytes as u64));
        }
        // Its own write: the record as sent, this usage included.
        end.usage = Some(usage);
        let own = serde_json::to_vec(&HistoryEntry::Invocation(end.clone())).map_or(0, |v| v.len());
        usage.add(&one_write(own as u64 + 64));
        end.usage = Some(usage);
        {
            let mut written = self
                .written
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let same = written.as_ref().is_some_and(|w| {
                (w.outcome, w.status, w.wake_at, &w.error)
                    == (end.outcome, end.status, end.wake_at, &end.error)
            });
            if same {
                return;
            }
            *written = Some(end.clone());
        }
        write(store, id, &HistoryEntry::Invocation(end), self.keep).await;
    }
}

/// One write of `bytes`, its units as DynamoDB would charge them.
fn one_write(bytes: u64) -> StoreUsage {
    StoreUsage {
        writes: 1,
        write_bytes: bytes,
        write_units: durafn_runtime::cost::write_units(bytes),
        ..StoreUsage::default()
    }
}

/// About the size of the execution's meta record once an invocation's last
/// update has rewritten it: DynamoDB charges an update by the whole item
/// (input, output or error, and some 256 bytes of keys, status and times).
pub(crate) fn meta_bytes(e: &Execution, outcome: Option<&Outcome>) -> usize {
    let written = outcome.map_or(0, |o| {
        o.output.as_ref().map_or(0, json_len)
            + o.error.as_ref().map_or(0, |e| {
                e.message.len() + e.error_type.len() + e.data.as_ref().map_or(0, json_len)
            })
    });
    256 + e.id.as_str().len() + json_len(&e.input) + written
}

/// The memory the function runs with, as Lambda (and the emulator) tell it.
fn memory_mb() -> Option<u32> {
    std::env::var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        .ok()
        .and_then(|v| v.trim().parse().ok())
}

/// The record of an invocation that has just started.
pub(crate) fn started(epoch: u64, now: Timestamp, deadline: Option<Timestamp>) -> InvocationRecord {
    InvocationRecord {
        epoch,
        started_at: now,
        ended_at: None,
        outcome: None,
        status: None,
        wake_at: None,
        deadline,
        process: Some(process_name()),
        error: None,
        expires_at: None,
        usage: None,
        memory_mb: memory_mb(),
    }
}

/// `start` completed with how the invocation ended (`Err`: aborted with
/// that error); `expires_at` is set when it ended the execution.
pub(crate) fn ended(
    mut start: InvocationRecord,
    result: Result<&InvocationReport, String>,
    now: Timestamp,
    retention: std::time::Duration,
) -> InvocationRecord {
    start.ended_at = Some(now);
    match result {
        Ok(report) => {
            let status = ExecutionStatus::parse(&report.status);
            start.status = status;
            start.wake_at = report.wake_at;
            start.outcome = Some(match status {
                Some(ExecutionStatus::Suspended) => InvocationOutcome::Suspended,
                Some(ExecutionStatus::Cancelled) | None => InvocationOutcome::Superseded,
                Some(st) => {
                    if st.is_final() {
                        start.expires_at = Some(now.plus(retention));
                    }
                    InvocationOutcome::Finished
                }
            });
        }
        Err(error) => {
            start.outcome = Some(InvocationOutcome::Aborted);
            start.error = Some(durafn_runtime::model::history::clip_text(
                &error,
                durafn_runtime::model::history::MAX_HISTORY_TEXT,
            ));
        }
    }
    start
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(status: &str) -> InvocationReport {
        InvocationReport {
            execution_id: ExecutionId::new("x").unwrap_or_else(|e| panic!("{e}")),
            status: status.into(),
            output: None,
            error: None,
            wake_at: Some(Timestamp(9)),
        }
    }

    #[test]
    fn ends_are_classified_and_finished_ones_expire() {
        let start = started(3, Timestamp(1), Some(Timestamp(100)));
        assert!(start.process.as_deref().is_some_and(|p| p.contains("pid")));
        let day = std::time::Duration::from_secs(86_400);
        let s = ended(start.clone(), Ok(&report("SUSPENDED")), Timestamp(5), day);
        assert_eq!(s.outcome, Some(InvocationOutcome::Suspended));
        assert_eq!(
            (s.ended_at, s.wake_at, s.expires_at),
            (Some(Timestamp(5)), Some(Timestamp(9)), None)
        );
        let f = ended(start.clone(), Ok(&report("FAILED")), Timestamp(5), day);
        assert_eq!(f.outcome, Some(InvocationOutcome::Finished));
        assert_eq!(f.status, Some(ExecutionStatus::Failed));
        assert_eq!(f.expires_at, Some(Timestamp(5).plus(day)));
        let b = ended(start.clone(), Ok(&report("BLOCKED")), Timestamp(5), day);
        assert_eq!(
            (b.outcome, b.expires_at),
            (Some(InvocationOutcome::Finished), None)
        );
        let sup = ended(start.clone(), Ok(&report("SUPERSEDED")), Timestamp(5), day);
        assert_eq!(sup.outcome, Some(InvocationOutcome::Superseded));
        let a = ended(start, Err("store down".into()), Timestamp(5), day);
        assert_eq!(a.outcome, Some(InvocationOutcome::Aborted));
        assert_eq!(a.error.as_deref(), Some("store down"));
    }
}
