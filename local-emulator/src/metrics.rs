//! `/metrics`: the platform's Prometheus metrics.
//!
//! Every instrumentation point uses the `metrics` crate's global macros
//! (`metrics::counter!`, `gauge!`, `histogram!`); this module installs the
//! process's recorder (`metrics-exporter-prometheus`), which renders them in
//! the Prometheus text format. What is measured is listed, with its labels,
//! in `docs/operations.md`. Gauges that describe the store (the due backlog,
//! queue depths) are read when `/metrics` is scraped ([`scrape`]).

use std::collections::BTreeSet;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use durafn_runtime::clock::Clock;
use durafn_runtime::model::{DUE_SHARDS, Timestamp};
use durafn_runtime::store::{InnerCall, Store, Wrapper};
use durafn_runtime::trigger::schedule::TickReport;
use metrics::{
    Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::lambda_api::InvokeFailure;

/// How many due entries a scrape reads per shard at most (the backlog
/// gauge saturates there).
pub(crate) const BACKLOG_SCAN_LIMIT: usize = 1000;

/// Latency buckets (seconds) for store calls and steps.
const LATENCY_BUCKETS: &[f64] = &[
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 300.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
static QUEUES: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// Names the template's queues, so scrapes report their depths.
pub(crate) fn register_queues(names: &[String]) {
    QUEUES
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .extend(names.iter().cloned());
}

/// The process's Prometheus recorder, installed on first use. If another
/// recorder is installed already, a private one renders (empty) output.
pub(crate) fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let builder = || {
            PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .unwrap_or_else(|_| PrometheusBuilder::new())
        };
        let handle = match builder().install_recorder() {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(error = %e, "a metrics recorder is installed already; /metrics shows only its own");
                builder().build_recorder().handle()
            }
        };
        describe();
        handle
    })
}

fn describe() {
    describe_counter!(
        "durafn_executions_started_total",
        "Executions started, by function and by what started them (api, schedule)."
    );
    describe_counter!(
        "durafn_executions_finished_total",
        "Executions that ended, by function and final status."
    );
    describe_counter!(
        "durafn_invocations_total",
        "Handler invocations, by function and outcome."
    );
    describe_histogram!(
        "durafn_invocation_duration_seconds",
        Unit::Seconds,
        "Duration of handler invocations through the emulator, by function."
    );
    describe_histogram!(
        "durafn_step_duration_seconds",
        Unit::Seconds,
        "Duration of step attempts run by handler processes, by function and outcome."
    );
    describe_gauge!(
        "durafn_due_backlog",
        "Executions due now and not yet claimed, per due-index shard (read at scrape)."
    );
    describe_gauge!(
        "durafn_due_oldest_age_seconds",
        Unit::Seconds,
        "How long the oldest due entry of each shard has been due (read at scrape)."
    );
    describe_counter!(
        "durafn_lease_expiries_total",
        "Claims of executions whose previous invocation's lease expired."
    );
    describe_histogram!(
        "durafn_store_call_duration_seconds",
        Unit::Seconds,
        "Store call latency, by backend and method."
    );
    describe_counter!(
        "durafn_store_requests_total",
        "Requests to the store route from handler processes (one per round trip; a request may carry deferred history records beside its call)."
    );
    describe_counter!(
        "durafn_store_errors_total",
        "Store calls that failed, by backend and method."
    );
    describe_gauge!(
        "durafn_queue_messages",
        "Messages of each template queue, by state (visible, in_flight, delayed; read at scrape)."
    );
    describe_histogram!(
        "durafn_schedule_fire_lateness_seconds",
        Unit::Seconds,
        "How late each schedule fire started its execution, by schedule."
    );
    describe_counter!(
        "durafn_api_errors_total",
        "REST API requests answered with an error status."
    );
    describe_counter!(
        "durafn_log_lines_total",
        "Handler log lines captured per execution, by function."
    );
}

/// Renders every metric in the Prometheus text format.
pub(crate) fn render() -> String {
    handle().render()
}

