//! The queues themselves: messages, visibility timeouts, receive counts and
//! redrive to a dead-letter queue. Messages live in the store (one record
//! each, `Store::send_message` and friends), so they survive a restart or a
//! kill -9 and replicas sharing a store share the queues; times are passed
//! in, so the rules are tested without waiting.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use durafn_runtime::model::Timestamp;
use durafn_runtime::store::{QueueMessage, Store};

use base64::Engine;
use serde_json::{Value, json};
use tokio::sync::Notify;

use md5::{Digest, Md5};

/// SQS's largest message: body plus attributes, in bytes.
pub(crate) const MAX_MESSAGE_BYTES: usize = 262_144;

/// The most messages one receive returns.
pub(crate) const MAX_RECEIVE: usize = 10;

/// The most message attributes one message may carry.
const MAX_ATTRIBUTES: usize = 10;

/// The longest visibility timeout or delay SQS accepts, in seconds.
pub(crate) const MAX_VISIBILITY_SECS: u64 = 43_200;

/// The account id in local queue URLs and ARNs.
pub(crate) const ACCOUNT: &str = "000000000000";

/// The region in local queue ARNs.
pub(crate) const REGION: &str = "us-east-1";

/// A queue's ARN.
pub(crate) fn queue_arn(name: &str) -> String {
    format!("arn:aws:sqs:{REGION}:{ACCOUNT}:{name}")
}

/// How a queue is set up (from the template).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QueueConfig {
    /// The queue's name.
    pub(crate) name: String,
    /// How long a received message stays hidden.
    pub(crate) visibility_timeout: Duration,
    /// Where messages go after too many receives.
    pub(crate) redrive: Option<Redrive>,
}

/// A queue's redrive policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Redrive {
    /// The dead-letter queue's name.
    pub(crate) dead_letter_queue: String,
    /// Receives after which a message is moved there.
    pub(crate) max_receive_count: u32,
}

/// Why a queue operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum QueueError {
    /// No queue of that name.
    #[error("The specified queue {0} does not exist.")]
    NoSuchQueue(String),
    /// A receipt handle that no receive handed out.
    #[error("The input receipt handle {0:?} is not a valid receipt handle.")]
    BadReceipt(String),
    /// A parameter out of range or malformed.
    #[error("{0}")]
    InvalidParameter(String),
    /// A body with characters SQS does not allow.
    #[error("{0}")]
    InvalidContents(String),
    /// The store holding the messages failed (retry the request).
    #[error("the queue's store failed: {0}")]
    Store(String),
}

/// A message attribute (`DataType` `String`, `Number`, `Binary`, or one of
/// those with a `.custom` suffix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Attribute {
    /// The data type.
    pub(crate) data_type: String,
    /// The value of a `String` or `Number` attribute.
    pub(crate) string_value: Option<String>,
    /// The base64 value of a `Binary` attribute, and its bytes.
    pub(crate) binary_value: Option<(String, Vec<u8>)>,
}

impl Attribute {
    /// A checked attribute.
    pub(crate) fn new(
        name: &str,
        data_type: &str,
        string_value: Option<String>,
        binary_value: Option<String>,
    ) -> Result<Attribute, QueueError> {
        let bad = |why: String| {
            QueueError::InvalidParameter(format!("Message attribute {name:?} is invalid: {why}"))
        };
        let base = data_type.split('.').next().unwrap_or("");
        let binary_value = match (base, &string_value, binary_value) {
            ("String" | "Number", Some(_), None) => None,
            ("Binary", None, Some(b64)) => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(b64.as_bytes())
                    .map_err(|e| bad(format!("BinaryValue is not base64 ({e})")))?;
                Some((b64, bytes))
            }
            ("String" | "Number", _, _) => {
                return Err(bad(format!(
                    "a {data_type} attribute needs a StringValue (and no BinaryValue)"
                )));
            }
            ("Binary", _, _) => {
                return Err(bad(
                    "a Binary attribute needs a BinaryValue (and no StringValue)".into(),
                ));
            }
            _ => {
                return Err(bad(format!(
                    "DataType must be String, Number or Binary (optionally with a .custom suffix), got {data_type:?}"
                )));
            }
        };
        Ok(Attribute {
            data_type: data_type.to_string(),
            string_value,
            binary_value,
        })
    }

    fn size(&self, name: &str) -> usize {
        name.len()
            + self.data_type.len()
            + self.string_value.as_ref().map_or(0, String::len)
            + self.binary_value.as_ref().map_or(0, |(_, b)| b.len())
    }

    /// The attribute as `ReceiveMessage` returns it.
    pub(crate) fn to_api(&self) -> Value {
        let mut v = json!({ "DataType": self.data_type });
        if let Some(s) = &self.string_value {
            v["StringValue"] = json!(s);
        }
        if let Some((b64, _)) = &self.binary_value {
            v["BinaryValue"] = json!(b64);
        }
        v
    }

    /// The attribute as an SQS event record carries it.
    pub(crate) fn to_event(&self) -> aws_lambda_events::sqs::SqsMessageAttribute {
        let mut a = aws_lambda_events::sqs::SqsMessageAttribute::default();
        a.string_value = self.string_value.clone();
        a.binary_value = self.binary_value.as_ref().map(|(_, bytes)| {
            let mut data = aws_lambda_events::encodings::Base64Data::default();
            data.extend_from_slice(bytes);
            data
        });
        a.data_type = Some(self.data_type.clone());
        a
    }
}

