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
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use self::shapes::{
    BatchResult, DeleteMessageBatchResultEntry, Empty, ErrorBody, GetQueueAttributesResult,
    ListQueuesResult, Message, QueueUrlResult, ReceiveMessageResult, SendMessageBatchResultEntry,
    SendMessageResult, read,
};
use super::queue::{
    ACCOUNT, Attribute, MAX_MESSAGE_BYTES, MAX_RECEIVE, MAX_VISIBILITY_SECS, Outgoing, QueueError,
    Queues, Received, Sent, queue_arn,
};
use crate::auth::Guard;
use crate::routes::{Access, Limits, RouteSpec};

#[path = "shapes.rs"]
mod shapes;

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

    /// This error as a batch's failed entry `id`.
    fn for_entry(self, id: String) -> shapes::BatchResultErrorEntry {
        shapes::BatchResultErrorEntry {
            id,
            sender_fault: true,
            code: self.code,
            message: self.message,
        }
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
        let body = ErrorBody {
            kind: format!("com.amazonaws.sqs#{}", self.shape),
            message: self.message,
        };
        let body = serde_json::to_string(&body).unwrap_or_else(|_| "{}".into());
        let mut resp = (self.status, body).into_response();
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

/// An answer shape as JSON.
fn answer(shape: impl Serialize) -> Result<Value, SqsError> {
    serde_json::to_value(shape).map_err(|e| SqsError {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        shape: "InternalError",
        code: "InternalError",
        message: format!("the answer could not be written: {e}"),
    })
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
    let input = shapes::body_object(body)?;
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1");
    let req = Req { state, host };
    match action {
        "SendMessage" => answer(req.send_message(read(input)?).await?),
        "SendMessageBatch" => answer(req.send_message_batch(read(input)?).await?),
        "ReceiveMessage" => answer(req.receive_message(read(input)?).await?),
        "DeleteMessage" => answer(req.delete_message(read(input)?).await?),
        "DeleteMessageBatch" => answer(req.delete_message_batch(read(input)?).await?),
        "ChangeMessageVisibility" => answer(req.change_message_visibility(read(input)?).await?),
        "GetQueueUrl" => answer(req.get_queue_url(read(input)?)?),
        "ListQueues" => answer(req.list_queues(read(input)?)),
        "GetQueueAttributes" => answer(req.get_queue_attributes(read(input)?).await?),
        "PurgeQueue" => answer(req.purge_queue(read(input)?).await?),
        "CreateQueue" => answer(req.create_queue(read(input)?)?),
        other => Err(SqsError::unsupported(format!(
            "{other} is not supported by durafn's local queues (they come from template.yaml); supported: SendMessage, SendMessageBatch, ReceiveMessage, DeleteMessage, DeleteMessageBatch, ChangeMessageVisibility, GetQueueUrl, ListQueues, GetQueueAttributes, PurgeQueue, CreateQueue (of a template queue)"
        ))),
    }
}

/// One request's context.
struct Req<'a> {
    state: &'a SqsState,
    host: &'a str,
}

