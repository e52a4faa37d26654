//! `POST /v1/executions/{id}/pause` and `/unpause`: an operator stops an
//! execution from being dispatched (its running invocation finishes the
//! current step and suspends) and lets it go again later; the same for a
//! function; and the flow-control fields of a start (priority, fairness key).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use durafn_runtime::dispatch::pause;
use serde_json::{Value, json};

use super::{ApiError, ApiState, describe_json, parse_id};

/// `POST /v1/executions/{id}/pause`: 409 if it has ended or is `BLOCKED`
/// (nothing dispatches it anyway); pausing a paused one is a no-op.
pub(super) async fn pause(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    let exec = state
        .store
        .set_paused(&id, true, state.clock.now())
        .await?
        .ok_or_else(|| {
            ApiError::not_found("ExecutionNotFound", format!("execution {id:?} not found"))
        })?;
    if !exec.paused {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "NotPausable",
            format!(
                "execution {id} is {}: only PENDING, RUNNING and SUSPENDED executions can be paused",
                exec.status
            ),
        ));
    }
    Ok(Json(describe_json(&state, &id).await?))
}

/// `POST /v1/executions/{id}/unpause`: due at once again (an execution that
/// was not paused is left as it is).
pub(super) async fn unpause(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    state
        .store
        .set_paused(&id, false, state.clock.now())
        .await?
        .ok_or_else(|| {
            ApiError::not_found("ExecutionNotFound", format!("execution {id:?} not found"))
        })?;
    state.poke(&id);
    Ok(Json(describe_json(&state, &id).await?))
}

fn known_function(state: &ApiState, function: &str) -> Result<(), ApiError> {
    if state.functions.contains(function) {
        return Ok(());
    }
    Err(ApiError::not_found(
        "FunctionNotFound",
        format!("no function named {function:?} in the template"),
    ))
}

/// `POST /v1/functions/{function}/pause`: nothing of it is dispatched until
/// it is unpaused; starts are accepted and wait as `PENDING`.
pub(super) async fn pause_function(
    State(state): State<ApiState>,
    Path(function): Path<String>,
) -> Result<Json<Value>, ApiError> {
    known_function(&state, &function)?;
    pause::pause_function(state.store.as_ref(), &function, state.clock.now()).await?;
    if let Some(d) = &state.dispatch {
        d.function_pauses_changed();
    }
    Ok(Json(json!({ "function": function, "paused": true })))
}

/// `POST /v1/functions/{function}/unpause`: its waiting executions are due
/// at once.
pub(super) async fn unpause_function(
    State(state): State<ApiState>,
    Path(function): Path<String>,
) -> Result<Json<Value>, ApiError> {
    known_function(&state, &function)?;
    let n = pause::unpause_function(state.store.as_ref(), &function, state.clock.now()).await?;
    if let Some(d) = &state.dispatch {
        d.function_pauses_changed();
        d.wake();
    }
    Ok(Json(
        json!({ "function": function, "paused": false, "unpaused_executions": n }),
    ))
}

/// A start's priority and fairness key from its request body: a priority
/// other than an integer from 1 to 5, or a bad key, is a 400 before
/// anything is created.
pub(super) fn start_options(
    priority: Option<&Value>,
    fairness_key: Option<&str>,
) -> Result<durafn_runtime::model::StartOptions, ApiError> {
    use durafn_runtime::model::StartOptions;
    let bad =
        |e: durafn_runtime::StoreError| ApiError::bad_request("InvalidRequest", e.to_string());
    let mut options = StartOptions::default();
    if let Some(p) = priority {
        options.priority = StartOptions::parse_priority(p).map_err(bad)?;
    }
    if let Some(k) = fairness_key {
        StartOptions::check_fairness_key(k).map_err(bad)?;
        options.fairness_key = Some(k.to_string());
    }
    Ok(options)
}
