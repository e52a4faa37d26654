//! OpenTelemetry traces: one trace per execution, a span per invocation and
//! per operation attempt, exported over OTLP/HTTP (protobuf) when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
//!
//! An execution's spans come from many short-lived invocations, often in
//! different processes, so no in-memory span can be the parent of all of
//! them. The ids are derived instead:
//! - the **trace id** is a hash of the *root* execution id (an invoked child
//!   `<parent>::<op id>` shares its root's trace), so every invocation of an
//!   execution and of its children lands in one trace without carrying
//!   context anywhere;
//! - the **execution span** (`durafn.execution`) has a span id derived from
//!   the execution id; it is exported once, by the invocation that ends the
//!   execution, spanning from its creation to its end;
//! - an **invocation span** (`durafn.invocation`) is a child of the execution
//!   span; its operation-attempt spans (`durafn.step`, `durafn.sleep`, ...)
//!   are its children. Only operations this invocation runs or records get a
//!   span: a replayed operation returns its recorded outcome and emits none;
//! - an **invoke** operation's span id is derived from the parent execution
//!   and the op id, and the child's execution span names it as its parent:
//!   that is how the trace crosses `ctx.invoke`.
//!
//! On AWS, Lambda's X-Ray trace header (`_X_AMZN_TRACE_ID`, from
//! `Lambda-Runtime-Trace-Id`) is attached to each invocation span as the
//! attribute `aws.xray.trace_id` and as a span link to that X-Ray trace.
//!
//! Spans are collected during the invocation and exported before it returns
//! (Lambda freezes the process after that), so nothing waits in a
//! background batch.

use std::borrow::Cow;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use durafn_runtime::model::{Execution, ExecutionId, OpKind, OpStatus, Operation, Timestamp};
use opentelemetry::trace::{
    Link, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanExporter as _, SpanLinks};
use sha2::{Digest, Sha256};

/// The environment variable that turns exporting on.
pub const ENDPOINT_ENV: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

/// How long one export may take before the invocation gives up on it.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

static EXPORTER: OnceLock<Option<opentelemetry_otlp::SpanExporter>> = OnceLock::new();

/// The exporter, built on first use from the environment (`None`: tracing off).
fn exporter() -> Option<&'static opentelemetry_otlp::SpanExporter> {
    EXPORTER
        .get_or_init(|| {
            let endpoint = std::env::var(ENDPOINT_ENV).ok().filter(|e| !e.is_empty())?;
            let client = opentelemetry_http::hyper::HyperClient::with_default_connector(
                EXPORT_TIMEOUT,
                None,
            );
            let built = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(Protocol::HttpBinary)
                .with_http_client(client)
                .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
                .with_timeout(EXPORT_TIMEOUT)
                .build();
            match built {
                Ok(mut e) => {
                    let service = std::env::var("OTEL_SERVICE_NAME")
                        .or_else(|_| std::env::var("AWS_LAMBDA_FUNCTION_NAME"))
                        .unwrap_or_else(|_| "durafn".into());
                    e.set_resource(&Resource::builder().with_service_name(service).build());
                    Some(e)
                }
                Err(err) => {
                    tracing::warn!(error = %err, endpoint, "cannot export traces over OTLP");
                    None
                }
            }
        })
        .as_ref()
}

fn digest(parts: &[&str]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    h.finalize().into()
}

/// The root of an invoked child's id (`a::1::2` → `a`).
fn root_of(id: &str) -> &str {
    let mut root = id;
    while let Some(parent) = ExecutionId::new(root)
        .ok()
        .and_then(|e| crate::context::parent_of(&e))
    {
        let cut = parent.as_str().len();
        root = &root[..cut];
    }
    root
}

/// The trace id of an execution: derived from its root execution's id.
pub fn trace_id(execution: &str) -> TraceId {
    let d = digest(&["durafn-trace", root_of(execution)]);
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    TraceId::from_bytes(b)
}

/// The span id of an execution's own span.
pub fn execution_span_id(execution: &str) -> SpanId {
    span_id_of(&["durafn-execution", execution])
}

/// The span id of an operation's span where it must be known elsewhere
/// (an invoke: its child execution's span names it as the parent).
pub fn operation_span_id(execution: &str, op_id: &str) -> SpanId {
    span_id_of(&["durafn-operation", execution, op_id])
}

fn span_id_of(parts: &[&str]) -> SpanId {
    let d = digest(parts);
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    SpanId::from_bytes(b)
}

fn random_span_id() -> SpanId {
    SpanId::from_bytes(rand::random::<u64>().max(1).to_be_bytes())
}

fn system_time(t: Timestamp) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(t.0).unwrap_or(0))
}

/// `Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1`
/// as a span context (X-Ray ids are W3C ids with dashes).
fn xray_context(header: &str) -> Option<SpanContext> {
    let mut trace = None;
    let mut parent = None;
    for part in header.split(';') {
        match part.trim().split_once('=') {
            Some(("Root", v)) => trace = Some(v.strip_prefix("1-")?.replace('-', "")),
            Some(("Parent", v)) => parent = Some(v.to_string()),
            _ => {}
        }
    }
    let trace = TraceId::from_hex(&trace?).ok()?;
    let span = parent
        .and_then(|p| SpanId::from_hex(&p).ok())
        .unwrap_or(SpanId::INVALID);
    Some(SpanContext::new(
        trace,
        span,
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    ))
}

