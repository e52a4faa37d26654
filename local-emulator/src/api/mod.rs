//! The REST API for executions (DESIGN.md §7).
//!
//! `POST /v1/functions/{fn}/executions`, `GET /v1/executions`,
//! `GET /v1/executions/{id}`, `GET /v1/executions/{id}/history`,
//! `POST /v1/executions/{id}/cancel`, `GET /healthz`, `GET /metrics`.
//! Errors are JSON `{"error": {"code", "message"}}` with the right status.

mod error;
pub mod render;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use durafn_runtime::clock::Clock;
use durafn_runtime::dispatch::DispatchHandle;
use durafn_runtime::model::{
    ExecutionId, ExecutionStatus, MAX_PAYLOAD_BYTES, NewExecution, Timestamp,
};
use durafn_runtime::store::{Created, ListFilter, Store};
use serde::Deserialize;
use serde_json::{Value, json};

pub use error::ApiError;

/// The longest a start request may wait for its execution to finish.
pub const MAX_WAIT: Duration = Duration::from_secs(300);

/// What the API handlers share.
#[derive(Clone)]
pub struct ApiState {
    /// The store.
    pub store: Arc<dyn Store>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// The functions the template declares.
    pub functions: Arc<BTreeSet<String>>,
    /// Wakes the dispatcher and follows invocation results. `None` where no
    /// dispatcher runs in this process (the control function on AWS Lambda:
    /// its store reports what becomes due to the wake queue instead).
    pub dispatch: Option<DispatchHandle>,
    /// When set, every `/v1` request needs `Authorization: Bearer <token>`.
    pub token: Option<Arc<str>>,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
}

/// Counters exported at `/metrics`.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Executions started through the API.
    pub started: AtomicU64,
    /// API requests answered with an error.
    pub errors: AtomicU64,
}

impl ApiState {
    /// Execution `id` may be due now: dispatch it at once, if a dispatcher
    /// runs here.
    pub fn poke(&self, id: &ExecutionId) {
        if let Some(d) = &self.dispatch {
            d.dispatch_now(id.clone());
        }
    }
}

/// The API routes.
pub fn router(state: ApiState) -> Router {
    let v1 = Router::new()
        .route("/v1/functions/{function}/executions", post(start))
        .route("/v1/executions", get(list))
        .route("/v1/executions/{id}", get(describe))
        .route("/v1/executions/{id}/history", get(history))
        .route("/v1/executions/{id}/cancel", post(cancel))
        .route("/v1/executions/{id}/resume", post(resume))
        .route("/v1/executions/{id}/events/{name}", post(send_event))
        .route("/v1/callbacks/{token}/{action}", post(complete_callback))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authorize,
        ));
    Router::new()
        .merge(v1)
        .route("/healthz", get(|| async { Json(json!({ "ok": true })) }))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(MAX_PAYLOAD_BYTES + 64 * 1024))
        .with_state(state)
}

async fn authorize(State(state): State<ApiState>, req: Request, next: Next) -> Response {
    if let Some(token) = &state.token {
        let given = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if !given.is_some_and(|g| constant_time_eq(g.as_bytes(), token.as_bytes())) {
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                "missing or wrong API token: send `Authorization: Bearer <token>` (the token is in the server's --token-file)",
            )
            .into_response();
        }
    }
    let response = next.run(req).await;
    if response.status().is_client_error() || response.status().is_server_error() {
        state.metrics.errors.fetch_add(1, Ordering::Relaxed);
    }
    response
}

/// `a == b` in time independent of where they differ (for secrets).
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Reads a JSON body, turning every failure into a clear API error.
fn json_body(body: Result<Bytes, BytesRejection>) -> Result<Value, ApiError> {
    let bytes = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "PayloadTooLarge",
                format!("the request body is over the {MAX_PAYLOAD_BYTES}-byte limit"),
            )
        } else {
            ApiError::bad_request("InvalidBody", e.body_text())
        }
    })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::bad_request(
            "InvalidJson",
            format!("the request body is not valid JSON: {e}"),
        )
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StartRequest {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    input: Value,
    #[serde(default)]
    wait: Option<f64>,
}

