//! The dispatcher function: what re-invokes durable functions on AWS.
//!
//! It is triggered two ways (both in `template.yaml`):
//! - by the **wake queue** (SQS): each message names an execution that is, or
//!   is about to be, due. The dispatcher re-reads it: due → claim and invoke;
//!   due later (a message sent early, or a timer that moved) → the message
//!   goes back on the queue with the remaining delay; running, ended or
//!   gone → nothing to do. A message that is not a wake-up at all goes to the
//!   dead-letter queue at once instead of being retried.
//! - by a **sweep** every minute (`{"durafn_sweep": {}}` from an EventBridge
//!   schedule): every shard of the due index is read; what is due is claimed
//!   and invoked, what becomes due before the next sweep gets a delayed wake
//!   message. Timers further than 15 minutes out, expired leases of crashed
//!   invocations and lost messages are all found this way.
//!
//! Claiming is the same conditional claim (epoch + 1, lease) as everywhere;
//! the invocation is an asynchronous `Invoke` ([`crate::LambdaInvoker`]).

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use durafn_runtime::StoreError;
use durafn_runtime::clock::Clock;
use durafn_runtime::dispatch::wake::{WakeMessage, WakeQueue, delay_seconds};
use durafn_runtime::dispatch::{Dispatcher, DispatcherConfig, Invoker};
use durafn_runtime::model::{DUE_SHARDS, ExecutionId, ExecutionStatus, Timestamp};
use durafn_runtime::store::{OffloadingStore, Store};
use futures::StreamExt;
use serde::Serialize;
use serde_json::Value;

/// The key of a sweep request: `{"durafn_sweep": {}}`.
pub const SWEEP_KEY: &str = "durafn_sweep";

/// How many wake-ups one invocation of the dispatcher handles at once.
const CONCURRENCY: usize = 16;

/// How many due entries a sweep reads per shard.
const SWEEP_BATCH: usize = 500;

/// Settings of the dispatcher function.
#[derive(Clone)]
#[non_exhaustive]
pub struct DispatcherSettings {
    /// The lease a claim takes: the longest function timeout plus grace.
    pub function_timeout: Duration,
    /// How far ahead a sweep sends delayed wake messages: at least the
    /// sweep's own interval, so nothing waits for the sweep after.
    pub sweep_ahead: Duration,
}

impl Default for DispatcherSettings {
    fn default() -> Self {
        DispatcherSettings {
            function_timeout: Duration::from_secs(900),
            sweep_ahead: Duration::from_secs(90),
        }
    }
}

/// What the dispatcher did with one wake-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WakeOutcome {
    /// Claimed and invoked.
    Dispatched,
    /// Not due yet: queued again for when it is.
    Requeued,
    /// Due more than 15 minutes from now: left to the sweep.
    LeftToSweep,
    /// Running, ended, waiting on nothing, or gone: nothing to do.
    Ignored,
}

/// What a sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    /// Executions claimed and invoked.
    pub dispatched: usize,
    /// Executions due before the next sweep, given a delayed wake message.
    pub queued: usize,
    /// Due entries that could not be claimed (another dispatcher won).
    pub skipped: usize,
}

/// The dispatcher function's state, shared by its invocations.
pub struct DispatcherFunction {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    dispatcher: Dispatcher,
    queue: Arc<WakeQueue>,
    dead_letters: Option<WakeQueue>,
    settings: DispatcherSettings,
    /// Payload blobs of expired executions are deleted by the sweep, one
    /// garbage-collection pass at most every [`BLOB_GC_EVERY`].
    blob_gc: Option<BlobGc>,
}

/// How often a sweep also expires payload blobs.
pub const BLOB_GC_EVERY: Duration = Duration::from_secs(600);

struct BlobGc {
    store: Arc<OffloadingStore>,
    last: std::sync::Mutex<Option<Timestamp>>,
}

/// Why an event could not be handled (the invocation fails; Lambda retries).
#[derive(Debug, thiserror::Error)]
pub enum DispatchFnError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The event is not one the dispatcher takes.
    #[error("{0}")]
    Invalid(String),
}

