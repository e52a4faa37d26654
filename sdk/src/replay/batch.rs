//! Completion rules for `parallel` and `map`: when a batch is done.

use serde::{Deserialize, Serialize};

/// When a batch of branches completes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Completion {
    /// Complete as soon as this many branches succeeded (the rest are not started or abandoned).
    pub min_successful: Option<usize>,
    /// Fail once more than this many branches failed.
    pub tolerated_failures: Option<usize>,
    /// Fail once more than this percentage of all branches failed.
    pub tolerated_failure_percent: Option<f64>,
}

impl Completion {
    /// Every branch must succeed (the default).
    pub fn all() -> Self {
        Completion::default()
    }

    /// Complete once `n` branches succeeded.
    pub fn min_successful(mut self, n: usize) -> Self {
        self.min_successful = Some(n);
        self
    }

    /// Tolerate up to `n` failed branches.
    pub fn tolerated_failures(mut self, n: usize) -> Self {
        self.tolerated_failures = Some(n);
        self
    }

    /// Tolerate failures up to this percentage of all branches.
    pub fn tolerated_failure_percent(mut self, p: f64) -> Self {
        self.tolerated_failure_percent = Some(p);
        self
    }
}

/// Why a batch completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CompletionReason {
    /// Every branch ran to an end within the failure tolerance.
    AllCompleted,
    /// Enough branches succeeded.
    MinSuccessfulReached,
    /// Too many branches failed.
    FailureToleranceExceeded,
}

impl Completion {
    fn failures_tolerated(&self, failed: usize, total: usize) -> bool {
        let by_count = self.tolerated_failures.is_none_or(|n| failed <= n);
        let by_percent = self
            .tolerated_failure_percent
            .is_none_or(|p| total == 0 || (failed as f64) * 100.0 <= p * (total as f64));
        // With no tolerance given at all, no failure is tolerated.
        if self.tolerated_failures.is_none() && self.tolerated_failure_percent.is_none() {
            return failed == 0;
        }
        by_count && by_percent
    }

    /// Whether the batch is complete after `succeeded` and `failed` of
    /// `total` branches have ended (`None`: keep going).
    pub fn check(&self, total: usize, succeeded: usize, failed: usize) -> Option<CompletionReason> {
        if !self.failures_tolerated(failed, total) {
            return Some(CompletionReason::FailureToleranceExceeded);
        }
        if self.min_successful.is_some_and(|n| succeeded >= n) {
            return Some(CompletionReason::MinSuccessfulReached);
        }
        if succeeded + failed >= total {
            return Some(CompletionReason::AllCompleted);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_default_all_must_succeed() {
        let c = Completion::all();
        assert_eq!(c.check(3, 2, 0), None);
        assert_eq!(c.check(3, 3, 0), Some(CompletionReason::AllCompleted));
        assert_eq!(
            c.check(3, 1, 1),
            Some(CompletionReason::FailureToleranceExceeded)
        );
    }

    #[test]
    fn an_empty_batch_is_complete_at_once() {
        assert_eq!(
            Completion::all().check(0, 0, 0),
            Some(CompletionReason::AllCompleted)
        );
        assert_eq!(
            Completion::all()
                .tolerated_failure_percent(0.0)
                .check(0, 0, 0),
            Some(CompletionReason::AllCompleted)
        );
    }

    #[test]
    fn failures_within_tolerance_still_complete() {
        let c = Completion::all().tolerated_failures(2);
        assert_eq!(c.check(3, 1, 2), Some(CompletionReason::AllCompleted));
        assert_eq!(
            c.check(3, 0, 3),
            Some(CompletionReason::FailureToleranceExceeded)
        );
        assert_eq!(
            c.check(2, 0, 2),
            Some(CompletionReason::AllCompleted),
            "all fail within tolerance"
        );
    }

    #[test]
    fn a_failure_percentage_exactly_at_the_threshold_is_tolerated() {
        let c = Completion::all().tolerated_failure_percent(25.0);
        assert_eq!(c.check(4, 3, 1), Some(CompletionReason::AllCompleted));
        assert_eq!(
            c.check(4, 2, 2),
            Some(CompletionReason::FailureToleranceExceeded)
        );
    }

    #[test]
    fn min_successful_completes_early() {
        let c = Completion::all().min_successful(2).tolerated_failures(5);
        assert_eq!(c.check(10, 1, 1), None);
        assert_eq!(
            c.check(10, 2, 1),
            Some(CompletionReason::MinSuccessfulReached)
        );
    }
}
