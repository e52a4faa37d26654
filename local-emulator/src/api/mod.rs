//! The REST API for executions (DESIGN.md §7).
//!
//! `POST /v1/functions/{fn}/executions`, `GET /v1/executions`,
//! `GET /v1/executions/{id}`, `GET /v1/executions/{id}/history`,
//! `POST /v1/executions/{id}/cancel`, `GET /healthz`, `GET /metrics`.
//! Errors are JSON `{"error": {"code", "message"}}` with the right status.

pub mod cost;
mod error;
#[cfg(test)]
mod fuzz_tests;
pub mod history;
pub mod journal;
mod pause;
pub mod render;
pub mod reset;
pub mod search;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use axum::{Json, Router};
use bytes::Bytes;
use durafn_runtime::clock::Clock;
use durafn_runtime::dispatch::DispatchHandle;
use durafn_runtime::model::{ExecutionId, ExecutionStatus, MAX_PAYLOAD_BYTES, NewExecution};
use durafn_runtime::store::{Created, ListFilter, Store};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::Guard;
use crate::routes::{Access, DEFAULT_TIMEOUT, Limits, RouteSpec, SMALL_BODY};

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
    /// Their flow control (throttle, debounce, batching), where set: a
    /// start's input must hold the keys it names.
    pub flow: Arc<std::collections::HashMap<String, durafn_runtime::dispatch::FlowControl>>,
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

    /// [`poke`](Self::poke) for an execution of `function` just created here:
    /// the dispatcher need not read it to know what to invoke.
    pub fn poke_new(&self, id: &ExecutionId, function: &str) {
        if let Some(d) = &self.dispatch {
            d.dispatch_now_of(id.clone(), function);
        }
    }
}

/// The REST API's handlers (see [`ROUTES`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /v1/functions/{function}/executions`.
    Start,
    /// `GET /v1/executions`.
    List,
    /// `GET /v1/executions/{id}`.
    Describe,
    /// `GET /v1/executions/{id}/history`.
    History,
    /// `POST /v1/executions/{id}/cancel`.
    Cancel,
    /// `POST /v1/executions/{id}/resume`.
    Resume,
    /// `POST /v1/executions/{id}/pause`.
    Pause,
    /// `POST /v1/executions/{id}/unpause`.
    Unpause,
    /// `POST /v1/functions/{function}/pause`.
    PauseFunction,
    /// `POST /v1/functions/{function}/unpause`.
    UnpauseFunction,
    /// `POST /v1/executions/{id}/events/{name}`.
    SendEvent,
    /// `POST /v1/callbacks/{token}/{action}`.
    CompleteCallback,
    /// `GET /v1/executions/{id}/journal` (what `durafn export` writes).
    Journal,
    /// `POST /v1/executions/{id}/reset`.
    Reset,
    /// `POST /v1/executions/{id}/rerun`.
    Rerun,
    /// `GET /healthz`.
    Health,
    /// `GET /metrics`.
    Metrics,
    /// `GET /v1/executions/{id}/logs` (see [`crate::logs`]).
    Logs,
}

/// The largest body of a route carrying a payload (the payload, JSON-escaped
/// headroom included) when the store takes payloads up to 4 MiB.
pub const PAYLOAD_BODY: usize = payload_body(MAX_PAYLOAD_BYTES);

/// The largest body of a route carrying a payload when the store takes
/// payloads up to `limit` ([`Store::payload_limit`]: 64 MiB with a blob store).
pub const fn payload_body(limit: usize) -> usize {
    limit + 64 * 1024
}

const fn spec(
    method: Method,
    path: &'static str,
    access: Access,
    body_limit: usize,
    timeout: Duration,
    rate_limited: bool,
    endpoint: Endpoint,
) -> RouteSpec<Endpoint> {
    RouteSpec {
        method,
        path,
        access,
        body_limit,
        timeout: Some(timeout),
        rate_limited,
        endpoint,
    }
}

