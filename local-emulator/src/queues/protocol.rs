//! The SQS JSON protocol (`POST /`, `X-Amz-Target: AmazonSQS.<Action>`,
//! `Content-Type: application/x-amz-json-1.0`), enough for `aws-sdk-sqs` and
//! the AWS CLI to send, receive and inspect the local queues.
//!
//! Errors have SQS's shape: HTTP 400 with `{"__type":
//! "com.amazonaws.sqs#QueueDoesNotExist", "message": ...}` and the
//! `x-amzn-query-error` header SDKs use to name the error.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::Method;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use durafn_runtime::clock::Clock;
use serde_json::{Map, Value, json};

use super::queue::{
    ACCOUNT, Attribute, MAX_MESSAGE_BYTES, MAX_RECEIVE, MAX_VISIBILITY_SECS, Outgoing, QueueError,
    Queues, Received, queue_arn,
};
use crate::auth::Guard;
use crate::routes::{Access, Limits, RouteSpec};

#[cfg(test)]
#[path = "fuzz_tests.rs"]
mod fuzz_tests;

/// The content type of the protocol.
const CONTENT_TYPE: &str = "application/x-amz-json-1.0";

/// The longest long poll SQS allows.
const MAX_WAIT_SECS: u64 = 20;

/// How often a long poll looks at the store again while it waits (messages
/// sent through another replica wake no one here).
const POLL_WHILE_WAITING: Duration = Duration::from_millis(500);

/// The most entries of a batch request.
const MAX_BATCH: usize = 10;

/// What the protocol handlers share.
#[derive(Clone)]
pub(crate) struct SqsState {
    /// The queues.
    pub(crate) queues: Arc<Queues>,
    /// The wall clock (for timestamps).
    pub(crate) clock: Arc<dyn Clock>,
}

/// The protocol's handler (one for every action, see [`ROUTES`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /` (or the queue URL) with `X-Amz-Target: AmazonSQS.<Action>`.
    Action,
}

/// The largest request: a batch of messages at SQS's size limit, JSON-escaped.
const MAX_REQUEST_BYTES: usize = 2 * MAX_MESSAGE_BYTES + 64 * 1024;

const fn spec(path: &'static str) -> RouteSpec<Endpoint> {
    RouteSpec {
        method: Method::POST,
        path,
        access: Access::Token,
        body_limit: MAX_REQUEST_BYTES,
        // A long poll waits up to MAX_WAIT_SECS.
        timeout: Some(Duration::from_secs(MAX_WAIT_SECS + 30)),
        rate_limited: false,
        endpoint: Endpoint::Action,
    }
}

/// The protocol's routes: `POST /`, and `POST /000000000000/<queue>` for
/// clients that send to the queue URL itself. Token-checked like the REST
/// API (an AWS SDK passes the token as its access key id).
pub const ROUTES: &[RouteSpec<Endpoint>] = &[spec("/"), spec("/000000000000/{queue}")];

fn endpoint(_: Endpoint, m: MethodFilter) -> MethodRouter<SqsState> {
    on(m, handle)
}

/// The protocol's router.
pub(crate) fn router(state: SqsState, guard: &Guard, limits: &Limits) -> Router {
    crate::routes::build(ROUTES, endpoint, guard, limits).with_state(state)
}

/// An error in SQS's shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SqsError {
    status: StatusCode,
    /// The shape name (`__type` is `com.amazonaws.sqs#<shape>`).
    shape: &'static str,
    /// The query-protocol code SDKs match on.
    code: &'static str,
    message: String,
}

impl SqsError {
    fn new(shape: &'static str, code: &'static str, message: impl Into<String>) -> SqsError {
        SqsError {
            status: StatusCode::BAD_REQUEST,
            shape,
            code,
            message: message.into(),
        }
    }

    fn invalid(message: impl Into<String>) -> SqsError {
        SqsError::new("InvalidParameterValue", "InvalidParameterValue", message)
    }

    fn missing(parameter: &str) -> SqsError {
        SqsError::new(
            "MissingParameter",
            "MissingParameter",
            format!("The request must contain the parameter {parameter}."),
        )
    }

    fn unsupported(message: impl Into<String>) -> SqsError {
        SqsError::new(
            "UnsupportedOperation",
            "AWS.SimpleQueueService.UnsupportedOperation",
            message,
        )
    }
}

