//! Telemetry end to end through `durafn dev` and real handler processes:
//! OpenTelemetry spans received by an OTLP/HTTP receiver in this process,
//! Prometheus `/metrics` parsed with a text-format parser, and per-execution
//! logs deduplicated across replays.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use durafn_tests::binaries::example_exe;
use durafn_tests::procs::{Dev, DevSpec};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::{Value, json};

const TEMPLATE: &str = r#"
Transform: AWS::Serverless-2016-10-31
Resources:
  OrderFunction:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: order
      CodeUri: examples/order
      Handler: order
      Timeout: 30
  OtelParent:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: otel-parent
      CodeUri: tests
      Handler: otelfn
      Timeout: 30
  OtelChild:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: otel-child
      CodeUri: tests
      Handler: otelfn
      Timeout: 30
  OtelLogger:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: otel-logger
      CodeUri: tests
      Handler: otelfn
      Timeout: 30
"#;

/// An OTLP/HTTP trace receiver (`POST /v1/traces`, protobuf) on 127.0.0.1:0.
#[derive(Clone, Default)]
struct Receiver {
    spans: Arc<Mutex<Vec<Span>>>,
}

async fn export(State(r): State<Receiver>, body: Bytes) -> impl axum::response::IntoResponse {
    let req = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf export");
    let mut spans = r.spans.lock().unwrap();
    for rs in req.resource_spans {
        for ss in rs.scope_spans {
            spans.extend(ss.spans);
        }
    }
    (
        [("content-type", "application/x-protobuf")],
        ExportTraceServiceResponse::default().encode_to_vec(),
    )
}

