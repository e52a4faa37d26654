//! The entry point on `lambda_runtime`: the same binary runs on AWS Lambda and
//! under the local emulator.
//!
//! An invocation payload is either
//! - a **resume request** from a dispatcher, `{"durafn_resume": {"execution_id": "…", "epoch": 3}}`:
//!   the dispatcher has claimed the execution; this invocation continues it;
//! - an explicit **start**, `{"durafn_start": {"name": "optional-id", "input": …}}`;
//! - a **schedule fire** from EventBridge Scheduler (the template's
//!   `ScheduleV2` event with `Input: {"durafn_schedule": {"name": "…",
//!   "time": "<aws.scheduler.scheduled-time>"}}`): starts the execution
//!   `<name>:<yyyymmddThhmmssZ>` with `{"schedule", "scheduled_time"}` as its
//!   input — the same id and input as `durafn dev`'s scheduler, so a fire
//!   delivered twice starts once — unless an earlier fire of the schedule has
//!   not ended (the `skip` overlap policy), which answers `SKIPPED`;
//! - an **API Gateway HTTP API (v2) / function URL** request: its JSON body is
//!   the input, its `Idempotency-Key` header (else its request id) names the
//!   execution, and the answer is an HTTP response — 200 with the output if the
//!   execution finished in this first invocation, 202 with its id otherwise;
//! - an **SQS batch** (`Records[*].eventSource == "aws:sqs"`): each record
//!   starts one execution, named `sqs-<messageId>` (or by the record's
//!   `durafn-name` string message attribute, for producers that choose their
//!   own idempotency key), its input the body parsed as JSON (else the body as
//!   a JSON string); the answer is `{"batchItemFailures": [...]}` listing the
//!   records that could not be started, so only those are redelivered;
//! - anything else: a **direct invoke**, whose whole payload is the input and
//!   whose Lambda request id is the execution id (so Lambda's own retries of
//!   the same request start nothing twice).
//!
//! Configuration comes from the environment: `DURAFN_STORE` (store URL,
//! default `sqlite://.durafn/durafn.db`), `DURAFN_MAX_STEPS_PER_INVOCATION`,
//! `DURAFN_WAKE_QUEUE_URL` (on AWS: the dispatcher function's wake queue —
//! every start, wake-up and timer of 15 minutes or less that an invocation
//! makes is sent there, see `durafn_runtime::dispatch::wake`),
//! `DURAFN_BLOBS` (a blob store for payloads over 1 MiB, up to 64 MiB:
//! `file:///PATH` or `s3://BUCKET/PREFIX`; see `docs/payloads.md`), and the
//! variables Lambda sets (`AWS_LAMBDA_FUNCTION_NAME`,
//! `AWS_LAMBDA_FUNCTION_VERSION`).

use std::sync::Arc;

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::http::HeaderMap;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use durafn_runtime::clock::{Clock, SystemClock};
use durafn_runtime::dispatch::{LEASE_GRACE, RESUME_KEY, ResumeRequest, START_KEY};
use durafn_runtime::model::{ExecutionId, ExecutionStatus, Journal, NewExecution, Timestamp};
use durafn_runtime::store::{Created, ListFilter, RetryingStore, Store, WakingStore};
use futures::StreamExt;
use lambda_runtime::LambdaEvent;
use serde_json::{Value, json};

use crate::error::Error;
use crate::handler::Handler;
use crate::invocation::{InvocationConfig, InvocationReport, run_invocation_with_journal};

/// The store URL used when `DURAFN_STORE` is not set.
pub const DEFAULT_STORE_URL: &str = "sqlite://.durafn/durafn.db";

/// What an invocation payload asks for.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Request {
    Resume(ResumeRequest),
    Start {
        name: String,
        input: Value,
    },
    Schedule {
        name: String,
        fire_at: Timestamp,
        input: Value,
    },
    Http(Box<ApiGatewayV2httpRequest>),
    Sqs(Box<SqsEvent>),
}

/// The envelope key of a schedule fire (EventBridge Scheduler's `Input`).
pub const SCHEDULE_KEY: &str = "durafn_schedule";

