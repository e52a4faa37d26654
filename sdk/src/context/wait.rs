//! Waiting on the outside world: callbacks and events.

use std::future::Future;
use std::marker::PhantomData;
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

/// A callback: an unguessable id to hand to the outside world, and a future
/// that completes when someone completes the callback with that id
/// (`POST /v1/callbacks/{id}/succeed|fail|heartbeat`).
#[must_use = "a callback does nothing until it is awaited"]
pub struct Callback<T> {
    parts: Option<CallbackParts>,
    running: Option<BoxFuture<'static, Result<T, DurableError>>>,
    _out: PhantomData<fn() -> T>,
}

struct CallbackParts {
    ctx: DurableContext,
    opened: Opened,
    name: String,
    token: String,
    timeout: Option<Duration>,
    heartbeat: Option<Duration>,
}

impl DurableContext {
    /// Creates a callback. Hand [`Callback::id`] to the outside world (from a
    /// step), then await the callback for its result. Prefer
    /// [`wait_for_callback`](Self::wait_for_callback), which does both in the
    /// right order.
    pub fn create_callback<T: DeserializeOwned + Send + 'static>(&self, name: &str) -> Callback<T> {
        let opened = self.open(OpKind::Callback, name);
        let token = callback::token(self.execution_id(), self.seed(), &opened.id);
        Callback {
            parts: Some(CallbackParts {
                ctx: self.clone(),
                opened,
                name: name.to_string(),
                token,
                timeout: None,
                heartbeat: None,
            }),
            running: None,
            _out: PhantomData,
        }
    }
}

impl<T: DeserializeOwned + Send + 'static> Callback<T> {
    /// The callback's id: an unguessable token naming this execution and operation.
    pub fn id(&self) -> &str {
        self.parts.as_ref().map_or("", |p| p.token.as_str())
    }

    /// Fails with [`DurableError::Timeout`] if not completed within `d`.
    pub fn timeout(mut self, d: Duration) -> Self {
        if let Some(p) = self.parts.as_mut() {
            p.timeout = Some(d);
        }
        self
    }

    /// Fails with [`DurableError::Timeout`] if no heartbeat (or completion)
    /// arrives within `d` of the previous one.
    pub fn heartbeat_timeout(mut self, d: Duration) -> Self {
        if let Some(p) = self.parts.as_mut() {
            p.heartbeat = Some(d);
        }
        self
    }
}

impl<T: DeserializeOwned + Send + 'static> Future for Callback<T> {
    type Output = Result<T, DurableError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Some(mut parts) = this.parts.take() {
            this.running = Some(Box::pin(async move {
                parts.register().await;
                parts.wait().await
            }));
        }
        match this.running.as_mut() {
            Some(f) => f.as_mut().poll(cx),
            None => Poll::Pending,
        }
    }
}

impl CallbackParts {
    /// Records the pending callback (once), so completions can find it.
    async fn register(&mut self) {
        let Ok(record) = &self.opened.record else {
            return;
        };
        if record.is_some() {
            return;
        }
        let now = self.ctx.clock_now();
        let timeout_at = self.timeout.map(|d| now.plus(d));
        let heartbeat_at = self.heartbeat.map(|d| now.plus(d));
        let wake = match (timeout_at, heartbeat_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let hb_ms = self
            .heartbeat
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let settings = callback::pending_settings(timeout_at, hb_ms);
        let rec = wait::registered(
            OpKind::Callback,
            &self.opened.id,
            &self.name,
            wake,
            Some(settings),
            now,
        );
        let written = self.ctx.checkpoint(rec).await;
        self.opened.record = Ok(Some(written));
    }

    async fn wait<T: DeserializeOwned>(self) -> Result<T, DurableError> {
        let CallbackParts {
            ctx, opened, name, ..
        } = self;
        let Ok(mut record) = opened.record else {
            return ctx.park(None).await;
        };
        let id = opened.id;
        loop {
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
                WaitDecision::Wait(t) => return ctx.park(t).await,
                WaitDecision::TimeOut => {
                    record = Some(timeout(&ctx, record.as_ref(), now).await);
                }
                WaitDecision::Register | WaitDecision::Deliver(_) => {
                    // Registration happened before waiting; nothing else applies.
                    return ctx.park(None).await;
                }
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
            WaitDecision::TimedOut => return Err(DurableError::Timeout { op_id: id, name }),
            WaitDecision::TimeOut => record = Some(timeout(&ctx, record.as_ref(), now).await),
            WaitDecision::Wait(t) => return ctx.park(t).await,
        }
    }
}

/// `wait_for_callback`: a callback plus a step that hands its id out.
#[must_use = "a callback does nothing until it is awaited"]
pub struct WaitForCallback<'a, T> {
    callback: Option<Callback<T>>,
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
        let callback = self.create_callback::<T>(name);
        let id = callback.id().to_string();
        let step = self.step(&format!("{name}:submit"), move |_| submitter(id));
        WaitForCallback {
            callback: Some(callback),
            submit: Some(Box::pin(step)),
            running: None,
        }
    }
}

impl<T: DeserializeOwned + Send + 'static> WaitForCallback<'_, T> {
    /// Fails with [`DurableError::Timeout`] if not completed within `d`.
    pub fn timeout(mut self, d: Duration) -> Self {
        self.callback = self.callback.map(|c| c.timeout(d));
        self
    }

    /// Fails with [`DurableError::Timeout`] if heartbeats stop for `d`.
    pub fn heartbeat_timeout(mut self, d: Duration) -> Self {
        self.callback = self.callback.map(|c| c.heartbeat_timeout(d));
        self
    }
}

impl<'a, T: DeserializeOwned + Send + 'static> Future for WaitForCallback<'a, T> {
    type Output = Result<T, DurableError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let (Some(mut cb), Some(submit)) = (this.callback.take(), this.submit.take()) {
            this.running = Some(Box::pin(async move {
                // Register first, so the id works before anyone receives it.
                if let Some(parts) = cb.parts.as_mut() {
                    parts.register().await;
                }
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