impl DispatcherFunction {
    /// A dispatcher over `store` invoking through `invoker`, re-queueing on
    /// `queue` and dead-lettering unreadable messages on `dead_letters`.
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        invoker: Arc<dyn Invoker>,
        queue: Arc<WakeQueue>,
        dead_letters: Option<WakeQueue>,
        settings: DispatcherSettings,
    ) -> Self {
        let mut config = DispatcherConfig::default();
        let timeout = settings.function_timeout;
        config.timeout_for = Arc::new(move |_| timeout);
        let dispatcher = Dispatcher::new(store.clone(), clock.clone(), invoker, config);
        DispatcherFunction {
            store,
            clock,
            dispatcher,
            queue,
            dead_letters,
            settings,
            blob_gc: None,
        }
    }

    /// Also expires payload blobs (`DURAFN_BLOBS`): every sweep at most once
    /// per [`BLOB_GC_EVERY`] runs one [`OffloadingStore::collect_garbage`]
    /// pass, deleting the blobs of executions past their expiry (the
    /// table's TTL deletes their items; the bucket's lifecycle rule is the
    /// backstop). `store` is this dispatcher's store wrapped with the blobs.
    pub fn with_blob_gc(mut self, store: Arc<OffloadingStore>) -> Self {
        self.blob_gc = Some(BlobGc {
            store,
            last: std::sync::Mutex::new(None),
        });
        self
    }

    /// One blob garbage-collection pass, if one is due. Failures are logged:
    /// blobs wait for the next pass (or the lifecycle rule).
    async fn collect_blobs(&self, now: Timestamp) {
        let Some(gc) = &self.blob_gc else { return };
        {
            let mut last = gc.last.lock().unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|t| now < t.plus(BLOB_GC_EVERY)) {
                return;
            }
            *last = Some(now);
        }
        match gc.store.collect_garbage(now).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "expired payload blobs"),
            Err(e) => tracing::warn!(error = %e, "could not expire payload blobs"),
        }
    }

    /// Handles one invocation payload: an SQS batch of wake messages, or a
    /// sweep request. Returns the Lambda answer.
    pub async fn handle(&self, payload: Value) -> Result<Value, DispatchFnError> {
        if payload.get(SWEEP_KEY).is_some() || is_scheduler_event(&payload) {
            let report = self.sweep().await?;
            return Ok(serde_json::to_value(report).unwrap_or(Value::Null));
        }
        if payload.get("Records").is_some() {
            let event: SqsEvent = serde_json::from_value(payload)
                .map_err(|e| DispatchFnError::Invalid(format!("bad SQS event: {e}")))?;
            let response = self.wake_batch(&event).await;
            return Ok(serde_json::to_value(response).unwrap_or(Value::Null));
        }
        Err(DispatchFnError::Invalid(format!(
            "the dispatcher takes SQS batches from the wake queue or {{\"{SWEEP_KEY}\": {{}}}}; got {}",
            truncate(&payload.to_string(), 200)
        )))
    }

    /// Handles a batch of wake messages; the records that failed for a
    /// transient reason are reported so only they are redelivered.
    pub async fn wake_batch(&self, event: &SqsEvent) -> SqsBatchResponse {
        let outcomes: Vec<(Option<String>, Result<WakeOutcome, String>)> =
            futures::stream::iter(&event.records)
                .map(|record| async move {
                    let body = record.body.as_deref().unwrap_or("");
                    let outcome = match WakeMessage::parse(body) {
                        Ok(message) => self.wake(&message).await.map_err(|e| e.to_string()),
                        Err(why) => self
                            .dead_letter(body, &why)
                            .await
                            .map(|()| WakeOutcome::Ignored),
                    };
                    (record.message_id.clone(), outcome)
                })
                .buffer_unordered(CONCURRENCY)
                .collect()
                .await;
        let mut response = SqsBatchResponse::default();
        for (id, outcome) in outcomes {
            match (outcome, id) {
                (Ok(_), _) => {}
                (Err(e), Some(id)) => {
                    tracing::warn!(message_id = %id, error = %e, "wake-up failed; SQS will redeliver it");
                    response.add_failure(id);
                }
                (Err(e), None) => {
                    tracing::warn!(error = %e, "wake-up without a message id failed; the sweep will find its execution");
                }
            }
        }
        response
    }

    /// An unreadable message: straight to the dead-letter queue (never
    /// retried), or, without one, logged and dropped.
    async fn dead_letter(&self, body: &str, why: &str) -> Result<(), String> {
        tracing::warn!(body = %truncate(body, 200), reason = %why, "unreadable wake message; dead-lettering it");
        match &self.dead_letters {
            Some(dlq) => dlq.send_body(body, 0).await,
            None => Ok(()),
        }
    }

    /// Handles one wake-up.
    pub async fn wake(&self, message: &WakeMessage) -> Result<WakeOutcome, StoreError> {
        let id = &message.execution_id;
        let Some(exec) = self.store.get_execution(id).await? else {
            return Ok(WakeOutcome::Ignored);
        };
        let now = self.clock.now();
        let waiting = matches!(
            exec.status,
            ExecutionStatus::Pending | ExecutionStatus::Suspended
        );
        let expired_lease = exec.status == ExecutionStatus::Running;
        match exec.due_at {
            Some(at) if at <= now && (waiting || expired_lease) => Ok(self.dispatch(id).await),
            // A running invocation reports its own next wake-up; a crashed
            // one's lease is found by the sweep.
            Some(at) if waiting => self.requeue(id, at, now).await,
            _ => Ok(WakeOutcome::Ignored),
        }
    }

    async fn dispatch(&self, id: &ExecutionId) -> WakeOutcome {
        if self.dispatcher.dispatch_one(id).await {
            WakeOutcome::Dispatched
        } else {
            WakeOutcome::Ignored
        }
    }

    async fn requeue(
        &self,
        id: &ExecutionId,
        at: Timestamp,
        now: Timestamp,
    ) -> Result<WakeOutcome, StoreError> {
        let Some(delay) = delay_seconds(at, now) else {
            return Ok(WakeOutcome::LeftToSweep);
        };
        let message = WakeMessage {
            execution_id: id.clone(),
            due_at: Some(at),
        };
        self.queue
            .send(&message, delay)
            .await
            .map_err(StoreError::Transient)?;
        Ok(WakeOutcome::Requeued)
    }

    /// One sweep of the due index (see the module docs).
    pub async fn sweep(&self) -> Result<SweepReport, StoreError> {
        let now = self.clock.now();
        let ahead = now.plus(self.settings.sweep_ahead);
        let mut report = SweepReport::default();
        let mut due_now = Vec::new();
        for shard in 0..DUE_SHARDS {
            let items = self.store.due(shard, ahead, SWEEP_BATCH).await?;
            if items.len() == SWEEP_BATCH {
                tracing::warn!(
                    shard,
                    "a full batch is due; the next sweep or wake-ups take the rest"
                );
            }
            for item in items {
                if item.due_at <= now {
                    due_now.push(item.id);
                } else if let Some(delay) = delay_seconds(item.due_at, now) {
                    let message = WakeMessage {
                        execution_id: item.id,
                        due_at: Some(item.due_at),
                    };
                    match self.queue.send(&message, delay).await {
                        Ok(()) => report.queued += 1,
                        Err(e) => {
                            tracing::warn!(error = %e, "could not queue a wake-up; the next sweep will")
                        }
                    }
                }
            }
        }
        let outcomes: Vec<bool> = futures::stream::iter(due_now)
            .map(|id| async move { self.dispatcher.dispatch_one(&id).await })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        for dispatched in outcomes {
            if dispatched {
                report.dispatched += 1;
            } else {
                report.skipped += 1;
            }
        }
        self.collect_blobs(now).await;
        Ok(report)
    }
}

/// An EventBridge Scheduler or Events payload (a schedule with no `Input`).
fn is_scheduler_event(payload: &Value) -> bool {
    payload.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event")
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduler_events_are_sweeps() {
        assert!(is_scheduler_event(
            &serde_json::json!({"detail-type": "Scheduled Event", "source": "aws.scheduler"})
        ));
        assert!(!is_scheduler_event(&serde_json::json!({"Records": []})));
    }

    #[test]
    fn long_bodies_are_truncated_on_a_char_boundary() {
        assert_eq!(truncate("abc", 5), "abc");
        assert_eq!(truncate("ééé", 3), "é…");
    }
}