impl Receiver {
    async fn start() -> (Receiver, String) {
        let r = Receiver::default();
        let app = Router::new()
            .route("/v1/traces", post(export))
            .with_state(r.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (r, url)
    }

    fn of(&self, execution: &str) -> Vec<Span> {
        self.spans
            .lock()
            .unwrap()
            .iter()
            .filter(|s| attr(s, "durafn.execution_id").as_deref() == Some(execution))
            .cloned()
            .collect()
    }

    /// Waits (up to 20 s) until the execution's own span arrived.
    async fn wait_for_execution(&self, execution: &str) -> Vec<Span> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let spans = self.of(execution);
            if spans.iter().any(|s| s.name.starts_with("durafn.execution")) {
                return spans;
            }
            assert!(
                Instant::now() < deadline,
                "no execution span for {execution}: {:#?}",
                spans.iter().map(|s| &s.name).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn attr(s: &Span, key: &str) -> Option<String> {
    s.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.clone())
        .map(|v| match v {
            AnyValue::StringValue(s) => s,
            AnyValue::IntValue(i) => i.to_string(),
            other => format!("{other:?}"),
        })
}

fn start_spec(root: &std::path::Path, env: Vec<(String, String)>) -> DevSpec {
    let template = root.join("template.yaml");
    std::fs::write(&template, TEMPLATE).unwrap();
    let otelfn = PathBuf::from(env!("CARGO_BIN_EXE_otelfn"));
    DevSpec {
        durafn: PathBuf::from(env!("CARGO_BIN_EXE_durafn-under-test")),
        state: root.join(".durafn"),
        template,
        store: None,
        exes: vec![
            ("order".into(), example_exe("order-example", "order")),
            ("otel-parent".into(), otelfn.clone()),
            ("otel-child".into(), otelfn.clone()),
            ("otel-logger".into(), otelfn),
        ],
        env,
        port: 0,
    }
}

async fn run(dev: &Dev, function: &str, name: &str, input: Value) -> Value {
    let (status, v) = dev
        .client
        .call(
            "POST",
            &format!("/v1/functions/{function}/executions"),
            Some(&json!({ "name": name, "input": input, "wait": 60 })),
        )
        .await
        .expect("the emulator answers");
    assert!((200..300).contains(&status), "{status} {v}");
    // A start's wait ends at a suspension on the outside world (the invoke):
    // poll until the execution ends.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut v = v;
    while v["status"] != "SUCCEEDED" {
        assert!(
            Instant::now() < deadline
                && ["PENDING", "RUNNING", "SUSPENDED"]
                    .contains(&v["status"].as_str().unwrap_or("")),
            "{v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        v = dev
            .call("GET", &format!("/v1/executions/{name}"), None)
            .await
            .expect("the emulator answers")
            .1;
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_of_the_order_example_and_of_an_invoke_form_one_trace_per_execution() {
    let (receiver, endpoint) = Receiver::start().await;
    let root = tempfile::tempdir().unwrap();
    let dev = Dev::start(&start_spec(
        root.path(),
        vec![("OTEL_EXPORTER_OTLP_ENDPOINT".into(), endpoint)],
    ))
    .await;

    // The order: charge, a 10 s sleep, reserve failing once, email.
    run(
        &dev,
        "order",
        "o-otel",
        json!({"order_id": "o-otel", "amount_cents": 1999, "fail_reserve_attempts": 1}),
    )
    .await;
    let spans = receiver.wait_for_execution("o-otel").await;
    let trace = durafn::telemetry::trace_id("o-otel").to_bytes().to_vec();
    assert!(spans.iter().all(|s| s.trace_id == trace), "one trace");
    let executions: Vec<&Span> = spans
        .iter()
        .filter(|s| s.name.starts_with("durafn.execution"))
        .collect();
    assert_eq!(executions.len(), 1);
    let execution = executions[0];
    assert!(
        execution.parent_span_id.is_empty(),
        "the execution span is the root"
    );
    assert_eq!(
        attr(execution, "durafn.outcome").as_deref(),
        Some("SUCCEEDED")
    );
    assert_eq!(attr(execution, "durafn.function").as_deref(), Some("order"));
    assert_eq!(
        attr(execution, "durafn.version").as_deref(),
        Some("$LATEST")
    );

    let invocations: Vec<&Span> = spans
        .iter()
        .filter(|s| s.name == "durafn.invocation")
        .collect();
    // Suspended on the sleep, suspended on the retry backoff, finished.
    assert!(invocations.len() >= 3, "{}", invocations.len());
    assert!(
        invocations
            .iter()
            .all(|s| s.parent_span_id == execution.span_id)
    );
    let invocation_ids: HashSet<&Vec<u8>> = invocations.iter().map(|s| &s.span_id).collect();

    // One span per attempt run: replays of recorded operations add none.
    let mut attempts: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for s in spans.iter().filter(|s| s.name.starts_with("durafn.step")) {
        assert!(invocation_ids.contains(&s.parent_span_id), "{s:?}");
        assert_eq!(attr(s, "durafn.function").as_deref(), Some("order"));
        attempts
            .entry((
                attr(s, "durafn.op_name").unwrap(),
                attr(s, "durafn.op_id").unwrap(),
            ))
            .or_default()
            .push(format!(
                "{}:{}",
                attr(s, "durafn.attempt").unwrap(),
                attr(s, "durafn.outcome").unwrap()
            ));
    }
    let expect = |name: &str, id: &str, v: &[&str]| {
        assert_eq!(
            attempts.get(&(name.to_string(), id.to_string())),
            Some(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>()),
            "{attempts:?}"
        );
    };
    expect("charge", "1", &["1:succeeded"]);
    expect("reserve", "3", &["1:retrying", "2:succeeded"]);
    expect("email", "4", &["1:succeeded"]);
    assert_eq!(attempts.len(), 3);
    let sleeps: Vec<&Span> = spans.iter().filter(|s| s.name == "durafn.sleep").collect();
    assert_eq!(sleeps.len(), 1, "one span for the timer");
    assert_eq!(
        attr(sleeps[0], "durafn.op_name").as_deref(),
        Some("cool-off")
    );

    // Across ctx.invoke: the child's execution hangs under the parent's invoke.
    run(&dev, "otel-parent", "p-otel", json!({"n": 1})).await;
    let parent = receiver.wait_for_execution("p-otel").await;
    let child = receiver.wait_for_execution("p-otel::2").await;
    let trace = durafn::telemetry::trace_id("p-otel").to_bytes().to_vec();
    assert!(parent.iter().chain(&child).all(|s| s.trace_id == trace));
    let invoke = parent
        .iter()
        .find(|s| s.name == "durafn.invoke")
        .expect("a span for the invoke");
    assert_eq!(attr(invoke, "durafn.op_id").as_deref(), Some("2"));
    let child_execution = child
        .iter()
        .find(|s| s.name.starts_with("durafn.execution"))
        .unwrap();
    assert_eq!(child_execution.parent_span_id, invoke.span_id);
    assert_eq!(
        attr(child_execution, "durafn.function").as_deref(),
        Some("otel-child")
    );
    let work = child
        .iter()
        .find(|s| attr(s, "durafn.op_name").as_deref() == Some("work"))
        .unwrap();
    let child_invocations: HashSet<&Vec<u8>> = child
        .iter()
        .filter(|s| s.name == "durafn.invocation")
        .map(|s| {
            assert_eq!(s.parent_span_id, child_execution.span_id);
            &s.span_id
        })
        .collect();
    assert!(child_invocations.contains(&work.parent_span_id));
}

/// `/metrics`, parsed as Prometheus text: `(name, labels) → value`
/// (histograms by their `_count`).
async fn scrape(dev: &Dev) -> BTreeMap<(String, BTreeMap<String, String>), f64> {
    let url = format!("{}/metrics", dev.url);
    let out = std::process::Command::new("curl")
        .args(["-sf", &url])
        .output()
        .expect("curl");
    assert!(out.status.success(), "GET /metrics failed");
    let text = String::from_utf8(out.stdout).unwrap();
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let parsed = prometheus_parse::Scrape::parse(lines).expect("Prometheus text format");
    let mut m = BTreeMap::new();
    for s in parsed.samples {
        let labels: BTreeMap<String, String> = s
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let v = match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            prometheus_parse::Value::Histogram(h) => h.last().map_or(0.0, |b| b.count),
            prometheus_parse::Value::Summary(_) => continue,
        };
        m.insert((s.metric, labels), v);
    }
    m
}

fn metric(
    m: &BTreeMap<(String, BTreeMap<String, String>), f64>,
    name: &str,
    labels: &[(&str, &str)],
) -> f64 {
    m.iter()
        .filter(|((n, l), _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, v)| *v)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_as_prometheus_text_and_move() {
    let root = tempfile::tempdir().unwrap();
    let dev = Dev::start(&start_spec(root.path(), Vec::new())).await;
    let before = scrape(&dev).await;
    for shard in 0..16 {
        let shard = format!("{shard:02}");
        assert!(
            before.contains_key(&(
                "durafn_due_backlog".to_string(),
                BTreeMap::from([("shard".to_string(), shard)])
            )),
            "{before:?}"
        );
    }
    let started = [("function", "otel-parent"), ("via", "api")];
    assert_eq!(
        metric(&before, "durafn_executions_started_total", &started),
        0.0
    );

    run(&dev, "otel-parent", "p-metrics", json!({"n": 2})).await;
    let after = scrape(&dev).await;
    assert_eq!(
        metric(&after, "durafn_executions_started_total", &started),
        1.0
    );
    let finished = |f: &str| {
        metric(
            &after,
            "durafn_executions_finished_total",
            &[("function", f), ("status", "SUCCEEDED")],
        )
    };
    assert_eq!(finished("otel-parent"), 1.0, "{after:?}");
    assert_eq!(finished("otel-child"), 1.0);
    // The parent suspended while its child ran.
    let invocations = |outcome: &str| {
        metric(
            &after,
            "durafn_invocations_total",
            &[("function", "otel-parent"), ("outcome", outcome)],
        )
    };
    assert!(invocations("SUSPENDED") >= 1.0, "{after:?}");
    assert_eq!(invocations("SUCCEEDED"), 1.0);
    assert!(
        metric(
            &after,
            "durafn_invocation_duration_seconds",
            &[("function", "otel-child")]
        ) >= 1.0
    );
    // Handler processes' checkpoints reach the store through the emulator.
    assert!(
        metric(
            &after,
            "durafn_store_call_duration_seconds",
            &[("backend", "sqlite"), ("method", "put_operation")]
        ) >= 3.0,
        "{after:?}"
    );
    assert_eq!(metric(&after, "durafn_store_errors_total", &[]), 0.0);
    assert!(metric(&after, "durafn_due_backlog", &[]) >= 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_logged_line_is_kept_once_across_replays() {
    let root = tempfile::tempdir().unwrap();
    let dev = Dev::start(&start_spec(root.path(), Vec::new())).await;
    run(&dev, "otel-logger", "l-1", json!(null)).await;
    let (status, h) = dev
        .call("GET", "/v1/executions/l-1/history", None)
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(h["operations"].as_array().unwrap().len(), 7, "{h}");
    // Lines reach the emulator on the handler's stdout: wait for the last.
    let deadline = Instant::now() + Duration::from_secs(10);
    let lines = loop {
        let (_, v) = dev
            .call("GET", "/v1/executions/l-1/logs", None)
            .await
            .unwrap();
        let lines = v["lines"].as_array().unwrap().clone();
        if lines.iter().any(|l| l["message"] == "after step 4") || Instant::now() > deadline {
            break lines;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let messages: Vec<&str> = lines
        .iter()
        .map(|l| l["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        messages,
        [
            "handler entered replaying=false",
            "step 1 ran",
            "after step 1",
            "step 2 ran",
            "after step 2",
            "step 3 ran",
            "after step 3",
            "step 4 ran",
            "after step 4",
        ],
        "{lines:#?}"
    );
    // Lines inside a step name it and its attempt; the others do not.
    let step2 = &lines[3];
    assert_eq!(
        (step2["op_id"].as_str(), step2["attempt"].as_u64()),
        (Some("3"), Some(1))
    );
    assert!(lines[2]["op_id"].is_null());
    // Four invocations, each a different epoch.
    let epochs: HashSet<u64> = lines.iter().map(|l| l["epoch"].as_u64().unwrap()).collect();
    assert_eq!(epochs.len(), 4, "{lines:#?}");

    // `durafn logs` prints the same lines; `--follow` returns once it ended.
    for args in [&["logs", "l-1"][..], &["logs", "l-1", "--follow"][..]] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_durafn-under-test"))
            .args(args)
            .args(["--url", &dev.url])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}");
        assert_eq!(text.lines().count(), 9, "{text}");
        assert_eq!(text.matches("step 2 ran").count(), 1, "{text}");
        assert!(text.contains("[op 3 #1] step 2 ran"), "{text}");
    }

    // The step latency histogram and the line counter moved.
    let m = scrape(&dev).await;
    assert_eq!(
        metric(&m, "durafn_log_lines_total", &[("function", "otel-logger")]),
        9.0
    );
    assert_eq!(
        metric(
            &m,
            "durafn_step_duration_seconds",
            &[("function", "otel-logger"), ("outcome", "succeeded")]
        ),
        4.0
    );
}
