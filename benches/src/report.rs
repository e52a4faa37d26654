//! How figures are printed: `bench` lines (or JSON lines), `info` lines with
//! the raw numbers, `error` lines for figures that could not be measured.

use std::collections::BTreeSet;

use serde::Serialize;

/// How figures are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// `bench <metric> value=<v> unit=<u> target=<t>` on stdout, with the
    /// `info` and `error` lines.
    Text,
    /// One JSON object per figure on stdout; `info` and `error` lines go to
    /// stderr so that stdout stays machine-readable.
    Json,
}

/// One reported figure.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Figure {
    /// The metric's name, e.g. `step_vs_sqlite_commit`.
    pub(crate) metric: &'static str,
    /// The value (finite and positive).
    pub(crate) value: f64,
    /// Its unit: `ratio`, `ms`, `steps/s`, ...
    pub(crate) unit: &'static str,
    /// The target from DESIGN.md §8; 0 when there is none yet.
    pub(crate) target: f64,
}

/// Collects and prints the figures of one run.
#[derive(Debug)]
pub(crate) struct Report {
    format: Format,
    reported: BTreeSet<&'static str>,
    failures: usize,
}

impl Report {
    /// An empty report printing in `format`.
    pub(crate) fn new(format: Format) -> Self {
        Report {
            format,
            reported: BTreeSet::new(),
            failures: 0,
        }
    }

    /// Prints a figure. A value that is not finite and positive cannot be a
    /// measurement: it is reported as an error instead.
    pub(crate) fn figure(&mut self, fig: Figure) {
        if !fig.value.is_finite() || fig.value <= 0.0 {
            let msg = format!("measured a meaningless value {}", fig.value);
            self.error(fig.metric, &msg);
            return;
        }
        self.reported.insert(fig.metric);
        let fig = Figure {
            value: round_significant(fig.value, 4),
            ..fig
        };
        match self.format {
            Format::Text => println!(
                "bench {} value={} unit={} target={}",
                fig.metric, fig.value, fig.unit, fig.target
            ),
            Format::Json => match serde_json::to_string(&fig) {
                Ok(line) => println!("{line}"),
                Err(e) => self.error(fig.metric, &format!("cannot encode the figure: {e}")),
            },
        }
    }

    /// Prints the raw numbers behind a figure: `info <topic> k=v k=v ...`.
    /// Fields that are not finite (a side that failed) are left out.
    pub(crate) fn info(&mut self, topic: &str, fields: &[(&str, f64)]) {
        let fields: Vec<String> = fields
            .iter()
            .filter(|(_, v)| v.is_finite())
            .map(|(k, v)| format!("{k}={}", round_significant(*v, 5)))
            .collect();
        self.note(topic, &fields.join(" "));
    }

    /// Prints a free-form `info <topic> <text>` line.
    pub(crate) fn note(&mut self, topic: &str, text: &str) {
        self.aside(&format!("info {topic} {text}"));
    }

    /// Reports that `metric` could not be measured; the run will exit non-zero.
    pub(crate) fn error(&mut self, metric: &'static str, message: &str) {
        self.reported.insert(metric);
        self.failures += 1;
        let one_line = message.replace('\n', " ");
        self.aside(&format!("error {metric} {one_line}"));
    }

    /// Reports an error for every metric in `metrics` that has no figure or
    /// error yet (a group that forgot one is a bug in the benchmark).
    pub(crate) fn require(&mut self, metrics: &[&'static str]) {
        for metric in metrics {
            if !self.reported.contains(metric) {
                self.error(
                    metric,
                    "the benchmark reported neither a figure nor an error",
                );
            }
        }
    }

    /// How many figures could not be measured.
    pub(crate) fn failures(&self) -> usize {
        self.failures
    }

    fn aside(&self, line: &str) {
        match self.format {
            Format::Text => println!("{line}"),
            Format::Json => eprintln!("{line}"),
        }
    }
}

/// `v` rounded to `digits` significant digits, so figures print as `1.073`
/// rather than `1.0734523452`.
fn round_significant(v: f64, digits: i32) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    let magnitude = v.abs().log10().floor() as i32;
    let shift = digits - 1 - magnitude;
    // Divide by an exact power of ten rather than multiply by an inexact 0.1.
    if shift >= 0 {
        let scale = 10f64.powi(shift);
        (v * scale).round() / scale
    } else {
        let scale = 10f64.powi(-shift);
        (v / scale).round() * scale
    }
}

#[cfg(test)]
mod tests {
    use super::round_significant;

    #[test]
    fn rounds_to_significant_digits() {
        assert_eq!(round_significant(1.073_452, 4), 1.073);
        assert_eq!(round_significant(12_345.6, 4), 12_350.0);
        assert_eq!(round_significant(0.000_123_456, 3), 0.000_123);
    }
}
