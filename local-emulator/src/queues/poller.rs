//! The event-source mapping of one `SQS` event: takes batches of visible
//! messages, invokes the function with an SQS event, deletes what it handled.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use durafn_runtime::clock::Clock;
use serde_json::Value;

use super::queue::{QueueError, Queues, REGION, Received, queue_arn};
use crate::lambda_api::FunctionHost;

/// The longest an idle poller sleeps before looking again.
const IDLE_POLL: Duration = Duration::from_secs(1);

/// One `SQS` event of the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EventSource {
    /// The function it invokes.
    pub(crate) function: String,
    /// The queue it reads.
    pub(crate) queue: String,
    /// The most records per invocation.
    pub(crate) batch_size: usize,
}

/// The SQS event Lambda would send for `batch` (`aws_lambda_events`' own
/// type, the one handlers read it with).
pub(crate) fn event(queue: &str, batch: &[Received]) -> aws_lambda_events::sqs::SqsEvent {
    let arn = queue_arn(queue);
    let mut event = aws_lambda_events::sqs::SqsEvent::default();
    event.records = batch
        .iter()
        .map(|r| {
            let m = &r.message;
            let mut record = aws_lambda_events::sqs::SqsMessage::default();
            record.message_id = Some(m.id.clone());
            record.receipt_handle = Some(r.receipt_handle.clone());
            record.body = Some(m.body.clone());
            record.attributes = m
                .system_attributes()
                .into_iter()
                .filter(|(k, _)| *k != "DeadLetterQueueSourceArn")
                .map(|(k, v)| (k.to_string(), v))
                .collect();
            record.message_attributes = m
                .attributes
                .iter()
                .map(|(k, a)| (k.clone(), a.to_event()))
                .collect();
            record.md5_of_body = Some(m.md5_of_body.clone());
            record.md5_of_message_attributes = m.md5_of_attributes.clone();
            record.event_source = Some("aws:sqs".into());
            record.event_source_arn = Some(arn.clone());
            record.aws_region = Some(REGION.into());
            record
        })
        .collect();
    event
}

/// The message ids a function's answer reports as failed, or `None` when
/// the whole batch failed: as Lambda reads a partial batch response, an
/// answer without `batchItemFailures` (or `null`, or not JSON) is a full
/// success, and a malformed list or an id not in the batch fails it all.
pub(crate) fn failed_ids(answer: &[u8], batch: &[Received]) -> Option<HashSet<String>> {
    let Ok(v) = serde_json::from_slice::<Value>(answer) else {
        return Some(HashSet::new());
    };
    let failures = match v.get("batchItemFailures") {
        None | Some(Value::Null) => return Some(HashSet::new()),
        Some(Value::Array(items)) => items,
        Some(_) => return None,
    };
    let ids: HashSet<&str> = batch.iter().map(|r| r.message.id.as_str()).collect();
    failures
        .iter()
        .map(|f| {
            f.get("itemIdentifier")
                .and_then(Value::as_str)
                .filter(|id| ids.contains(id))
                .map(str::to_string)
        })
        .collect()
}

