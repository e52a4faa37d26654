//! Reset and rerun: new executions made from an existing one.
//!
//! - `POST /v1/executions/{id}/reset` `{"to_op": "3"}` creates
//!   `<id>:reset-<n>` whose journal is the original's up to, not including,
//!   operation `3` (in start order; the operation's enclosing contexts are
//!   left out too, so they run again around it), on the function's current
//!   code. Each kept operation is written as its first revision, then the
//!   execution is created: single-item conditional writes only, and the
//!   dispatcher never sees the fork before its journal is complete. The
//!   original's events that no kept operation consumed are sent to the fork
//!   again, in order, so the operations that run again receive them.
//! - `POST /v1/executions/{id}/rerun` creates `<id>:rerun-<n>`: the same
//!   function and input, a fresh journal.
//!
//! The original is not touched. The links live in the ids: a fork's
//! `describe` shows `reset_from` / `rerun_of` (its id minus the suffix), and
//! the original's shows `forks`, found by reading `<id>:reset-1`, `-2`, ...
//! until one does not exist — no new record and no new store method.

use axum::Json;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use durafn_runtime::model::{ExecutionId, NewExecution, OpKind, OpStatus, Operation, op_id_order};
use durafn_runtime::store::{Created, OpWrite};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, ApiState, describe_json, json_body, parse_id};

/// The id suffixes of the two kinds of fork.
const KINDS: [(&str, &str); 2] = [(":reset-", "reset_from"), (":rerun-", "rerun_of")];

/// The most forks of one kind an execution may have.
pub const MAX_FORKS: u32 = 1000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetRequest {
    to_op: String,
}

/// The operations a reset to `to_op` keeps: those before it in start order
/// that are not its enclosing contexts, each as its first revision.
pub fn kept_operations(ops: &[Operation], to_op: &str) -> Vec<Operation> {
    ops.iter()
        .filter(|o| op_id_order(&o.id, to_op).is_lt())
        .filter(|o| !to_op.starts_with(&format!("{}.", o.id)))
        .map(|o| {
            let mut first = o.clone();
            first.rev = 1;
            first
        })
        .collect()
}

pub(super) async fn reset(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let req: ResetRequest = serde_json::from_value(json_body(body)?).map_err(|e| {
        ApiError::bad_request(
            "InvalidRequest",
            format!("{e}; expected {{\"to_op\": \"<operation id>\"}}"),
        )
    })?;
    let id = parse_id(&id)?;
    let journal = state.store.load_journal(&id).await?.ok_or_else(|| {
        ApiError::not_found("ExecutionNotFound", format!("execution {id:?} not found"))
    })?;
    if !journal.operations.iter().any(|o| o.id == req.to_op) {
        return Err(ApiError::not_found(
            "OperationNotFound",
            format!(
                "execution {id} has no operation {:?}; `durafn history {id}` lists its operation ids",
                req.to_op
            ),
        ));
    }
    let kept = kept_operations(&journal.operations, &req.to_op);
    let fork = next_fork_id(&state, &id, ":reset-").await?;
    for op in &kept {
        match state.store.put_operation(&fork, op).await? {
            OpWrite::Written => {}
            OpWrite::Conflict(current) if current == *op => {}
            OpWrite::Conflict(_) => {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "ResetRaced",
                    format!("another reset of {id} is writing {fork}; try again"),
                ));
            }
        }
    }
    let consumed: Vec<&str> = kept
        .iter()
        .filter(|o| o.kind == OpKind::Event && o.status == OpStatus::Succeeded)
        .filter_map(|o| o.result.as_ref()?.get("seq")?.as_str())
        .collect();
    let resend: Vec<_> = journal
        .events
        .iter()
        .filter(|e| !consumed.contains(&e.seq.as_str()))
        .collect();
    let mut created = create(&state, &journal.execution, fork.clone(), kept.len()).await?;
    for ev in &resend {
        state
            .store
            .send_event(&fork, &ev.name, &ev.payload, state.clock.now())
            .await?;
    }
    if !resend.is_empty() {
        state.poke(&fork);
    }
    created.1["events_resent"] = json!(resend.len());
    Ok((StatusCode::CREATED, Json(created.1)).into_response())
}