/// Checks an attribute name the way SQS does.
fn check_attribute_name(name: &str) -> Result<(), QueueError> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    let lower = name.to_ascii_lowercase();
    if name.is_empty()
        || name.len() > 256
        || !ok_chars
        || name.starts_with('.')
        || name.ends_with('.')
        || name.contains("..")
        || lower.starts_with("aws.")
        || lower.starts_with("amazon.")
    {
        return Err(QueueError::InvalidParameter(format!(
            "Message attribute name {name:?} is invalid: use 1-256 letters, digits, '_', '-' or '.', not starting with AWS. or Amazon."
        )));
    }
    Ok(())
}

/// The MD5 digest of `data` as 32 lower-case hex digits (SQS's
/// `MD5OfMessageBody`).
pub(crate) fn md5_hex(data: &[u8]) -> String {
    Md5::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `MD5OfMessageAttributes`: SQS's digest over the attributes sorted by name
/// (each name, type and value length-prefixed, with a transport-type byte).
pub(crate) fn md5_of_attributes(attributes: &BTreeMap<String, Attribute>) -> Option<String> {
    if attributes.is_empty() {
        return None;
    }
    let mut buf = Vec::new();
    let put = |buf: &mut Vec<u8>, bytes: &[u8]| {
        let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
        buf.extend_from_slice(&len.to_be_bytes());
        buf.extend_from_slice(bytes);
    };
    for (name, a) in attributes {
        put(&mut buf, name.as_bytes());
        put(&mut buf, a.data_type.as_bytes());
        match (&a.string_value, &a.binary_value) {
            (_, Some((_, bytes))) => {
                buf.push(2);
                put(&mut buf, bytes);
            }
            (s, None) => {
                buf.push(1);
                put(&mut buf, s.as_deref().unwrap_or("").as_bytes());
            }
        }
    }
    Some(md5_hex(&buf))
}

/// A message to send.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Outgoing {
    /// The body.
    pub(crate) body: String,
    /// Seconds before it can be received.
    pub(crate) delay: Duration,
    /// Its message attributes.
    pub(crate) attributes: BTreeMap<String, Attribute>,
}

/// What `send` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sent {
    /// The new message's id.
    pub(crate) message_id: String,
    /// `MD5OfMessageBody`.
    pub(crate) md5_of_body: String,
    /// `MD5OfMessageAttributes`, when it has attributes.
    pub(crate) md5_of_attributes: Option<String>,
}

/// A message in a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Message {
    /// The message id.
    pub(crate) id: String,
    /// The body.
    pub(crate) body: String,
    /// Its MD5.
    pub(crate) md5_of_body: String,
    /// Its message attributes.
    pub(crate) attributes: BTreeMap<String, Attribute>,
    /// Their MD5.
    pub(crate) md5_of_attributes: Option<String>,
    /// When it was sent (ms since the epoch).
    pub(crate) sent_at_ms: i64,
    /// When it was first received (ms since the epoch).
    pub(crate) first_received_ms: Option<i64>,
    /// How many times it has been received.
    pub(crate) receive_count: u32,
    /// The queue it came from, when it was dead-lettered.
    pub(crate) dead_letter_source: Option<String>,
}

