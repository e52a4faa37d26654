//! `ctx.child`: a child context whose result is checkpointed as one unit.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use durafn_runtime::model::{OpKind, OpStatus, Operation, Timestamp};
use futures::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{DurableContext, Opened};
use crate::codec;
use crate::error::DurableError;
use crate::replay::next_revision;

/// A child context run as one operation; a future.
#[must_use = "a child context does nothing until it is awaited"]
pub struct Child<'a, T> {
    running: BoxFuture<'a, Result<T, DurableError>>,
    _out: PhantomData<fn() -> T>,
}

impl DurableContext {
    /// Runs `body` in a child context with its own operation ids (`<id>.1`,
    /// `<id>.2`, ...). Its result (or error) is checkpointed as one unit: once
    /// recorded, replays return it without running `body` again. Errors
    /// propagate as [`DurableError::ChildFailed`] and can be caught.
    pub fn child<'a, T, F, Fut>(&self, name: &str, body: F) -> Child<'a, T>
    where
        T: Serialize + DeserializeOwned + Send + 'a,
        F: FnOnce(DurableContext) -> Fut + Send + 'a,
        Fut: Future<Output = Result<T, DurableError>> + Send + 'a,
    {
        let opened = self.open(OpKind::Child, name);
        Child {
            running: Box::pin(run_child(self.clone(), opened, name.to_string(), body)),
            _out: PhantomData,
        }
    }
}

impl<T> Future for Child<'_, T> {
    type Output = Result<T, DurableError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.get_mut().running.as_mut().poll(cx)
    }
}

pub(super) fn ended(
    kind: OpKind,
    id: &str,
    name: &str,
    ok: Result<serde_json::Value, durafn_runtime::model::ErrorObject>,
    started: Timestamp,
    now: Timestamp,
) -> Operation {
    let mut op = next_revision(None, id, kind, name, started);
    op.attempt = 1;
    op.ended_at = Some(now);
    match ok {
        Ok(v) => {
            op.status = OpStatus::Succeeded;
            op.result = Some(v);
        }
        Err(e) => {
            op.status = OpStatus::Failed;
            op.error = Some(e);
        }
    }
    op
}

async fn run_child<T, F, Fut>(
    ctx: DurableContext,
    opened: Opened,
    name: String,
    body: F,
) -> Result<T, DurableError>
where
    T: Serialize + DeserializeOwned,
    F: FnOnce(DurableContext) -> Fut,
    Fut: Future<Output = Result<T, DurableError>>,
{
    let Opened { id, record } = opened;
    let Ok(record) = record else {
        return ctx.park(None).await;
    };
    if let Some(rec) = record.filter(|r| r.status.is_final()) {
        return replayed(&id, &name, rec);
    }
    let started = ctx.clock_now();
    let outcome = body(ctx.nested(&id)).await;
    let now = ctx.clock_now();
    let what = format!("child {name:?} result");
    let limit = ctx.payload_limit();
    let recorded = match outcome.and_then(|v| codec::encode(&what, &v, limit)) {
        Ok(v) => Ok(v),
        Err(DurableError::ContinueAsNew(input)) => return Err(DurableError::ContinueAsNew(input)),
        Err(e) => Err(codec::clip(e.to_error_object())),
    };
    let written = ctx
        .checkpoint(ended(OpKind::Child, &id, &name, recorded, started, now))
        .await;
    replayed(&id, &name, written)
}

fn replayed<T: DeserializeOwned>(id: &str, name: &str, rec: Operation) -> Result<T, DurableError> {
    match rec.status {
        OpStatus::Succeeded => codec::decode(
            &format!("child {name:?} result"),
            rec.result.unwrap_or(serde_json::Value::Null),
        ),
        _ => Err(DurableError::ChildFailed {
            op_id: id.to_string(),
            name: name.to_string(),
            error: rec.error.unwrap_or_else(|| {
                durafn_runtime::model::ErrorObject::new("ChildFailed", "failed without an error")
            }),
        }),
    }
}