/// Reads a schedule fire: `{"name": "…", "time": "RFC 3339", "input"?: …}`.
fn schedule_fire(fire: &Value) -> Result<Request, Error> {
    let expected = format!(
        "expected {{\"{SCHEDULE_KEY}\": {{\"name\": \"…\", \"time\": \"<aws.scheduler.scheduled-time>\"}}}}"
    );
    let name = fire
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::Invalid(format!("{SCHEDULE_KEY}.name is missing; {expected}")))?;
    durafn_runtime::trigger::schedule::validate_name(name)?;
    let time = fire
        .get("time")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::Invalid(format!("{SCHEDULE_KEY}.time is missing; {expected}")))?;
    let ts: jiff::Timestamp = time.parse().map_err(|e| {
        Error::Invalid(format!(
            "{SCHEDULE_KEY}.time {time:?} is not an RFC 3339 time ({e}); {expected}"
        ))
    })?;
    let fire_at = Timestamp(ts.as_millisecond());
    let scheduled_time = durafn_runtime::trigger::schedule::fire_time_rfc3339(fire_at);
    let input = match fire.get("input").cloned().unwrap_or(Value::Null) {
        Value::Null => json!({ "schedule": name, "scheduled_time": scheduled_time }),
        Value::Object(mut m) => {
            m.entry("schedule").or_insert_with(|| json!(name));
            m.entry("scheduled_time")
                .or_insert_with(|| json!(scheduled_time));
            Value::Object(m)
        }
        other => other,
    };
    Ok(Request::Schedule {
        name: name.to_string(),
        fire_at,
        input,
    })
}

/// The SQS message attribute that names a record's execution (instead of
/// `sqs-<messageId>`).
pub const SQS_NAME_ATTRIBUTE: &str = "durafn-name";

/// How many records of an SQS batch start at once.
const SQS_CONCURRENCY: usize = 4;

/// True for an SQS batch: a non-empty `Records` array whose records all come
/// from `aws:sqs`.
fn is_sqs_event(payload: &Value) -> bool {
    payload
        .get("Records")
        .and_then(Value::as_array)
        .is_some_and(|records| {
            !records.is_empty()
                && records
                    .iter()
                    .all(|r| r.get("eventSource").and_then(Value::as_str) == Some("aws:sqs"))
        })
}

/// One record of an SQS batch: its message id, and the execution it starts
/// (name and input) or why it cannot start one.
type SqsStart = (String, Result<(String, Value), Error>);

/// The executions an SQS batch starts, one per record (pure). A record
/// without a message id fails the whole batch: it could not be reported in
/// `batchItemFailures`.
fn sqs_starts(event: &SqsEvent) -> Result<Vec<SqsStart>, Error> {
    event
        .records
        .iter()
        .map(|record| {
            let id = record
                .message_id
                .clone()
                .filter(|id| !id.is_empty())
                .ok_or_else(|| Error::Invalid("an SQS record has no messageId".into()))?;
            let name = match record.message_attributes.get(SQS_NAME_ATTRIBUTE) {
                Some(attr) => match &attr.string_value {
                    Some(name) => Ok(name.clone()),
                    None => Err(Error::Invalid(format!(
                        "the {SQS_NAME_ATTRIBUTE} message attribute must be a String"
                    ))),
                },
                None => Ok(format!("sqs-{id}")),
            };
            let body = record.body.as_deref().unwrap_or("");
            let input = if body.trim().is_empty() {
                Value::Null
            } else {
                serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_string()))
            };
            Ok((id, name.map(|n| (n, input))))
        })
        .collect()
}

/// True for an API Gateway HTTP API (payload 2.0) or function URL event.
fn is_http_event(payload: &Value) -> bool {
    payload.get("version").and_then(Value::as_str) == Some("2.0")
        && payload.pointer("/requestContext/http/method").is_some()
}

