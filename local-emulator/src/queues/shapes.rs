//! The SQS JSON protocol's request and response shapes, as the SQS API
//! reference names their members (PascalCase), and reading a request body
//! into one.
//!
//! Members durafn does not use (`MessageGroupId`, `MaxResults`, ...) are
//! ignored, as unknown members are.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::SqsError;

/// A request body as a JSON object: an empty body is `{}`, and `null`
/// members are left out (SQS treats a `null` as an absent member).
pub(super) fn body_object(body: &[u8]) -> Result<Map<String, Value>, SqsError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    let mut object: Map<String, Value> = serde_json::from_slice(body).map_err(|e| {
        SqsError::new(
            "SerializationException",
            "SerializationException",
            format!("the request body is not a JSON object: {e}"),
        )
    })?;
    object.retain(|_, v| !v.is_null());
    Ok(object)
}

/// Reads `input` (a request, or one entry of a batch) into its shape. A
/// required member that is missing is a `MissingParameter` naming it; a
/// member of the wrong type is an `InvalidParameterValue` naming it.
pub(super) fn read<T: DeserializeOwned>(input: Map<String, Value>) -> Result<T, SqsError> {
    serde_path_to_error::deserialize(Value::Object(input)).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        // serde names a missing member only in its message ("missing field `X`").
        if let Some(member) = inner
            .strip_prefix("missing field `")
            .and_then(|m| m.strip_suffix('`'))
        {
            return match path.as_str() {
                "." => SqsError::missing(member),
                parent => SqsError::missing(&format!("{parent}.{member}")),
            };
        }
        SqsError::invalid(format!(
            "Value for parameter {path} is invalid. Reason: {inner}."
        ))
    })
}

// ---- Requests ----

/// `SendMessage`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct SendMessage {
    pub(super) queue_url: String,
    pub(super) message_body: String,
    pub(super) delay_seconds: Option<i64>,
    #[serde(default)]
    pub(super) message_attributes: BTreeMap<String, MessageAttributeValue>,
}

impl SendMessage {
    /// The queue URL and the message.
    pub(super) fn into_parts(self) -> (String, SendMessageEntry) {
        let entry = SendMessageEntry {
            message_body: self.message_body,
            delay_seconds: self.delay_seconds,
            message_attributes: self.message_attributes,
        };
        (self.queue_url, entry)
    }
}

/// One entry of `SendMessageBatch` (its `Id` is read before, see
/// [`super::batch`]).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct SendMessageEntry {
    pub(super) message_body: String,
    pub(super) delay_seconds: Option<i64>,
    #[serde(default)]
    pub(super) message_attributes: BTreeMap<String, MessageAttributeValue>,
}

/// A message attribute of a request.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct MessageAttributeValue {
    /// Required; checked by the caller, whose error names the attribute.
    pub(super) data_type: Option<String>,
    pub(super) string_value: Option<String>,
    pub(super) binary_value: Option<String>,
}

/// `SendMessageBatch` and `DeleteMessageBatch`: the entries stay JSON until
/// their ids are checked, then each is read on its own (a bad entry fails
/// alone).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct Batch {
    pub(super) queue_url: String,
    pub(super) entries: Vec<Value>,
}

/// One entry of `DeleteMessageBatch`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct DeleteMessageEntry {
    pub(super) receipt_handle: String,
}

/// `ReceiveMessage`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ReceiveMessage {
    pub(super) queue_url: String,
    pub(super) max_number_of_messages: Option<i64>,
    pub(super) visibility_timeout: Option<i64>,
    pub(super) wait_time_seconds: Option<i64>,
    /// The older name of `MessageSystemAttributeNames`.
    #[serde(default)]
    pub(super) attribute_names: Vec<String>,
    #[serde(default)]
    pub(super) message_system_attribute_names: Vec<String>,
    #[serde(default)]
    pub(super) message_attribute_names: Vec<String>,
}

/// `DeleteMessage`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct DeleteMessage {
    pub(super) queue_url: String,
    pub(super) receipt_handle: String,
}

/// `ChangeMessageVisibility`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ChangeMessageVisibility {
    pub(super) queue_url: String,
    pub(super) receipt_handle: String,
    pub(super) visibility_timeout: i64,
}

/// `GetQueueUrl` and `CreateQueue`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct QueueName {
    pub(super) queue_name: String,
}

/// `ListQueues`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ListQueues {
    #[serde(default)]
    pub(super) queue_name_prefix: String,
}

/// `GetQueueAttributes`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct GetQueueAttributes {
    pub(super) queue_url: String,
    #[serde(default)]
    pub(super) attribute_names: Vec<String>,
}

/// `PurgeQueue`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct QueueUrl {
    pub(super) queue_url: String,
}

// ---- Answers ----

/// The answer of an action that answers nothing (`DeleteMessage`, ...).
#[derive(Debug, Serialize)]
pub(super) struct Empty {}

/// `GetQueueUrl`'s and `CreateQueue`'s answer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct QueueUrlResult {
    pub(super) queue_url: String,
}

/// `ListQueues`' answer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ListQueuesResult {
    pub(super) queue_urls: Vec<String>,
}

/// `GetQueueAttributes`' answer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct GetQueueAttributesResult {
    pub(super) attributes: BTreeMap<&'static str, String>,
}

/// A sent message (`SendMessage`'s answer, and in a batch's).
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct SendMessageResult {
    pub(super) message_id: String,
    #[serde(rename = "MD5OfMessageBody")]
    pub(super) md5_of_message_body: String,
    #[serde(
        rename = "MD5OfMessageAttributes",
        skip_serializing_if = "Option::is_none"
    )]
    pub(super) md5_of_message_attributes: Option<String>,
}

/// A batch's answer: `Successful` entries (`T`) and `Failed` ones.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct BatchResult<T> {
    pub(super) successful: Vec<T>,
    pub(super) failed: Vec<BatchResultErrorEntry>,
}

/// A sent entry of `SendMessageBatch`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct SendMessageBatchResultEntry {
    pub(super) id: String,
    #[serde(flatten)]
    pub(super) sent: SendMessageResult,
}

/// A deleted entry of `DeleteMessageBatch`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct DeleteMessageBatchResultEntry {
    pub(super) id: String,
}

/// A failed entry of a batch.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct BatchResultErrorEntry {
    pub(super) id: String,
    pub(super) sender_fault: bool,
    pub(super) code: &'static str,
    pub(super) message: String,
}

/// `ReceiveMessage`'s answer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ReceiveMessageResult {
    pub(super) messages: Vec<Message>,
}

/// A received message.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct Message {
    pub(super) message_id: String,
    pub(super) receipt_handle: String,
    #[serde(rename = "MD5OfBody")]
    pub(super) md5_of_body: String,
    pub(super) body: String,
    /// The system attributes asked for (left out when none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) attributes: Option<BTreeMap<&'static str, String>>,
    #[serde(
        rename = "MD5OfMessageAttributes",
        skip_serializing_if = "Option::is_none"
    )]
    pub(super) md5_of_message_attributes: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) message_attributes: Option<BTreeMap<String, Value>>,
}

/// An error's body.
#[derive(Debug, Serialize)]
pub(super) struct ErrorBody {
    /// `com.amazonaws.sqs#<shape>`.
    #[serde(rename = "__type")]
    pub(super) kind: String,
    pub(super) message: String,
}
