//! A [`Store`] that passes every call through to another and adds up how
//! long each kind of call took: where a durable workflow spends its time in
//! its store (claim, checkpoints, finish, reads).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use durafn_runtime::Result;
use durafn_runtime::store::{InnerCall, Store, Wrapper};

/// How many calls of one kind, and their total time.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Tally {
    /// Calls made.
    pub(crate) calls: u64,
    /// Their total time.
    pub(crate) total: Duration,
}

/// A timing pass-through store.
pub(crate) struct TimedStore {
    inner: Arc<dyn Store>,
    tallies: Mutex<BTreeMap<&'static str, Tally>>,
}

impl TimedStore {
    /// Wraps `inner`.
    pub(crate) fn new(inner: Arc<dyn Store>) -> Self {
        TimedStore {
            inner,
            tallies: Mutex::new(BTreeMap::new()),
        }
    }

    /// The calls made so far, by method name; resets the tallies.
    pub(crate) fn take(&self) -> BTreeMap<&'static str, Tally> {
        self.tallies
            .lock()
            .map(|mut t| std::mem::take(&mut *t))
            .unwrap_or_default()
    }

    async fn timed<T>(&self, what: &'static str, call: impl Future<Output = T> + Send) -> T {
        let started = Instant::now();
        let out = call.await;
        let elapsed = started.elapsed();
        if let Ok(mut t) = self.tallies.lock() {
            let tally = t.entry(what).or_default();
            tally.calls += 1;
            tally.total += elapsed;
        }
        out
    }
}

impl Wrapper for TimedStore {
    fn inner(&self) -> &dyn Store {
        &*self.inner
    }
    fn around<'a, T, F>(
        &'a self,
        what: &'static str,
        mut call: F,
    ) -> impl Future<Output = Result<T>> + Send + 'a
    where
        T: Send + 'a,
        F: FnMut() -> InnerCall<'a, T> + Send + 'a,
    {
        self.timed(what, call())
    }
}