/// Every route of the REST API. The router is built from this table and the
/// tests walk it: a route added here is token-checked and limited at once.
pub const ROUTES: &[RouteSpec<Endpoint>] = &[
    // A start may wait up to MAX_WAIT for its execution.
    spec(
        Method::POST,
        "/v1/functions/{function}/executions",
        Access::Token,
        PAYLOAD_BODY,
        Duration::from_secs(MAX_WAIT.as_secs() + 30),
        true,
        Endpoint::Start,
    ),
    spec(
        Method::GET,
        "/v1/executions",
        Access::Token,
        SMALL_BODY,
        DEFAULT_TIMEOUT,
        false,
        Endpoint::List,
    ),
    spec(
        Method::GET,
        "/v1/executions/{id}",
        Access::Token,
        SMALL_BODY,
        DEFAULT_TIMEOUT,
        false,
        Endpoint::Describe,
    ),
    spec(
        Method::GET,
        "/v1/executions/{id}/history",
        Access::Token,
        SMALL_BODY,
        DEFAULT_TIMEOUT,
        false,
        Endpoint::History,
    ),
    spec(
        Method::POST,
        "/v1/executions/{id}/cancel",
        Access::Token,
        SMALL_BODY,
        DEFAULT_TIMEOUT,
        false,
        Endpoint::Cancel,
    ),
    spec(
        Method::POST,
        "/v1/executions/{id}/resume",
        Access::Token,
        SMALL_BODY,
        DEFAULT_TIMEOUT,
        false,
        Endpoint::Resume,
    ),
    spec(
        Method::POST,
        "/v1/executions/{id}/pause",
        Access::Token,
        SMALL_BODY,
        DEFAULT_TIMEOUT,
        false,
        Endpoint::Pause,
    ),
    spec(
        Method::POST,
        "/v1/executions/{id}/unpause",
        Access::Token,
        SMALL_BODY,
        DEFAULT_TIMEOUT,
        false,
        Endpoint::Unpause,
    ),
    spec(
        Method::POST,
        "/v1/functions/{function}/pause",
        Access::Token,
        SMALL_BODY,
        DEFAULT_TIMEOUT,
        false,
        Endpoint::PauseFunction,
    ),
    spec(
        Method::POST,
        "/v1/functions/{function}/unpause",
        Access::Token,
        SMALL_BODY,
        DEFAULT_TIMEOUT,
        false,
        Endpoint::UnpauseFunction,
    ),
    spec(
        Method::POST,
        "/v1/executions/{id}/events/{name}",
        Access::Token,
        PAYLOAD_BODY,
        DEFAULT_TIMEOUT,
        true,
        Endpoint::SendEvent,
    ),
    spec(
        Method::POST,
        "/v1/callbacks/{token}/{action}",
        Access::Token,
        PAYLOAD_BODY,
        DEFAULT_TIMEOUT,
        true,
        Endpoint::CompleteCallback,
    ),
    spec(
        Method::GET,
        "/v1/executions/{id}/journal",
        Access::Token,
        SMALL_BODY,
        DEFAULT_TIMEOUT,
        false,
        Endpoint::Journal,
    ),
    // A reset writes one item per kept operation.
    spec(
        Method::POST,
        "/v1/executions/{id}/reset",
        Access::Token,
        SMALL_BODY,
        DEFAULT_TIMEOUT,
        true,
        Endpoint::Reset,
    ),
    spec(
        Method::POST,
        "/v1/executions/{id}/rerun",
        Access::Token,
        SMALL_BODY,
        DEFAULT_TIMEOUT,
        true,
        Endpoint::Rerun,
    ),
    spec(
        Method::GET,
        "/healthz",
        Access::Public,
        SMALL_BODY,
        DEFAULT_TIMEOUT,
        false,
        Endpoint::Health,
    ),
    spec(
        Method::GET,
        "/metrics",
        Access::Token,
        SMALL_BODY,
        DEFAULT_TIMEOUT,
        false,
        Endpoint::Metrics,
    ),
    spec(
        Method::GET,
        "/v1/executions/{id}/logs",
        Access::Token,
        SMALL_BODY,
        DEFAULT_TIMEOUT,
        false,
        Endpoint::Logs,
    ),
];

fn endpoint(e: Endpoint, m: MethodFilter) -> MethodRouter<ApiState> {
    match e {
        Endpoint::Start => on(m, start),
        Endpoint::List => on(m, list),
        Endpoint::Describe => on(m, describe),
        Endpoint::History => on(m, history),
        Endpoint::Cancel => on(m, cancel),
        Endpoint::Resume => on(m, resume),
        Endpoint::Pause => on(m, pause::pause),
        Endpoint::Unpause => on(m, pause::unpause),
        Endpoint::PauseFunction => on(m, pause::pause_function),
        Endpoint::UnpauseFunction => on(m, pause::unpause_function),
        Endpoint::SendEvent => on(m, send_event),
        Endpoint::CompleteCallback => on(m, complete_callback),
        Endpoint::Journal => on(m, journal::journal),
        Endpoint::Reset => on(m, reset::reset),
        Endpoint::Rerun => on(m, reset::rerun),
        Endpoint::Health => on(m, || async { Json(json!({ "ok": true })) }),
        Endpoint::Metrics => on(m, metrics),
        Endpoint::Logs => on(m, crate::logs::logs),
    }
}

