//! Waiting on the outside world: callbacks and events.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use durafn_runtime::model::{OpKind, Operation};
use durafn_runtime::trigger::callback;
use futures::future::BoxFuture;
use serde::de::DeserializeOwned;

use super::{DurableContext, Opened};
use crate::codec;
use crate::error::DurableError;
use crate::replay::wait::{self, WaitDecision};

/// A callback being created: awaiting it records the callback (`PENDING`,
/// its timeout and heartbeat clocks running from now) and gives the
/// [`Callback`] handle, whose id can be handed out at once.
///
/// ```no_run
/// # use durafn::prelude::*;
/// # async fn h(ctx: DurableContext) -> Result<serde_json::Value, DurableError> {
/// let cb = ctx
///     .create_callback::<serde_json::Value>("approval")
///     .timeout(Duration::from_secs(86_400))
///     .await?;                       // recorded: completions work from here on
/// let id = cb.id().to_string();
/// ctx.step("ask", move |_| async move { Ok::<_, DurableError>(println!("{id}")) }).await?;
/// ctx.sleep("meanwhile", Duration::from_secs(60)).await?;
/// let answer = cb.await?;            // delivered even if it came during the sleep
/// # Ok(answer) }
/// ```
#[must_use = "a callback is not created until this is awaited"]
pub struct CreateCallback<T> {
    parts: Option<CreateParts>,
    running: Option<BoxFuture<'static, Result<Callback<T>, DurableError>>>,
}

struct CreateParts {
    ctx: DurableContext,
    opened: Opened,
    name: String,
    token: String,
    timeout: Option<Duration>,
    heartbeat: Option<Duration>,
}

/// A created callback: an unguessable id to hand to the outside world, and a
/// future that completes when someone completes the callback with that id
/// (`POST /v1/callbacks/{id}/succeed|fail|heartbeat`).
#[must_use = "a callback's result is only seen when it is awaited"]
pub struct Callback<T> {
    id: String,
    parts: Option<(DurableContext, String, String)>,
    running: Option<BoxFuture<'static, Result<T, DurableError>>>,
}

impl DurableContext {
    /// Creates a callback; await the result to record it and get its
    /// [`Callback`]: hand [`Callback::id`] to the outside world (from a step),
    /// then await the callback for its result. The operation id is claimed
    /// here, at the call; the record is written when this is awaited (before
    /// the id can be seen), so completions — and the timeout and heartbeat
    /// clocks — count from creation, not from the callback's await. Prefer
    /// [`wait_for_callback`](Self::wait_for_callback) when nothing happens in
    /// between.
    pub fn create_callback<T: DeserializeOwned + Send + 'static>(
        &self,
        name: &str,
    ) -> CreateCallback<T> {
        let opened = self.open(OpKind::Callback, name);
        let token = callback::token(self.execution_id(), self.seed(), &opened.id);
        CreateCallback {
            parts: Some(CreateParts {
                ctx: self.clone(),
                opened,
                name: name.to_string(),
                token,
                timeout: None,
                heartbeat: None,
            }),
            running: None,
        }
    }
}

impl<T> CreateCallback<T> {
    /// Fails the callback with [`DurableError::Timeout`] if it is not
    /// completed within `d` of its creation.
    pub fn timeout(mut self, d: Duration) -> Self {
        if let Some(p) = self.parts.as_mut() {
            p.timeout = Some(d);
        }
        self
    }

    /// Fails the callback with [`DurableError::HeartbeatTimeout`] if no
    /// heartbeat (or completion) arrives within `d` of its creation or of the
    /// previous heartbeat.
    pub fn heartbeat_timeout(mut self, d: Duration) -> Self {
        if let Some(p) = self.parts.as_mut() {
            p.heartbeat = Some(d);
        }
        self
    }

    fn token(&self) -> String {
        self.parts
            .as_ref()
            .map_or_else(String::new, |p| p.token.clone())
    }
}

impl<T: DeserializeOwned + Send + 'static> Future for CreateCallback<T> {
    type Output = Result<Callback<T>, DurableError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Some(parts) = this.parts.take() {
            this.running = Some(Box::pin(parts.create()));
        }
        match this.running.as_mut() {
            Some(f) => f.as_mut().poll(cx),
            None => Poll::Pending,
        }
    }
}