/// Reads the gauges that describe the store: the due backlog and its oldest
/// age per shard and the depth of every
/// registered queue.
pub(crate) async fn scrape(store: &dyn Store, clock: &dyn Clock) {
    handle();
    let now = clock.now();
    for shard in 0..DUE_SHARDS {
        let label = format!("{shard:02}");
        match store.due(shard, now, BACKLOG_SCAN_LIMIT).await {
            Ok(due) => {
                let oldest = due.iter().map(|d| d.due_at).min();
                gauge!("durafn_due_backlog", "shard" => label.clone()).set(due.len() as f64);
                gauge!("durafn_due_oldest_age_seconds", "shard" => label)
                    .set(oldest.map_or(0.0, |t| seconds_between(t, now)));
            }
            Err(e) => tracing::warn!(shard, error = %e, "cannot read the due index for /metrics"),
        }
    }
    let queues: Vec<String> = QUEUES
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .cloned()
        .collect();
    for queue in queues {
        match store.queue_stats(&queue, now).await {
            Ok(s) => queue_depth(&queue, s.visible, s.in_flight, s.delayed),
            Err(e) => {
                tracing::warn!(queue, error = %e, "cannot read a queue's counts for /metrics")
            }
        }
    }
}

/// Sets a queue's depth gauges.
pub(crate) fn queue_depth(queue: &str, visible: u64, in_flight: u64, delayed: u64) {
    for (state, n) in [
        ("visible", visible),
        ("in_flight", in_flight),
        ("delayed", delayed),
    ] {
        gauge!("durafn_queue_messages", "queue" => queue.to_string(), "state" => state)
            .set(n as f64);
    }
}

fn seconds_between(from: Timestamp, to: Timestamp) -> f64 {
    (to.0 - from.0).max(0) as f64 / 1000.0
}

/// Counts an execution started by `via` (`api`, `schedule`).
pub(crate) fn execution_started(function: &str, via: &'static str) {
    counter!("durafn_executions_started_total", "function" => function.to_string(), "via" => via)
        .increment(1);
}

/// Counts one invocation's outcome (its report's status, or how it failed);
/// a final status also counts a finished execution.
pub(crate) fn invocation(function: &str, outcome: &str) {
    counter!("durafn_invocations_total", "function" => function.to_string(), "outcome" => outcome.to_string())
        .increment(1);
    if matches!(outcome, "SUCCEEDED" | "FAILED" | "CANCELLED" | "TIMED_OUT") {
        counter!("durafn_executions_finished_total", "function" => function.to_string(), "status" => outcome.to_string())
            .increment(1);
    }
}

/// Counts a handler invocation's answer: the status of the report it
/// returned (also inside an HTTP response), `response` for other payloads,
/// or how it failed; records its duration.
pub(crate) fn invocation_answer(
    function: &str,
    answer: &Result<bytes::Bytes, InvokeFailure>,
    took: std::time::Duration,
) {
    let outcome = match answer {
        Ok(body) => report_status(body).unwrap_or_else(|| "response".into()),
        Err(InvokeFailure::FunctionError { .. }) => "function_error".into(),
        Err(InvokeFailure::ProcessExited(_)) => "crashed".into(),
        Err(InvokeFailure::TimedOut(_)) => "timed_out".into(),
        Err(InvokeFailure::InitFailed(_)) => "init_failed".into(),
        Err(InvokeFailure::NoCapacity(_)) => "no_capacity".into(),
    };
    histogram!("durafn_invocation_duration_seconds", "function" => function.to_string())
        .record(took.as_secs_f64());
    invocation(function, &outcome);
}

/// The `status` of an invocation report, directly or as an HTTP response's body.
fn report_status(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let report = match v.get("body").and_then(|b| b.as_str()) {
        Some(inner) if v.get("statusCode").is_some() => serde_json::from_str(inner).ok()?,
        _ => v,
    };
    report.get("execution_id")?;
    report.get("status")?.as_str().map(str::to_string)
}

