//! `ctx.step`: run a closure once, checkpoint its result, retry by suspending.

use std::future::Future;
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use durafn_runtime::model::{ErrorObject, ExecutionId, OpKind, OpStatus, Operation, Timestamp};
use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{DurableContext, Opened};
use crate::codec;
use crate::error::DurableError;
use crate::replay::step::{self, StepDecision};
use crate::retry::RetryPolicy;
use crate::telemetry::AttemptSpan;
use tracing::Instrument;

/// What a retried step may run twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StepSemantics {
    /// Each attempt runs at least once: an invocation that crashes mid-attempt
    /// runs that attempt again. The default; one checkpoint per attempt.
    #[default]
    AtLeastOncePerRetry,
    /// Each attempt runs at most once: the start of an attempt is checkpointed
    /// first, and an attempt interrupted by a crash counts as failed.
    AtMostOncePerRetry,
}

/// What a step body knows about itself. Steps cannot start durable
/// operations, so steps do not nest.
#[derive(Debug, Clone)]
pub struct StepContext {
    attempt: u32,
    execution_id: ExecutionId,
    op_id: String,
    deadline: Option<Timestamp>,
}

impl StepContext {
    /// The attempt number, from 1.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The execution's id (a good idempotency key for external calls,
    /// together with [`op_id`](Self::op_id)).
    pub fn execution_id(&self) -> &ExecutionId {
        &self.execution_id
    }

    /// The step's operation id within the execution.
    pub fn op_id(&self) -> &str {
        &self.op_id
    }

    /// When the invocation must end, if it has a deadline.
    pub fn deadline(&self) -> Option<Timestamp> {
        self.deadline
    }
}

/// A durable step: a future, so it can be awaited or joined with others.
/// Created by [`DurableContext::step`]; its id is claimed at creation.
#[must_use = "a step does nothing until it is awaited"]
pub struct Step<'a, T, F> {
    parts: Option<Box<StepParts<F>>>,
    running: Option<BoxFuture<'a, Result<T, DurableError>>>,
    _out: PhantomData<fn() -> &'a T>,
}

struct StepParts<F> {
    ctx: DurableContext,
    opened: Opened,
    name: String,
    body: F,
    policy: RetryPolicy,
    semantics: StepSemantics,
    timeout: Option<Duration>,
}

impl DurableContext {
    /// A durable step: runs `body` until it succeeds or its retries are spent,
    /// and checkpoints the outcome. On replay the recorded result is returned
    /// (or the recorded error raised) without running `body` again.
    ///
    /// `body` returns `Result<T, E>` for any `E` that converts into
    /// [`DurableError`] (every `std::error::Error` does, as a retryable error).
    pub fn step<'a, T, F, Fut, E>(&self, name: &str, body: F) -> Step<'a, T, F>
    where
        F: FnOnce(StepContext) -> Fut + Send + 'a,
        Fut: Future<Output = Result<T, E>> + Send + 'a,
        E: Into<DurableError> + 'a,
        T: Serialize + DeserializeOwned + Send + 'a,
    {
        Step {
            parts: Some(Box::new(StepParts {
                ctx: self.clone(),
                opened: self.open(OpKind::Step, name),
                name: name.to_string(),
                body,
                policy: RetryPolicy::default(),
                semantics: StepSemantics::default(),
                timeout: None,
            })),
            running: None,
            _out: PhantomData,
        }
    }
}

impl<T, F> Step<'_, T, F> {
    /// Sets the retry policy (default: [`RetryPolicy::exponential`]).
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        if let Some(p) = self.parts.as_mut() {
            p.policy = policy;
        }
        self
    }

    /// Sets what a retried attempt may run twice.
    pub fn semantics(mut self, semantics: StepSemantics) -> Self {
        if let Some(p) = self.parts.as_mut() {
            p.semantics = semantics;
        }
        self
    }

    /// Fails an attempt (retryably) that runs longer than `d`.
    pub fn timeout(mut self, d: Duration) -> Self {
        if let Some(p) = self.parts.as_mut() {
            p.timeout = Some(d);
        }
        self
    }
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "a non-string panic payload".to_string()
    }
}

