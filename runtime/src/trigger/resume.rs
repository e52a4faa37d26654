//! Resuming a `FAILED` or `BLOCKED` execution from its last checkpoint.

use crate::error::Result;
use crate::model::{Execution, ExecutionId, ExecutionStatus, OpKind, OpStatus, Timestamp};
use crate::store::Store;

/// Why a resume was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResumeError {
    /// No such execution.
    #[error("execution not found")]
    NotFound,
    /// Only failed or blocked executions can be resumed.
    #[error("only FAILED or BLOCKED executions can be resumed; this one is {0}")]
    NotResumable(ExecutionStatus),
}

/// Resumes an execution. For a `FAILED` one, the operation its error names
/// (`error.data.op_id`) and that operation's failed descendants are reopened
/// (a step gets a fresh set of attempts), so the next invocation retries them
/// instead of replaying the failure. A `BLOCKED` one simply runs again, on
/// whatever code is deployed now.
pub async fn resume(
    store: &dyn Store,
    id: &ExecutionId,
    now: Timestamp,
) -> Result<std::result::Result<Execution, ResumeError>> {
    let Some(journal) = store.load_journal(id).await? else {
        return Ok(Err(ResumeError::NotFound));
    };
    let exec = &journal.execution;
    match exec.status {
        ExecutionStatus::Failed | ExecutionStatus::Blocked => {}
        other => return Ok(Err(ResumeError::NotResumable(other))),
    }
    if exec.status == ExecutionStatus::Failed {
        let failed_op = exec
            .error
            .as_ref()
            .and_then(|e| e.data.as_ref())
            .and_then(|d| d.get("op_id"))
            .and_then(|v| v.as_str())
            .map(str::to_string);
        if let Some(root) = failed_op {
            let prefix = format!("{root}.");
            for op in journal.operations.iter().filter(|o| {
                (o.id == root || o.id.starts_with(&prefix))
                    && matches!(o.status, OpStatus::Failed | OpStatus::TimedOut)
            }) {
                let mut reopened = op.clone();
                reopened.rev = op.rev + 1;
                reopened.status = OpStatus::Pending;
                reopened.ended_at = None;
                reopened.wake_at = match op.kind {
                    OpKind::Step => Some(now),
                    _ => None,
                };
                if op.kind == OpKind::Step {
                    reopened.attempt = 0;
                }
                // First writer wins: if something else moved it, keep that.
                store.put_operation(id, &reopened).await?;
            }
        }
    }
    match store.resume(id, now).await? {
        Some(e) => Ok(Ok(e)),
        None => Ok(Err(ResumeError::NotFound)),
    }
}
