//! `ctx.sleep` / `ctx.sleep_until`: durable timers. No compute while waiting.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use durafn_runtime::model::{OpKind, Timestamp};
use futures::future::BoxFuture;

use super::{DurableContext, Opened};
use crate::error::DurableError;
use crate::replay::sleep::{self, SleepDecision};

/// The shortest durable timer: `ctx.sleep` refuses anything shorter (AWS
/// Lambda durable functions' `wait` takes whole seconds, at least 1).
pub const MIN_SLEEP: Duration = Duration::from_secs(1);

/// The longest durable timer (one year, leap years included; AWS Lambda
/// durable functions also cap an execution, and so a wait, at one year).
pub const MAX_SLEEP: Duration = Duration::from_secs(366 * 24 * 3600);

enum Target {
    After(Duration),
    At(Timestamp),
}

/// A durable timer: a future. Created by [`DurableContext::sleep`] and
/// [`DurableContext::sleep_until`]; its id is claimed at creation.
#[must_use = "a timer does nothing until it is awaited"]
pub struct Sleep {
    parts: Option<SleepParts>,
    running: Option<BoxFuture<'static, Result<(), DurableError>>>,
}

struct SleepParts {
    ctx: DurableContext,
    opened: Opened,
    name: String,
    target: Target,
}

impl DurableContext {
    /// Waits `d` durably: the invocation suspends and the execution is
    /// re-invoked when the timer is due. `d` must be between [`MIN_SLEEP`]
    /// (1 s) and [`MAX_SLEEP`] (one year); anything else fails at once with
    /// [`DurableError::Invalid`], without recording or suspending.
    pub fn sleep(&self, name: &str, d: Duration) -> Sleep {
        Sleep::new(SleepParts {
            ctx: self.clone(),
            opened: self.open(OpKind::Sleep, name),
            name: name.to_string(),
            target: Target::After(d),
        })
    }

    /// Waits until `t` durably, at most [`MAX_SLEEP`] ahead. There is no
    /// lower bound (an absolute deadline may legitimately be near or already
    /// passed): a time in the past fires at once.
    pub fn sleep_until(&self, name: &str, t: Timestamp) -> Sleep {
        Sleep::new(SleepParts {
            ctx: self.clone(),
            opened: self.open(OpKind::Sleep, name),
            name: name.to_string(),
            target: Target::At(t),
        })
    }
}

impl Sleep {
    fn new(parts: SleepParts) -> Self {
        Sleep {
            parts: Some(parts),
            running: None,
        }
    }
}

impl Future for Sleep {
    type Output = Result<(), DurableError>;

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

impl SleepParts {
    async fn run(self) -> Result<(), DurableError> {
        let SleepParts {
            ctx,
            opened,
            name,
            target,
        } = self;
        let Opened { id, record } = opened;
        let Ok(mut record) = record else {
            return ctx.park(None).await;
        };
        loop {
            let now = ctx.clock_now();
            match sleep::decide(record.as_ref(), now) {
                SleepDecision::Done => return Ok(()),
                SleepDecision::Wait(t) => return ctx.park(Some(t)).await,
                SleepDecision::Fire => {
                    let Some(prev) = record.as_ref() else {
                        return Ok(());
                    };
                    record = Some(ctx.checkpoint(sleep::fired(prev, now)).await);
                }
                SleepDecision::Start => {
                    let wake_at = match target {
                        Target::After(d) if d < MIN_SLEEP => {
                            return Err(DurableError::Invalid(format!(
                                "sleep {name:?} of {d:?} is shorter than the 1 s minimum: durable timers \
                                 last 1 s to 1 year (as on AWS Lambda durable functions); for shorter pauses \
                                 wait inside a step"
                            )));
                        }
                        Target::After(d) if d > MAX_SLEEP => {
                            return Err(DurableError::Invalid(format!(
                                "sleep {name:?} of {d:?} is longer than the one-year limit"
                            )));
                        }
                        Target::After(d) => now.plus(d),
                        Target::At(t) if now.until(t) > MAX_SLEEP => {
                            return Err(DurableError::Invalid(format!(
                                "sleep_until {name:?} targets {t}, more than a year ahead"
                            )));
                        }
                        Target::At(t) => t,
                    };
                    // Parked on at once: the record goes with the suspension.
                    record = Some(
                        ctx.checkpoint_later(sleep::scheduled(&id, &name, wake_at, now), None),
                    );
                }
            }
        }
    }
}
