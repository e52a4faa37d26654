//! `ctx.invoke`: start another durable function as a child execution and
//! await its result durably.
//!
//! The child's id is `<parent id>::<op id>`, so starting it is idempotent
//! across replays, and a child that ends wakes its parent (found from its id).

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use durafn_runtime::StoreError;
use durafn_runtime::model::{
    ErrorObject, ExecutionId, ExecutionStatus, NewExecution, OpKind, OpStatus, Operation,
};
use futures::future::BoxFuture;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::{DurableContext, Opened};
use crate::codec;
use crate::error::DurableError;
use crate::replay::{next_revision, wait};

/// The parent of an invoked child execution (`<parent>::<op id>`).
pub(crate) fn parent_of(id: &ExecutionId) -> Option<ExecutionId> {
    let (parent, op) = id.as_str().rsplit_once("::")?;
    let op = op.split(':').next().unwrap_or(op);
    if op.is_empty() || !op.split('.').all(|p| p.parse::<u32>().is_ok()) {
        return None;
    }
    ExecutionId::new(parent).ok()
}

/// A child execution being awaited; a future.
#[must_use = "an invoke does nothing until it is awaited"]
pub struct Invoke<T> {
    parts: Option<InvokeParts>,
    running: Option<BoxFuture<'static, Result<T, DurableError>>>,
    _out: PhantomData<fn() -> T>,
}

struct InvokeParts {
    ctx: DurableContext,
    opened: Opened,
    name: String,
    function: String,
    input: Result<Value, DurableError>,
    timeout: Option<Duration>,
}

impl DurableContext {
    /// Starts `function` with `input` as a child execution and waits for its
    /// output. A failed child surfaces as [`DurableError::ChildFailed`]; with
    /// [`Invoke::timeout`], a slow one as [`DurableError::Timeout`].
    pub fn invoke<T: DeserializeOwned + Send + 'static>(
        &self,
        name: &str,
        function: &str,
        input: impl serde::Serialize,
    ) -> Invoke<T> {
        Invoke {
            parts: Some(InvokeParts {
                ctx: self.clone(),
                opened: self.open(OpKind::Invoke, name),
                name: name.to_string(),
                function: function.to_string(),
                input: codec::encode(
                    &format!("invoke {name:?} input"),
                    &input,
                    self.payload_limit(),
                ),
                timeout: None,
            }),
            running: None,
            _out: PhantomData,
        }
    }
}

impl<T> Invoke<T> {
    /// Fails with [`DurableError::Timeout`] if the child has not ended within `d`.
    pub fn timeout(mut self, d: Duration) -> Self {
        if let Some(p) = self.parts.as_mut() {
            p.timeout = Some(d);
        }
        self
    }
}

impl<T: DeserializeOwned + Send + 'static> Future for Invoke<T> {
    type Output = Result<T, DurableError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Some(parts) = this.parts.take() {
            this.running = Some(Box::pin(parts.run()));
        }
        match this.running.as_mut() {
            Some(f) => f.as_mut().poll(cx),
            None => Poll::Pending,
        }
    }
}

fn ended(
    prev: &Operation,
    status: OpStatus,
    result: Option<Value>,
    error: Option<ErrorObject>,
    now: durafn_runtime::model::Timestamp,
) -> Operation {
    let mut op = next_revision(Some(prev), &prev.id, OpKind::Invoke, &prev.name, now);
    op.status = status;
    op.result = result;
    op.error = error;
    op.ended_at = Some(now);
    op
}

