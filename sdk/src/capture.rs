//! Per-execution log capture: `ctx.logger()` lines and `tracing` events a
//! handler emits during an invocation, tagged with the execution, the
//! invocation's epoch, and the step attempt they happened in (op id and
//! attempt), written to stdout as one JSON line each
//! (`@@durafn {"kind": "log", ...}`), where the emulator reads them
//! (`durafn logs ID`). On only when `DURAFN_LOG_CAPTURE=stdout` (the emulator
//! sets it for its handler processes).
//!
//! Each line carries a key that is the same on every replay: inside a step
//! attempt `(op id, attempt, n-th line of that attempt)`; elsewhere
//! `(last operation created, n-th line since)`. Code outside steps runs again
//! on every replay, so the reader keeps the first line of each key and drops
//! the replays' copies. Attempts also report their duration
//! (`{"kind": "attempt", ...}`) for the step latency histogram.
//!
//! Capture is a `tracing` subscriber set as the default while the handler
//! future is polled; it forwards everything to the subscriber that was the
//! default before (the handler binary's own, e.g. `tracing_subscriber::fmt`),
//! so the binary's own output is unchanged.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::ThreadId;

use serde_json::{Value, json};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Dispatch, Event, Level, Metadata, Subscriber};
use tracing_core::span::Current;

use crate::context::Shared;

/// The prefix of every captured line on stdout.
pub(crate) const LINE_PREFIX: &str = "@@durafn ";

/// The environment variable that turns capture on (`stdout`).
pub(crate) const CAPTURE_ENV: &str = "DURAFN_LOG_CAPTURE";

/// The most detailed level captured (`DURAFN_LOG_LEVEL`, default `info`).
fn capture_level() -> Level {
    static LEVEL: OnceLock<Level> = OnceLock::new();
    *LEVEL.get_or_init(|| {
        std::env::var("DURAFN_LOG_LEVEL")
            .ok()
            .and_then(|l| l.parse().ok())
            .unwrap_or(Level::INFO)
    })
}

/// True when captured lines go to stdout.
pub(crate) fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var(CAPTURE_ENV).is_ok_and(|v| v == "stdout"))
}

/// Writes one captured record as a line (one write, so lines never interleave).
pub(crate) fn emit(record: &Value) {
    let mut line = String::with_capacity(256);
    line.push_str(LINE_PREFIX);
    line.push_str(&record.to_string());
    line.push('\n');
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(line.as_bytes());
    let _ = out.flush();
}

/// Reports one step attempt's duration and outcome.
pub(crate) fn attempt(
    shared: &Shared,
    op_id: &str,
    name: &str,
    attempt: u32,
    outcome: &str,
    millis: i64,
) {
    if !enabled() {
        return;
    }
    emit(&json!({
        "kind": "attempt",
        "execution_id": shared.execution_id.as_str(),
        "op_id": op_id,
        "name": name,
        "attempt": attempt,
        "outcome": outcome,
        "ms": millis.max(0),
    }));
}

/// Where the handler is outside steps: the last operation it created and
/// how many lines it logged since.
#[derive(Debug, Default)]
pub(crate) struct Position {
    after_op: String,
    lines: u32,
}

impl Position {
    /// An operation was created: lines from now on count from it.
    pub(crate) fn opened(&mut self, op_id: &str) {
        self.after_op.clear();
        self.after_op.push_str(op_id);
        self.lines = 0;
    }
}

/// The subscriber that captures an invocation's events (see the module docs).
pub(crate) struct Capture {
    inner: Dispatch,
    shared: Arc<Shared>,
    epoch: u64,
    next_id: AtomicU64,
    spans: Mutex<HashMap<u64, SpanEntry>>,
    stacks: Mutex<HashMap<ThreadId, Vec<u64>>>,
    attempt_lines: Mutex<HashMap<(String, u32), u32>>,
}

