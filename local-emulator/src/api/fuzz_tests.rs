//! Fuzzing the REST API's request parsing (proptest, bounded case counts):
//! arbitrary bodies, content types, path segments and query strings sent to
//! the router itself (no socket). Every answer is a 2xx, or a 4xx with the
//! API's JSON error shape — never a panic or a 5xx — and a rejected request
//! stores nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use durafn_runtime::clock::SystemClock;
use durafn_runtime::store::sqlite::SqliteStore;
use http_body_util::BodyExt;
use hyper::service::Service;
use hyper_util::service::TowerToHyperService;
use proptest::prelude::*;
use serde_json::{Value, json};

use super::{ApiState, Metrics, router};

fn state(dir: &std::path::Path) -> ApiState {
    ApiState {
        store: Arc::new(SqliteStore::open(dir.join("fuzz.db")).unwrap()),
        clock: Arc::new(SystemClock),
        functions: Arc::new(BTreeSet::from(["f".to_string()])),
        flow: Default::default(),
        dispatch: None,
        token: None,
        metrics: Arc::new(Metrics::default()),
    }
}

/// Percent-encodes every byte but unreserved ones, so any text is a valid path segment.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn send(
    state: &ApiState,
    method: &str,
    uri: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, Vec<u8>) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let req = req.body(Body::from(body)).unwrap();
    let svc = TowerToHyperService::new(router(state.clone()));
    let res = svc.call(req).await.unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes().to_vec();
    (status, bytes)
}

/// A 2xx, or a 4xx with `{"error": {"code": string, "message": string}}`.
fn check_answer(what: &str, status: StatusCode, body: &[u8]) -> Result<bool, TestCaseError> {
    prop_assert!(
        !status.is_server_error(),
        "{what}: {status} {}",
        String::from_utf8_lossy(body)
    );
    if status.is_client_error() {
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| TestCaseError::fail(format!("{what}: {status}, body not JSON: {e}")))?;
        prop_assert!(
            v["error"]["code"].is_string() && v["error"]["message"].is_string(),
            "{what}: {status} {v}"
        );
        return Ok(false);
    }
    prop_assert!(status.is_success(), "{what}: {status}");
    Ok(true)
}

async fn stored(state: &ApiState) -> usize {
    let (status, body) = send(state, "GET", "/v1/executions?limit=100", None, vec![]).await;
    assert_eq!(status, StatusCode::OK);
    let v: Value = serde_json::from_slice(&body).unwrap();
    v["executions"].as_array().map_or(0, Vec::len)
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(".{0,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Start-request-shaped objects: the real keys (and a stray one) with values of any type.
/// `wait` is never a valid positive number (nothing dispatches here, so it would wait it out).
fn start_object() -> impl Strategy<Value = Value> {
    let wait = prop_oneof![
        Just(json!(0)),
        Just(json!(-1)),
        Just(json!(301)),
        Just(json!(1e308)),
        Just(json!("5")),
        json_value(),
    ]
    .prop_filter("no real wait", |w| {
        !w.as_f64().is_some_and(|f| f > 0.0 && f <= 300.0)
    });
    (
        prop::option::of(prop_oneof![".{0,300}".prop_map(Value::from), json_value()]),
        prop::option::of(json_value()),
        prop::option::of(wait),
        prop::option::of(json_value()),
    )
        .prop_map(|(name, input, wait, stray)| {
            let mut m = serde_json::Map::new();
            if let Some(v) = name {
                m.insert("name".into(), v);
            }
            if let Some(v) = input {
                m.insert("input".into(), v);
            }
            if let Some(v) = wait {
                m.insert("wait".into(), v);
            }
            if let Some(v) = stray {
                m.insert("extra".into(), v);
            }
            Value::Object(m)
        })
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200),
        json_value().prop_map(|v| v.to_string().into_bytes()),
        start_object().prop_map(|v| v.to_string().into_bytes()),
        // A start object cut short or with a byte flipped.
        (start_object(), any::<prop::sample::Index>(), any::<u8>()).prop_map(|(v, i, b)| {
            let mut s = v.to_string().into_bytes();
            let at = i.index(s.len());
            if b % 2 == 0 {
                s.truncate(at);
            } else {
                s[at] = b;
            }
            s
        }),
    ]
}