impl CreateParts {
    /// Records the pending callback (once: a replay finds it recorded).
    async fn create<T>(self) -> Result<Callback<T>, DurableError> {
        let CreateParts {
            ctx,
            opened,
            name,
            token,
            timeout,
            heartbeat,
        } = self;
        let Ok(record) = opened.record else {
            return ctx.park(None).await;
        };
        if record.is_none() {
            let rec = wait::callback_created(
                &opened.id,
                &name,
                &token,
                timeout,
                heartbeat,
                ctx.clock_now(),
            );
            ctx.checkpoint(rec).await;
        }
        Ok(Callback {
            id: token,
            parts: Some((ctx, opened.id, name)),
            running: None,
        })
    }
}

impl<T> Callback<T> {
    /// The callback's id: an unguessable token naming this execution and
    /// operation. Its record carries the same id (`result.callback_id`).
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl<T: DeserializeOwned + Send + 'static> Future for Callback<T> {
    type Output = Result<T, DurableError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Some((ctx, id, name)) = this.parts.take() {
            this.running = Some(Box::pin(wait_callback(ctx, id, name)));
        }
        match this.running.as_mut() {
            Some(f) => f.as_mut().poll(cx),
            None => Poll::Pending,
        }
    }
}

async fn wait_callback<T: DeserializeOwned>(
    ctx: DurableContext,
    id: String,
    name: String,
) -> Result<T, DurableError> {
    loop {
        // The latest state: as loaded, or as this invocation recorded it.
        let record = ctx.cursor().peek(&id).cloned();
        let now = ctx.clock_now();
        match wait::callback(record.as_ref(), now) {
            WaitDecision::Return(v) => {
                return codec::decode(&format!("callback {name:?} result"), v);
            }
            WaitDecision::Raise(error) => {
                return Err(DurableError::CallbackFailed {
                    op_id: id,
                    name,
                    error,
                });
            }
            WaitDecision::TimedOut => return Err(DurableError::Timeout { op_id: id, name }),
            WaitDecision::HeartbeatTimedOut => {
                return Err(DurableError::HeartbeatTimeout { op_id: id, name });
            }
            WaitDecision::Wait(t) => return ctx.park(t).await,
            WaitDecision::TimeOut => match record.as_ref() {
                Some(rec) => {
                    ctx.checkpoint(wait::callback_timed_out(rec, now)).await;
                }
                None => return ctx.park(None).await,
            },
            WaitDecision::Register | WaitDecision::Deliver(_) => {
                // Created before it could be awaited; nothing else applies.
                return ctx.park(None).await;
            }
        }
    }
}

async fn timeout(
    ctx: &DurableContext,
    record: Option<&Operation>,
    now: durafn_runtime::model::Timestamp,
) -> Operation {
    match record {
        Some(rec) => ctx.checkpoint(wait::timed_out(rec, now)).await,
        None => ctx.park(None).await,
    }
}

/// Waiting for a named event sent to this execution; a future.
#[must_use = "an event wait does nothing until it is awaited"]
pub struct EventWait<T> {
    parts: Option<(DurableContext, Opened, String, Option<Duration>)>,
    running: Option<BoxFuture<'static, Result<T, DurableError>>>,
}

impl DurableContext {
    /// The next event called `name` sent to this execution
    /// (`POST /v1/executions/{id}/events/{name}`). Events sent before the
    /// execution waits for them are buffered; each is consumed once.
    pub fn wait_for_event<T: DeserializeOwned + Send + 'static>(&self, name: &str) -> EventWait<T> {
        EventWait {
            parts: Some((
                self.clone(),
                self.open(OpKind::Event, name),
                name.to_string(),
                None,
            )),
            running: None,
        }
    }
}

impl<T> EventWait<T> {
    /// Fails with [`DurableError::Timeout`] if no such event arrives within `d`.
    pub fn timeout(mut self, d: Duration) -> Self {
        if let Some(p) = self.parts.as_mut() {
            p.3 = Some(d);
        }
        self
    }
}