/// The API routes, with a server's limits where the state requires a token
/// (see [`Limits::for_guard`]).
pub fn router(state: ApiState) -> Router {
    let guard = Guard::new(state.token.as_deref());
    let limits = Limits::for_guard(&guard);
    router_with(state, &guard, &limits)
}

/// The API routes behind `guard`, with `limits`.
pub fn router_with(state: ApiState, guard: &Guard, limits: &Limits) -> Router {
    // The recorder exists before the first request counts anything: a count
    // taken before it was installed would be lost.
    crate::metrics::handle();
    // With a blob store, payload routes take what the store takes (64 MiB).
    let payload_limit = payload_body(state.store.payload_limit().max(MAX_PAYLOAD_BYTES));
    let table: Vec<RouteSpec<Endpoint>> = ROUTES
        .iter()
        .cloned()
        .map(|mut route| {
            if route.body_limit == PAYLOAD_BODY {
                route.body_limit = payload_limit;
            }
            route
        })
        .collect();
    crate::routes::build(&table, endpoint, guard, limits)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            count_errors,
        ))
        .with_state(state)
}

async fn count_errors(State(state): State<ApiState>, req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    if response.status().is_client_error() || response.status().is_server_error() {
        state.metrics.errors.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("durafn_api_errors_total").increment(1);
    }
    response
}

/// Reads a JSON body, turning every failure into a clear API error.
fn json_body(body: Result<Bytes, BytesRejection>) -> Result<Value, ApiError> {
    let bytes = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "PayloadTooLarge",
                "the request body is over this route's limit".to_string(),
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
    #[serde(default)]
    priority: Option<Value>,
    #[serde(default)]
    fairness_key: Option<String>,
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
            format!("{e}; expected {{\"name\"?: string, \"input\"?: any, \"wait\"?: seconds, \"priority\"?: 1-5, \"fairness_key\"?: string}}"),
        )
    })?;
    let options = pause::start_options(req.priority.as_ref(), req.fairness_key.as_deref())?;
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
        Some(name) if name.starts_with(durafn_runtime::dispatch::flow::RESERVED_PREFIX) => {
            return Err(ApiError::bad_request(
                "InvalidName",
                format!(
                    "execution names starting with {:?} are the platform's own (batches)",
                    durafn_runtime::dispatch::flow::RESERVED_PREFIX
                ),
            ));
        }
        Some(name) => ExecutionId::new(name)?,
        None => ExecutionId::new(uuid::Uuid::now_v7().to_string())?,
    };
    if let Some(flow) = state.flow.get(&function) {
        flow.check_input(&req.input)
            .map_err(|m| ApiError::bad_request("InvalidFlowKey", m))?;
    }
    // Subscribed before the dispatch can end it, so the wait sees its end.
    let changes = match wait.is_zero() {
        true => None,
        false => state.dispatch.as_ref().map(DispatchHandle::subscribe),
    };
    let new = NewExecution {
        id: id.clone(),
        function,
        version: "$LATEST".into(),
        input: req.input,
        now: state.clock.now(),
    };
    let status = match (&state.dispatch, options.is_default()) {
        // Created, claimed and invoked at once where the dispatcher can.
        (Some(d), true) => match d.start(state.store.as_ref(), &new).await? {
            created @ Created::New(_) => {
                started(&state, &created);
                StatusCode::CREATED
            }
            Created::Existing(_) => StatusCode::OK,
        },
        _ => match state.store.create_execution(&new).await? {
            created @ Created::New(_) => {
                started(&state, &created);
                if !options.is_default() {
                    state
                        .store
                        .set_start_options(&id, &options, state.clock.now())
                        .await?;
                }
                match &state.dispatch {
                    Some(d) if !options.is_default() => d.dispatch_now_with_priority(
                        id.clone(),
                        &created.execution().function,
                        options.priority,
                    ),
                    _ => state.poke_new(&id, &created.execution().function),
                }
                StatusCode::CREATED
            }
            Created::Existing(_) => StatusCode::OK,
        },
    };
    if !wait.is_zero() {
        let new = status == StatusCode::CREATED;
        wait_following(&state, &id, wait, changes, !new).await?;
    }
    let body = describe_json(&state, &id).await?;
    let status = if status == StatusCode::CREATED && body["status"] != "SUCCEEDED" {
        StatusCode::ACCEPTED
    } else {
        status
    };
    Ok((status, Json(body)).into_response())
}