impl From<QueueError> for SqsError {
    fn from(e: QueueError) -> SqsError {
        let message = e.to_string();
        match e {
            QueueError::NoSuchQueue(_) => SqsError::new(
                "QueueDoesNotExist",
                "AWS.SimpleQueueService.NonExistentQueue",
                message,
            ),
            QueueError::BadReceipt(_) => {
                SqsError::new("ReceiptHandleIsInvalid", "ReceiptHandleIsInvalid", message)
            }
            QueueError::InvalidParameter(_) => SqsError::invalid(message),
            QueueError::InvalidContents(_) => {
                SqsError::new("InvalidMessageContents", "InvalidMessageContents", message)
            }
            QueueError::Store(_) => SqsError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                shape: "ServiceUnavailable",
                code: "ServiceUnavailable",
                message,
            },
        }
    }
}

impl IntoResponse for SqsError {
    fn into_response(self) -> Response {
        let body = json!({
            "__type": format!("com.amazonaws.sqs#{}", self.shape),
            "message": self.message,
        });
        let mut resp = (self.status, body.to_string()).into_response();
        let headers = resp.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        if let Ok(v) = HeaderValue::from_str(&format!("{};Sender", self.code)) {
            headers.insert("x-amzn-query-error", v);
        }
        resp
    }
}

fn ok(body: Value) -> Response {
    let mut resp = (StatusCode::OK, body.to_string()).into_response();
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    if let Ok(v) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
        headers.insert("x-amzn-requestid", v);
    }
    resp
}

async fn handle(State(state): State<SqsState>, headers: HeaderMap, body: Bytes) -> Response {
    match dispatch(&state, &headers, &body).await {
        Ok(v) => ok(v),
        Err(e) => e.into_response(),
    }
}

async fn dispatch(state: &SqsState, headers: &HeaderMap, body: &[u8]) -> Result<Value, SqsError> {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(action) = target.strip_prefix("AmazonSQS.") else {
        return Err(SqsError::unsupported(format!(
            "expected an `X-Amz-Target: AmazonSQS.<Action>` header (the SQS JSON protocol, Content-Type {CONTENT_TYPE}), got {target:?}; the query (form) protocol is not supported"
        )));
    };
    let input: Map<String, Value> = if body.iter().all(u8::is_ascii_whitespace) {
        Map::new()
    } else {
        serde_json::from_slice(body).map_err(|e| {
            SqsError::new(
                "SerializationException",
                "SerializationException",
                format!("the request body is not a JSON object: {e}"),
            )
        })?
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1");
    let req = Req {
        state,
        input: &input,
        host,
    };
    match action {
        "SendMessage" => req.send_message().await,
        "SendMessageBatch" => req.send_message_batch().await,
        "ReceiveMessage" => req.receive_message().await,
        "DeleteMessage" => req.delete_message().await,
        "DeleteMessageBatch" => req.delete_message_batch().await,
        "ChangeMessageVisibility" => req.change_message_visibility().await,
        "GetQueueUrl" => req.get_queue_url(),
        "ListQueues" => Ok(req.list_queues()),
        "GetQueueAttributes" => req.get_queue_attributes().await,
        "PurgeQueue" => req.purge_queue().await,
        "CreateQueue" => req.create_queue(),
        other => Err(SqsError::unsupported(format!(
            "{other} is not supported by durafn's local queues (they come from template.yaml); supported: SendMessage, SendMessageBatch, ReceiveMessage, DeleteMessage, DeleteMessageBatch, ChangeMessageVisibility, GetQueueUrl, ListQueues, GetQueueAttributes, PurgeQueue, CreateQueue (of a template queue)"
        ))),
    }
}

/// One request's input and context.
struct Req<'a> {
    state: &'a SqsState,
    input: &'a Map<String, Value>,
    host: &'a str,
}