impl InvokeParts {
    async fn run<T: DeserializeOwned>(self) -> Result<T, DurableError> {
        let InvokeParts {
            ctx,
            opened,
            name,
            function,
            input,
            timeout,
        } = self;
        let Opened { id, record } = opened;
        let Ok(mut record) = record else {
            return ctx.park(None).await;
        };
        let child_id = ExecutionId::new(format!("{}::{id}", ctx.execution_id()))
            .map_err(|e| DurableError::Invalid(e.to_string()))?;
        loop {
            let now = ctx.clock_now();
            let Some(rec) = record.clone() else {
                let input = input.clone()?;
                let _work = ctx.work();
                let created = ctx
                    .shared
                    .store
                    .create_execution(&NewExecution {
                        id: child_id.clone(),
                        function: function.clone(),
                        version: "$LATEST".into(),
                        input,
                        now,
                    })
                    .await;
                match created {
                    Ok(_) => {}
                    // The store said no for good (another execution under the
                    // child's name, a payload over the limit, a bad id).
                    Err(
                        e @ (StoreError::Conflict { .. }
                        | StoreError::PayloadTooLarge { .. }
                        | StoreError::Invalid(_)),
                    ) => {
                        return Err(DurableError::Invalid(format!(
                            "invoke {name:?} could not start {function:?}: {e}"
                        )));
                    }
                    // The store failed (down, throttling, a lost reply): this
                    // invocation ends and the next one starts the child again
                    // (idempotent by its id). It is not the workflow's failure.
                    Err(e) => {
                        tracing::error!(%child_id, error = %e, "could not start the child execution; ending the invocation");
                        ctx.set_fault(super::Fault::Store(e));
                        return ctx.park(None).await;
                    }
                }
                let wake = timeout.map(|d| now.plus(d));
                let pending = wait::registered(
                    OpKind::Invoke,
                    &id,
                    &name,
                    wake,
                    Some(json!({ "child": child_id, "function": function })),
                    now,
                );
                record = Some(ctx.checkpoint(pending).await);
                continue;
            };
            match rec.status {
                OpStatus::Succeeded => {
                    return codec::decode(
                        &format!("invoke {name:?} result"),
                        rec.result.unwrap_or_default(),
                    );
                }
                OpStatus::TimedOut => return Err(DurableError::Timeout { op_id: id, name }),
                OpStatus::Failed | OpStatus::Cancelled => {
                    return Err(DurableError::ChildFailed {
                        op_id: id,
                        name,
                        error: rec
                            .error
                            .unwrap_or_else(|| ErrorObject::new("ChildFailed", "failed")),
                    });
                }
                OpStatus::Pending | OpStatus::Started => {}
            }
            let child = {
                let _work = ctx.work();
                ctx.shared.store.get_execution(&child_id).await
            };
            let child = match child {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(%child_id, error = %e, "could not read the child execution");
                    return ctx.park(Some(now.plus(Duration::from_secs(1)))).await;
                }
            };
            let next = match child {
                Some(c) if c.status == ExecutionStatus::Succeeded => {
                    Some(ended(&rec, OpStatus::Succeeded, c.output, None, now))
                }
                Some(c) if c.status.is_final() => {
                    let error = c.error.unwrap_or_else(|| {
                        ErrorObject::new(
                            c.status.as_str(),
                            format!("the child execution ended {}", c.status),
                        )
                    });
                    Some(ended(&rec, OpStatus::Failed, None, Some(error), now))
                }
                _ if rec.wake_at.is_some_and(|t| t <= now) => Some(wait::timed_out(&rec, now)),
                _ => None,
            };
            match next {
                Some(op) => record = Some(ctx.checkpoint(op).await),
                // The child wakes this execution when it ends; the timeout wakes it
                // otherwise. The child's end and that wake-up are two writes, so a
                // crash between them (or a failed wake) would leave this execution
                // waiting for ever: it also looks again after a while (see `recheck_at`).
                None => {
                    let wake = recheck_at(rec.started_at, now);
                    return ctx
                        .park(Some(rec.wake_at.map_or(wake, |t| t.min(wake))))
                        .await;
                }
            }
        }
    }
}

/// The shortest and longest pause between two looks at a child that has
/// not ended.
const RECHECK_MIN: Duration = Duration::from_secs(2);
const RECHECK_MAX: Duration = Duration::from_secs(300);

/// When a parent waiting on a child looks at it again, whether or not the
/// child woke it: after half the time the child has run so far, between
/// [`RECHECK_MIN`] and [`RECHECK_MAX`]. A child that ends wakes its parent
/// at once; this bounds how long a lost wake-up can delay the parent
/// (≤ half the child's run time, at most 5 minutes) at the cost of a
/// logarithmic number of extra invocations while the child runs
/// (≈ 12 per hour of a long child, then one per 5 minutes).
pub(crate) fn recheck_at(
    started_at: durafn_runtime::model::Timestamp,
    now: durafn_runtime::model::Timestamp,
) -> durafn_runtime::model::Timestamp {
    now.plus((started_at.until(now) / 2).clamp(RECHECK_MIN, RECHECK_MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_name_their_parent() {
        let id = |s: &str| ExecutionId::new(s).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(parent_of(&id("order-1::3")), Some(id("order-1")));
        assert_eq!(parent_of(&id("a::b::2.1")), Some(id("a::b")));
        assert_eq!(parent_of(&id("order-1")), None);
        assert_eq!(parent_of(&id("x::notanop")), None);
    }

    #[test]
    fn a_waiting_parent_looks_again_after_half_the_childs_run_time() {
        use durafn_runtime::model::Timestamp;
        let t = |ms: i64| Timestamp(ms);
        // Just started: the shortest pause.
        assert_eq!(recheck_at(t(1_000), t(1_000)), t(3_000));
        // Ran 60 s: looks again 30 s later.
        assert_eq!(recheck_at(t(0), t(60_000)), t(90_000));
        // Ran a day: at most 5 minutes.
        assert_eq!(recheck_at(t(0), t(86_400_000)), t(86_700_000));
        // A clock that went backwards is not a panic.
        assert_eq!(recheck_at(t(5_000), t(1_000)), t(3_000));
    }
}