impl<T: DeserializeOwned + Send + 'static> Future for EventWait<T> {
    type Output = Result<T, DurableError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Some((ctx, opened, name, timeout)) = this.parts.take() {
            this.running = Some(Box::pin(wait_event(ctx, opened, name, timeout)));
        }
        match this.running.as_mut() {
            Some(f) => f.as_mut().poll(cx),
            None => Poll::Pending,
        }
    }
}

async fn wait_event<T: DeserializeOwned>(
    ctx: DurableContext,
    opened: Opened,
    name: String,
    timeout_after: Option<Duration>,
) -> Result<T, DurableError> {
    let Ok(mut record) = opened.record else {
        return ctx.park(None).await;
    };
    let id = opened.id;
    loop {
        let now = ctx.clock_now();
        let decision = {
            let cursor = ctx.cursor();
            let consumed = wait::consumed_events(cursor.records());
            wait::event(record.as_ref(), now, cursor.events(), &consumed)
        };
        match decision {
            WaitDecision::Register => {
                let wake = timeout_after.map(|d| now.plus(d));
                let rec = wait::registered(OpKind::Event, &id, &name, wake, None, now);
                record = Some(ctx.checkpoint(rec).await);
            }
            WaitDecision::Deliver(event) => {
                let Some(rec) = record.as_ref() else {
                    return ctx.park(None).await;
                };
                record = Some(ctx.checkpoint(wait::delivered(rec, &event, now)).await);
            }
            WaitDecision::Return(v) => return codec::decode(&format!("event {name:?} payload"), v),
            WaitDecision::Raise(error) => {
                return Err(DurableError::CallbackFailed {
                    op_id: id,
                    name,
                    error,
                });
            }
            WaitDecision::TimedOut | WaitDecision::HeartbeatTimedOut => {
                return Err(DurableError::Timeout { op_id: id, name });
            }
            WaitDecision::TimeOut => record = Some(timeout(&ctx, record.as_ref(), now).await),
            WaitDecision::Wait(t) => return ctx.park(t).await,
        }
    }
}

/// `wait_for_callback`: a callback plus a step that hands its id out.
#[must_use = "a callback does nothing until it is awaited"]
pub struct WaitForCallback<'a, T> {
    create: Option<CreateCallback<T>>,
    submit: Option<BoxFuture<'a, Result<(), DurableError>>>,
    running: Option<BoxFuture<'a, Result<T, DurableError>>>,
}

impl DurableContext {
    /// Creates a callback, runs `submitter` with its id as a durable step
    /// (named `<name>:submit`), and waits for the callback's result.
    pub fn wait_for_callback<'a, T, F, Fut, E>(
        &self,
        name: &str,
        submitter: F,
    ) -> WaitForCallback<'a, T>
    where
        T: DeserializeOwned + Send + 'static,
        F: FnOnce(String) -> Fut + Send + 'a,
        Fut: Future<Output = Result<(), E>> + Send + 'a,
        E: Into<DurableError> + 'a,
    {
        let create = self.create_callback::<T>(name);
        let id = create.token();
        let step = self.step(&format!("{name}:submit"), move |_| submitter(id));
        WaitForCallback {
            create: Some(create),
            submit: Some(Box::pin(step)),
            running: None,
        }
    }
}

impl<T: DeserializeOwned + Send + 'static> WaitForCallback<'_, T> {
    /// Fails with [`DurableError::Timeout`] if not completed within `d`.
    pub fn timeout(mut self, d: Duration) -> Self {
        self.create = self.create.map(|c| c.timeout(d));
        self
    }

    /// Fails with [`DurableError::HeartbeatTimeout`] if heartbeats stop for `d`.
    pub fn heartbeat_timeout(mut self, d: Duration) -> Self {
        self.create = self.create.map(|c| c.heartbeat_timeout(d));
        self
    }
}

impl<'a, T: DeserializeOwned + Send + 'static> Future for WaitForCallback<'a, T> {
    type Output = Result<T, DurableError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let (Some(create), Some(submit)) = (this.create.take(), this.submit.take()) {
            this.running = Some(Box::pin(async move {
                // Record first, so the id works before anyone receives it.
                let cb = create.await?;
                submit.await?;
                cb.await
            }));
        }
        match this.running.as_mut() {
            Some(f) => f.as_mut().poll(cx),
            None => Poll::Pending,
        }
    }
}