impl Message {
    /// The system attributes (`ApproximateReceiveCount`, `SentTimestamp`, ...).
    pub(crate) fn system_attributes(&self) -> BTreeMap<&'static str, String> {
        let mut a = BTreeMap::new();
        a.insert("ApproximateReceiveCount", self.receive_count.to_string());
        a.insert("SentTimestamp", self.sent_at_ms.to_string());
        a.insert("SenderId", ACCOUNT.to_string());
        a.insert(
            "ApproximateFirstReceiveTimestamp",
            self.first_received_ms
                .unwrap_or(self.sent_at_ms)
                .to_string(),
        );
        if let Some(source) = &self.dead_letter_source {
            a.insert("DeadLetterQueueSourceArn", queue_arn(source));
        }
        a
    }

    /// What the store keeps of it (everything but its delivery state).
    fn stored_body(&self) -> Value {
        let attributes: serde_json::Map<String, Value> = self
            .attributes
            .iter()
            .map(|(k, a)| {
                (
                    k.clone(),
                    json!({
                        "data_type": a.data_type,
                        "string_value": a.string_value,
                        "binary_value": a.binary_value.as_ref().map(|(b64, _)| b64),
                    }),
                )
            })
            .collect();
        json!({
            "body": self.body,
            "md5_of_body": self.md5_of_body,
            "attributes": attributes,
            "md5_of_attributes": self.md5_of_attributes,
            "dead_letter_source": self.dead_letter_source,
        })
    }

    /// A stored message, read back.
    fn from_stored(m: &QueueMessage) -> Result<Message, QueueError> {
        let corrupt =
            || QueueError::Store(format!("message {} of {} is not readable", m.id, m.queue));
        let b = &m.body;
        let text = |k: &str| b.get(k).and_then(Value::as_str).map(str::to_string);
        let mut attributes = BTreeMap::new();
        if let Some(map) = b.get("attributes").and_then(Value::as_object) {
            for (name, a) in map {
                let data_type = a
                    .get("data_type")
                    .and_then(Value::as_str)
                    .ok_or_else(corrupt)?;
                let string_value = a
                    .get("string_value")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                let binary_value = a
                    .get("binary_value")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                let attr = Attribute::new(name, data_type, string_value, binary_value)
                    .map_err(|_| corrupt())?;
                attributes.insert(name.clone(), attr);
            }
        }
        Ok(Message {
            id: m.id.clone(),
            body: text("body").ok_or_else(corrupt)?,
            md5_of_body: text("md5_of_body").unwrap_or_default(),
            attributes,
            md5_of_attributes: text("md5_of_attributes"),
            sent_at_ms: m.sent_at.0,
            first_received_ms: m.first_received_at.map(|t| t.0),
            receive_count: m.receive_count,
            dead_letter_source: text("dead_letter_source"),
        })
    }
}

/// A received message and the handle that deletes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Received {
    /// The message as received (its receive count includes this receive).
    pub(crate) message: Message,
    /// The receipt handle of this receive (`<message id>#<receipt>`).
    pub(crate) receipt_handle: String,
}

/// A queue's counts and settings (`GetQueueAttributes`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QueueInfo {
    /// Its configuration.
    pub(crate) config: QueueConfig,
    /// Messages that can be received now.
    pub(crate) visible: u64,
    /// Messages received and not yet deleted or visible again.
    pub(crate) in_flight: u64,
    /// Messages sent with a delay that has not passed.
    pub(crate) delayed: u64,
    /// When the emulator created it (ms since the epoch).
    pub(crate) created_ms: i64,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Every queue of the template, its messages kept in the store: a message
/// acknowledged to its sender is durable, and a receive is a conditional
/// claim, so replicas sharing a store never hand out the same receive.
pub(crate) struct Queues {
    configs: BTreeMap<String, QueueConfig>,
    store: Arc<dyn Store>,
    created_ms: i64,
    /// Notified whenever a message may have become receivable (in this process).
    pub(crate) changed: Notify,
}

impl Queues {
    /// The queues with these settings, their messages in `store`.
    pub(crate) fn open(configs: Vec<QueueConfig>, store: Arc<dyn Store>, now_ms: i64) -> Queues {
        Queues {
            configs: configs.into_iter().map(|c| (c.name.clone(), c)).collect(),
            store,
            created_ms: now_ms,
            changed: Notify::new(),
        }
    }

