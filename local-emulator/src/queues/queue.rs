//! The queues themselves: messages, visibility timeouts, receive counts and
//! redrive to a dead-letter queue. In memory, behind one lock (a move to a
//! dead-letter queue touches two queues); times are passed in, so the rules
//! are tested without waiting.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

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
    pub(crate) fn to_event(&self) -> Value {
        json!({
            "stringValue": self.string_value,
            "binaryValue": self.binary_value.as_ref().map(|(b64, _)| b64),
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": self.data_type,
        })
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
    visible_at: Instant,
    /// The latest receive's receipt handle.
    receipt: Option<String>,
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
}

/// A received message and the handle that deletes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Received {
    /// The message as received (its receive count includes this receive).
    pub(crate) message: Message,
    /// The receipt handle of this receive.
    pub(crate) receipt_handle: String,
}

/// A queue's counts and settings (`GetQueueAttributes`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QueueInfo {
    /// Its configuration.
    pub(crate) config: QueueConfig,
    /// Messages that can be received now.
    pub(crate) visible: usize,
    /// Messages received and not yet deleted or visible again.
    pub(crate) in_flight: usize,
    /// Messages sent with a delay that has not passed.
    pub(crate) delayed: usize,
    /// When the emulator created it (ms since the epoch).
    pub(crate) created_ms: i64,
}

struct QueueState {
    config: QueueConfig,
    messages: Vec<Message>,
    created_ms: i64,
}

/// Every queue of the template.
pub(crate) struct Queues {
    queues: Mutex<BTreeMap<String, QueueState>>,
    /// Notified whenever a message may have become receivable.
    pub(crate) changed: Notify,
}