impl<'a, T, F, Fut, E> Future for Step<'a, T, F>
where
    F: FnOnce(StepContext) -> Fut + Send + 'a,
    Fut: Future<Output = Result<T, E>> + Send + 'a,
    E: Into<DurableError> + 'a,
    T: Serialize + DeserializeOwned + Send + 'a,
{
    type Output = Result<T, DurableError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Some(parts) = this.parts.take() {
            this.running = Some(Box::pin(parts.run()));
        }
        match this.running.as_mut() {
            Some(fut) => fut.as_mut().poll(cx),
            None => Poll::Pending,
        }
    }
}

impl<T, F, Fut, E> StepParts<F>
where
    F: FnOnce(StepContext) -> Fut + Send,
    Fut: Future<Output = Result<T, E>> + Send,
    E: Into<DurableError>,
    T: Serialize + DeserializeOwned + Send,
{
    async fn run(self) -> Result<T, DurableError> {
        let StepParts {
            ctx,
            opened,
            name,
            body,
            policy,
            semantics,
            timeout,
            ..
        } = self;
        let Opened { id, record } = opened;
        let Ok(mut record) = record else {
            return ctx.park(None).await;
        };
        let mut body = Some(body);
        loop {
            let now = ctx.clock_now();
            match step::decide(record.as_ref(), now) {
                StepDecision::Return(v) => {
                    return codec::decode(&format!("step {name:?} result"), v);
                }
                StepDecision::Raise { error, attempts } => {
                    return Err(DurableError::StepFailed {
                        op_id: id,
                        name,
                        attempts,
                        error,
                    });
                }
                StepDecision::Wait(t) => return ctx.park(Some(t)).await,
                StepDecision::Interrupted { attempt } => {
                    let error = ErrorObject::new(
                        "StepInterrupted",
                        format!(
                            "attempt {attempt} of at-most-once step {name:?} started but recorded no outcome; \
                             it is counted as failed and not run again"
                        ),
                    );
                    let next = step::failed(
                        record.as_ref(),
                        &id,
                        &name,
                        attempt,
                        error,
                        true,
                        &policy,
                        now,
                        rand::random(),
                    );
                    // When it started is not recorded: it shows as found, at `now`.
                    let history = step::attempt_record(&next, (now, now), ctx.shared().epoch, true);
                    let later = next.status == OpStatus::Pending;
                    record = Some(checkpoint_with_history(&ctx, next, history, later).await);
                }
                StepDecision::Run { attempt } => {
                    // One attempt per step per invocation: after adopting another
                    // writer's record, a further attempt waits for a new invocation.
                    let Some(run_body) = body.take() else {
                        return ctx.park(Some(now)).await;
                    };
                    if ctx.should_yield(now) {
                        return ctx.park(Some(now)).await;
                    }
                    if ctx.cancelled().await {
                        return ctx.park(None).await;
                    }
                    let _work = ctx.work();
                    // Records parked on elsewhere are durable before this body runs.
                    if !ctx.flush().await {
                        return ctx.park(None).await;
                    }
                    ctx.count_attempt();
                    if semantics == StepSemantics::AtMostOncePerRetry {
                        let start = step::started(record.as_ref(), &id, &name, attempt, now);
                        let written = ctx.checkpoint(start.clone()).await;
                        let ours = written == start;
                        record = Some(written);
                        if !ours {
                            continue;
                        }
                    }
                    if let Some(hook) = &ctx.shared.config.on_step_body {
                        hook(&id, &name, attempt);
                    }
                    let step_ctx = StepContext {
                        attempt,
                        execution_id: ctx.execution_id().clone(),
                        op_id: id.clone(),
                        deadline: ctx.shared.config.deadline,
                    };
                    let attempt_started = ctx.clock_now();
                    let attempt_span =
                        tracing::info_span!("attempt", op_id = %id, step = %name, attempt);
                    let result: Result<T, DurableError> = {
                        let attempt_fut =
                            AssertUnwindSafe(run_body(step_ctx).instrument(attempt_span))
                                .catch_unwind();
                        let outcome = match timeout {
                            None => Some(attempt_fut.await),
                            Some(d) => tokio::time::timeout(d, attempt_fut).await.ok(),
                        };
                        // Convert at once: `E` need not be `Send`, so it must not
                        // live across the checkpoint's await.
                        match outcome {
                            Some(Ok(Ok(v))) => Ok(v),
                            Some(Ok(Err(e))) => Err(e.into()),
                            Some(Err(panic)) => Err(DurableError::new(
                                "Panic",
                                format!("the step panicked: {}", panic_message(panic.as_ref())),
                            )),
                            None => Err(DurableError::new(
                                "StepTimeout",
                                format!("the attempt ran longer than its {timeout:?} timeout"),
                            )),
                        }
                    };
                    let now = ctx.clock_now();
                    let encoded = result.and_then(|v| {
                        codec::encode(&format!("step {name:?} result"), &v, ctx.payload_limit())
                    });
                    let mut terminal = false;
                    let next = match encoded {
                        Ok(value) => {
                            step::succeeded(record.as_ref(), &id, &name, attempt, value, now)
                        }
                        Err(e) => {
                            terminal = e.is_terminal();
                            step::failed(
                                record.as_ref(),
                                &id,
                                &name,
                                attempt,
                                codec::clip(e.to_error_object()),
                                !terminal,
                                &policy,
                                now,
                                rand::random(),
                            )
                        }
                    };
                    if let Some(err) = &next.error {
                        tracing::warn!(op_id = %id, step = %name, attempt, error = %err, "step attempt failed");
                    }
                    crate::capture::attempt(
                        ctx.shared(),
                        &id,
                        &name,
                        attempt,
                        match next.status {
                            OpStatus::Succeeded => "succeeded",
                            OpStatus::Pending => "retrying",
                            _ => "failed",
                        },
                        now.0 - attempt_started.0,
                    );
                    if let Some(trace) = ctx.trace() {
                        trace.attempt(AttemptSpan {
                            op_id: &id,
                            name: &name,
                            kind: OpKind::Step,
                            attempt,
                            start: attempt_started,
                            end: now,
                            outcome: match next.status {
                                OpStatus::Succeeded => "succeeded",
                                OpStatus::Pending => "retrying",
                                _ => "failed",
                            },
                            error: next.error.as_ref().map(|e| e.to_string()),
                        });
                    }
                    // Retries ran out and the function pauses instead of
                    // failing: the step keeps one more attempt, due at once,
                    // and the execution pauses (unpausing runs it).
                    let pause = ctx.shared.config.pause_on_failure
                        && !terminal
                        && next.status == OpStatus::Failed
                        && attempt >= policy.max_attempts;
                    let mut next = next;
                    if pause {
                        next.status = OpStatus::Pending;
                        next.wake_at = Some(now);
                        next.ended_at = None;
                    }
                    let history = step::attempt_record(
                        &next,
                        (attempt_started, now),
                        ctx.shared().epoch,
                        false,
                    );
                    let later = !pause && next.status == OpStatus::Pending;
                    record = Some(checkpoint_with_history(&ctx, next, history, later).await);
                    if pause
                        && record
                            .as_ref()
                            .is_some_and(|r| r.status == OpStatus::Pending)
                    {
                        return ctx.pause_for_failure(&id, &name).await;
                    }
                }
            }
        }
    }
}

/// Checkpoints `next` and, at the same time (one commit on SQLite, parallel
/// requests on DynamoDB), writes the attempt's history record if it has one.
/// A retry's record (`PENDING`, waiting out its backoff), which the step
/// parks on and nothing sees, goes with the invocation's suspension instead
/// (`later`; see [`DurableContext::checkpoint_later`]).
async fn checkpoint_with_history(
    ctx: &DurableContext,
    next: Operation,
    history: Option<durafn_runtime::model::AttemptRecord>,
    later: bool,
) -> Operation {
    if later {
        let entry = history.map(durafn_runtime::model::HistoryEntry::Attempt);
        return ctx.checkpoint_later(next, entry);
    }
    let Some(attempt) = history else {
        return ctx.checkpoint(next).await;
    };
    let shared = ctx.shared();
    let entry = durafn_runtime::model::HistoryEntry::Attempt(attempt);
    let keep = durafn_runtime::model::history_limit();
    let record = crate::history::write(shared.store.as_ref(), &shared.execution_id, &entry, keep);
    // The record first: a store that defers history sends it with the checkpoint.
    let ((), written) = futures::join!(record, ctx.checkpoint(next));
    written
}