async fn start(
    State(state): State<ApiState>,
    Path(function): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    if !state.functions.contains(&function) {
        let known: Vec<_> = state.functions.iter().cloned().collect();
        return Err(ApiError::not_found(
            "FunctionNotFound",
            format!(
                "no function {function:?}; this template declares: {}",
                known.join(", ")
            ),
        ));
    }
    let req: StartRequest = serde_json::from_value(json_body(body)?).map_err(|e| {
        ApiError::bad_request(
            "InvalidRequest",
            format!("{e}; expected {{\"name\"?: string, \"input\"?: any, \"wait\"?: seconds}}"),
        )
    })?;
    let wait = match req.wait {
        Some(w) if !(0.0..=MAX_WAIT.as_secs_f64()).contains(&w) => {
            return Err(ApiError::bad_request(
                "InvalidRequest",
                format!("wait must be between 0 and {} seconds", MAX_WAIT.as_secs()),
            ));
        }
        Some(w) => Duration::from_secs_f64(w),
        None => Duration::ZERO,
    };
    let id = match req.name {
        Some(name) => ExecutionId::new(name)?,
        None => ExecutionId::new(uuid::Uuid::now_v7().to_string())?,
    };
    let created = state
        .store
        .create_execution(&NewExecution {
            id: id.clone(),
            function,
            version: "$LATEST".into(),
            input: req.input,
            now: state.clock.now(),
        })
        .await?;
    let status = match created {
        Created::New(_) => {
            state.metrics.started.fetch_add(1, Ordering::Relaxed);
            state.poke(&id);
            StatusCode::CREATED
        }
        Created::Existing(_) => StatusCode::OK,
    };
    if !wait.is_zero() {
        wait_until_settled(&state, &id, wait).await?;
    }
    let body = describe_json(&state, &id).await?;
    let status = if status == StatusCode::CREATED && body["status"] != "SUCCEEDED" {
        StatusCode::ACCEPTED
    } else {
        status
    };
    Ok((status, Json(body)).into_response())
}

/// Waits until the execution finishes, blocks, or waits on the outside world,
/// or `limit` passes.
pub(crate) async fn wait_until_settled(
    state: &ApiState,
    id: &ExecutionId,
    limit: Duration,
) -> Result<(), ApiError> {
    let mut changes = state.dispatch.as_ref().map(DispatchHandle::subscribe);
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(e) = state.store.get_execution(id).await? {
            let settled = e.status.is_final()
                || e.status == ExecutionStatus::Blocked
                || (e.status == ExecutionStatus::Suspended && e.due_at.is_none());
            if settled {
                return Ok(());
            }
        }
        // Re-check on any invocation result, and at least every 250 ms.
        let tick = tokio::time::Instant::now() + Duration::from_millis(250);
        let until = deadline.min(tick);
        match &mut changes {
            Some(changes) => {
                let _ = tokio::time::timeout_at(until, changes.recv()).await;
            }
            None => tokio::time::sleep_until(until).await,
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(());
        }
    }
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    function: Option<String>,
    status: Option<String>,
    since: Option<String>,
    until: Option<String>,
    q: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

fn parse_time(what: &str, s: &str) -> Result<Timestamp, ApiError> {
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(Timestamp(ms));
    }
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map(|d| Timestamp(i64::try_from(d.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)))
        .map_err(|_| {
            ApiError::bad_request(
                "InvalidRequest",
                format!("{what}={s:?} is not an RFC 3339 time (2026-11-25T09:00:00Z) or epoch milliseconds"),
            )
        })
}

async fn list(
    State(state): State<ApiState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request("InvalidRequest", e.body_text()))?;
    let status = match q.status.as_deref() {
        None | Some("") => None,
        Some(s) => Some(
            ExecutionStatus::parse(&s.to_ascii_uppercase()).ok_or_else(|| {
                ApiError::bad_request(
                    "InvalidRequest",
                    format!(
                        "unknown status {s:?}; use one of {}",
                        ExecutionStatus::ALL.map(|s| s.as_str()).join(", ")
                    ),
                )
            })?,
        ),
    };
    let filter = ListFilter {
        function: q.function.filter(|f| !f.is_empty()),
        status,
        created_after: q
            .since
            .as_deref()
            .map(|s| parse_time("since", s))
            .transpose()?,
        created_before: q
            .until
            .as_deref()
            .map(|s| parse_time("until", s))
            .transpose()?,
        id_contains: q.q.filter(|s| !s.is_empty()),
        limit: q.limit.unwrap_or(50),
        cursor: q.cursor.filter(|c| !c.is_empty()),
    };
    let page = state.store.list_executions(&filter).await?;
    Ok(Json(json!({
        "executions": page.executions.iter().map(render::summary).collect::<Vec<_>>(),
        "next_cursor": page.next_cursor,
    })))
}

fn parse_id(id: &str) -> Result<ExecutionId, ApiError> {
    ExecutionId::new(id).map_err(|_| {
        ApiError::not_found("ExecutionNotFound", format!("execution {id:?} not found"))
    })
}

async fn describe_json(state: &ApiState, id: &ExecutionId) -> Result<Value, ApiError> {
    let journal = state.store.load_journal(id).await?.ok_or_else(|| {
        ApiError::not_found("ExecutionNotFound", format!("execution {id:?} not found"))
    })?;
    Ok(render::describe(&journal.execution, &journal.operations))
}

async fn describe(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(describe_json(&state, &parse_id(&id)?).await?))
}

async fn history(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    let journal = state.store.load_journal(&id).await?.ok_or_else(|| {
        ApiError::not_found("ExecutionNotFound", format!("execution {id:?} not found"))
    })?;
    let seed = journal.execution.seed.clone();
    let ops: Vec<Value> = journal
        .operations
        .iter()
        .map(|o| {
            let mut v = render::operation(o);
            if o.kind == durafn_runtime::model::OpKind::Callback {
                v["callback_id"] =
                    json!(durafn_runtime::trigger::callback::token(&id, &seed, &o.id));
            }
            v
        })
        .collect();
    Ok(Json(json!({
        "execution_id": id,
        "status": journal.execution.status,
        "operations": ops,
    })))
}