impl Req<'_> {
    fn now(&self) -> i64 {
        self.state.clock.now().0
    }

    fn url(&self, queue: &str) -> String {
        format!("http://{}/{ACCOUNT}/{queue}", self.host)
    }

    /// The queue a `QueueUrl` names (its last path segment), which must exist.
    fn queue(&self, url: &str) -> Result<String, SqsError> {
        let name = url.trim_end_matches('/').rsplit('/').next().unwrap_or("");
        if self.state.queues.contains(name) {
            Ok(name.to_string())
        } else {
            Err(QueueError::NoSuchQueue(name.to_string()).into())
        }
    }

    async fn send_message(
        &self,
        input: shapes::SendMessage,
    ) -> Result<SendMessageResult, SqsError> {
        let (url, entry) = input.into_parts();
        let queue = self.queue(&url)?;
        let sent = self
            .state
            .queues
            .send(&queue, outgoing(entry)?, self.now())
            .await?;
        Ok(sent_result(sent))
    }

    async fn send_message_batch(
        &self,
        input: shapes::Batch,
    ) -> Result<BatchResult<SendMessageBatchResultEntry>, SqsError> {
        let queue = self.queue(&input.queue_url)?;
        let total: usize = input
            .entries
            .iter()
            .filter_map(|e| e.get("MessageBody").and_then(Value::as_str))
            .map(str::len)
            .sum();
        let entries = batch::<shapes::SendMessageEntry>(input.entries)?;
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
        let mut result = BatchResult {
            successful: Vec::new(),
            failed: Vec::new(),
        };
        for BatchEntry { id, read } in entries {
            let sent = match read.and_then(outgoing) {
                Ok(m) => self
                    .state
                    .queues
                    .send(&queue, m, now_ms)
                    .await
                    .map_err(SqsError::from),
                Err(e) => Err(e),
            };
            match sent {
                Ok(sent) => result.successful.push(SendMessageBatchResultEntry {
                    id,
                    sent: sent_result(sent),
                }),
                Err(e) => result.failed.push(e.for_entry(id)),
            }
        }
        Ok(result)
    }

    async fn receive_message(
        &self,
        input: shapes::ReceiveMessage,
    ) -> Result<ReceiveMessageResult, SqsError> {
        let queue = self.queue(&input.queue_url)?;
        let max = match input.max_number_of_messages {
            None => 1,
            Some(n) => usize::try_from(n)
                .ok()
                .filter(|n| (1..=MAX_RECEIVE).contains(n))
                .ok_or_else(|| {
                    SqsError::invalid(format!(
                        "Value {n} for parameter MaxNumberOfMessages is invalid. Reason: Must be between 1 and {MAX_RECEIVE}, if provided."
                    ))
                })?,
        };
        let visibility = input
            .visibility_timeout
            .map(|n| seconds(n, "VisibilityTimeout", MAX_VISIBILITY_SECS))
            .transpose()?;
        let wait = input
            .wait_time_seconds
            .map(|n| seconds(n, "WaitTimeSeconds", MAX_WAIT_SECS))
            .transpose()?
            .unwrap_or_default();
        let system: Vec<String> = input
            .message_system_attribute_names
            .into_iter()
            .chain(input.attribute_names)
            .collect();
        let wanted_attrs = input.message_attribute_names;
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
        let messages = received
            .iter()
            .map(|r| api_message(r, &system, &wanted_attrs))
            .collect();
        Ok(ReceiveMessageResult { messages })
    }

    async fn delete_message(&self, input: shapes::DeleteMessage) -> Result<Empty, SqsError> {
        let queue = self.queue(&input.queue_url)?;
        self.state
            .queues
            .delete(&queue, &input.receipt_handle)
            .await?;
        Ok(Empty {})
    }

    async fn delete_message_batch(
        &self,
        input: shapes::Batch,
    ) -> Result<BatchResult<DeleteMessageBatchResultEntry>, SqsError> {
        let queue = self.queue(&input.queue_url)?;
        let entries = batch::<shapes::DeleteMessageEntry>(input.entries)?;
        let mut result = BatchResult {
            successful: Vec::new(),
            failed: Vec::new(),
        };
        for BatchEntry { id, read } in entries {
            let deleted = match read {
                Ok(e) => self
                    .state
                    .queues
                    .delete(&queue, &e.receipt_handle)
                    .await
                    .map_err(SqsError::from),
                Err(e) => Err(e),
            };
            match deleted {
                Ok(_) => result.successful.push(DeleteMessageBatchResultEntry { id }),
                Err(e) => result.failed.push(e.for_entry(id)),
            }
        }
        Ok(result)
    }

    async fn change_message_visibility(
        &self,
        input: shapes::ChangeMessageVisibility,
    ) -> Result<Empty, SqsError> {
        let queue = self.queue(&input.queue_url)?;
        let timeout = seconds(
            input.visibility_timeout,
            "VisibilityTimeout",
            MAX_VISIBILITY_SECS,
        )?;
        self.state
            .queues
            .change_visibility(&queue, &input.receipt_handle, timeout, self.now())
            .await?;
        Ok(Empty {})
    }

    fn get_queue_url(&self, input: shapes::QueueName) -> Result<QueueUrlResult, SqsError> {
        let name = input.queue_name;
        if !self.state.queues.contains(&name) {
            return Err(QueueError::NoSuchQueue(name).into());
        }
        Ok(QueueUrlResult {
            queue_url: self.url(&name),
        })
    }

    fn list_queues(&self, input: shapes::ListQueues) -> ListQueuesResult {
        let queue_urls = self
            .state
            .queues
            .names()
            .into_iter()
            .filter(|n| n.starts_with(&input.queue_name_prefix))
            .map(|n| self.url(&n))
            .collect();
        ListQueuesResult { queue_urls }
    }

    async fn get_queue_attributes(
        &self,
        input: shapes::GetQueueAttributes,
    ) -> Result<GetQueueAttributesResult, SqsError> {
        let queue = self.queue(&input.queue_url)?;
        let wanted = input.attribute_names;
        let info = self.state.queues.info(&queue, self.now()).await?;
        let created = (info.created_ms / 1000).to_string();
        let mut all: BTreeMap<&'static str, String> = BTreeMap::new();
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
        all.retain(|k, _| everything || wanted.iter().any(|n| n == k));
        Ok(GetQueueAttributesResult { attributes: all })
    }

    async fn purge_queue(&self, input: shapes::QueueUrl) -> Result<Empty, SqsError> {
        let queue = self.queue(&input.queue_url)?;
        self.state.queues.purge(&queue).await?;
        Ok(Empty {})
    }

    /// `CreateQueue` of a queue the template declares answers its URL (as
    /// SQS does for an existing queue); any other name is refused.
    fn create_queue(&self, input: shapes::QueueName) -> Result<QueueUrlResult, SqsError> {
        let name = input.queue_name;
        if self.state.queues.contains(&name) {
            return Ok(QueueUrlResult {
                queue_url: self.url(&name),
            });
        }
        Err(SqsError::unsupported(format!(
            "durafn's local queues come from template.yaml: declare {name:?} as an AWS::SQS::Queue used by an SQS event, then restart `durafn dev`"
        )))
    }
}

