//! What every benchmark measures with: scratch folders, medians, joins.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::report::Report;

/// The error of a failed measurement: anything, with its message.
pub(crate) type BenchError = Box<dyn std::error::Error + Send + Sync>;

/// The result of a measurement.
pub(crate) type Result<T, E = BenchError> = std::result::Result<T, E>;

/// A fresh scratch folder under [`std::env::temp_dir`], the same parent the
/// SDK's `TestRuntime` uses, so a floor and its figure hit the same
/// filesystem. Deleted when dropped.
pub(crate) fn scratch_dir() -> Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new()
        .prefix("durafn-bench-")
        .tempdir_in(std::env::temp_dir())
        .map_err(|e| {
            format!(
                "cannot create a scratch folder in {}: {e}",
                std::env::temp_dir().display()
            )
        })?;
    Ok(dir)
}

/// The median of `samples` (the mean of the middle two for an even count);
/// `None` for no samples.
pub(crate) fn median(samples: &[f64]) -> Option<f64> {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

/// The `p`-th percentile of `samples` (`0 < p <= 100`), nearest rank: the
/// smallest sample with at least `p` % of the samples at or below it. `None`
/// for no samples.
pub(crate) fn percentile(samples: &[f64], p: f64) -> Option<f64> {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, n) - 1])
}

/// The largest sample over the smallest: how much a floor drifted between
/// rounds. Near 1 on a quiet machine; past [`NOISY_SPREAD`] the figures
/// built on it are not worth quoting.
pub(crate) fn spread(samples: &[f64]) -> f64 {
    let max = samples.iter().copied().fold(f64::NAN, f64::max);
    let min = samples.iter().copied().fold(f64::NAN, f64::min);
    max / min
}

/// The [`spread`] above which a run is flagged as noisy.
pub(crate) const NOISY_SPREAD: f64 = 2.0;

/// Adds a `noisy` note to `topic` when the floor `samples` drifted more
/// than [`NOISY_SPREAD`] between rounds.
pub(crate) fn warn_if_noisy(report: &mut Report, topic: &str, samples: &[f64]) {
    let spread = spread(samples);
    if spread > NOISY_SPREAD {
        report.note(
            topic,
            &format!(
                "noisy: the floor varied {spread:.1}x between rounds (another process is using the disk?); \
                 rerun on a quiet machine before quoting this figure"
            ),
        );
    }
}

/// `d` in microseconds.
pub(crate) fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// `d` in milliseconds.
pub(crate) fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Wall-clock microseconds since the Unix epoch: the clock the benchmark's
/// handler processes stamp their steps with.
pub(crate) fn now_us() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1e6)
}

/// How many CPUs this process may use.
pub(crate) fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// A future being joined, and its output once it has one.
type Slot<F> = (Pin<Box<F>>, Option<<F as Future>::Output>);

/// Runs `futures` concurrently in the current task and returns their outputs
/// in order. For a handful of durable steps; spawn tasks for thousands.
pub(crate) async fn join_all<F: Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut slots: Vec<Slot<F>> = futures.into_iter().map(|f| (Box::pin(f), None)).collect();
    poll_fn(|cx| {
        let mut pending = false;
        for (fut, out) in slots.iter_mut().filter(|(_, out)| out.is_none()) {
            match fut.as_mut().poll(cx) {
                Poll::Ready(v) => *out = Some(v),
                Poll::Pending => pending = true,
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    slots.into_iter().filter_map(|(_, out)| out).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads() {
        assert_eq!(spread(&[2.0, 1.0, 4.0]), 4.0);
        assert!(spread(&[]).is_nan());
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
    }

    #[test]
    fn percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 99.0), Some(99.0));
        assert_eq!(percentile(&v, 100.0), Some(100.0));
        assert_eq!(percentile(&[3.0], 99.0), Some(3.0));
        assert_eq!(percentile(&[2.0, 1.0], 50.0), Some(1.0));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[tokio::test]
    async fn join_all_keeps_order() {
        let outs = join_all((0..5).map(|i| async move {
            tokio::task::yield_now().await;
            i * 2
        }))
        .await;
        assert_eq!(outs, vec![0, 2, 4, 6, 8]);
    }
}