    /// Queues over a fresh SQLite store in a temporary folder (tests).
    #[cfg(test)]
    pub(crate) fn new(configs: Vec<QueueConfig>, now_ms: i64) -> Queues {
        #[allow(clippy::expect_used)]
        let dir = tempfile::tempdir().expect("temp dir").keep();
        #[allow(clippy::expect_used)]
        let store = durafn_runtime::store::SqliteStore::open(dir.join("q.db")).expect("store");
        Queues::open(configs, Arc::new(store), now_ms)
    }

    fn config(&self, queue: &str) -> Result<&QueueConfig, QueueError> {
        self.configs
            .get(queue)
            .ok_or_else(|| QueueError::NoSuchQueue(queue.to_string()))
    }

    /// The queues' names, sorted.
    pub(crate) fn names(&self) -> Vec<String> {
        self.configs.keys().cloned().collect()
    }

    /// Whether `name` is a queue.
    pub(crate) fn contains(&self, name: &str) -> bool {
        self.configs.contains_key(name)
    }

    /// Adds a message to `queue`; answers once it is durable.
    pub(crate) async fn send(
        &self,
        queue: &str,
        message: Outgoing,
        now_ms: i64,
    ) -> Result<Sent, QueueError> {
        let sent = Self::check(&message)?;
        self.config(queue)?;
        let m = Message {
            id: sent.message_id.clone(),
            body: message.body,
            md5_of_body: sent.md5_of_body.clone(),
            attributes: message.attributes,
            md5_of_attributes: sent.md5_of_attributes.clone(),
            sent_at_ms: now_ms,
            first_received_ms: None,
            receive_count: 0,
            dead_letter_source: None,
        };
        self.put(queue, &m, now_ms.saturating_add(ms(message.delay)))
            .await?;
        self.changed.notify_waiters();
        Ok(sent)
    }

    async fn put(&self, queue: &str, m: &Message, visible_at: i64) -> Result<(), QueueError> {
        let stored = QueueMessage {
            queue: queue.to_string(),
            id: m.id.clone(),
            body: m.stored_body(),
            sent_at: Timestamp(m.sent_at_ms),
            visible_at: Timestamp(visible_at),
            receive_count: m.receive_count,
            first_received_at: m.first_received_ms.map(Timestamp),
            receipt: None,
        };
        self.store
            .send_message(&stored)
            .await
            .map_err(|e| QueueError::Store(e.to_string()))?;
        Ok(())
    }

    /// Checks a message against SQS's limits; its id and digests.
    fn check(message: &Outgoing) -> Result<Sent, QueueError> {
        if message.body.is_empty() {
            return Err(QueueError::InvalidParameter(
                "The request must contain the parameter MessageBody.".into(),
            ));
        }
        let allowed = |c: char| {
            matches!(c, '\t' | '\n' | '\r')
                || ('\u{20}'..='\u{D7FF}').contains(&c)
                || ('\u{E000}'..='\u{FFFD}').contains(&c)
                || c >= '\u{10000}'
        };
        if let Some(c) = message.body.chars().find(|c| !allowed(*c)) {
            return Err(QueueError::InvalidContents(format!(
                "Invalid characters found: the message body contains {c:?}, which SQS does not allow."
            )));
        }
        if message.delay > Duration::from_secs(900) {
            return Err(QueueError::InvalidParameter(
                "Value for parameter DelaySeconds is invalid. Reason: DelaySeconds must be >= 0 and <= 900.".into(),
            ));
        }
        if message.attributes.len() > MAX_ATTRIBUTES {
            return Err(QueueError::InvalidParameter(format!(
                "Number of message attributes [{}] exceeds the allowed maximum [{MAX_ATTRIBUTES}].",
                message.attributes.len()
            )));
        }
        for name in message.attributes.keys() {
            check_attribute_name(name)?;
        }
        let size = message.body.len()
            + message
                .attributes
                .iter()
                .map(|(n, a)| a.size(n))
                .sum::<usize>();
        if size > MAX_MESSAGE_BYTES {
            return Err(QueueError::InvalidParameter(format!(
                "One or more parameters are invalid. Reason: Message must be shorter than {MAX_MESSAGE_BYTES} bytes (it is {size})."
            )));
        }
        Ok(Sent {
            // Time-ordered, so messages sent together are received in send order.
            message_id: uuid::Uuid::now_v7().to_string(),
            md5_of_body: md5_hex(message.body.as_bytes()),
            md5_of_attributes: md5_of_attributes(&message.attributes),
        })
    }