impl Queues {
    /// Empty queues with these settings.
    pub(crate) fn new(configs: Vec<QueueConfig>, now_ms: i64) -> Queues {
        let queues = configs
            .into_iter()
            .map(|config| {
                (
                    config.name.clone(),
                    QueueState {
                        config,
                        messages: Vec::new(),
                        created_ms: now_ms,
                    },
                )
            })
            .collect();
        Queues {
            queues: Mutex::new(queues),
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, QueueState>> {
        self.queues.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The queues' names, sorted.
    pub(crate) fn names(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// Whether `name` is a queue.
    pub(crate) fn contains(&self, name: &str) -> bool {
        self.lock().contains_key(name)
    }

    /// Adds a message to `queue`.
    pub(crate) fn send(
        &self,
        queue: &str,
        message: Outgoing,
        now: Instant,
        now_ms: i64,
    ) -> Result<Sent, QueueError> {
        let sent = Self::check(&message)?;
        let mut queues = self.lock();
        let q = queues
            .get_mut(queue)
            .ok_or_else(|| QueueError::NoSuchQueue(queue.to_string()))?;
        q.messages.push(Message {
            id: sent.message_id.clone(),
            body: message.body,
            md5_of_body: sent.md5_of_body.clone(),
            attributes: message.attributes,
            md5_of_attributes: sent.md5_of_attributes.clone(),
            sent_at_ms: now_ms,
            first_received_ms: None,
            receive_count: 0,
            dead_letter_source: None,
            visible_at: now + message.delay,
            receipt: None,
        });
        drop(queues);
        self.changed.notify_waiters();
        Ok(sent)
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
            message_id: uuid::Uuid::new_v4().to_string(),
            md5_of_body: md5_hex(message.body.as_bytes()),
            md5_of_attributes: md5_of_attributes(&message.attributes),
        })
    }

    /// Receives up to `max` visible messages of `queue`, hiding them for
    /// `visibility` (else the queue's timeout). A message received more than
    /// its queue's `maxReceiveCount` times moves to the dead-letter queue
    /// instead of being received again.
    pub(crate) fn receive(
        &self,
        queue: &str,
        max: usize,
        visibility: Option<Duration>,
        now: Instant,
        now_ms: i64,
    ) -> Result<Vec<Received>, QueueError> {
        let mut queues = self.lock();
        let q = queues
            .get_mut(queue)
            .ok_or_else(|| QueueError::NoSuchQueue(queue.to_string()))?;
        let visibility = visibility.unwrap_or(q.config.visibility_timeout);
        let redrive = q.config.redrive.clone();
        let mut out = Vec::new();
        let mut dead = Vec::new();
        let mut i = 0;
        while i < q.messages.len() && out.len() < max {
            let m = &mut q.messages[i];
            if m.visible_at > now {
                i += 1;
                continue;
            }
            if let Some(r) = &redrive {
                if m.receive_count >= r.max_receive_count {
                    dead.push(q.messages.remove(i));
                    continue;
                }
            }
            m.receive_count += 1;
            m.first_received_ms.get_or_insert(now_ms);
            m.visible_at = now + visibility;
            let handle = format!("{}#{}", m.id, uuid::Uuid::new_v4().simple());
            m.receipt = Some(handle.clone());
            out.push(Received {
                message: m.clone(),
                receipt_handle: handle,
            });
            i += 1;
        }
        if let (Some(r), false) = (redrive, dead.is_empty()) {
            match queues.get_mut(&r.dead_letter_queue) {
                Some(dlq) => {
                    for mut m in dead {
                        tracing::info!(
                            queue,
                            dead_letter_queue = %r.dead_letter_queue,
                            message_id = %m.id,
                            receives = m.receive_count,
                            "moving a message to the dead-letter queue"
                        );
                        m.visible_at = now;
                        m.receipt = None;
                        m.dead_letter_source = Some(queue.to_string());
                        dlq.messages.push(m);
                    }
                    drop(queues);
                    self.changed.notify_waiters();
                }
                None => {
                    for m in dead {
                        tracing::warn!(
                            queue,
                            message_id = %m.id,
                            "dropping a message: its dead-letter queue {} is not hosted",
                            r.dead_letter_queue
                        );
                    }
                }
            }
        }
        Ok(out)
    }

    /// Finds the message a receipt handle names, if it is still the latest receive.
    fn by_receipt<'q>(
        q: &'q mut QueueState,
        handle: &str,
    ) -> Result<Option<(usize, &'q mut Message)>, QueueError> {
        let Some((id, _)) = handle.split_once('#') else {
            return Err(QueueError::BadReceipt(handle.to_string()));
        };
        Ok(q.messages
            .iter_mut()
            .enumerate()
            .find(|(_, m)| m.id == id && m.receipt.as_deref() == Some(handle)))
    }

    /// Deletes the message a receipt handle names. As on SQS, an old handle
    /// (the message was received again since) or an already deleted message
    /// is not an error, but deletes nothing.
    pub(crate) fn delete(&self, queue: &str, handle: &str) -> Result<bool, QueueError> {
        let mut queues = self.lock();
        let q = queues
            .get_mut(queue)
            .ok_or_else(|| QueueError::NoSuchQueue(queue.to_string()))?;
        match Self::by_receipt(q, handle)? {
            Some((i, _)) => {
                q.messages.remove(i);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Sets how long a received message stays hidden from now on (0 makes
    /// it visible at once).
    pub(crate) fn change_visibility(
        &self,
        queue: &str,
        handle: &str,
        timeout: Duration,
        now: Instant,
    ) -> Result<(), QueueError> {
        if timeout > Duration::from_secs(MAX_VISIBILITY_SECS) {
            return Err(QueueError::InvalidParameter(format!(
                "Value for parameter VisibilityTimeout is invalid. Reason: must be <= {MAX_VISIBILITY_SECS}."
            )));
        }
        let mut queues = self.lock();
        let q = queues
            .get_mut(queue)
            .ok_or_else(|| QueueError::NoSuchQueue(queue.to_string()))?;
        match Self::by_receipt(q, handle)? {
            Some((_, m)) if m.visible_at > now => {
                m.visible_at = now + timeout;
                drop(queues);
                self.changed.notify_waiters();
                Ok(())
            }
            _ => Err(QueueError::InvalidParameter(format!(
                "Value {handle} for parameter ReceiptHandle is invalid. Reason: Message does not exist or is not available for visibility timeout change."
            ))),
        }
    }

    /// Deletes every message of `queue`.
    pub(crate) fn purge(&self, queue: &str) -> Result<(), QueueError> {
        let mut queues = self.lock();
        let q = queues
            .get_mut(queue)
            .ok_or_else(|| QueueError::NoSuchQueue(queue.to_string()))?;
        q.messages.clear();
        Ok(())
    }

    /// A queue's settings and counts.
    pub(crate) fn info(&self, queue: &str, now: Instant) -> Result<QueueInfo, QueueError> {
        let queues = self.lock();
        let q = queues
            .get(queue)
            .ok_or_else(|| QueueError::NoSuchQueue(queue.to_string()))?;
        let hidden = |m: &&Message| m.visible_at > now;
        let in_flight = q
            .messages
            .iter()
            .filter(hidden)
            .filter(|m| m.receipt.is_some())
            .count();
        let delayed = q
            .messages
            .iter()
            .filter(hidden)
            .filter(|m| m.receipt.is_none())
            .count();
        Ok(QueueInfo {
            config: q.config.clone(),
            visible: q.messages.len() - in_flight - delayed,
            in_flight,
            delayed,
            created_ms: q.created_ms,
        })
    }

    /// When the next hidden message of `queue` becomes visible.
    pub(crate) fn next_visible(&self, queue: &str, now: Instant) -> Option<Instant> {
        let queues = self.lock();
        queues
            .get(queue)?
            .messages
            .iter()
            .map(|m| m.visible_at)
            .filter(|t| *t > now)
            .min()
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

    #[test]
    fn a_received_message_hides_for_the_visibility_timeout_then_reappears() {
        let q = queues(5);
        let t0 = Instant::now();
        let sent = q.send("work", body("hello"), t0, 1000).unwrap();
        assert_eq!(sent.md5_of_body, md5_hex(b"hello"));
        let got = q.receive("work", 10, None, t0, 1001).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].message.id, sent.message_id);
        assert_eq!(got[0].message.receive_count, 1);
        assert!(q.receive("work", 10, None, t0, 1002).unwrap().is_empty());
        let info = q.info("work", t0).unwrap();
        assert_eq!((info.visible, info.in_flight, info.delayed), (0, 1, 0));
        assert_eq!(
            q.next_visible("work", t0),
            Some(t0 + Duration::from_secs(2))
        );

        let later = t0 + Duration::from_secs(2);
        let again = q.receive("work", 10, None, later, 3000).unwrap();
        assert_eq!(again[0].message.receive_count, 2);
        assert_ne!(again[0].receipt_handle, got[0].receipt_handle);
        // The old handle deletes nothing; the new one deletes the message.
        assert!(!q.delete("work", &got[0].receipt_handle).unwrap());
        assert!(q.delete("work", &again[0].receipt_handle).unwrap());
        let info = q.info("work", later).unwrap();
        assert_eq!((info.visible, info.in_flight), (0, 0));
    }

    #[test]
    fn a_message_received_more_than_max_receive_count_times_is_dead_lettered() {
        let q = queues(3);
        let mut t = Instant::now();
        let sent = q.send("work", body("poison"), t, 0).unwrap();
        for n in 1..=3 {
            let got = q.receive("work", 10, None, t, 0).unwrap();
            assert_eq!(got.len(), 1, "receive {n}");
            assert_eq!(got[0].message.receive_count, n);
            t += Duration::from_secs(2);
        }
        // The fourth receive moves it instead.
        assert!(q.receive("work", 10, None, t, 0).unwrap().is_empty());
        assert_eq!(q.info("work", t).unwrap().visible, 0);
        let dead = q.receive("dead", 10, None, t, 0).unwrap();
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

    #[test]
    fn receives_take_at_most_max_messages_in_send_order_and_respect_delays() {
        let q = queues(5);
        let t0 = Instant::now();
        for i in 0..5 {
            q.send("work", body(&format!("m{i}")), t0, 0).unwrap();
        }
        let mut delayed = body("later");
        delayed.delay = Duration::from_secs(5);
        q.send("work", delayed, t0, 0).unwrap();
        let got = q.receive("work", 3, None, t0, 0).unwrap();
        let bodies: Vec<_> = got.iter().map(|r| r.message.body.as_str()).collect();
        assert_eq!(bodies, ["m0", "m1", "m2"]);
        let info = q.info("work", t0).unwrap();
        assert_eq!((info.visible, info.in_flight, info.delayed), (2, 3, 1));
        let rest = q
            .receive("work", 10, Some(Duration::from_secs(60)), t0, 0)
            .unwrap();
        assert_eq!(rest.len(), 2);
        let t5 = t0 + Duration::from_secs(5);
        let late = q.receive("work", 10, None, t5, 0).unwrap();
        assert_eq!(late.len(), 4, "the delayed one plus m0-m2 again");
    }

    #[test]
    fn change_visibility_zero_makes_a_message_visible_at_once() {
        let q = queues(5);
        let t0 = Instant::now();
        q.send("work", body("x"), t0, 0).unwrap();
        let got = q.receive("work", 1, None, t0, 0).unwrap();
        q.change_visibility("work", &got[0].receipt_handle, Duration::ZERO, t0)
            .unwrap();
        assert_eq!(q.receive("work", 1, None, t0, 0).unwrap().len(), 1);
        assert!(matches!(
            q.change_visibility("work", "nonsense", Duration::ZERO, t0),
            Err(QueueError::BadReceipt(_))
        ));
    }

    #[test]
    fn bad_messages_and_queues_are_refused() {
        let q = queues(5);
        let t0 = Instant::now();
        assert!(matches!(
            q.send("nope", body("x"), t0, 0),
            Err(QueueError::NoSuchQueue(_))
        ));
        assert!(matches!(
            q.send("work", body(""), t0, 0),
            Err(QueueError::InvalidParameter(_))
        ));
        assert!(matches!(
            q.send("work", body("bell \u{7}"), t0, 0),
            Err(QueueError::InvalidContents(_))
        ));
        assert!(matches!(
            q.send("work", body(&"x".repeat(MAX_MESSAGE_BYTES + 1)), t0, 0),
            Err(QueueError::InvalidParameter(_))
        ));
        assert!(matches!(
            q.delete("work", "no-hash"),
            Err(QueueError::BadReceipt(_))
        ));
        assert!(Attribute::new("a", "Number", None, Some("AA==".into())).is_err());
        assert!(Attribute::new("a", "Binary", None, Some("!!".into())).is_err());
        let mut bad_name = body("x");
        bad_name.attributes.insert(
            "AWS.thing".into(),
            Attribute::new("AWS.thing", "String", Some("v".into()), None).unwrap(),
        );
        assert!(q.send("work", bad_name, t0, 0).is_err());
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