pub(super) async fn rerun(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let exec = state.store.get_execution(&id).await?.ok_or_else(|| {
        ApiError::not_found("ExecutionNotFound", format!("execution {id:?} not found"))
    })?;
    let fork = next_fork_id(&state, &id, ":rerun-").await?;
    let (status, body) = create(&state, &exec, fork, 0).await?;
    Ok((status, Json(body)).into_response())
}

async fn create(
    state: &ApiState,
    original: &durafn_runtime::model::Execution,
    fork: ExecutionId,
    kept: usize,
) -> Result<(StatusCode, Value), ApiError> {
    let created = state
        .store
        .create_execution(&NewExecution {
            id: fork.clone(),
            function: original.function.clone(),
            // The function's current code: a reset is how a fixed bug reaches
            // a failed execution.
            version: "$LATEST".into(),
            input: original.input.clone(),
            now: state.clock.now(),
        })
        .await?;
    if matches!(created, Created::Existing(_)) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "ForkExists",
            format!("{fork} was created by a concurrent request; see `durafn describe {fork}`"),
        ));
    }
    tracing::info!(original = %original.id, %fork, kept, "forked an execution");
    state.poke(&fork);
    let mut body = describe_json(state, &fork).await?;
    add_links(state, &fork, &mut body).await?;
    body["kept_operations"] = json!(kept);
    Ok((StatusCode::CREATED, body))
}

/// The first `<id><kind><n>` that does not exist.
async fn next_fork_id(
    state: &ApiState,
    id: &ExecutionId,
    kind: &str,
) -> Result<ExecutionId, ApiError> {
    for n in 1..=MAX_FORKS {
        let candidate = ExecutionId::new(format!("{id}{kind}{n}"))?;
        if state.store.get_execution(&candidate).await?.is_none() {
            return Ok(candidate);
        }
    }
    Err(ApiError::new(
        StatusCode::CONFLICT,
        "TooManyForks",
        format!("{id} already has {MAX_FORKS} forks of this kind; fork one of them instead"),
    ))
}

/// Adds the fork links to a `describe` body: `reset_from` / `rerun_of` for a
/// fork, `forks` (ids, oldest first) for an execution that has some.
pub(super) async fn add_links(
    state: &ApiState,
    id: &ExecutionId,
    body: &mut Value,
) -> Result<(), ApiError> {
    let s = id.as_str();
    for (suffix, field) in KINDS {
        if let Some((base, n)) = s.rsplit_once(suffix) {
            if !base.is_empty() && n.parse::<u32>().is_ok() {
                body[field] = json!(base);
            }
        }
    }
    let mut forks = Vec::new();
    for (suffix, _) in KINDS {
        for n in 1..=MAX_FORKS {
            let Ok(candidate) = ExecutionId::new(format!("{s}{suffix}{n}")) else {
                break;
            };
            if state.store.get_execution(&candidate).await?.is_none() {
                break;
            }
            forks.push(candidate);
        }
    }
    body["forks"] = json!(forks);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use durafn_runtime::model::{OpKind, Timestamp};

    fn op(id: &str) -> Operation {
        Operation {
            id: id.into(),
            kind: OpKind::Step,
            name: format!("s{id}"),
            status: durafn_runtime::model::OpStatus::Succeeded,
            attempt: 1,
            result: None,
            error: None,
            started_at: Timestamp(0),
            ended_at: None,
            wake_at: None,
            rev: 3,
        }
    }

    #[test]
    fn a_reset_keeps_what_started_before_the_op_but_not_its_contexts() {
        let ops: Vec<_> = ["1", "2", "2.1", "2.2", "3", "10"].map(op).into();
        let ids = |to: &str| -> Vec<String> {
            kept_operations(&ops, to)
                .into_iter()
                .map(|o| o.id)
                .collect()
        };
        assert_eq!(ids("3"), ["1", "2", "2.1", "2.2"]);
        assert_eq!(ids("2.2"), ["1", "2.1"]);
        assert_eq!(ids("1"), Vec::<String>::new());
        assert_eq!(ids("10"), ["1", "2", "2.1", "2.2", "3"]);
        assert!(kept_operations(&ops, "3").iter().all(|o| o.rev == 1));
    }
}