async fn cancel(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    let exec = state
        .store
        .cancel(&id, state.clock.now())
        .await?
        .ok_or_else(|| {
            ApiError::not_found("ExecutionNotFound", format!("execution {id:?} not found"))
        })?;
    if exec.status != ExecutionStatus::Cancelled {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "AlreadyFinished",
            format!("execution {id} already ended as {}", exec.status),
        ));
    }
    Ok(Json(describe_json(&state, &id).await?))
}

async fn resume(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    use durafn_runtime::trigger::resume::{ResumeError, resume};
    let id = parse_id(&id)?;
    match resume(state.store.as_ref(), &id, state.clock.now()).await? {
        Ok(_) => {
            state.poke(&id);
            Ok(Json(describe_json(&state, &id).await?))
        }
        Err(ResumeError::NotFound) => Err(ApiError::not_found(
            "ExecutionNotFound",
            format!("execution {id:?} not found"),
        )),
        Err(e @ ResumeError::NotResumable(_)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "NotResumable",
            e.to_string(),
        )),
    }
}

async fn send_event(
    State(state): State<ApiState>,
    Path((id, name)): Path<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    use durafn_runtime::store::SentEvent;
    let id = parse_id(&id)?;
    let payload = json_body_or_null(body)?;
    match state
        .store
        .send_event(&id, &name, &payload, state.clock.now())
        .await?
    {
        SentEvent::Delivered(ev) => {
            state.poke(&id);
            Ok((
                StatusCode::ACCEPTED,
                Json(json!({ "execution_id": id, "event": name, "seq": ev.seq })),
            )
                .into_response())
        }
        SentEvent::NotFound => Err(ApiError::not_found(
            "ExecutionNotFound",
            format!("execution {id:?} not found"),
        )),
        SentEvent::Ended(status) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "ExecutionEnded",
            format!("execution {id} has ended ({status}); it takes no more events"),
        )),
    }
}

async fn complete_callback(
    State(state): State<ApiState>,
    Path((token, action)): Path<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    use durafn_runtime::trigger::callback::{CallbackRef, CompleteError, Completion, complete};
    let body = json_body_or_null(body)?;
    let completion = match action.as_str() {
        "succeed" => Completion::Succeed(body),
        "fail" => {
            let e = if body.get("error").is_some() {
                &body["error"]
            } else {
                &body
            };
            Completion::Fail(durafn_runtime::model::ErrorObject::new(
                e["type"].as_str().unwrap_or("CallbackFailed"),
                e["message"].as_str().unwrap_or("failed through the API"),
            ))
        }
        "heartbeat" => Completion::Heartbeat,
        other => {
            return Err(ApiError::not_found(
                "UnknownAction",
                format!("unknown callback action {other:?}: use succeed, fail or heartbeat"),
            ));
        }
    };
    let unknown = || {
        ApiError::not_found(
            "CallbackNotFound",
            "no such callback: the id is unknown or not valid",
        )
    };
    let r = CallbackRef::parse(&token).ok_or_else(unknown)?;
    let exec = state
        .store
        .get_execution(&r.execution_id)
        .await?
        .ok_or_else(unknown)?;
    if !r.verify(&exec.seed) {
        return Err(unknown());
    }
    match complete(
        state.store.as_ref(),
        &r.execution_id,
        &r.op_id,
        completion,
        state.clock.now(),
    )
    .await?
    {
        Ok(op) => {
            state.poke(&r.execution_id);
            Ok(Json(
                json!({ "execution_id": r.execution_id, "callback": op.name, "status": op.status }),
            ))
        }
        Err(CompleteError::NotFound) => Err(unknown()),
        Err(e @ CompleteError::NotReady) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "CallbackNotReady",
            e.to_string(),
        )),
        Err(e @ CompleteError::AlreadyEnded(_)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "CallbackAlreadyCompleted",
            e.to_string(),
        )),
    }
}

/// A JSON body where an empty body means `null`.
fn json_body_or_null(body: Result<Bytes, BytesRejection>) -> Result<Value, ApiError> {
    match &body {
        Ok(b) if b.iter().all(u8::is_ascii_whitespace) => Ok(Value::Null),
        _ => json_body(body),
    }
}

async fn metrics(State(state): State<ApiState>) -> impl IntoResponse {
    let mut out = String::new();
    out.push_str("# HELP durafn_executions_started_total Executions started through the API.\n");
    out.push_str("# TYPE durafn_executions_started_total counter\n");
    out.push_str(&format!(
        "durafn_executions_started_total {}\n",
        state.metrics.started.load(Ordering::Relaxed)
    ));
    out.push_str("# HELP durafn_api_errors_total API requests answered with an error.\n");
    out.push_str("# TYPE durafn_api_errors_total counter\n");
    out.push_str(&format!(
        "durafn_api_errors_total {}\n",
        state.metrics.errors.load(Ordering::Relaxed)
    ));
    ([("content-type", "text/plain; version=0.0.4")], out)
}
