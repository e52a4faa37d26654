//! `GET /v1/executions/{id}/journal`: an execution's record, its operations in
//! start order and its events, as one JSON object — the line `durafn export`
//! writes for `durafn replay-check` (the SDK's `replay_check::ExportedJournal`).
//! The execution's secret seed is never included.

use axum::Json;
use axum::extract::{Path, State};
use durafn_runtime::model::Journal;
use serde_json::{Value, json};

use super::{ApiError, ApiState, parse_id};

/// The exported form of a journal.
pub fn exported(journal: &Journal) -> Value {
    json!({
        "execution": journal.execution,
        "operations": journal.operations,
        "events": journal.events,
    })
}

pub(super) async fn journal(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    let journal = state.store.load_journal(&id).await?.ok_or_else(|| {
        ApiError::not_found("ExecutionNotFound", format!("execution {id:?} not found"))
    })?;
    Ok(Json(exported(&journal)))
}
