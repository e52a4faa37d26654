//! Retry policies for steps. Pure arithmetic: the jitter is passed in.

use std::time::Duration;

/// How a failed step is retried: how many attempts, and how long to wait
/// between them. The wait is a suspension, never an in-process sleep.
///
/// The default is 3 attempts, exponential backoff from 1 s doubling up to
/// 5 minutes, with full jitter.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Attempts in all, including the first (at least 1).
    pub max_attempts: u32,
    /// Delay cap after the first failed attempt.
    pub initial_delay: Duration,
    /// Multiplier applied per further failure.
    pub backoff_factor: f64,
    /// Largest delay.
    pub max_delay: Duration,
    /// Full jitter: each delay is uniform in `[0, cap]` rather than `cap`.
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy::exponential()
    }
}

impl RetryPolicy {
    /// Exponential backoff: 3 attempts, 1 s × 2 up to 5 min, full jitter.
    pub fn exponential() -> Self {
        RetryPolicy {
            max_attempts: 3,
            initial_delay: Duration::from_secs(1),
            backoff_factor: 2.0,
            max_delay: Duration::from_secs(300),
            jitter: true,
        }
    }

    /// A fixed delay between attempts, no jitter.
    pub fn fixed(delay: Duration) -> Self {
        RetryPolicy {
            max_attempts: 3,
            initial_delay: delay,
            backoff_factor: 1.0,
            max_delay: delay,
            jitter: false,
        }
    }

    /// One attempt only.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::exponential()
        }
    }

    /// Sets the number of attempts in all (0 is taken as 1).
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// Sets the delay after the first failure.
    pub fn initial_delay(mut self, d: Duration) -> Self {
        self.initial_delay = d;
        self
    }

    /// Sets the backoff multiplier (values below 1 are taken as 1).
    pub fn backoff_factor(mut self, f: f64) -> Self {
        self.backoff_factor = if f.is_finite() { f.max(1.0) } else { 1.0 };
        self
    }

    /// Sets the largest delay.
    pub fn max_delay(mut self, d: Duration) -> Self {
        self.max_delay = d;
        self
    }

    /// Turns jitter off: delays are exactly the backoff cap.
    pub fn no_jitter(mut self) -> Self {
        self.jitter = false;
        self
    }

    /// The delay after `failed_attempt` (1-based) failed; `unit` is a random
    /// number in `[0, 1)` used for jitter.
    pub fn delay_after(&self, failed_attempt: u32, unit: f64) -> Duration {
        let exp = i32::try_from(failed_attempt.saturating_sub(1)).unwrap_or(i32::MAX);
        let cap_secs = (self.initial_delay.as_secs_f64() * self.backoff_factor.powi(exp))
            .min(self.max_delay.as_secs_f64());
        let secs = if self.jitter {
            cap_secs * unit.clamp(0.0, 1.0)
        } else {
            cap_secs
        };
        Duration::try_from_secs_f64(secs).unwrap_or(self.max_delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy::exponential()
            .no_jitter()
            .max_delay(Duration::from_secs(5));
        let delays: Vec<_> = (1..=5).map(|a| p.delay_after(a, 0.5).as_secs()).collect();
        assert_eq!(delays, vec![1, 2, 4, 5, 5]);
    }

    #[test]
    fn full_jitter_scales_the_cap() {
        let p = RetryPolicy::exponential();
        assert_eq!(p.delay_after(3, 0.5), Duration::from_secs(2));
        assert_eq!(p.delay_after(3, 0.0), Duration::ZERO);
    }

    #[test]
    fn huge_attempt_numbers_stay_at_the_cap() {
        let p = RetryPolicy::exponential().no_jitter();
        assert_eq!(p.delay_after(u32::MAX, 0.9), Duration::from_secs(300));
        assert_eq!(RetryPolicy::none().max_attempts, 1);
        assert_eq!(RetryPolicy::exponential().max_attempts(0).max_attempts, 1);
    }
}