fn content_type() -> impl Strategy<Value = Option<String>> {
    prop::option::of(prop_oneof![
        Just("application/json".to_string()),
        Just("text/plain".to_string()),
        Just("application/x-www-form-urlencoded".to_string()),
        "[ -~]{0,20}",
    ])
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// `POST /v1/functions/{fn}/executions`: any body, any content type, a known
    /// or unknown function. A rejected start stores nothing; an accepted one
    /// stores exactly one execution.
    #[test]
    fn start_bodies(body in body(), ct in content_type(), known in any::<bool>(), function in ".{0,10}") {
        let dir = tempfile::tempdir().unwrap();
        let rt = runtime();
        rt.block_on(async {
            let s = state(dir.path());
            let f = if known { "f".to_string() } else { encode(&function) };
            let uri = format!("/v1/functions/{f}/executions");
            let (status, answer) = send(&s, "POST", &uri, ct.as_deref(), body.clone()).await;
            let ok = check_answer(&format!("POST {uri} {:?}", String::from_utf8_lossy(&body)), status, &answer)?;
            let n = stored(&s).await;
            prop_assert_eq!(n, usize::from(ok), "stored after {}: {}", status, String::from_utf8_lossy(&answer));
            Ok(())
        })?;
    }

    /// Events, callbacks, cancel, resume, describe and history with any path
    /// segments and bodies, and the list with any query string: nothing
    /// panics, errors have the API's shape, nothing is created.
    #[test]
    fn other_routes(
        route in 0usize..7,
        a in ".{0,40}",
        b in ".{0,16}",
        query in "[ -~]{0,60}",
        body in body(),
        ct in content_type(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let rt = runtime();
        rt.block_on(async {
            let s = state(dir.path());
            let (a, b) = (encode(&a), encode(&b));
            let (method, uri) = match route {
                0 => ("POST", format!("/v1/executions/{a}/events/{b}")),
                1 => ("POST", format!("/v1/callbacks/{a}/{}", if b.len() % 3 == 0 { "succeed" } else if b.len() % 3 == 1 { "fail" } else { b.as_str() })),
                2 => ("POST", format!("/v1/executions/{a}/cancel")),
                3 => ("POST", format!("/v1/executions/{a}/resume")),
                4 => ("GET", format!("/v1/executions/{a}")),
                5 => ("GET", format!("/v1/executions/{a}/history")),
                _ => ("GET", format!("/v1/executions?{}", query.split('&').map(|kv| kv.split('=').map(encode).collect::<Vec<_>>().join("=")).collect::<Vec<_>>().join("&"))),
            };
            let (status, answer) = send(&s, method, &uri, ct.as_deref(), body).await;
            // A 404 from the router itself (an empty segment) has no body to check.
            if !(status == StatusCode::NOT_FOUND && answer.is_empty()) {
                check_answer(&format!("{method} {uri}"), status, &answer)?;
            }
            prop_assert_eq!(stored(&s).await, 0);
            Ok(())
        })?;
    }
}

/// The shape of one known answer, so the properties above cannot pass vacuously.
#[test]
fn a_valid_start_is_stored_and_a_bad_one_is_a_json_400() {
    let dir = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        let s = state(dir.path());
        let (st, _) = send(
            &s,
            "POST",
            "/v1/functions/f/executions",
            None,
            br#"{"name":"x","input":1}"#.to_vec(),
        )
        .await;
        assert_eq!(st, StatusCode::ACCEPTED); // created, not run: nothing dispatches here
        let (st, body) = send(
            &s,
            "POST",
            "/v1/functions/f/executions",
            None,
            b"{\"name\":".to_vec(),
        )
        .await;
        assert_eq!(st, StatusCode::BAD_REQUEST);
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["code"], "InvalidJson");
        assert_eq!(stored(&s).await, 1);
    });
}