/// Counts a start the REST API made.
fn started(state: &ApiState, created: &Created) {
    state.metrics.started.fetch_add(1, Ordering::Relaxed);
    crate::metrics::execution_started(&created.execution().function, "api");
}

/// Waits until the execution finishes, blocks, or waits on the outside world,
/// or `limit` passes.
pub(crate) async fn wait_until_settled(
    state: &ApiState,
    id: &ExecutionId,
    limit: Duration,
) -> Result<(), ApiError> {
    let changes = state.dispatch.as_ref().map(DispatchHandle::subscribe);
    wait_following(state, id, limit, changes, true).await
}

/// [`wait_until_settled`] following `changes` (subscribed before the
/// execution could change). `read_first: false` skips the first read, for
/// an execution this caller has just created: it cannot have settled
/// without a change arriving on `changes`.
async fn wait_following(
    state: &ApiState,
    id: &ExecutionId,
    limit: Duration,
    mut changes: Option<
        tokio::sync::broadcast::Receiver<durafn_runtime::dispatch::ExecutionChanged>,
    >,
    read_first: bool,
) -> Result<(), ApiError> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut read = read_first || changes.is_none();
    loop {
        let current = match read {
            true => state.store.get_execution(id).await?,
            false => None,
        };
        read = true;
        if let Some(e) = current {
            let settled = e.status.is_final()
                || e.status == ExecutionStatus::Blocked
                || (e.status == ExecutionStatus::Suspended && e.due_at.is_none());
            if settled {
                return Ok(());
            }
        }
        // Re-check when an invocation of this execution ends (at once
        // settled if it ended it), and at least every 250 ms.
        let tick = tokio::time::Instant::now() + Duration::from_millis(250);
        let until = deadline.min(tick);
        match &mut changes {
            Some(changes) => loop {
                match tokio::time::timeout_at(until, changes.recv()).await {
                    Ok(Ok(c)) if c.id == *id => {
                        let ended = ExecutionStatus::parse(&c.status)
                            .is_some_and(|s| s.is_final() || s == ExecutionStatus::Blocked);
                        if ended {
                            return Ok(());
                        }
                        break;
                    }
                    // Another execution's: keep waiting for this one's.
                    Ok(Ok(_)) => {}
                    // Missed some (lagged), timed out, or the dispatcher is gone.
                    _ => break,
                }
            },
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
    /// Conditions on the input / output (see [`search`]).
    #[serde(rename = "where")]
    where_: Option<String>,
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
            .map(|s| render::parse_time("since", s))
            .transpose()?
            .flatten(),
        created_before: q
            .until
            .as_deref()
            .map(|s| render::parse_time("until", s))
            .transpose()?
            .flatten(),
        id_contains: q.q.filter(|s| !s.is_empty()),
        limit: q.limit.unwrap_or(50),
        cursor: q.cursor.filter(|c| !c.is_empty()),
    };
    if let Some(w) = q.where_.as_deref().filter(|w| !w.trim().is_empty()) {
        let conditions = search::parse_where(w)?;
        let found = search::search(state.store.as_ref(), filter, &conditions).await?;
        return Ok(Json(json!({
            "executions": found.executions.iter().map(render::summary).collect::<Vec<_>>(),
            "next_cursor": found.next_cursor,
            "scanned": found.scanned,
        })));
    }
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
    let id = parse_id(&id)?;
    let (body, entries) = tokio::join!(describe_json(&state, &id), state.store.load_history(&id));
    let mut body = body?;
    // Only here, as the links: what its invocations cost (one history read).
    body["cost"] = cost::body(&entries?);
    // Only here: the links cost a read per fork, starts need none.
    reset::add_links(&state, &id, &mut body).await?;
    Ok(Json(body))
}

async fn history(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    let (journal, entries) =
        tokio::join!(state.store.load_journal(&id), state.store.load_history(&id));
    let journal = journal?.ok_or_else(|| {
        ApiError::not_found("ExecutionNotFound", format!("execution {id:?} not found"))
    })?;
    let assembled = history::of(&journal, entries?, state.clock.now());
    Ok(Json(history::body(&id, &journal, &assembled)))
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

/// `GET /metrics`: every metric of the process (see `crate::metrics` and
/// `docs/operations.md`), the store's gauges read now.
async fn metrics(State(state): State<ApiState>) -> impl IntoResponse {
    crate::metrics::scrape(&*state.store, &*state.clock).await;
    (
        [("content-type", "text/plain; version=0.0.4")],
        crate::metrics::render(),
    )
}
