//! Wake-up messages: how a dispatcher that does not run all the time (the
//! dispatcher function on AWS Lambda) learns that an execution is due.
//!
//! Every store write that makes an execution due — a start, an event, a
//! callback, a resume, a suspension with a timer — can be reported to a
//! [`WakeSink`] by wrapping the store in a
//! [`WakingStore`](crate::store::WakingStore). On AWS the sink is an SQS
//! *wake queue* ([`WakeQueue`], feature `wake-queue`): one message per
//! wake-up, delayed (`DelaySeconds`) until the execution is due when that is
//! at most [`MAX_WAKE_DELAY`] away. Wake-ups further out, and any message
//! that is lost, are found by the dispatcher's periodic sweep of the due
//! index: a lost message costs at most one sweep interval, never the
//! execution, because the due index, not the queue, is the truth.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::{ExecutionId, Timestamp};

/// The longest delay SQS can put on a message (15 minutes). A wake-up due
/// later is left to the sweep.
pub const MAX_WAKE_DELAY: Duration = Duration::from_secs(900);

/// The body of a wake-up message: `{"execution_id": "…", "due_at": ms}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WakeMessage {
    /// The execution that is (or will be) due.
    pub execution_id: ExecutionId,
    /// When it is due, as the sender saw it (ms since the epoch). The
    /// dispatcher re-reads the execution; this only says what was meant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_at: Option<Timestamp>,
}

impl WakeMessage {
    /// Reads a message body, saying what is expected when it is not one.
    pub fn parse(body: &str) -> Result<WakeMessage, String> {
        serde_json::from_str(body).map_err(|e| {
            format!(
                "not a wake-up message ({e}); expected {{\"execution_id\": \"…\", \"due_at\": ms}}"
            )
        })
    }