impl Req<'_> {
    fn now(&self) -> i64 {
        self.state.clock.now().0
    }

    fn url(&self, queue: &str) -> String {
        format!("http://{}/{ACCOUNT}/{queue}", self.host)
    }

    fn string(&self, key: &str) -> Result<Option<&str>, SqsError> {
        match self.input.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(SqsError::invalid(format!(
                "{key} must be a string, got {other}"
            ))),
        }
    }

    fn required(&self, key: &str) -> Result<&str, SqsError> {
        self.string(key)?.ok_or_else(|| SqsError::missing(key))
    }

    /// The queue `QueueUrl` names (its last path segment), which must exist.
    fn queue(&self) -> Result<String, SqsError> {
        let url = self.required("QueueUrl")?;
        let name = url.trim_end_matches('/').rsplit('/').next().unwrap_or("");
        if self.state.queues.contains(name) {
            Ok(name.to_string())
        } else {
            Err(QueueError::NoSuchQueue(name.to_string()).into())
        }
    }

    async fn send_message(&self) -> Result<Value, SqsError> {
        let queue = self.queue()?;
        let message = outgoing(self.input)?;
        let sent = self.state.queues.send(&queue, message, self.now()).await?;
        let mut out = json!({
            "MessageId": sent.message_id,
            "MD5OfMessageBody": sent.md5_of_body,
        });
        if let Some(md5) = sent.md5_of_attributes {
            out["MD5OfMessageAttributes"] = json!(md5);
        }
        Ok(out)
    }

    async fn send_message_batch(&self) -> Result<Value, SqsError> {
        let queue = self.queue()?;
        let entries = batch_entries(self.input)?;
        let total: usize = entries
            .iter()
            .filter_map(|e| e.get("MessageBody").and_then(Value::as_str))
            .map(str::len)
            .sum();
        if total > MAX_MESSAGE_BYTES {
            return Err(SqsError::new(
                "BatchRequestTooLong",
                "AWS.SimpleQueueService.BatchRequestTooLong",
                format!(
                    "Batch requests cannot be longer than {MAX_MESSAGE_BYTES} bytes (this one is {total})."
                ),
            ));
        }
        let now_ms = self.now();
        let mut successful = Vec::new();
        let mut failed = Vec::new();
        for (id, entry) in entries.iter().map(|e| (entry_id(e), e)) {
            let result = match entry
                .as_object()
                .ok_or_else(|| SqsError::invalid("each entry must be an object"))
                .and_then(outgoing)
            {
                Ok(m) => self
                    .state
                    .queues
                    .send(&queue, m, now_ms)
                    .await
                    .map_err(SqsError::from),
                Err(e) => Err(e),
            };
            match result {
                Ok(sent) => {
                    let mut s = json!({
                        "Id": id,
                        "MessageId": sent.message_id,
                        "MD5OfMessageBody": sent.md5_of_body,
                    });
                    if let Some(md5) = sent.md5_of_attributes {
                        s["MD5OfMessageAttributes"] = json!(md5);
                    }
                    successful.push(s);
                }
                Err(e) => failed.push(json!({
                    "Id": id,
                    "SenderFault": true,
                    "Code": e.code,
                    "Message": e.message,
                })),
            }
        }
        Ok(json!({ "Successful": successful, "Failed": failed }))
    }

    async fn receive_message(&self) -> Result<Value, SqsError> {
        let queue = self.queue()?;
        let max = match self.input.get("MaxNumberOfMessages") {
            None | Some(Value::Null) => 1,
            Some(v) => v
                .as_u64()
                .filter(|n| (1..=MAX_RECEIVE as u64).contains(n))
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| {
                    SqsError::invalid(format!(
                        "Value {v} for parameter MaxNumberOfMessages is invalid. Reason: Must be between 1 and {MAX_RECEIVE}, if provided."
                    ))
                })?,
        };
        let visibility = seconds(self.input, "VisibilityTimeout", MAX_VISIBILITY_SECS)?;
        let wait = seconds(self.input, "WaitTimeSeconds", MAX_WAIT_SECS)?.unwrap_or_default();
        let system = names(self.input, "MessageSystemAttributeNames")?
            .into_iter()
            .chain(names(self.input, "AttributeNames")?)
            .collect::<Vec<_>>();
        let wanted_attrs = names(self.input, "MessageAttributeNames")?;
        let queues = &self.state.queues;
        let deadline = Instant::now() + wait;
        let received = loop {
            let changed = queues.changed.notified();
            let now = Instant::now();
            let now_ms = self.now();
            let got = queues.receive(&queue, max, visibility, now_ms).await?;
            if !got.is_empty() || now >= deadline {
                break got;
            }
            // Another replica may add messages this process does not hear
            // of: look again at least every POLL_WHILE_WAITING.
            let mut nap = (deadline - now).min(POLL_WHILE_WAITING);
            if let Some(t) = queues.next_visible(&queue, now_ms).await {
                let until = Duration::from_millis(u64::try_from(t - now_ms).unwrap_or(0));
                nap = nap.min(until);
            }
            let _ = tokio::time::timeout(nap, changed).await;
        };
        let messages: Vec<Value> = received
            .iter()
            .map(|r| api_message(r, &system, &wanted_attrs))
            .collect();
        Ok(json!({ "Messages": messages }))
    }

    async fn delete_message(&self) -> Result<Value, SqsError> {
        let queue = self.queue()?;
        let handle = self.required("ReceiptHandle")?;
        self.state.queues.delete(&queue, handle).await?;
        Ok(json!({}))
    }

    async fn delete_message_batch(&self) -> Result<Value, SqsError> {
        let queue = self.queue()?;
        let entries = batch_entries(self.input)?;
        let mut successful = Vec::new();
        let mut failed = Vec::new();
        for entry in entries {
            let id = entry_id(entry);
            let result = match entry.get("ReceiptHandle").and_then(Value::as_str) {
                Some(handle) => self
                    .state
                    .queues
                    .delete(&queue, handle)
                    .await
                    .map_err(SqsError::from),
                None => Err(SqsError::missing("ReceiptHandle")),
            };
            match result {
                Ok(_) => successful.push(json!({ "Id": id })),
                Err(e) => failed.push(json!({
                    "Id": id, "SenderFault": true, "Code": e.code, "Message": e.message,
                })),
            }
        }
        Ok(json!({ "Successful": successful, "Failed": failed }))
    }

    async fn change_message_visibility(&self) -> Result<Value, SqsError> {
        let queue = self.queue()?;
        let handle = self.required("ReceiptHandle")?;
        let timeout = seconds(self.input, "VisibilityTimeout", MAX_VISIBILITY_SECS)?
            .ok_or_else(|| SqsError::missing("VisibilityTimeout"))?;
        self.state
            .queues
            .change_visibility(&queue, handle, timeout, self.now())
            .await?;
        Ok(json!({}))
    }

    fn get_queue_url(&self) -> Result<Value, SqsError> {
        let name = self.required("QueueName")?;
        if !self.state.queues.contains(name) {
            return Err(QueueError::NoSuchQueue(name.to_string()).into());
        }
        Ok(json!({ "QueueUrl": self.url(name) }))
    }

    fn list_queues(&self) -> Value {
        let prefix = self
            .input
            .get("QueueNamePrefix")
            .and_then(Value::as_str)
            .unwrap_or("");
        let urls: Vec<String> = self
            .state
            .queues
            .names()
            .into_iter()
            .filter(|n| n.starts_with(prefix))
            .map(|n| self.url(&n))
            .collect();
        json!({ "QueueUrls": urls })
    }

    async fn get_queue_attributes(&self) -> Result<Value, SqsError> {
        let queue = self.queue()?;
        let wanted = names(self.input, "AttributeNames")?;
        let info = self.state.queues.info(&queue, self.now()).await?;
        let created = (info.created_ms / 1000).to_string();
        let mut all: BTreeMap<&str, String> = BTreeMap::new();
        all.insert("QueueArn", queue_arn(&queue));
        all.insert("ApproximateNumberOfMessages", info.visible.to_string());
        all.insert(
            "ApproximateNumberOfMessagesNotVisible",
            info.in_flight.to_string(),
        );
        all.insert(
            "ApproximateNumberOfMessagesDelayed",
            info.delayed.to_string(),
        );
        all.insert(
            "VisibilityTimeout",
            info.config.visibility_timeout.as_secs().to_string(),
        );
        all.insert("CreatedTimestamp", created.clone());
        all.insert("LastModifiedTimestamp", created);
        all.insert("DelaySeconds", "0".into());
        all.insert("MaximumMessageSize", MAX_MESSAGE_BYTES.to_string());
        all.insert("MessageRetentionPeriod", "345600".into());
        all.insert("ReceiveMessageWaitTimeSeconds", "0".into());
        all.insert("SqsManagedSseEnabled", "false".into());
        if let Some(r) = &info.config.redrive {
            all.insert(
                "RedrivePolicy",
                json!({
                    "deadLetterTargetArn": queue_arn(&r.dead_letter_queue),
                    "maxReceiveCount": r.max_receive_count,
                })
                .to_string(),
            );
        }
        let everything = wanted.iter().any(|n| n == "All");
        let attributes: Map<String, Value> = all
            .into_iter()
            .filter(|(k, _)| everything || wanted.iter().any(|n| n == k))
            .map(|(k, v)| (k.to_string(), Value::String(v)))
            .collect();
        Ok(json!({ "Attributes": attributes }))
    }

    async fn purge_queue(&self) -> Result<Value, SqsError> {
        let queue = self.queue()?;
        self.state.queues.purge(&queue).await?;
        Ok(json!({}))
    }

    /// `CreateQueue` of a queue the template declares answers its URL (as
    /// SQS does for an existing queue); any other name is refused.
    fn create_queue(&self) -> Result<Value, SqsError> {
        let name = self.required("QueueName")?;
        if self.state.queues.contains(name) {
            return Ok(json!({ "QueueUrl": self.url(name) }));
        }
        Err(SqsError::unsupported(format!(
            "durafn's local queues come from template.yaml: declare {name:?} as an AWS::SQS::Queue used by an SQS event, then restart `durafn dev`"
        )))
    }
}