    /// Receives up to `max` visible messages of `queue`, hiding them for
    /// `visibility` (else the queue's timeout). A message received more than
    /// its queue's `maxReceiveCount` times moves to the dead-letter queue
    /// instead of being received again.
    pub(crate) async fn receive(
        &self,
        queue: &str,
        max: usize,
        visibility: Option<Duration>,
        now_ms: i64,
    ) -> Result<Vec<Received>, QueueError> {
        let config = self.config(queue)?;
        let visibility = visibility.unwrap_or(config.visibility_timeout);
        let redrive = config.redrive.clone();
        let claimed = self
            .store
            .receive_messages(
                queue,
                Timestamp(now_ms),
                Timestamp(now_ms.saturating_add(ms(visibility))),
                max,
            )
            .await
            .map_err(|e| QueueError::Store(e.to_string()))?;
        let mut out = Vec::new();
        for stored in claimed {
            let receipt = stored.receipt.clone().unwrap_or_default();
            let mut m = Message::from_stored(&stored)?;
            if let Some(r) = redrive
                .as_ref()
                .filter(|r| m.receive_count > r.max_receive_count)
            {
                // This receive is the one past the limit: it moves instead.
                m.receive_count -= 1;
                self.dead_letter(queue, r, m, &receipt, now_ms).await?;
                continue;
            }
            let receipt_handle = format!("{}#{receipt}", m.id);
            out.push(Received {
                message: m,
                receipt_handle,
            });
        }
        Ok(out)
    }

    /// Moves a message to its dead-letter queue: written there first (by
    /// its id, so a retry writes it once), then deleted here.
    async fn dead_letter(
        &self,
        queue: &str,
        r: &Redrive,
        mut m: Message,
        receipt: &str,
        now_ms: i64,
    ) -> Result<(), QueueError> {
        if self.contains(&r.dead_letter_queue) {
            tracing::info!(
                queue,
                dead_letter_queue = %r.dead_letter_queue,
                message_id = %m.id,
                receives = m.receive_count,
                "moving a message to the dead-letter queue"
            );
            m.dead_letter_source = Some(queue.to_string());
            self.put(&r.dead_letter_queue, &m, now_ms).await?;
            self.changed.notify_waiters();
        } else {
            tracing::warn!(
                queue,
                message_id = %m.id,
                "dropping a message: its dead-letter queue {} is not hosted",
                r.dead_letter_queue
            );
        }
        self.store
            .delete_message(queue, &m.id, receipt)
            .await
            .map_err(|e| QueueError::Store(e.to_string()))?;
        Ok(())
    }

    /// Splits a receipt handle into message id and receipt.
    fn split_handle(handle: &str) -> Result<(&str, &str), QueueError> {
        handle
            .split_once('#')
            .filter(|(id, r)| !id.is_empty() && !r.is_empty())
            .ok_or_else(|| QueueError::BadReceipt(handle.to_string()))
    }

    /// Deletes the message a receipt handle names. As on SQS, an old handle
    /// (the message was received again since) or an already deleted message
    /// is not an error, but deletes nothing.
    pub(crate) async fn delete(&self, queue: &str, handle: &str) -> Result<bool, QueueError> {
        self.config(queue)?;
        let (id, receipt) = Self::split_handle(handle)?;
        self.store
            .delete_message(queue, id, receipt)
            .await
            .map_err(|e| QueueError::Store(e.to_string()))
    }

    /// Sets how long a received message stays hidden from now on (0 makes
    /// it visible at once).
    pub(crate) async fn change_visibility(
        &self,
        queue: &str,
        handle: &str,
        timeout: Duration,
        now_ms: i64,
    ) -> Result<(), QueueError> {
        if timeout > Duration::from_secs(MAX_VISIBILITY_SECS) {
            return Err(QueueError::InvalidParameter(format!(
                "Value for parameter VisibilityTimeout is invalid. Reason: must be <= {MAX_VISIBILITY_SECS}."
            )));
        }
        self.config(queue)?;
        let (id, receipt) = Self::split_handle(handle)?;
        let changed = self
            .store
            .change_message_visibility(
                queue,
                id,
                receipt,
                Timestamp(now_ms.saturating_add(ms(timeout))),
                Timestamp(now_ms),
            )
            .await
            .map_err(|e| QueueError::Store(e.to_string()))?;
        if changed {
            self.changed.notify_waiters();
            Ok(())
        } else {
            Err(QueueError::InvalidParameter(format!(
                "Value {handle} for parameter ReceiptHandle is invalid. Reason: Message does not exist or is not available for visibility timeout change."
            )))
        }
    }