/// Reads an invocation payload (pure; `request_id` names direct invokes).
pub(crate) fn parse_request(payload: Value, request_id: &str) -> Result<Request, Error> {
    if let Some(resume) = payload.get(RESUME_KEY) {
        let r: ResumeRequest = serde_json::from_value(resume.clone()).map_err(|e| {
            Error::Invalid(format!(
                "bad {RESUME_KEY} request (expected {{\"execution_id\": \"…\", \"epoch\": N}}): {e}"
            ))
        })?;
        return Ok(Request::Resume(r));
    }
    if let Some(start) = payload.get(START_KEY) {
        let name = match start.get("name") {
            None | Some(Value::Null) => request_id.to_string(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => {
                return Err(Error::Invalid(format!(
                    "{START_KEY}.name must be a string, got {other}"
                )));
            }
        };
        let input = start.get("input").cloned().unwrap_or(Value::Null);
        return Ok(Request::Start { name, input });
    }
    if let Some(fire) = payload.get(SCHEDULE_KEY) {
        return schedule_fire(fire);
    }
    if is_sqs_event(&payload) {
        let event: SqsEvent = serde_json::from_value(payload)
            .map_err(|e| Error::Invalid(format!("bad SQS event: {e}")))?;
        return Ok(Request::Sqs(Box::new(event)));
    }
    if is_http_event(&payload) {
        let req: ApiGatewayV2httpRequest = serde_json::from_value(payload)
            .map_err(|e| Error::Invalid(format!("bad HTTP API event: {e}")))?;
        return Ok(Request::Http(Box::new(req)));
    }
    Ok(Request::Start {
        name: request_id.to_string(),
        input: payload,
    })
}

/// An HTTP API response with a JSON body.
fn http_response(status: i64, body: &Value) -> ApiGatewayV2httpResponse {
    let mut headers = HeaderMap::new();
    headers.insert(
        "content-type",
        aws_lambda_events::http::HeaderValue::from_static("application/json"),
    );
    let mut response = ApiGatewayV2httpResponse::default();
    response.status_code = status;
    response.headers = headers;
    response.body = Some(Body::Text(body.to_string()));
    response
}

fn http_error(status: i64, code: &str, message: String) -> ApiGatewayV2httpResponse {
    http_response(
        status,
        &json!({ "error": { "code": code, "message": message } }),
    )
}

/// Reads an HTTP event's execution name and input, or the 4xx to answer.
fn http_start(req: &ApiGatewayV2httpRequest) -> Result<(String, Value), ApiGatewayV2httpResponse> {
    if req.is_base64_encoded {
        return Err(http_error(
            415,
            "UnsupportedBody",
            "send the input as a JSON body (Content-Type: application/json), not binary".into(),
        ));
    }
    let body = req.body.as_deref().unwrap_or("");
    let input = if body.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(body).map_err(|e| {
            http_error(
                400,
                "InvalidJson",
                format!("the request body is not valid JSON: {e}"),
            )
        })?
    };
    let key = req
        .headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(|k| format!("http-{k}"));
    let name = key
        .or_else(|| req.request_context.request_id.clone())
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    Ok((name, input))
}

struct LambdaRuntime {
    handler: Handler,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    function: String,
    version: String,
    max_steps: Option<u32>,
    /// [`DISPATCHED_STARTS_ENV`](durafn_runtime::dispatch::DISPATCHED_STARTS_ENV):
    /// starts only create the execution; the dispatcher runs it.
    dispatched_starts: bool,
}