/// A whole number of seconds at `key`, at most `max`.
fn seconds(input: &Map<String, Value>, key: &str, max: u64) -> Result<Option<Duration>, SqsError> {
    match input.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .filter(|n| *n <= max)
            .map(|n| Some(Duration::from_secs(n)))
            .ok_or_else(|| {
                SqsError::invalid(format!(
                    "Value {v} for parameter {key} is invalid. Reason: must be between 0 and {max}."
                ))
            }),
    }
}

/// A list of strings at `key` (empty when absent).
fn names(input: &Map<String, Value>, key: &str) -> Result<Vec<String>, SqsError> {
    match input.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| SqsError::invalid(format!("{key} must be a list of strings")))
            })
            .collect(),
        Some(_) => Err(SqsError::invalid(format!(
            "{key} must be a list of strings"
        ))),
    }
}

/// The `Entries` of a batch request, checked as SQS does.
fn batch_entries(input: &Map<String, Value>) -> Result<&Vec<Value>, SqsError> {
    let entries = match input.get("Entries") {
        Some(Value::Array(e)) => e,
        None | Some(Value::Null) => return Err(SqsError::missing("Entries")),
        Some(_) => return Err(SqsError::invalid("Entries must be a list")),
    };
    if entries.is_empty() {
        return Err(SqsError::new(
            "EmptyBatchRequest",
            "AWS.SimpleQueueService.EmptyBatchRequest",
            "There should be at least one entry in the request.",
        ));
    }
    if entries.len() > MAX_BATCH {
        return Err(SqsError::new(
            "TooManyEntriesInBatchRequest",
            "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
            format!(
                "Maximum number of entries per request are {MAX_BATCH}. You have sent {}.",
                entries.len()
            ),
        ));
    }
    let mut seen = HashSet::new();
    for e in entries {
        let id = entry_id(e);
        let valid = !id.is_empty()
            && id.len() <= 80
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid {
            return Err(SqsError::new(
                "InvalidBatchEntryId",
                "AWS.SimpleQueueService.InvalidBatchEntryId",
                format!(
                    "A batch entry id can only contain alphanumeric characters, hyphens and underscores, at most 80 of them; got {id:?}."
                ),
            ));
        }
        if !seen.insert(id) {
            return Err(SqsError::new(
                "BatchEntryIdsNotDistinct",
                "AWS.SimpleQueueService.BatchEntryIdsNotDistinct",
                format!("Id {id} repeated."),
            ));
        }
    }
    Ok(entries)
}