fn sent_result(sent: Sent) -> SendMessageResult {
    SendMessageResult {
        message_id: sent.message_id,
        md5_of_message_body: sent.md5_of_body,
        md5_of_message_attributes: sent.md5_of_attributes,
    }
}

/// `n` seconds of parameter `key`, at most `max`.
fn seconds(n: i64, key: &str, max: u64) -> Result<Duration, SqsError> {
    u64::try_from(n)
        .ok()
        .filter(|n| *n <= max)
        .map(Duration::from_secs)
        .ok_or_else(|| {
            SqsError::invalid(format!(
                "Value {n} for parameter {key} is invalid. Reason: must be between 0 and {max}."
            ))
        })
}

/// One entry of a batch: its id, and the entry read into its shape.
struct BatchEntry<T> {
    id: String,
    read: Result<T, SqsError>,
}

/// The `Entries` of a batch request, checked as SQS does (1 to
/// [`MAX_BATCH`] of them, with valid, distinct ids), each with its id and
/// read into its shape (an entry that does not read fails alone).
fn batch<T: DeserializeOwned>(entries: Vec<Value>) -> Result<Vec<BatchEntry<T>>, SqsError> {
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
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        // An entry that is not an object has no id.
        let mut e = match e {
            Value::Object(e) => e,
            _ => Map::new(),
        };
        let id = match e.remove("Id") {
            Some(Value::String(id)) => id,
            _ => String::new(),
        };
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
        if !seen.insert(id.clone()) {
            return Err(SqsError::new(
                "BatchEntryIdsNotDistinct",
                "AWS.SimpleQueueService.BatchEntryIdsNotDistinct",
                format!("Id {id} repeated."),
            ));
        }
        e.retain(|_, v| !v.is_null());
        out.push(BatchEntry { id, read: read(e) });
    }
    Ok(out)
}

/// The message a `SendMessage` request (or batch entry) describes.
fn outgoing(entry: shapes::SendMessageEntry) -> Result<Outgoing, SqsError> {
    let delay = match entry.delay_seconds {
        None => Duration::ZERO,
        // The queue checks the upper bound.
        Some(n) => Duration::from_secs(u64::try_from(n).map_err(|_| {
            SqsError::invalid(format!(
                "Value {n} for parameter DelaySeconds is invalid. Reason: DelaySeconds must be >= 0 and <= 900."
            ))
        })?),
    };
    let mut attributes = BTreeMap::new();
    for (name, a) in entry.message_attributes {
        let data_type = a.data_type.ok_or_else(|| {
            SqsError::invalid(format!("Message attribute {name:?} must have a DataType"))
        })?;
        let attr = Attribute::new(&name, &data_type, a.string_value, a.binary_value)?;
        attributes.insert(name, attr);
    }
    Ok(Outgoing {
        body: entry.message_body,
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
fn api_message(r: &Received, system: &[String], attrs: &[String]) -> Message {
    let m = &r.message;
    let everything = system.iter().any(|n| n == "All");
    let mut sys = m.system_attributes();
    sys.retain(|k, _| everything || system.iter().any(|n| n == k));
    let chosen: BTreeMap<String, Attribute> = m
        .attributes
        .iter()
        .filter(|(k, _)| wanted(attrs, k))
        .map(|(k, a)| (k.clone(), a.clone()))
        .collect();
    let md5_of_message_attributes = super::queue::md5_of_attributes(&chosen);
    let message_attributes = md5_of_message_attributes.as_ref().map(|_| {
        chosen
            .iter()
            .map(|(k, a)| (k.clone(), a.to_api()))
            .collect()
    });
    Message {
        message_id: m.id.clone(),
        receipt_handle: r.receipt_handle.clone(),
        md5_of_body: m.md5_of_body.clone(),
        body: m.body.clone(),
        attributes: (!sys.is_empty()).then_some(sys),
        md5_of_message_attributes,
        message_attributes,
    }
}

#[cfg(test)]
#[path = "protocol_tests.rs"]
mod tests;