    /// Deletes every message of `queue`.
    pub(crate) async fn purge(&self, queue: &str) -> Result<(), QueueError> {
        self.config(queue)?;
        self.store
            .purge_queue(queue)
            .await
            .map_err(|e| QueueError::Store(e.to_string()))?;
        Ok(())
    }

    /// A queue's settings and counts.
    pub(crate) async fn info(&self, queue: &str, now_ms: i64) -> Result<QueueInfo, QueueError> {
        let config = self.config(queue)?.clone();
        let stats = self
            .store
            .queue_stats(queue, Timestamp(now_ms))
            .await
            .map_err(|e| QueueError::Store(e.to_string()))?;
        Ok(QueueInfo {
            config,
            visible: stats.visible,
            in_flight: stats.in_flight,
            delayed: stats.delayed,
            created_ms: self.created_ms,
        })
    }

    /// When the next hidden message of `queue` becomes visible (ms).
    pub(crate) async fn next_visible(&self, queue: &str, now_ms: i64) -> Option<i64> {
        self.config(queue).ok()?;
        match self.store.queue_stats(queue, Timestamp(now_ms)).await {
            Ok(stats) => stats.next_visible_at.map(|t| t.0),
            Err(e) => {
                tracing::warn!(queue, error = %e, "cannot read the queue's counts");
                None
            }
        }
    }
}

