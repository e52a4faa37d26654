//! A store wrapper that injects transient failures, for tests.
//!
//! A failure is injected either before the call reaches the inner store (nothing
//! happened) or after it (the write landed but the caller is told it failed) —
//! the ambiguous case every retry path must survive. With
//! [`FaultyStore::with_latency`] every call is also delayed by a random
//! 0..max, so calls that were in order overlap.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{InnerCall, Store, Wrapper};
use crate::error::{Result, StoreError};

/// Injects transient errors into a fraction of calls.
pub struct FaultyStore {
    inner: Arc<dyn Store>,
    rate: f64,
    rng: Mutex<StdRng>,
    injected: AtomicU64,
    ambiguous: AtomicU64,
    ambiguous_enabled: bool,
    max_latency: std::time::Duration,
}

enum Fault {
    None,
    Before,
    After,
}

impl FaultyStore {
    /// Fails `rate` (0.0–1.0) of calls, half before and half after the inner call.
    pub fn new(inner: Arc<dyn Store>, rate: f64, seed: u64) -> Self {
        FaultyStore {
            inner,
            rate,
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            injected: AtomicU64::new(0),
            ambiguous: AtomicU64::new(0),
            ambiguous_enabled: true,
            max_latency: std::time::Duration::ZERO,
        }
    }

    /// Delays every call by a random time in `0..max` (before it reaches the
    /// inner store).
    pub fn with_latency(mut self, max: std::time::Duration) -> Self {
        self.max_latency = max;
        self
    }

    /// How many of the injected faults were ambiguous (the call took effect).
    pub fn ambiguous(&self) -> u64 {
        self.ambiguous.load(Ordering::Relaxed)
    }

    /// Injects faults only before the inner call: a failed call never happened.
    /// (Retries then reproduce a healthy store exactly; with ambiguous faults a
    /// retried claim or wake may observably differ, e.g. `Existing` for `New`.)
    pub fn before_only(mut self) -> Self {
        self.ambiguous_enabled = false;
        self
    }

    /// How many faults have been injected so far.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::Relaxed)
    }

    fn roll(&self) -> (Fault, std::time::Duration) {
        let Ok(mut rng) = self.rng.lock() else {
            return (Fault::None, std::time::Duration::ZERO);
        };
        let delay = if self.max_latency.is_zero() {
            std::time::Duration::ZERO
        } else {
            self.max_latency.mul_f64(rng.random::<f64>())
        };
        if rng.random::<f64>() >= self.rate {
            return (Fault::None, delay);
        }
        self.injected.fetch_add(1, Ordering::Relaxed);
        if !self.ambiguous_enabled || rng.random::<bool>() {
            (Fault::Before, delay)
        } else {
            self.ambiguous.fetch_add(1, Ordering::Relaxed);
            (Fault::After, delay)
        }
    }

    async fn call<T>(
        &self,
        what: &str,
        fut: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let (fault, delay) = self.roll();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        match fault {
            Fault::None => fut.await,
            Fault::Before => Err(StoreError::Transient(format!(
                "injected fault before {what}"
            ))),
            Fault::After => {
                let _ = fut.await;
                Err(StoreError::Transient(format!(
                    "injected fault after {what}"
                )))
            }
        }
    }
}

impl Wrapper for FaultyStore {
    fn inner(&self) -> &dyn Store {
        &*self.inner
    }
    fn around<'a, T, F>(
        &'a self,
        what: &'static str,
        mut call: F,
    ) -> impl std::future::Future<Output = Result<T>> + Send + 'a
    where
        T: Send + 'a,
        F: FnMut() -> InnerCall<'a, T> + Send + 'a,
    {
        self.call(what, call())
    }
}