/// Runs `handler` on `lambda_runtime` until the runtime stops.
pub async fn run(handler: Handler) -> Result<(), Error> {
    // `DURAFN_REPLAY_CHECK=FILE`: check exported journals instead (see replay_check).
    if let Some(checked) = crate::replay_check::run_from_env(&handler).await {
        return checked;
    }
    let url = std::env::var("DURAFN_STORE").unwrap_or_else(|_| DEFAULT_STORE_URL.to_string());
    let mut store: Arc<dyn Store> =
        Arc::new(RetryingStore::new(durafn_runtime::store::open(&url)?));
    if let Some(queue) = durafn_runtime::dispatch::wake::WakeQueue::from_env().await {
        store = Arc::new(WakingStore::new(store, Arc::new(queue)));
    }
    // `DURAFN_BLOBS`: large payloads go to the blob store directly from
    // here (never through the store over HTTP); docs/payloads.md.
    let store = durafn_runtime::store::with_blobs_from_env(store)?;
    let max_steps = match std::env::var("DURAFN_MAX_STEPS_PER_INVOCATION") {
        Ok(v) => Some(v.parse::<u32>().map_err(|e| {
            Error::Invalid(format!(
                "DURAFN_MAX_STEPS_PER_INVOCATION={v:?} is not a number: {e}"
            ))
        })?),
        Err(_) => None,
    };
    let rt = Arc::new(LambdaRuntime {
        handler,
        store,
        clock: Arc::new(SystemClock),
        function: std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "function".into()),
        version: std::env::var("AWS_LAMBDA_FUNCTION_VERSION").unwrap_or_else(|_| "$LATEST".into()),
        max_steps,
        dispatched_starts: std::env::var(durafn_runtime::dispatch::DISPATCHED_STARTS_ENV)
            .is_ok_and(|v| v == "1"),
    });
    let service = lambda_runtime::service_fn(move |event: LambdaEvent<Value>| {
        let rt = rt.clone();
        async move {
            rt.handle(event).await.map_err(|e| {
                tracing::error!(error = %e, "invocation failed");
                lambda_runtime::Error::from(e.to_string())
            })
        }
    });
    lambda_runtime::run(service)
        .await
        .map_err(|e| Error::Lambda(e.to_string()))
}

