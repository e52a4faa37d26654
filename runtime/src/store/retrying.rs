//! A wrapper that retries transient store errors with backoff and jitter.
//!
//! Every write of the `Store` contract is safe to retry: creating is idempotent,
//! operation writes are first-writer-wins (a retry of a write that did land gets
//! its own record back as the "conflict"), and epoch-conditional updates answer
//! `Done` when this same claimant already applied them.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::{InnerCall, Store, Wrapper};
use crate::error::Result;

/// Retries transient errors of the wrapped store.
pub struct RetryingStore {
    inner: Arc<dyn Store>,
    max_attempts: u32,
    base_delay: Duration,
    max_delay: Duration,
}

impl RetryingStore {
    /// Wraps `inner`: up to 8 attempts, 5 ms doubling to at most 1 s, full jitter.
    pub fn new(inner: Arc<dyn Store>) -> Self {
        RetryingStore {
            inner,
            max_attempts: 8,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_secs(1),
        }
    }

    /// Sets how many attempts each call gets (at least 1).
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    async fn retry<T, F, Fut>(&self, what: &str, mut f: F) -> Result<T>
    where
        F: FnMut() -> Fut + Send,
        Fut: Future<Output = Result<T>> + Send,
        T: Send,
    {
        let mut attempt = 1;
        loop {
            match f().await {
                Err(e) if e.is_transient() && attempt < self.max_attempts => {
                    let cap = self
                        .base_delay
                        .saturating_mul(1 << attempt.min(20))
                        .min(self.max_delay);
                    let delay = cap.mul_f64(jitter_fraction());
                    tracing::debug!(%e, attempt, what, ?delay, "retrying transient store error");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

/// A fraction in [0, 1) from the system clock's sub-second noise; good enough
/// to spread retries apart without a random number generator dependency.
fn jitter_fraction() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mixed = nanos.wrapping_mul(2_654_435_761) % 1_000_000;
    f64::from(mixed) / 1_000_000.0
}

impl Wrapper for RetryingStore {
    fn inner(&self) -> &dyn Store {
        &*self.inner
    }
    fn around<'a, T, F>(
        &'a self,
        what: &'static str,
        call: F,
    ) -> impl Future<Output = Result<T>> + Send + 'a
    where
        T: Send + 'a,
        F: FnMut() -> InnerCall<'a, T> + Send + 'a,
    {
        self.retry(what, call)
    }
}
