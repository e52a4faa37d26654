//! `ctx.wait_for_condition`: poll a check as a step, waiting between polls.

use std::future::Future;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{DurableContext, StepContext};
use crate::error::DurableError;
use crate::retry::RetryPolicy;

/// What one check of a condition found.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Condition<S> {
    /// The condition holds: stop with this state.
    Done(S),
    /// Not yet: wait, then check again with this state.
    Continue(S),
}

/// How long to wait between checks: an initial delay growing by a factor, up
/// to a maximum, for at most `max_attempts` checks.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct WaitStrategy {
    /// The most checks (at least 1).
    pub max_attempts: u32,
    /// The delays between them (jitter off by default).
    pub backoff: RetryPolicy,
}

impl Default for WaitStrategy {
    fn default() -> Self {
        WaitStrategy::new(Duration::from_secs(5))
    }
}

impl WaitStrategy {
    /// Checks every `delay`, doubling up to 5 minutes, at most 60 times.
    pub fn new(delay: Duration) -> Self {
        WaitStrategy {
            max_attempts: 60,
            backoff: RetryPolicy::exponential()
                .initial_delay(delay)
                .max_delay(Duration::from_secs(300))
                .no_jitter(),
        }
    }

    /// At most `n` checks.
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// The delay grows by `f` after each check (1.0: fixed delay).
    pub fn backoff_factor(mut self, f: f64) -> Self {
        self.backoff = self.backoff.backoff_factor(f);
        self
    }

    /// The longest delay.
    pub fn max_delay(mut self, d: Duration) -> Self {
        self.backoff = self.backoff.max_delay(d);
        self
    }
}

impl DurableContext {
    /// Polls `check` (each poll a durable step) until it returns
    /// [`Condition::Done`], sleeping durably between polls per `strategy`.
    /// Runs in a child context, so the polls do not disturb the caller's ids.
    pub async fn wait_for_condition<S, F, Fut>(
        &self,
        name: &str,
        initial: S,
        strategy: WaitStrategy,
        check: F,
    ) -> Result<S, DurableError>
    where
        S: Serialize + DeserializeOwned + Send + 'static,
        F: Fn(S, StepContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Condition<S>, DurableError>> + Send + 'static,
    {
        let owned = name.to_string();
        self.child(name, move |ctx| async move {
            let mut state = initial;
            let check = std::sync::Arc::new(check);
            for n in 1..=strategy.max_attempts {
                let c = check.clone();
                let found: Condition<S> = ctx
                    .step(
                        &format!("check#{n}"),
                        move |s| async move { c(state, s).await },
                    )
                    .retry(RetryPolicy::none())
                    .await?;
                match found {
                    Condition::Done(s) => return Ok(s),
                    Condition::Continue(s) => state = s,
                }
                if n < strategy.max_attempts {
                    // Durable timers last at least a second.
                    let delay = strategy
                        .backoff
                        .delay_after(n, 0.5)
                        .max(super::sleep::MIN_SLEEP);
                    ctx.sleep(&format!("wait#{n}"), delay).await?;
                }
            }
            Err(DurableError::terminal(DurableError::new(
                "ConditionNotMet",
                format!(
                    "{owned:?} did not hold after {} checks",
                    strategy.max_attempts
                ),
            )))
        })
        .await
    }
}