struct SpanEntry {
    inner: Option<Id>,
    meta: &'static Metadata<'static>,
    /// The step attempt this span is (or runs inside).
    attempt: Option<(String, u32)>,
    refs: usize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Capture {
    /// A capture for one invocation, forwarding to the current default.
    pub(crate) fn dispatch(shared: Arc<Shared>, epoch: u64) -> Dispatch {
        let inner = tracing::dispatcher::get_default(Dispatch::clone);
        Dispatch::new(Capture {
            inner,
            shared,
            epoch,
            next_id: AtomicU64::new(1),
            spans: Mutex::new(HashMap::new()),
            stacks: Mutex::new(HashMap::new()),
            attempt_lines: Mutex::new(HashMap::new()),
        })
    }

    fn captures(meta: &Metadata<'_>) -> bool {
        if !meta.is_event() || *meta.level() > capture_level() {
            return false;
        }
        let target = meta.target();
        // The SDK's own events are not the handler's logs, except the
        // replay-aware logger's.
        !(target.starts_with("durafn") || target.starts_with("lambda_runtime"))
            || target == "durafn::context::deterministic"
    }

    fn current(&self) -> Option<u64> {
        lock(&self.stacks)
            .get(&std::thread::current().id())
            .and_then(|s| s.last().copied())
    }

    fn inner_id(&self, id: &Id) -> Option<Id> {
        lock(&self.spans)
            .get(&id.into_u64())
            .and_then(|e| e.inner.clone())
    }

    fn attempt_of(&self, span: Option<u64>) -> Option<(String, u32)> {
        span.and_then(|s| lock(&self.spans).get(&s).and_then(|e| e.attempt.clone()))
    }

    fn capture(&self, event: &Event<'_>) {
        let span = match event.parent() {
            Some(p) => Some(p.into_u64()),
            None if event.is_contextual() => self.current(),
            None => None,
        };
        let attempt = self.attempt_of(span);
        let mut v = Fields::default();
        event.record(&mut v);
        let (key, op_id, attempt_no) = match &attempt {
            Some((op, n)) => {
                let mut lines = lock(&self.attempt_lines);
                let seq = lines.entry((op.clone(), *n)).or_insert(0);
                *seq += 1;
                (format!("a:{op}:{n}:{seq}"), Some(op.clone()), Some(*n))
            }
            None => {
                let mut pos = self.shared.position();
                pos.lines += 1;
                (format!("p:{}:{}", pos.after_op, pos.lines), None, None)
            }
        };
        emit(&json!({
            "kind": "log",
            "execution_id": self.shared.execution_id.as_str(),
            "epoch": self.epoch,
            "key": key,
            "op_id": op_id,
            "attempt": attempt_no,
            "time": self.shared.clock.now().0,
            "level": event.metadata().level().as_str(),
            "target": event.metadata().target(),
            "message": v.finish(),
        }));
    }
}

/// An event's fields as one line: the message, then `key=value` pairs.
#[derive(Default)]
struct Fields {
    text: String,
    rest: String,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.text, "{value:?}");
        } else {
            let _ = write!(self.rest, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.text.push_str(value);
        } else {
            let _ = write!(self.rest, " {}={value}", field.name());
        }
    }
}

impl Fields {
    fn finish(self) -> String {
        let mut text = self.text;
        text.push_str(&self.rest);
        text
    }
}

/// The attempt an `attempt` span of the SDK names (its `op_id` and `attempt` fields).
#[derive(Default)]
struct AttemptFields {
    op_id: Option<String>,
    attempt: Option<u32>,
}

impl Visit for AttemptFields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "op_id" {
            self.op_id = Some(format!("{value:?}"));
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "op_id" {
            self.op_id = Some(value.to_string());
        }
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "attempt" {
            self.attempt = u32::try_from(value).ok();
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        if field.name() == "attempt" {
            self.attempt = u32::try_from(value).ok();
        }
    }
}