/// Polls `source.queue` for `host` until `shutdown` turns true.
pub(crate) async fn run(
    source: EventSource,
    queues: Arc<Queues>,
    host: Arc<FunctionHost>,
    clock: Arc<dyn Clock>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let queue = source.queue.as_str();
    tracing::debug!(function = %source.function, queue, "polling");
    loop {
        if *shutdown.borrow() {
            return;
        }
        let changed = queues.changed.notified();
        let now_ms = clock.now().0;
        let batch = match queues.receive(queue, source.batch_size, None, now_ms).await {
            Ok(b) => b,
            Err(QueueError::NoSuchQueue(_)) => {
                tracing::error!(queue, "the event source's queue is gone");
                return;
            }
            Err(e) => {
                tracing::warn!(queue, error = %e, "cannot receive from the queue; retrying");
                tokio::select! {
                    () = tokio::time::sleep(IDLE_POLL) => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
        };
        if batch.is_empty() {
            let nap = queues
                .next_visible(queue, now_ms)
                .await
                .map_or(IDLE_POLL, |t| {
                    Duration::from_millis(u64::try_from(t - now_ms).unwrap_or(0)).min(IDLE_POLL)
                });
            tokio::select! {
                () = changed => {}
                () = tokio::time::sleep(nap) => {}
                _ = shutdown.changed() => {}
            }
            continue;
        }
        let payload = match serde_json::to_vec(&event(queue, &batch)) {
            Ok(p) => Bytes::from(p),
            Err(e) => {
                // Not delivered: the batch comes back after its visibility timeout.
                tracing::error!(function = %source.function, queue, error = %e, "cannot encode the SQS event");
                continue;
            }
        };
        let outcome = tokio::select! {
            r = host.invoke(payload) => r,
            _ = shutdown.changed() => return,
        };
        let failed = match outcome {
            Ok(answer) => {
                let failed = failed_ids(&answer, &batch);
                if failed.is_none() {
                    tracing::warn!(
                        function = %source.function,
                        queue,
                        "the function's batchItemFailures are malformed or name messages not in the batch: the whole batch will be retried"
                    );
                }
                failed
            }
            Err(e) => {
                tracing::warn!(
                    function = %source.function,
                    queue,
                    records = batch.len(),
                    error = %e,
                    "the SQS batch invocation failed: its messages reappear after the visibility timeout"
                );
                None
            }
        };
        let Some(failed) = failed else {
            continue;
        };
        for r in &batch {
            if failed.contains(&r.message.id) {
                tracing::info!(
                    function = %source.function,
                    queue,
                    message_id = %r.message.id,
                    receives = r.message.receive_count,
                    "the function could not start this message: it reappears after the visibility timeout"
                );
                continue;
            }
            if let Err(e) = queues.delete(queue, &r.receipt_handle).await {
                tracing::warn!(queue, error = %e, "could not delete a handled message");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::queues::queue::{Outgoing, QueueConfig};

    async fn batch() -> Vec<Received> {
        let q = Queues::new(
            vec![QueueConfig {
                name: "jobs".into(),
                visibility_timeout: Duration::from_secs(30),
                redrive: None,
            }],
            0,
        );
        for b in ["{\"asset\": \"a\"}", "b"] {
            let m = Outgoing {
                body: b.into(),
                ..Outgoing::default()
            };
            q.send("jobs", m, 1_700_000_000_000).await.unwrap();
        }
        q.receive("jobs", 10, None, 1_700_000_000_001)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn events_parse_as_aws_lambda_events_sqs_events() {
        let batch = batch().await;
        let v = serde_json::to_value(event("jobs", &batch)).unwrap();
        let r = &v["Records"][0];
        assert_eq!(r["eventSource"], "aws:sqs");
        assert_eq!(
            r["eventSourceARN"],
            "arn:aws:sqs:us-east-1:000000000000:jobs"
        );
        assert_eq!(r["attributes"]["ApproximateReceiveCount"], "1");
        assert_eq!(r["attributes"]["SentTimestamp"], "1700000000000");
        assert_eq!(r["body"], "{\"asset\": \"a\"}");
        assert_eq!(r["messageId"], batch[0].message.id.as_str());
        assert_eq!(v["Records"].as_array().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn partial_batch_responses_are_read_as_lambda_reads_them() {
        let batch = batch().await;
        let (a, b) = (&batch[0].message.id, &batch[1].message.id);
        let none = failed_ids(br#"{"batchItemFailures": []}"#, &batch).unwrap();
        assert!(none.is_empty());
        assert!(failed_ids(b"null", &batch).unwrap().is_empty());
        assert!(
            failed_ids(br#"{"status": "SUCCEEDED"}"#, &batch)
                .unwrap()
                .is_empty()
        );
        let one = failed_ids(
            format!(r#"{{"batchItemFailures": [{{"itemIdentifier": "{b}"}}]}}"#).as_bytes(),
            &batch,
        )
        .unwrap();
        assert!(one.contains(b) && !one.contains(a));
        // An unknown id or a malformed list fails the whole batch.
        assert!(
            failed_ids(
                br#"{"batchItemFailures": [{"itemIdentifier": "x"}]}"#,
                &batch
            )
            .is_none()
        );
        assert!(failed_ids(br#"{"batchItemFailures": [{}]}"#, &batch).is_none());
        assert!(failed_ids(br#"{"batchItemFailures": 3}"#, &batch).is_none());
    }
}