/// Records one step attempt's duration.
pub(crate) fn step_attempt(function: &str, outcome: &str, millis: u64) {
    histogram!("durafn_step_duration_seconds", "function" => function.to_string(), "outcome" => outcome.to_string())
        .record(millis as f64 / 1000.0);
}

/// Records the lateness (as of `now`) of the fires a scheduler tick made;
/// passes the tick's result through (so the scheduler loop wraps its call in it).
pub(crate) fn observe_tick<E>(
    tick: Result<TickReport, E>,
    now: Timestamp,
) -> Result<TickReport, E> {
    if let Ok(report) = &tick {
        for fired in report.fired.iter().filter(|f| f.new) {
            histogram!("durafn_schedule_fire_lateness_seconds", "schedule" => fired.schedule.clone())
                .record(seconds_between(fired.fire_at, now));
        }
    }
    tick
}

/// A store that measures every call: latency and errors by backend and
/// method (the emulator wraps its store in it, so handler processes' calls
/// through the store over HTTP are measured too).
pub(crate) struct MeteredStore {
    inner: std::sync::Arc<dyn Store>,
}

impl MeteredStore {
    /// Measures `inner`.
    pub(crate) fn new(inner: std::sync::Arc<dyn Store>) -> MeteredStore {
        handle();
        MeteredStore { inner }
    }
}

/// `store`, measured (see [`MeteredStore`]).
pub(crate) fn metered(store: std::sync::Arc<dyn Store>) -> std::sync::Arc<dyn Store> {
    std::sync::Arc::new(MeteredStore::new(store))
}

impl Wrapper for MeteredStore {
    fn inner(&self) -> &dyn Store {
        &*self.inner
    }

    async fn around<'a, T, F>(
        &'a self,
        what: &'static str,
        mut call: F,
    ) -> durafn_runtime::Result<T>
    where
        T: Send + 'a,
        F: FnMut() -> InnerCall<'a, T> + Send + 'a,
    {
        let backend = self.inner.backend();
        let started = Instant::now();
        let result = call().await;
        histogram!("durafn_store_call_duration_seconds", "backend" => backend, "method" => what)
            .record(started.elapsed().as_secs_f64());
        if result.is_err() {
            counter!("durafn_store_errors_total", "backend" => backend, "method" => what)
                .increment(1);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use durafn_runtime::model::ExecutionId;
    use durafn_runtime::trigger::schedule::FireOutcome;

    use super::*;

    fn sample(text: &str, prefix: &str) -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    #[test]
    fn late_fires_queue_depths_and_reports_are_recorded() {
        handle();
        let fire_at = Timestamp(durafn_runtime::clock::SystemClock.now().0 - 1_500);
        let report = TickReport {
            fired: vec![FireOutcome {
                schedule: "metrics-test".into(),
                fire_at,
                execution_id: ExecutionId::new("metrics-test:1").unwrap(),
                new: true,
            }],
            skipped: 0,
            errors: 0,
        };
        assert!(observe_tick::<()>(Ok(report), durafn_runtime::clock::SystemClock.now()).is_ok());
        queue_depth("metrics-q", 3, 1, 0);
        invocation("metrics-fn", "SUCCEEDED");
        assert_eq!(
            report_status(br#"{"statusCode": 202, "body": "{\"execution_id\": \"x\", \"status\": \"SUSPENDED\"}"}"#)
                .as_deref(),
            Some("SUSPENDED")
        );
        assert_eq!(report_status(b"[1]"), None);
        let text = render();
        let late = sample(
            &text,
            "durafn_schedule_fire_lateness_seconds_sum{schedule=\"metrics-test\"}",
        )
        .unwrap();
        assert!((1.4..60.0).contains(&late), "{late}");
        assert_eq!(
            sample(
                &text,
                "durafn_queue_messages{queue=\"metrics-q\",state=\"visible\"}"
            ),
            Some(3.0)
        );
        assert_eq!(
            sample(
                &text,
                "durafn_executions_finished_total{function=\"metrics-fn\",status=\"SUCCEEDED\"}"
            ),
            Some(1.0)
        );
    }
}