fn entry_id(entry: &Value) -> &str {
    entry.get("Id").and_then(Value::as_str).unwrap_or("")
}

/// The message a `SendMessage` request (or batch entry) describes.
fn outgoing(input: &Map<String, Value>) -> Result<Outgoing, SqsError> {
    let body = match input.get("MessageBody") {
        Some(Value::String(s)) => s.clone(),
        None | Some(Value::Null) => return Err(SqsError::missing("MessageBody")),
        Some(_) => return Err(SqsError::invalid("MessageBody must be a string")),
    };
    let delay = match input.get("DelaySeconds") {
        None | Some(Value::Null) => Duration::ZERO,
        Some(v) => Duration::from_secs(v.as_u64().ok_or_else(|| {
            SqsError::invalid(format!(
                "Value {v} for parameter DelaySeconds is invalid. Reason: DelaySeconds must be >= 0 and <= 900."
            ))
        })?),
    };
    let mut attributes = BTreeMap::new();
    if let Some(attrs) = input.get("MessageAttributes").and_then(Value::as_object) {
        for (name, a) in attrs {
            let text = |k: &str| a.get(k).and_then(Value::as_str).map(str::to_string);
            let data_type = text("DataType").ok_or_else(|| {
                SqsError::invalid(format!("Message attribute {name:?} must have a DataType"))
            })?;
            let attr = Attribute::new(name, &data_type, text("StringValue"), text("BinaryValue"))?;
            attributes.insert(name.clone(), attr);
        }
    }
    Ok(Outgoing {
        body,
        delay,
        attributes,
    })
}

