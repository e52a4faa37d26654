//! Time, injected: the system clock in production, a manual clock in tests.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

use crate::model::Timestamp;

/// What [`Clock::sleep_until`] returns.
pub type Sleep<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Where "now" comes from, and how to wait for a time. The replay core never
/// reads a clock; the layers around it take one of these, so whatever waits
/// (the dispatcher's loop, its timers) follows the same clock as what it
/// reads.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> Timestamp;

    /// Completes once [`now`](Clock::now) has reached `t` (at once if it has).
    fn sleep_until(&self, t: Timestamp) -> Sleep<'_>;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        Timestamp(i64::try_from(ms).unwrap_or(i64::MAX))
    }

    fn sleep_until(&self, t: Timestamp) -> Sleep<'_> {
        let wait = self.now().until(t);
        Box::pin(tokio::time::sleep(wait))
    }
}

/// A clock that only moves when told to: virtual time for tests.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<AtomicI64>,
    moved: Arc<Notify>,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: Timestamp) -> Self {
        ManualClock {
            now: Arc::new(AtomicI64::new(start.0)),
            moved: Arc::new(Notify::new()),
        }
    }

    /// Moves the clock forward by `d`, waking what sleeps until then.
    pub fn advance(&self, d: Duration) {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        self.now.fetch_add(ms, Ordering::SeqCst);
        self.moved.notify_waiters();
    }

    /// Moves the clock to `t` if `t` is later than now (time never goes back).
    pub fn advance_to(&self, t: Timestamp) {
        self.now.fetch_max(t.0, Ordering::SeqCst);
        self.moved.notify_waiters();
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.now.load(Ordering::SeqCst))
    }

    fn sleep_until(&self, t: Timestamp) -> Sleep<'_> {
        Box::pin(async move {
            loop {
                // Registered before the check, so an advance in between is seen.
                let moved = self.moved.notified();
                tokio::pin!(moved);
                moved.as_mut().enable();
                if self.now() >= t {
                    return;
                }
                moved.await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_forward() {
        let c = ManualClock::new(Timestamp(1_000));
        c.advance(Duration::from_secs(2));
        assert_eq!(c.now(), Timestamp(3_000));
        c.advance_to(Timestamp(2_000));
        assert_eq!(c.now(), Timestamp(3_000));
        c.advance_to(Timestamp(9_000));
        assert_eq!(c.now(), Timestamp(9_000));
    }

    #[tokio::test]
    async fn a_manual_sleep_ends_when_the_clock_is_advanced_past_it() {
        let c = ManualClock::new(Timestamp(1_000));
        // Already reached: at once.
        c.sleep_until(Timestamp(1_000)).await;
        let sleeper = {
            let c = c.clone();
            tokio::spawn(async move { c.sleep_until(Timestamp(5_000)).await })
        };
        tokio::task::yield_now().await;
        c.advance(Duration::from_secs(1));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished(), "woke at 2 s for 5 s");
        c.advance_to(Timestamp(5_000));
        tokio::time::timeout(Duration::from_secs(5), sleeper)
            .await
            .expect("the sleep ended at 5 s")
            .unwrap();
    }

    #[test]
    fn system_clock_is_after_2020() {
        assert!(SystemClock.now() > Timestamp(1_577_836_800_000));
    }
}