/// What one operation attempt did, for its span.
pub(crate) struct AttemptSpan<'a> {
    pub(crate) op_id: &'a str,
    pub(crate) name: &'a str,
    pub(crate) kind: OpKind,
    pub(crate) attempt: u32,
    pub(crate) start: Timestamp,
    pub(crate) end: Timestamp,
    /// `succeeded`, `failed`, `retrying`, `timed_out`, ...
    pub(crate) outcome: &'a str,
    pub(crate) error: Option<String>,
}

/// The spans of one invocation, exported when it ends.
pub(crate) struct InvocationTrace {
    execution_id: String,
    function: String,
    version: String,
    epoch: u64,
    created_at: Timestamp,
    start: Timestamp,
    trace_id: TraceId,
    span_id: SpanId,
    xray: Option<String>,
    spans: Mutex<Vec<SpanData>>,
}

impl std::fmt::Debug for InvocationTrace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InvocationTrace")
            .field("execution_id", &self.execution_id)
            .field("span_id", &self.span_id)
            .finish()
    }
}

impl InvocationTrace {
    /// A trace for an invocation of `execution` starting at `now`, if
    /// exporting is on.
    pub(crate) fn begin(execution: &Execution, now: Timestamp) -> Option<InvocationTrace> {
        exporter()?;
        Some(Self::new(execution, now))
    }

    fn new(execution: &Execution, now: Timestamp) -> InvocationTrace {
        let id = execution.id.as_str();
        InvocationTrace {
            execution_id: id.to_string(),
            function: execution.function.clone(),
            version: execution.version.clone(),
            epoch: execution.epoch,
            created_at: execution.created_at,
            start: now,
            trace_id: trace_id(id),
            span_id: random_span_id(),
            xray: std::env::var("_X_AMZN_TRACE_ID").ok(),
            spans: Mutex::new(Vec::new()),
        }
    }

    fn common(&self) -> Vec<KeyValue> {
        vec![
            KeyValue::new("durafn.execution_id", self.execution_id.clone()),
            KeyValue::new("durafn.function", self.function.clone()),
            KeyValue::new("durafn.version", self.version.clone()),
        ]
    }

    fn push(&self, span: SpanData) {
        self.spans
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(span);
    }

    #[allow(clippy::too_many_arguments)]
    fn span(
        &self,
        name: impl Into<Cow<'static, str>>,
        span_id: SpanId,
        parent: SpanId,
        start: Timestamp,
        end: Timestamp,
        attributes: Vec<KeyValue>,
        links: Vec<Link>,
        error: Option<String>,
    ) -> SpanData {
        SpanData {
            span_context: SpanContext::new(
                self.trace_id,
                span_id,
                TraceFlags::SAMPLED,
                false,
                TraceState::default(),
            ),
            parent_span_id: parent,
            parent_span_is_remote: true,
            span_kind: SpanKind::Internal,
            name: name.into(),
            start_time: system_time(start),
            end_time: system_time(end.max(start)),
            attributes,
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: {
                let mut l = SpanLinks::default();
                l.links = links;
                l
            },
            status: match error {
                Some(e) => Status::error(e),
                None => Status::Unset,
            },
            instrumentation_scope: InstrumentationScope::builder("durafn").build(),
        }
    }

    /// Records the span of one attempt this invocation ran (never a replay).
    pub(crate) fn attempt(&self, a: AttemptSpan<'_>) {
        let span_id = if a.kind == OpKind::Invoke {
            operation_span_id(&self.execution_id, a.op_id)
        } else {
            random_span_id()
        };
        let mut attributes = self.common();
        attributes.extend([
            KeyValue::new("durafn.op_id", a.op_id.to_string()),
            KeyValue::new("durafn.op_name", a.name.to_string()),
            KeyValue::new("durafn.op_type", a.kind.as_str().to_string()),
            KeyValue::new("durafn.attempt", i64::from(a.attempt)),
            KeyValue::new("durafn.outcome", a.outcome.to_string()),
        ]);
        let span = self.span(
            format!("durafn.{}", a.kind.as_str().to_ascii_lowercase()),
            span_id,
            self.span_id,
            a.start,
            a.end,
            attributes,
            Vec::new(),
            a.error,
        );
        self.push(span);
    }

    /// Records the span of a non-step operation whose record this invocation
    /// wrote as final (a sleep that fired, a callback that completed, ...).
    pub(crate) fn operation(&self, op: &Operation, now: Timestamp) {
        if op.kind == OpKind::Step || !op.status.is_final() {
            return;
        }
        let outcome = match op.status {
            OpStatus::Succeeded => "succeeded",
            OpStatus::Failed => "failed",
            OpStatus::TimedOut => "timed_out",
            OpStatus::Cancelled => "cancelled",
            _ => "ended",
        };
        self.attempt(AttemptSpan {
            op_id: &op.id,
            name: &op.name,
            kind: op.kind,
            attempt: op.attempt.max(1),
            start: op.started_at,
            end: op.ended_at.unwrap_or(now),
            outcome,
            error: op.error.as_ref().map(|e| e.to_string()),
        });
    }