impl Subscriber for Capture {
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        let inner = self.inner.register_callsite(meta);
        if inner.is_always() {
            inner
        } else {
            Interest::sometimes()
        }
    }

    fn enabled(&self, meta: &Metadata<'_>) -> bool {
        // Every span, to know which attempt an event runs in.
        meta.is_span() || Self::captures(meta) || self.inner.enabled(meta)
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        None
    }

    fn new_span(&self, attrs: &Attributes<'_>) -> Id {
        let meta = attrs.metadata();
        let parent = match attrs.parent() {
            Some(p) => Some(p.into_u64()),
            None if attrs.is_contextual() => self.current(),
            None => None,
        };
        let attempt = if meta.name() == "attempt" && meta.target().starts_with("durafn") {
            let mut f = AttemptFields::default();
            attrs.record(&mut f);
            f.op_id.zip(f.attempt)
        } else {
            self.attempt_of(parent)
        };
        let inner = self.inner.enabled(meta).then(|| match attrs.parent() {
            Some(p) => match self.inner_id(p) {
                Some(ip) => self
                    .inner
                    .new_span(&Attributes::child_of(ip, meta, attrs.values())),
                None => self
                    .inner
                    .new_span(&Attributes::new_root(meta, attrs.values())),
            },
            None => self.inner.new_span(attrs),
        });
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        lock(&self.spans).insert(
            id,
            SpanEntry {
                inner,
                meta,
                attempt,
                refs: 1,
            },
        );
        Id::from_u64(id)
    }

    fn record(&self, span: &Id, values: &Record<'_>) {
        if let Some(i) = self.inner_id(span) {
            self.inner.record(&i, values);
        }
    }

    fn record_follows_from(&self, span: &Id, follows: &Id) {
        if let (Some(a), Some(b)) = (self.inner_id(span), self.inner_id(follows)) {
            self.inner.record_follows_from(&a, &b);
        }
    }

    fn event(&self, event: &Event<'_>) {
        if Self::captures(event.metadata()) {
            self.capture(event);
        }
        // Explicit parents are this subscriber's ids, unknown to the inner one.
        if event.parent().is_none() && self.inner.enabled(event.metadata()) {
            self.inner.event(event);
        }
    }

    fn enter(&self, span: &Id) {
        lock(&self.stacks)
            .entry(std::thread::current().id())
            .or_default()
            .push(span.into_u64());
        if let Some(i) = self.inner_id(span) {
            self.inner.enter(&i);
        }
    }

    fn exit(&self, span: &Id) {
        if let Some(i) = self.inner_id(span) {
            self.inner.exit(&i);
        }
        let mut stacks = lock(&self.stacks);
        let tid = std::thread::current().id();
        if let Some(stack) = stacks.get_mut(&tid) {
            if let Some(pos) = stack.iter().rposition(|s| *s == span.into_u64()) {
                stack.remove(pos);
            }
            if stack.is_empty() {
                stacks.remove(&tid);
            }
        }
    }

    fn clone_span(&self, span: &Id) -> Id {
        let inner = {
            let mut spans = lock(&self.spans);
            spans.get_mut(&span.into_u64()).and_then(|e| {
                e.refs += 1;
                e.inner.clone()
            })
        };
        if let Some(i) = inner {
            self.inner.clone_span(&i);
        }
        span.clone()
    }

    fn try_close(&self, span: Id) -> bool {
        let (inner, closed) = {
            let mut spans = lock(&self.spans);
            let key = span.into_u64();
            match spans.get_mut(&key) {
                Some(e) => {
                    e.refs = e.refs.saturating_sub(1);
                    let inner = e.inner.clone();
                    let closed = e.refs == 0;
                    if closed {
                        spans.remove(&key);
                    }
                    (inner, closed)
                }
                None => (None, false),
            }
        };
        if let Some(i) = inner {
            self.inner.try_close(i);
        }
        closed
    }

    fn current_span(&self) -> Current {
        match self.current() {
            Some(id) => match lock(&self.spans).get(&id) {
                Some(e) => Current::new(Id::from_u64(id), e.meta),
                None => Current::none(),
            },
            None => Current::none(),
        }
    }
}
