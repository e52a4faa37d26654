//! The pause routes of the REST API without sockets: pausing and unpausing
//! an execution and a function, and their errors.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use durafn_emulator::api::{self, ApiState, Metrics};
use durafn_emulator::auth::Guard;
use durafn_emulator::routes::Limits;
use durafn_runtime::clock::SystemClock;
use durafn_runtime::dispatch::pause::paused_functions;
use durafn_runtime::store::{SqliteStore, Store};
use serde_json::{Value, json};
use tower::ServiceExt;

struct App {
    router: Router,
    store: Arc<dyn Store>,
    _dir: tempfile::TempDir,
}

impl App {
    fn new() -> App {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(dir.path().join("durafn.db")).unwrap());
        let state = ApiState {
            store: store.clone(),
            clock: Arc::new(SystemClock),
            functions: Arc::new(BTreeSet::from(["order".to_string()])),
            flow: Default::default(),
            dispatch: None,
            token: None,
            metrics: Arc::new(Metrics::default()),
        };
        let limits = Limits::development();
        let router = api::router_with(state, &Guard::new(None), &limits);
        App {
            router,
            store,
            _dir: dir,
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(path);
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        let body = body.map_or(Body::empty(), |b| Body::from(b.to_string()));
        let response = self
            .router
            .clone()
            .oneshot(req.body(body).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }
}

#[tokio::test]
async fn executions_are_paused_and_unpaused_through_the_api() {
    let app = App::new();
    let start = json!({"name": "p-1", "input": {"n": 1}});
    let (status, _) = app
        .call("POST", "/v1/functions/order/executions", Some(start))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, v) = app.call("POST", "/v1/executions/p-1/pause", None).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        (&v["status"], &v["paused"]),
        (&json!("PENDING"), &json!(true))
    );
    // Shown in describe and in the listing.
    let (_, v) = app.call("GET", "/v1/executions/p-1", None).await;
    assert_eq!(v["paused"], true);
    let (_, v) = app.call("GET", "/v1/executions?function=order", None).await;
    assert_eq!(v["executions"][0]["paused"], true, "{v}");
    // Pausing again is a no-op.
    let (status, _) = app.call("POST", "/v1/executions/p-1/pause", None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, v) = app.call("POST", "/v1/executions/p-1/unpause", None).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["paused"], false);

    // An ended execution cannot be paused.
    app.call("POST", "/v1/executions/p-1/cancel", None).await;
    let (status, v) = app.call("POST", "/v1/executions/p-1/pause", None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["error"]["code"], "NotPausable");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("CANCELLED"),
        "{v}"
    );
    for path in ["/v1/executions/nope/pause", "/v1/executions/nope/unpause"] {
        let (status, v) = app.call("POST", path, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {v}");
        assert_eq!(v["error"]["code"], "ExecutionNotFound");
    }
}

#[tokio::test]
async fn functions_are_paused_and_unpaused_through_the_api() {
    let app = App::new();
    let (status, v) = app.call("POST", "/v1/functions/order/pause", None).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v, json!({"function": "order", "paused": true}));
    assert!(
        paused_functions(app.store.as_ref())
            .await
            .unwrap()
            .contains("order")
    );
    // Starts are accepted and wait.
    let start = json!({"name": "f-1", "input": {"n": 1}});
    let (status, v) = app
        .call("POST", "/v1/functions/order/executions", Some(start))
        .await;
    assert_eq!(
        (status, &v["status"]),
        (StatusCode::ACCEPTED, &json!("PENDING"))
    );
    let (status, v) = app.call("POST", "/v1/functions/order/unpause", None).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        (&v["paused"], &v["unpaused_executions"]),
        (&json!(false), &json!(0))
    );
    assert!(
        paused_functions(app.store.as_ref())
            .await
            .unwrap()
            .is_empty()
    );
    let (status, v) = app.call("POST", "/v1/functions/nope/pause", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
    assert_eq!(v["error"]["code"], "FunctionNotFound");
}

#[tokio::test]
async fn starts_carry_a_priority_and_a_fairness_key_and_bad_ones_create_nothing() {
    let app = App::new();
    let start = json!({"name": "pr-1", "input": 1, "priority": 5, "fairness_key": "tenant-1"});
    let (status, v) = app
        .call("POST", "/v1/functions/order/executions", Some(start))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{v}");
    let (_, v) = app.call("GET", "/v1/executions/pr-1", None).await;
    assert_eq!(
        (&v["priority"], &v["fairness_key"]),
        (&json!(5), &json!("tenant-1"))
    );
    let (status, _) = app
        .call(
            "POST",
            "/v1/functions/order/executions",
            Some(json!({"name": "pr-2"})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (_, v) = app.call("GET", "/v1/executions/pr-2", None).await;
    assert_eq!(
        (&v["priority"], &v["fairness_key"]),
        (&json!(3), &Value::Null)
    );

    for (i, bad) in [
        json!(0),
        json!(6),
        json!("high"),
        json!(2.5),
        json!(-1),
        json!("3"),
    ]
    .into_iter()
    .enumerate()
    {
        let name = format!("bad-{i}");
        let body = json!({"name": name, "priority": bad});
        let (status, v) = app
            .call("POST", "/v1/functions/order/executions", Some(body))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "priority {bad}: {v}");
        assert_eq!(v["error"]["code"], "InvalidRequest");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.contains("from 1 (lowest) to 5 (highest)"), "{msg}");
        let (status, _) = app
            .call("GET", &format!("/v1/executions/{name}"), None)
            .await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "nothing created for priority {bad}"
        );
    }
    let body = json!({"name": "bad-key", "fairness_key": "a#b"});
    let (status, v) = app
        .call("POST", "/v1/functions/order/executions", Some(body))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    let (status, _) = app.call("GET", "/v1/executions/bad-key", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