impl LambdaRuntime {
    async fn handle(&self, event: LambdaEvent<Value>) -> Result<Value, Error> {
        let (payload, lctx) = event.into_parts();
        let deadline = Timestamp(i64::try_from(lctx.deadline).unwrap_or(i64::MAX));
        let request = parse_request(payload, &lctx.request_id)?;
        if let Request::Sqs(event) = request {
            let response = self.sqs_batch(&event, deadline).await?;
            return serde_json::to_value(response).map_err(|e| Error::Invalid(e.to_string()));
        }
        let Request::Http(http) = request else {
            let report = self.invoke(request, deadline).await?;
            return serde_json::to_value(report).map_err(|e| Error::Invalid(e.to_string()));
        };
        let response = match http_start(&http) {
            Err(response) => response,
            Ok((name, input)) => {
                match self.invoke(Request::Start { name, input }, deadline).await {
                    Ok(report) => {
                        let status = match report.status.as_str() {
                            "SUCCEEDED" => 200,
                            "FAILED" | "TIMED_OUT" | "CANCELLED" | "BLOCKED" => 500,
                            _ => 202,
                        };
                        let body = serde_json::to_value(&report).unwrap_or(Value::Null);
                        http_response(status, &body)
                    }
                    Err(Error::Store(e @ durafn_runtime::StoreError::Conflict { .. })) => {
                        http_error(409, "Conflict", e.to_string())
                    }
                    Err(Error::Store(e @ durafn_runtime::StoreError::PayloadTooLarge { .. })) => {
                        http_error(413, "PayloadTooLarge", e.to_string())
                    }
                    Err(Error::Store(e @ durafn_runtime::StoreError::Invalid(_))) => {
                        http_error(400, "InvalidRequest", e.to_string())
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        serde_json::to_value(response).map_err(|e| Error::Invalid(e.to_string()))
    }

    /// Starts one execution per record and runs its first invocation; the
    /// records that could not be started are the batch's item failures.
    async fn sqs_batch(
        &self,
        event: &SqsEvent,
        deadline: Timestamp,
    ) -> Result<SqsBatchResponse, Error> {
        let starts = sqs_starts(event)?;
        let outcomes: Vec<(String, Result<InvocationReport, Error>)> =
            futures::stream::iter(starts)
                .map(|(message_id, start)| async move {
                    let outcome = match start {
                        Ok((name, input)) => {
                            self.invoke(Request::Start { name, input }, deadline).await
                        }
                        Err(e) => Err(e),
                    };
                    (message_id, outcome)
                })
                .buffered(SQS_CONCURRENCY)
                .collect()
                .await;
        let mut response = SqsBatchResponse::default();
        for (message_id, outcome) in outcomes {
            if let Err(e) = outcome {
                tracing::warn!(message_id, error = %e, "could not start an execution for an SQS message");
                response.add_failure(message_id);
            }
        }
        Ok(response)
    }

    /// [`LambdaRuntime::invoke_counted`] with the store calls counted for
    /// the invocation's record (a resume brings the dispatcher's claim).
    async fn invoke(
        &self,
        request: Request,
        deadline: Timestamp,
    ) -> Result<InvocationReport, Error> {
        let meter = durafn_runtime::cost::UsageMeter::new();
        if let Request::Resume(ResumeRequest {
            claim_usage: Some(u),
            ..
        }) = &request
        {
            meter.add(u);
        }
        durafn_runtime::cost::metered(meter, self.invoke_counted(request, deadline)).await
    }

    async fn invoke_counted(
        &self,
        request: Request,
        deadline: Timestamp,
    ) -> Result<InvocationReport, Error> {
        let config = InvocationConfig {
            deadline: Some(deadline),
            max_steps_per_invocation: self.max_steps,
            ..InvocationConfig::default()
        };
        let claimed = match request {
            Request::Http(_) | Request::Sqs(_) => {
                return Err(Error::Invalid(
                    "an HTTP or SQS event must be unwrapped first".into(),
                ));
            }
            Request::Resume(r) => {
                // The claim brought the journal, or one read: the journal's
                // record says whether the claim is still ours.
                let journal = match r.journal {
                    Some(j) if j.execution.0.id == r.execution_id => Journal::from(*j),
                    Some(_) => {
                        return Err(Error::Invalid(format!(
                            "the resume request of {} carries another execution's journal",
                            r.execution_id
                        )));
                    }
                    None => self
                        .store
                        .load_journal(&r.execution_id)
                        .await?
                        .ok_or_else(|| {
                            Error::Invalid(format!("execution {} does not exist", r.execution_id))
                        })?,
                };
                let current = &journal.execution;
                if current.epoch != r.epoch || current.status != ExecutionStatus::Running {
                    return Ok(status_report(&r.execution_id, "SUPERSEDED", None));
                }
                journal
            }
            Request::Schedule {
                name,
                fire_at,
                input,
            } => {
                let id = durafn_runtime::trigger::schedule::fire_id(&name, fire_at)?;
                if let Some(running) = self.earlier_fire_running(&name, &id).await? {
                    tracing::info!(schedule = %name, execution = %id, %running, "an earlier fire is still running; skipping this one");
                    return Ok(status_report(&id, "SKIPPED", None));
                }
                return Box::pin(self.invoke_counted(
                    Request::Start {
                        name: id.as_str().to_string(),
                        input,
                    },
                    deadline,
                ))
                .await;
            }
            Request::Start { name, input } => {
                let now = self.clock.now();
                let id = ExecutionId::new(name)?;
                let new = NewExecution {
                    id: id.clone(),
                    function: self.function.clone(),
                    version: self.version.clone(),
                    input,
                    now,
                };
                if self.dispatched_starts {
                    // Limits or flow control apply: the dispatcher claims it.
                    let e = self.store.create_execution(&new).await?;
                    let e = e.execution();
                    return Ok(status_report(&id, e.status.as_str(), e.output.clone()));
                }
                let lease = deadline.plus(LEASE_GRACE);
                // Atomic where the store can: no dispatcher claims it in between.
                match self.store.create_and_claim(&new, lease).await? {
                    // Created by this start and claimed for the first time,
                    // with nothing sent to it since (no wake-up counted): no
                    // invocation has run and no event arrived, so the journal
                    // is empty and need not be read. (On a store whose create
                    // and claim are two writes, something can come between.)
                    (Created::New(_), Some(c)) if c.epoch == 1 && c.wakeups == 0 => Journal {
                        execution: c,
                        operations: Vec::new(),
                        events: Vec::new(),
                    },
                    (_, Some(c)) => {
                        let journal = self.store.load_journal(&c.id).await?;
                        match journal {
                            Some(j) if j.execution.epoch == c.epoch => j,
                            _ => return Ok(status_report(&c.id, "SUPERSEDED", None)),
                        }
                    }
                    (_, None) => {
                        // Already started by an earlier request: report where it is.
                        let e = self.store.get_execution(&id).await?;
                        let status = e.as_ref().map_or("PENDING", |e| e.status.as_str());
                        return Ok(status_report(&id, status, e.and_then(|e| e.output)));
                    }
                }
            }
        };
        run_invocation_with_journal(
            &self.handler,
            self.store.clone(),
            self.clock.clone(),
            config,
            claimed,
        )
        .await
    }
}

impl LambdaRuntime {
    /// An execution of an earlier fire of `schedule` (not `this`) that has
    /// not ended: the overlap policy `skip` drops the new fire.
    async fn earlier_fire_running(
        &self,
        schedule: &str,
        this: &ExecutionId,
    ) -> Result<Option<ExecutionId>, Error> {
        let prefix = format!("{schedule}:");
        for status in [
            ExecutionStatus::Running,
            ExecutionStatus::Suspended,
            ExecutionStatus::Pending,
        ] {
            let filter = ListFilter {
                function: Some(self.function.clone()),
                status: Some(status),
                id_contains: Some(prefix.clone()),
                limit: 10,
                ..ListFilter::default()
            };
            let page = self.store.list_executions(&filter).await?;
            if let Some(e) = page
                .executions
                .into_iter()
                .find(|e| e.id != *this && e.id.as_str().starts_with(&prefix))
            {
                return Ok(Some(e.id));
            }
        }
        Ok(None)
    }
}

fn status_report(id: &ExecutionId, status: &str, output: Option<Value>) -> InvocationReport {
    InvocationReport {
        execution_id: id.clone(),
        status: status.to_string(),
        output,
        error: None,
        wake_at: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn resume_requests_are_recognised() {
        let r = parse_request(
            json!({"durafn_resume": {"execution_id": "x-1", "epoch": 3}}),
            "req",
        )
        .unwrap();
        let Request::Resume(r) = r else {
            panic!("{r:?}")
        };
        assert_eq!((r.execution_id.as_str(), r.epoch), ("x-1", 3));
    }

    #[test]
    fn resume_requests_may_carry_the_journal_with_its_seed() {
        let r = parse_request(
            json!({"durafn_resume": {"execution_id": "x-1", "epoch": 3, "journal": {
                "execution": {
                    "id": "x-1", "function": "f", "version": "1", "status": "RUNNING",
                    "input": {}, "epoch": 3, "wakeups": 0, "created_at": 1, "updated_at": 1,
                    "seed": "s3cret"
                },
                "operations": [],
                "events": []
            }}}),
            "req",
        )
        .unwrap();
        let Request::Resume(r) = r else {
            panic!("{r:?}")
        };
        let j = r.journal.expect("the journal");
        assert_eq!(
            (j.execution.0.epoch, j.execution.0.seed.as_str()),
            (3, "s3cret")
        );
    }

    #[test]
    fn bad_resume_requests_say_what_is_expected() {
        let err = parse_request(json!({"durafn_resume": {"epoch": 3}}), "req")
            .unwrap_err()
            .to_string();
        assert!(err.contains("execution_id"), "{err}");
    }

    #[test]
    fn direct_invokes_start_under_the_request_id() {
        let input = json!({"order_id": "o-1", "amount_cents": 1999});
        let r = parse_request(input.clone(), "req-42").unwrap();
        assert_eq!(
            r,
            Request::Start {
                name: "req-42".into(),
                input
            }
        );
    }

    fn http_event(body: &str, key: Option<&str>) -> Value {
        let mut headers = json!({"content-type": "application/json"});
        if let Some(k) = key {
            headers["idempotency-key"] = json!(k);
        }
        json!({
            "version": "2.0",
            "routeKey": "POST /orders",
            "rawPath": "/orders",
            "rawQueryString": "",
            "headers": headers,
            "requestContext": {
                "accountId": "000000000000", "apiId": "local", "domainName": "localhost",
                "domainPrefix": "localhost", "requestId": "req-9", "routeKey": "POST /orders",
                "stage": "$default", "time": "25/Nov/2026:09:00:00 +0000", "timeEpoch": 1,
                "http": {"method": "POST", "path": "/orders", "protocol": "HTTP/1.1",
                         "sourceIp": "127.0.0.1", "userAgent": "curl"}
            },
            "body": body,
            "isBase64Encoded": false
        })
    }

    #[test]
    fn http_events_start_under_their_idempotency_key_or_request_id() {
        let r = parse_request(http_event("{\"order_id\": \"o-1\"}", None), "lambda-req").unwrap();
        let Request::Http(req) = r else {
            panic!("{r:?}")
        };
        assert_eq!(
            http_start(&req).unwrap(),
            ("req-9".to_string(), json!({"order_id": "o-1"}))
        );
        let r = parse_request(http_event("", Some("k-1")), "lambda-req").unwrap();
        let Request::Http(req) = r else {
            panic!("{r:?}")
        };
        assert_eq!(
            http_start(&req).unwrap(),
            ("http-k-1".to_string(), Value::Null)
        );
    }

    #[test]
    fn http_events_with_bad_json_get_a_400() {
        let r = parse_request(http_event("{oops", None), "lambda-req").unwrap();
        let Request::Http(req) = r else {
            panic!("{r:?}")
        };
        let resp = http_start(&req).unwrap_err();
        assert_eq!(resp.status_code, 400);
        let Some(Body::Text(body)) = resp.body else {
            panic!("no body")
        };
        assert!(body.contains("not valid JSON"), "{body}");
    }

    fn sqs_event(records: Vec<Value>) -> Value {
        json!({ "Records": records })
    }

    fn sqs_record(id: &str, body: &str) -> Value {
        json!({
            "messageId": id,
            "receiptHandle": format!("rh-{id}"),
            "body": body,
            "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1700000000000"},
            "messageAttributes": {},
            "md5OfBody": "",
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:media-sync",
            "awsRegion": "us-east-1"
        })
    }

    /// A record's message id and its execution (name, input) or error.
    type Start = (String, Result<(String, Value), String>);

    fn starts_of(payload: Value) -> Vec<Start> {
        let r = parse_request(payload, "lambda-req").unwrap();
        let Request::Sqs(event) = r else {
            panic!("{r:?}")
        };
        sqs_starts(&event)
            .unwrap()
            .into_iter()
            .map(|(id, s)| (id, s.map_err(|e| e.to_string())))
            .collect()
    }

    #[test]
    fn sqs_batches_start_one_execution_per_record_keyed_by_message_id() {
        let starts = starts_of(sqs_event(vec![
            sqs_record("m-1", r#"{"asset": "a.mov"}"#),
            sqs_record("m-2", "plain text"),
            sqs_record("m-3", ""),
        ]));
        assert_eq!(
            starts,
            vec![
                (
                    "m-1".to_string(),
                    Ok(("sqs-m-1".to_string(), json!({"asset": "a.mov"})))
                ),
                (
                    "m-2".to_string(),
                    Ok(("sqs-m-2".to_string(), json!("plain text")))
                ),
                ("m-3".to_string(), Ok(("sqs-m-3".to_string(), Value::Null))),
            ]
        );
    }

    #[test]
    fn sqs_records_may_name_their_execution_with_a_message_attribute() {
        let mut named = sqs_record("m-1", "1");
        named["messageAttributes"] = json!({
            "durafn-name": {"stringValue": "media-42", "dataType": "String",
                            "stringListValues": [], "binaryListValues": []}
        });
        let mut binary = sqs_record("m-2", "2");
        binary["messageAttributes"] = json!({
            "durafn-name": {"binaryValue": "AAE=", "dataType": "Binary",
                            "stringListValues": [], "binaryListValues": []}
        });
        let starts = starts_of(sqs_event(vec![named, binary]));
        assert_eq!(
            starts[0],
            ("m-1".to_string(), Ok(("media-42".to_string(), json!(1))))
        );
        assert_eq!(starts[1].0, "m-2");
        let err = starts[1].1.clone().unwrap_err();
        assert!(err.contains("must be a String"), "{err}");
    }

    #[test]
    fn sqs_records_without_a_message_id_fail_the_batch() {
        let mut record = sqs_record("m-1", "{}");
        record.as_object_mut().unwrap().remove("messageId");
        let r = parse_request(sqs_event(vec![record]), "lambda-req").unwrap();
        let Request::Sqs(event) = r else {
            panic!("{r:?}")
        };
        assert!(sqs_starts(&event).is_err());
    }

    #[test]
    fn only_all_sqs_records_make_an_sqs_batch() {
        // Another source's records (or none) are a direct invoke's input.
        let mut other = sqs_record("m-1", "{}");
        other["eventSource"] = json!("aws:s3");
        let payload = sqs_event(vec![sqs_record("m-0", "{}"), other]);
        assert_eq!(
            parse_request(payload.clone(), "req-1").unwrap(),
            Request::Start {
                name: "req-1".into(),
                input: payload
            }
        );
        let empty = sqs_event(vec![]);
        assert!(matches!(
            parse_request(empty, "req-2").unwrap(),
            Request::Start { .. }
        ));
    }

    #[test]
    fn sqs_batch_responses_have_the_lambda_shape() {
        let mut response = SqsBatchResponse::default();
        response.add_failure("m-2");
        assert_eq!(
            serde_json::to_value(response).unwrap(),
            json!({"batchItemFailures": [{"itemIdentifier": "m-2"}]})
        );
    }

    #[test]
    fn schedule_fires_start_the_fire_s_execution_with_the_local_input() {
        let r = parse_request(
            json!({"durafn_schedule": {"name": "nightly", "time": "2026-12-02T03:00:00Z"}}),
            "req",
        )
        .unwrap();
        let Request::Schedule {
            name,
            fire_at,
            input,
        } = r
        else {
            panic!("{r:?}")
        };
        assert_eq!(name, "nightly");
        assert_eq!(
            durafn_runtime::trigger::schedule::fire_id(&name, fire_at)
                .unwrap()
                .as_str(),
            "nightly:20261202T030000Z"
        );
        assert_eq!(
            input,
            json!({"schedule": "nightly", "scheduled_time": "2026-12-02T03:00:00Z"})
        );
        let with_input = parse_request(
            json!({"durafn_schedule": {"name": "n", "time": "2026-12-02T03:00:00Z", "input": {"k": 1}}}),
            "req",
        )
        .unwrap();
        let Request::Schedule { input, .. } = with_input else {
            panic!()
        };
        assert_eq!(input["k"], 1);
        assert_eq!(input["schedule"], "n");
    }

    #[test]
    fn bad_schedule_fires_say_what_is_expected() {
        for (fire, words) in [
            (json!({"time": "2026-12-02T03:00:00Z"}), "name is missing"),
            (json!({"name": "n"}), "time is missing"),
            (json!({"name": "n", "time": "tomorrow"}), "RFC 3339"),
            (
                json!({"name": "bad name!", "time": "2026-12-02T03:00:00Z"}),
                "not valid",
            ),
        ] {
            let err = parse_request(json!({ "durafn_schedule": fire }), "r")
                .unwrap_err()
                .to_string();
            assert!(err.contains(words), "{err}");
        }
    }

    #[test]
    fn explicit_starts_may_name_the_execution() {
        let r = parse_request(
            json!({"durafn_start": {"name": "o-1", "input": [1]}}),
            "req",
        )
        .unwrap();
        assert_eq!(
            r,
            Request::Start {
                name: "o-1".into(),
                input: json!([1])
            }
        );
        let r = parse_request(json!({"durafn_start": {"input": 2}}), "req-7").unwrap();
        assert_eq!(
            r,
            Request::Start {
                name: "req-7".into(),
                input: json!(2)
            }
        );
        assert!(parse_request(json!({"durafn_start": {"name": 5}}), "r").is_err());
    }
}