    /// Ends the invocation (`status`: how it ended; `finished`: whether the
    /// execution itself ended) and exports its spans.
    pub(crate) async fn end(&self, status: &str, finished: bool, now: Timestamp) {
        let spans = self.finish(status, finished, now);
        let Some(exporter) = exporter() else { return };
        let n = spans.len();
        match tokio::time::timeout(EXPORT_TIMEOUT, exporter.export(spans)).await {
            Ok(Ok(())) => tracing::debug!(spans = n, "exported the invocation's spans"),
            Ok(Err(e)) => tracing::warn!(error = %e, "could not export the invocation's spans"),
            Err(_) => tracing::warn!("exporting the invocation's spans timed out"),
        }
    }

    /// Adds the invocation span (and the execution span when it ended) and
    /// returns every span of the invocation.
    fn finish(&self, status: &str, finished: bool, now: Timestamp) -> Vec<SpanData> {
        let execution_span = execution_span_id(&self.execution_id);
        let mut attributes = self.common();
        attributes.push(KeyValue::new("durafn.epoch", self.epoch as i64));
        attributes.push(KeyValue::new("durafn.outcome", status.to_string()));
        let mut links = Vec::new();
        if let Some(xray) = &self.xray {
            attributes.push(KeyValue::new("aws.xray.trace_id", xray.clone()));
            if let Some(cx) = xray_context(xray) {
                links.push(Link::with_context(cx));
            }
        }
        let failed = matches!(status, "FAILED" | "BLOCKED" | "TIMED_OUT");
        let invocation = self.span(
            "durafn.invocation",
            self.span_id,
            execution_span,
            self.start,
            now,
            attributes,
            links,
            failed.then(|| status.to_string()),
        );
        let mut extra = vec![invocation];
        if finished {
            let mut attributes = self.common();
            attributes.push(KeyValue::new("durafn.outcome", status.to_string()));
            let parent = ExecutionId::new(self.execution_id.as_str())
                .ok()
                .and_then(|id| crate::context::parent_of(&id))
                .and_then(|p| {
                    let op = self.execution_id[p.as_str().len() + 2..]
                        .split(':')
                        .next()?
                        .to_string();
                    Some(operation_span_id(p.as_str(), &op))
                })
                .unwrap_or(SpanId::INVALID);
            let span = self.span(
                format!("durafn.execution {}", self.function),
                execution_span,
                parent,
                self.created_at,
                now,
                attributes,
                Vec::new(),
                failed.then(|| status.to_string()),
            );
            extra.push(span);
        }
        let mut spans = std::mem::take(&mut *self.spans.lock().unwrap_or_else(|p| p.into_inner()));
        spans.extend(extra);
        spans
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn children_share_their_root_s_trace() {
        assert_eq!(root_of("order-1::3"), "order-1");
        assert_eq!(root_of("order-1::3::2.1"), "order-1");
        assert_eq!(root_of("plain"), "plain");
        assert_eq!(trace_id("order-1::3::2"), trace_id("order-1"));
        assert_ne!(trace_id("order-1"), trace_id("order-2"));
        assert_ne!(execution_span_id("a"), execution_span_id("a::1"));
    }

    #[test]
    fn xray_headers_become_span_contexts() {
        let cx = xray_context(
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        )
        .unwrap();
        assert_eq!(
            cx.trace_id(),
            TraceId::from_hex("5759e988bd862e3fe1be46a994272793").unwrap()
        );
        assert_eq!(cx.span_id(), SpanId::from_hex("53995c3f42cd8ad8").unwrap());
        assert!(xray_context("nonsense").is_none());
    }

    #[test]
    fn a_finished_child_s_execution_span_hangs_under_the_parent_s_invoke() {
        let exec = Execution {
            id: ExecutionId::new("p::2").unwrap(),
            function: "child".into(),
            version: "$LATEST".into(),
            status: durafn_runtime::model::ExecutionStatus::Running,
            input: serde_json::Value::Null,
            output: None,
            error: None,
            epoch: 1,
            wakeups: 0,
            due_at: None,
            created_at: Timestamp(1_000),
            updated_at: Timestamp(1_000),
            ended_at: None,
            expires_at: None,
            paused: false,
            priority: durafn_runtime::model::DEFAULT_PRIORITY,
            fairness_key: None,
            seed: String::new(),
        };
        let t = InvocationTrace::new(&exec, Timestamp(2_000));
        let spans = t.finish("SUCCEEDED", true, Timestamp(3_000));
        assert_eq!(spans.len(), 2);
        let execution = &spans[1];
        assert_eq!(execution.parent_span_id, operation_span_id("p", "2"));
        assert_eq!(execution.span_context.trace_id(), trace_id("p"));
        assert_eq!(spans[0].parent_span_id, execution.span_context.span_id());
    }
}