/// Whether a message attribute `name` is asked for by `wanted` (`All`,
/// `.*`, `prefix.*` or the name itself).
fn wanted(wanted: &[String], name: &str) -> bool {
    wanted.iter().any(|w| {
        w == "All"
            || w == ".*"
            || w == name
            || w.strip_suffix(".*")
                .is_some_and(|p| name.starts_with(p) && name[p.len()..].starts_with('.'))
    })
}

/// A received message as `ReceiveMessage` answers it.
fn api_message(r: &Received, system: &[String], attrs: &[String]) -> Value {
    let m = &r.message;
    let mut out = json!({
        "MessageId": m.id,
        "ReceiptHandle": r.receipt_handle,
        "MD5OfBody": m.md5_of_body,
        "Body": m.body,
    });
    let everything = system.iter().any(|n| n == "All");
    let sys: Map<String, Value> = m
        .system_attributes()
        .into_iter()
        .filter(|(k, _)| everything || system.iter().any(|n| n == k))
        .map(|(k, v)| (k.to_string(), Value::String(v)))
        .collect();
    if !sys.is_empty() {
        out["Attributes"] = Value::Object(sys);
    }
    let chosen: BTreeMap<String, Attribute> = m
        .attributes
        .iter()
        .filter(|(k, _)| wanted(attrs, k))
        .map(|(k, a)| (k.clone(), a.clone()))
        .collect();
    if let Some(md5) = super::queue::md5_of_attributes(&chosen) {
        out["MD5OfMessageAttributes"] = json!(md5);
        out["MessageAttributes"] = Value::Object(
            chosen
                .iter()
                .map(|(k, a)| (k.clone(), a.to_api()))
                .collect(),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::queues::queue::QueueConfig;
    use durafn_runtime::clock::SystemClock;

    fn state(_token: Option<&str>) -> SqsState {
        SqsState {
            queues: Arc::new(Queues::new(
                vec![QueueConfig {
                    name: "jobs".into(),
                    visibility_timeout: Duration::from_secs(30),
                    redrive: None,
                }],
                0,
            )),
            clock: Arc::new(SystemClock),
        }
    }

    fn headers(action: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            "x-amz-target",
            HeaderValue::from_str(&format!("AmazonSQS.{action}")).unwrap(),
        );
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:9000"));
        h
    }

    async fn call(s: &SqsState, action: &str, body: Value) -> Result<Value, SqsError> {
        dispatch(s, &headers(action), body.to_string().as_bytes()).await
    }

    #[tokio::test]
    async fn send_receive_delete_round_trip() {
        let s = state(None);
        let url = call(&s, "GetQueueUrl", json!({"QueueName": "jobs"}))
            .await
            .unwrap()["QueueUrl"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(url, "http://127.0.0.1:9000/000000000000/jobs");
        let sent = call(
            &s,
            "SendMessage",
            json!({"QueueUrl": url, "MessageBody": "abc",
                   "MessageAttributes": {"k": {"DataType": "String", "StringValue": "v"}}}),
        )
        .await
        .unwrap();
        assert_eq!(sent["MD5OfMessageBody"], "900150983cd24fb0d6963f7d28e17f72");
        assert!(sent["MD5OfMessageAttributes"].is_string());
        let got = call(
            &s,
            "ReceiveMessage",
            json!({"QueueUrl": url, "MaxNumberOfMessages": 10,
                   "MessageSystemAttributeNames": ["ApproximateReceiveCount"],
                   "MessageAttributeNames": ["All"]}),
        )
        .await
        .unwrap();
        let m = &got["Messages"][0];
        assert_eq!(m["MessageId"], sent["MessageId"]);
        assert_eq!(m["Body"], "abc");
        assert_eq!(m["Attributes"], json!({"ApproximateReceiveCount": "1"}));
        assert_eq!(m["MessageAttributes"]["k"]["StringValue"], "v");
        assert_eq!(m["MD5OfMessageAttributes"], sent["MD5OfMessageAttributes"]);
        let handle = m["ReceiptHandle"].clone();
        call(
            &s,
            "DeleteMessage",
            json!({"QueueUrl": url, "ReceiptHandle": handle}),
        )
        .await
        .unwrap();
        let attrs = call(
            &s,
            "GetQueueAttributes",
            json!({"QueueUrl": url, "AttributeNames": ["All"]}),
        )
        .await
        .unwrap();
        assert_eq!(attrs["Attributes"]["ApproximateNumberOfMessages"], "0");
        assert_eq!(
            attrs["Attributes"]["QueueArn"],
            "arn:aws:sqs:us-east-1:000000000000:jobs"
        );
        let list = call(&s, "ListQueues", json!({})).await.unwrap();
        assert_eq!(list["QueueUrls"], json!([url]));
    }

    #[tokio::test]
    async fn batches_report_each_entry() {
        let s = state(None);
        let url = "http://x/000000000000/jobs";
        let out = call(
            &s,
            "SendMessageBatch",
            json!({"QueueUrl": url, "Entries": [
                {"Id": "a", "MessageBody": "1"},
                {"Id": "b", "MessageBody": ""},
            ]}),
        )
        .await
        .unwrap();
        assert_eq!(out["Successful"][0]["Id"], "a");
        assert_eq!(out["Failed"][0]["Id"], "b");
        let dup = call(
            &s,
            "SendMessageBatch",
            json!({"QueueUrl": url, "Entries": [
                {"Id": "a", "MessageBody": "1"}, {"Id": "a", "MessageBody": "2"}]}),
        )
        .await
        .unwrap_err();
        assert_eq!(dup.code, "AWS.SimpleQueueService.BatchEntryIdsNotDistinct");
        let empty = call(
            &s,
            "SendMessageBatch",
            json!({"QueueUrl": url, "Entries": []}),
        )
        .await
        .unwrap_err();
        assert_eq!(empty.shape, "EmptyBatchRequest");
    }

    #[tokio::test]
    async fn errors_have_the_sqs_shape() {
        let s = state(None);
        let e = call(
            &s,
            "SendMessage",
            json!({"QueueUrl": "http://x/000000000000/nope", "MessageBody": "1"}),
        )
        .await
        .unwrap_err();
        let resp = e.into_response();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            resp.headers()["x-amzn-query-error"],
            "AWS.SimpleQueueService.NonExistentQueue;Sender"
        );
        let body = axum::body::to_bytes(resp.into_body(), 10_000)
            .await
            .unwrap();
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["__type"], "com.amazonaws.sqs#QueueDoesNotExist");
        assert!(body["message"].as_str().unwrap().contains("nope"));

        let e = call(&s, "TagQueue", json!({})).await.unwrap_err();
        assert_eq!(e.shape, "UnsupportedOperation");
        let e = call(&s, "SendMessage", json!({})).await.unwrap_err();
        assert_eq!(e.shape, "MissingParameter");
    }

    #[tokio::test]
    async fn long_polls_return_as_soon_as_a_message_arrives() {
        let s = state(None);
        let url = "http://x/000000000000/jobs";
        let sender = {
            let s = s.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                call(
                    &s,
                    "SendMessage",
                    json!({"QueueUrl": url, "MessageBody": "late"}),
                )
                .await
                .unwrap();
            })
        };
        let started = Instant::now();
        let got = call(
            &s,
            "ReceiveMessage",
            json!({"QueueUrl": url, "WaitTimeSeconds": 10}),
        )
        .await
        .unwrap();
        assert_eq!(got["Messages"][0]["Body"], "late");
        assert!(started.elapsed() < Duration::from_secs(5));
        sender.await.unwrap();
    }

    #[test]
    fn attribute_name_patterns() {
        let w =
            |p: &[&str], n: &str| wanted(&p.iter().map(|s| s.to_string()).collect::<Vec<_>>(), n);
        assert!(w(&["All"], "x"));
        assert!(w(&["a.*"], "a.b"));
        assert!(!w(&["a.*"], "ab"));
        assert!(w(&["durafn-name"], "durafn-name"));
        assert!(!w(&[], "x"));
    }
}