/// The queues the template's `SQS` events use, with their dead-letter queues.
pub(crate) fn configs_of(template: &crate::template::Template) -> Vec<QueueConfig> {
    let mut out: HashMap<String, QueueConfig> = HashMap::new();
    for f in &template.functions {
        for e in &f.events {
            let crate::template::EventKind::Sqs {
                queue,
                max_receive_count,
                visibility_timeout,
                dead_letter_queue,
                ..
            } = &e.kind
            else {
                continue;
            };
            let redrive = match (dead_letter_queue, max_receive_count) {
                (Some(dlq), Some(count)) => Some(Redrive {
                    dead_letter_queue: dlq.clone(),
                    max_receive_count: *count,
                }),
                _ => None,
            };
            if let Some(r) = &redrive {
                out.entry(r.dead_letter_queue.clone())
                    .or_insert_with(|| QueueConfig {
                        name: r.dead_letter_queue.clone(),
                        visibility_timeout: Duration::from_secs(30),
                        redrive: None,
                    });
            }
            // A queue used as a dead-letter queue and as a trigger keeps its own settings.
            out.insert(
                queue.clone(),
                QueueConfig {
                    name: queue.clone(),
                    visibility_timeout: *visibility_timeout,
                    redrive,
                },
            );
        }
    }
    let mut configs: Vec<QueueConfig> = out.into_values().collect();
    configs.sort_by(|a, b| a.name.cmp(&b.name));
    configs
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn queues(max_receive_count: u32) -> Queues {
        Queues::new(
            vec![
                QueueConfig {
                    name: "work".into(),
                    visibility_timeout: Duration::from_secs(2),
                    redrive: Some(Redrive {
                        dead_letter_queue: "dead".into(),
                        max_receive_count,
                    }),
                },
                QueueConfig {
                    name: "dead".into(),
                    visibility_timeout: Duration::from_secs(30),
                    redrive: None,
                },
            ],
            0,
        )
    }

    fn body(b: &str) -> Outgoing {
        Outgoing {
            body: b.into(),
            ..Outgoing::default()
        }
    }

    #[test]
    fn md5_matches_the_rfc_1321_test_suite() {
        let cases = [
            ("", "d41d8cd98f00b204e9800998ecf8427e"),
            ("abc", "900150983cd24fb0d6963f7d28e17f72"),
            ("message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
            (
                "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
                "57edf4a22be3c955ac49da2e2107b67a",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(md5_hex(input.as_bytes()), want, "md5({input:?})");
        }
    }

    #[tokio::test]
    async fn a_received_message_hides_for_the_visibility_timeout_then_reappears() {
        let q = queues(5);
        let t0 = 1_000;
        let sent = q.send("work", body("hello"), t0).await.unwrap();
        assert_eq!(sent.md5_of_body, md5_hex(b"hello"));
        let got = q.receive("work", 10, None, t0 + 1).await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].message.id, sent.message_id);
        assert_eq!(got[0].message.receive_count, 1);
        assert_eq!(got[0].message.body, "hello");
        assert!(
            q.receive("work", 10, None, t0 + 2)
                .await
                .unwrap()
                .is_empty()
        );
        let info = q.info("work", t0 + 2).await.unwrap();
        assert_eq!((info.visible, info.in_flight, info.delayed), (0, 1, 0));
        assert_eq!(q.next_visible("work", t0 + 2).await, Some(t0 + 2_001));

        let later = t0 + 2_001;
        let again = q.receive("work", 10, None, later).await.unwrap();
        assert_eq!(again[0].message.receive_count, 2);
        assert_ne!(again[0].receipt_handle, got[0].receipt_handle);
        // The old handle deletes nothing; the new one deletes the message.
        assert!(!q.delete("work", &got[0].receipt_handle).await.unwrap());
        assert!(q.delete("work", &again[0].receipt_handle).await.unwrap());
        let info = q.info("work", later).await.unwrap();
        assert_eq!((info.visible, info.in_flight), (0, 0));
    }

    #[tokio::test]
    async fn a_message_received_more_than_max_receive_count_times_is_dead_lettered() {
        let q = queues(3);
        let mut t = 0;
        let sent = q.send("work", body("poison"), t).await.unwrap();
        for n in 1..=3 {
            let got = q.receive("work", 10, None, t).await.unwrap();
            assert_eq!(got.len(), 1, "receive {n}");
            assert_eq!(got[0].message.receive_count, n);
            t += 2_000;
        }
        // The fourth receive moves it instead.
        assert!(q.receive("work", 10, None, t).await.unwrap().is_empty());
        assert_eq!(q.info("work", t).await.unwrap().visible, 0);
        let dead = q.receive("dead", 10, None, t).await.unwrap();
        assert_eq!(dead.len(), 1);
        let m = &dead[0].message;
        assert_eq!(
            (m.id.as_str(), m.body.as_str()),
            (sent.message_id.as_str(), "poison")
        );
        assert_eq!(
            m.receive_count, 4,
            "the count goes on in the dead-letter queue"
        );
        assert_eq!(
            m.system_attributes()["DeadLetterQueueSourceArn"],
            "arn:aws:sqs:us-east-1:000000000000:work"
        );
    }

    #[tokio::test]
    async fn receives_take_at_most_max_messages_in_send_order_and_respect_delays() {
        let q = queues(5);
        for i in 0..5 {
            q.send("work", body(&format!("m{i}")), i).await.unwrap();
        }
        let mut delayed = body("later");
        delayed.delay = Duration::from_secs(5);
        q.send("work", delayed, 5).await.unwrap();
        let t0 = 10;
        let got = q.receive("work", 3, None, t0).await.unwrap();
        let bodies: Vec<_> = got.iter().map(|r| r.message.body.as_str()).collect();
        assert_eq!(bodies, ["m0", "m1", "m2"]);
        let info = q.info("work", t0).await.unwrap();
        assert_eq!((info.visible, info.in_flight, info.delayed), (2, 3, 1));
        let rest = q
            .receive("work", 10, Some(Duration::from_secs(60)), t0)
            .await
            .unwrap();
        assert_eq!(rest.len(), 2);
        let t5 = 5_010;
        let late = q.receive("work", 10, None, t5).await.unwrap();
        assert_eq!(late.len(), 4, "the delayed one plus m0-m2 again");
    }

    #[tokio::test]
    async fn attributes_survive_the_store() {
        let q = queues(5);
        let mut m = body("x");
        m.attributes.insert(
            "k".into(),
            Attribute::new("k", "String", Some("v".into()), None).unwrap(),
        );
        m.attributes.insert(
            "b".into(),
            Attribute::new("b", "Binary", None, Some("AAE=".into())).unwrap(),
        );
        let sent = q.send("work", m.clone(), 0).await.unwrap();
        let got = q.receive("work", 1, None, 0).await.unwrap();
        assert_eq!(got[0].message.attributes, m.attributes);
        assert_eq!(got[0].message.md5_of_attributes, sent.md5_of_attributes);
        assert_eq!(got[0].message.md5_of_body, sent.md5_of_body);
    }

    #[tokio::test]
    async fn change_visibility_zero_makes_a_message_visible_at_once() {
        let q = queues(5);
        let t0 = 0;
        q.send("work", body("x"), t0).await.unwrap();
        let got = q.receive("work", 1, None, t0).await.unwrap();
        q.change_visibility("work", &got[0].receipt_handle, Duration::ZERO, t0)
            .await
            .unwrap();
        assert_eq!(q.receive("work", 1, None, t0).await.unwrap().len(), 1);
        assert!(matches!(
            q.change_visibility("work", "nonsense", Duration::ZERO, t0)
                .await,
            Err(QueueError::BadReceipt(_))
        ));
    }

    #[tokio::test]
    async fn bad_messages_and_queues_are_refused() {
        let q = queues(5);
        let t0 = 0;
        assert!(matches!(
            q.send("nope", body("x"), t0).await,
            Err(QueueError::NoSuchQueue(_))
        ));
        assert!(matches!(
            q.send("work", body(""), t0).await,
            Err(QueueError::InvalidParameter(_))
        ));
        assert!(matches!(
            q.send("work", body("bell \u{7}"), t0).await,
            Err(QueueError::InvalidContents(_))
        ));
        assert!(matches!(
            q.send("work", body(&"x".repeat(MAX_MESSAGE_BYTES + 1)), t0)
                .await,
            Err(QueueError::InvalidParameter(_))
        ));
        assert!(matches!(
            q.delete("work", "no-hash").await,
            Err(QueueError::BadReceipt(_))
        ));
        assert!(Attribute::new("a", "Number", None, Some("AA==".into())).is_err());
        assert!(Attribute::new("a", "Binary", None, Some("!!".into())).is_err());
        let mut bad_name = body("x");
        bad_name.attributes.insert(
            "AWS.thing".into(),
            Attribute::new("AWS.thing", "String", Some("v".into()), None).unwrap(),
        );
        assert!(q.send("work", bad_name, t0).await.is_err());
    }

    #[test]
    fn attribute_digests_follow_the_sqs_encoding() {
        let mut attrs = BTreeMap::new();
        attrs.insert(
            "k".to_string(),
            Attribute::new("k", "String", Some("v".into()), None).unwrap(),
        );
        // 00000001 'k' 00000006 'String' 01 00000001 'v'
        let mut buf = vec![0, 0, 0, 1, b'k', 0, 0, 0, 6];
        buf.extend_from_slice(b"String");
        buf.extend_from_slice(&[1, 0, 0, 0, 1, b'v']);
        assert_eq!(md5_of_attributes(&attrs), Some(md5_hex(&buf)));
        assert_eq!(md5_of_attributes(&BTreeMap::new()), None);
    }

    #[test]
    fn the_repository_template_hosts_the_media_sync_queues() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
        let t = crate::template::load(&path).unwrap();
        let configs = configs_of(&t);
        let media = configs.iter().find(|c| c.name == "media-sync").unwrap();
        assert_eq!(
            media.redrive,
            Some(Redrive {
                dead_letter_queue: "media-sync-dlq".into(),
                max_receive_count: 3,
            })
        );
        assert!(configs.iter().any(|c| c.name == "media-sync-dlq"));
        let f = t.function("media-sync").unwrap();
        assert!(
            f.timeout <= media.visibility_timeout,
            "Lambda refuses an SQS event source whose visibility timeout is under the function timeout"
        );
    }

    #[test]
    fn the_template_queues_include_dead_letter_queues() {
        let t = crate::template::parse(
            r#"
Resources:
  Q:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: jobs
      VisibilityTimeout: 2
      RedrivePolicy:
        deadLetterTargetArn: !GetAtt D.Arn
        maxReceiveCount: 3
  D:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: jobs-dlq
  F:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: x
      Events:
        Jobs:
          Type: SQS
          Properties:
            Queue: !GetAtt Q.Arn
            BatchSize: 5
"#,
            "t.yaml",
        )
        .unwrap();
        assert_eq!(
            configs_of(&t),
            vec![
                QueueConfig {
                    name: "jobs".into(),
                    visibility_timeout: Duration::from_secs(2),
                    redrive: Some(Redrive {
                        dead_letter_queue: "jobs-dlq".into(),
                        max_receive_count: 3,
                    }),
                },
                QueueConfig {
                    name: "jobs-dlq".into(),
                    visibility_timeout: Duration::from_secs(30),
                    redrive: None,
                },
            ]
        );
    }
}