    /// The message as JSON text.
    pub fn to_body(&self) -> String {
        // A struct of a string and an optional integer always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The whole seconds to delay a message due at `at`, seen at `now`; `None`
/// when that is past [`MAX_WAKE_DELAY`] (the sweep will find it). Rounded up,
/// so the message is never early by a fraction of a second.
pub fn delay_seconds(at: Timestamp, now: Timestamp) -> Option<u32> {
    let wait = now.until(at);
    if wait > MAX_WAKE_DELAY {
        return None;
    }
    let secs = wait.as_millis().div_ceil(1000);
    u32::try_from(secs).ok()
}

pub use crate::store::WakeSink;

#[cfg(feature = "wake-queue")]
pub use queue::WakeQueue;

#[cfg(feature = "wake-queue")]
mod queue {
    use async_trait::async_trait;
    use tokio::sync::OnceCell;

    use super::{WakeMessage, WakeSink, delay_seconds};
    use crate::model::{ExecutionId, Timestamp};

    /// The environment variable naming the wake queue (its URL, or its name).
    pub const WAKE_QUEUE_ENV: &str = "DURAFN_WAKE_QUEUE_URL";

    /// An SQS queue carrying wake-up messages to the dispatcher function.
    ///
    /// The queue is given by URL (what `!Ref Queue` gives on AWS) or by name
    /// (looked up once with `GetQueueUrl`). The SQS endpoint is the SDK's
    /// usual one, so `AWS_ENDPOINT_URL_SQS` points it at the local emulator.
    pub struct WakeQueue {
        client: aws_sdk_sqs::Client,
        queue: String,
        url: OnceCell<String>,
    }

    impl WakeQueue {
        /// The wake queue `queue` (a URL or a name) through `client`.
        pub fn new(client: aws_sdk_sqs::Client, queue: impl Into<String>) -> Self {
            WakeQueue {
                client,
                queue: queue.into(),
                url: OnceCell::new(),
            }
        }

        /// The queue named by `DURAFN_WAKE_QUEUE_URL`, with an SQS client from
        /// the environment; `None` when the variable is not set.
        pub async fn from_env() -> Option<WakeQueue> {
            let queue = std::env::var(WAKE_QUEUE_ENV)
                .ok()
                .filter(|q| !q.trim().is_empty())?;
            Some(WakeQueue::new(sqs_client().await, queue))
        }

        /// The queue's URL.
        pub async fn url(&self) -> Result<&str, String> {
            self.url
                .get_or_try_init(|| async {
                    if self.queue.starts_with("http://") || self.queue.starts_with("https://") {
                        return Ok(self.queue.clone());
                    }
                    let out = self
                        .client
                        .get_queue_url()
                        .queue_name(&self.queue)
                        .send()
                        .await
                        .map_err(|e| {
                            format!(
                                "cannot find the queue {:?}: {}",
                                self.queue,
                                aws_sdk_sqs::error::DisplayErrorContext(&e)
                            )
                        })?;
                    out.queue_url
                        .ok_or_else(|| format!("no URL for the queue {:?}", self.queue))
                })
                .await
                .map(String::as_str)
        }

        /// Sends one message with `delay_seconds` (0–900).
        pub async fn send(&self, message: &WakeMessage, delay_seconds: u32) -> Result<(), String> {
            self.send_body(&message.to_body(), delay_seconds).await
        }

        /// Sends `body` as it is (the dispatcher dead-letters unreadable
        /// messages with it).
        pub async fn send_body(&self, body: &str, delay_seconds: u32) -> Result<(), String> {
            let url = self.url().await?;
            let delay = i32::try_from(delay_seconds.min(900)).unwrap_or(900);
            self.client
                .send_message()
                .queue_url(url)
                .message_body(body)
                .delay_seconds(delay)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| {
                    format!(
                        "sending to {url}: {}",
                        aws_sdk_sqs::error::DisplayErrorContext(&e)
                    )
                })
        }
    }

    #[async_trait]
    impl WakeSink for WakeQueue {
        async fn due(&self, id: &ExecutionId, at: Timestamp, now: Timestamp) {
            let Some(delay) = delay_seconds(at, now) else {
                return; // more than 15 minutes away: the sweep will find it
            };
            let message = WakeMessage {
                execution_id: id.clone(),
                due_at: Some(at),
            };
            if let Err(e) = self.send(&message, delay).await {
                tracing::warn!(execution_id = %id, error = %e, "could not send a wake-up; the sweep will find the execution");
            }
        }
    }

    /// An SQS client configured from the environment (region, credentials,
    /// `AWS_ENDPOINT_URL_SQS`).
    pub async fn sqs_client() -> aws_sdk_sqs::Client {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .load()
            .await;
        aws_sdk_sqs::Client::new(&config)
    }
}

#[cfg(feature = "wake-queue")]
pub use queue::{WAKE_QUEUE_ENV, sqs_client};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_round_up_and_stop_at_fifteen_minutes() {
        let now = Timestamp(1_000_000);
        assert_eq!(delay_seconds(now, now), Some(0));
        assert_eq!(delay_seconds(Timestamp(999_000), now), Some(0));
        assert_eq!(delay_seconds(Timestamp(1_000_001), now), Some(1));
        assert_eq!(delay_seconds(Timestamp(1_010_000), now), Some(10));
        assert_eq!(delay_seconds(now.plus(MAX_WAKE_DELAY), now), Some(900));
        assert_eq!(
            delay_seconds(now.plus(MAX_WAKE_DELAY + Duration::from_millis(1)), now),
            None
        );
    }

    #[test]
    fn messages_round_trip_and_bad_ones_say_what_is_expected() {
        let m = WakeMessage {
            execution_id: ExecutionId::new("o-1").unwrap(),
            due_at: Some(Timestamp(5)),
        };
        assert_eq!(WakeMessage::parse(&m.to_body()), Ok(m));
        let err = WakeMessage::parse("{\"id\": 1}").unwrap_err();
        assert!(err.contains("execution_id"), "{err}");
        assert!(WakeMessage::parse("not json").is_err());
        assert!(WakeMessage::parse("{\"execution_id\": \"\"}").is_err());
    }
}
