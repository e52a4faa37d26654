//! The emulator's routers without sockets (`tower::ServiceExt::oneshot`):
//! the REST API, the UI, the schedules API, the SQS protocol, the Invoke API
//! and the Runtime API, assembled as `durafn dev` / `durafn server` assemble
//! them; and the server's hardening — the token on every route (walking the
//! route tables the routers are built from), body limits, rate limits, no
//! CORS.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use durafn_emulator::api::{self, ApiState, Metrics};
use durafn_emulator::auth::Guard;
use durafn_emulator::lambda_api::{self, Hosts};
use durafn_emulator::platform::Platform;
use durafn_emulator::routes::{Access, Limits, RateLimit, RouteSpec, example_path};
use durafn_emulator::{queues, schedules, ui};
use durafn_runtime::clock::SystemClock;
use durafn_runtime::model::MAX_OFFLOADED_PAYLOAD_BYTES;
use durafn_runtime::store::blob::DirBlobStore;
use durafn_runtime::store::{OffloadingStore, SqliteStore, Store};
use serde_json::{Value, json};
use tower::ServiceExt;

const TOKEN: &str = "router-test-token-0123456789";

const TEMPLATE: &str = r#"
Resources:
  Jobs:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: jobs
  Order:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: order
      CodeUri: x
      Events:
        Work:
          Type: SQS
          Properties:
            Queue: !GetAtt Jobs.Arn
        Nightly:
          Type: ScheduleV2
          Properties:
            Name: nightly
            ScheduleExpression: rate(1 hour)
"#;

/// The platform's routers over a fresh SQLite store, no handler processes.
struct App {
    router: Router,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::watch::Sender<bool>,
}

impl App {
    async fn new(token: Option<&str>, limits: Limits) -> App {
        App::build(token, limits, false, HashMap::new()).await
    }

    async fn with_flow(
        token: Option<&str>,
        limits: Limits,
        flow: HashMap<String, durafn_runtime::dispatch::FlowControl>,
    ) -> App {
        App::build(token, limits, false, flow).await
    }

    /// With `blobs`, the store offloads large payloads to a folder, as
    /// `durafn dev`'s does.
    async fn build(
        token: Option<&str>,
        limits: Limits,
        blobs: bool,
        flow: HashMap<String, durafn_runtime::dispatch::FlowControl>,
    ) -> App {
        let dir = tempfile::tempdir().unwrap();
        let mut store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(dir.path().join("durafn.db")).unwrap());
        if blobs {
            let folder = DirBlobStore::new(dir.path().join("blobs"));
            store = Arc::new(OffloadingStore::new(store, Arc::new(folder)));
        }
        let template = durafn_emulator::template::parse(TEMPLATE, "template.yaml").unwrap();
        let state = ApiState {
            store: store.clone(),
            clock: Arc::new(SystemClock),
            functions: Arc::new(BTreeSet::from(["order".to_string()])),
            flow: Arc::new(flow),
            dispatch: None,
            token: token.map(Arc::from),
            metrics: Arc::new(Metrics::default()),
        };
        let guard = Guard::new(token);
        let hosts: Hosts = Arc::new(HashMap::new());
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let platform = Platform {
            template: Arc::new(template),
            store,
            clock: state.clock.clone(),
            hosts: hosts.clone(),
            api: state.clone(),
            guard: guard.clone(),
            limits,
            shutdown,
            shards: None,
        };
        let router = api::router_with(state.clone(), &guard, &limits)
            .merge(ui::router_with(state, &guard, &limits))
            .merge(schedules::start(&platform).unwrap())
            .merge(queues::start(&platform).unwrap())
            .merge(lambda_api::router(hosts, &guard, &limits));
        App {
            router,
            _dir: dir,
            _stop: stop,
        }
    }

    async fn send(&self, req: Request<Body>) -> (StatusCode, header::HeaderMap, Value) {
        let response = self.router.clone().oneshot(req).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), 64 << 20)
            .await
            .unwrap();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, headers, body)
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"));
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        let body = body.map_or(Body::empty(), |b| Body::from(b.to_string()));
        let (status, _, v) = self.send(req.body(body).unwrap()).await;
        (status, v)
    }
}

/// Every route of every table, as (method, path, access).
fn all_routes() -> Vec<(Method, String, Access)> {
    fn of<E>(table: &[RouteSpec<E>]) -> impl Iterator<Item = (Method, String, Access)> + '_ {
        table
            .iter()
            .map(|r| (r.method.clone(), example_path(r.path), r.access))
    }
    of(api::ROUTES)
        .chain(of(ui::ROUTES))
        .chain(of(schedules::ROUTES))
        .chain(of(queues::protocol::ROUTES))
        .chain(of(lambda_api::invoke_api::ROUTES))
        .collect()
}

fn request(method: &Method, path: &str, auth: Option<&str>) -> Request<Body> {
    let mut req = Request::builder().method(method.clone()).uri(path);
    if let Some(a) = auth {
        req = req.header(header::AUTHORIZATION, a);
    }
    req.body(Body::empty()).unwrap()
}

#[tokio::test]
async fn every_protected_route_answers_401_without_the_right_token() {
    let app = App::new(Some(TOKEN), Limits::server()).await;
    let routes = all_routes();
    assert!(routes.len() >= 20, "{routes:?}");
    for (method, path, access) in routes {
        for auth in [None, Some("Bearer wrong-token-0123456789"), Some(TOKEN)] {
            let (status, headers, body) = app.send(request(&method, &path, auth)).await;
            match access {
                Access::Token => {
                    assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path} {auth:?}");
                    assert_eq!(body["error"]["code"], "Unauthorized", "{method} {path}");
                    assert!(headers.contains_key(header::WWW_AUTHENTICATE));
                }
                Access::Public => {
                    assert_ne!(status, StatusCode::UNAUTHORIZED, "{method} {path} {auth:?}");
                }
            }
        }
        let right = format!("Bearer {TOKEN}");
        let (status, _, body) = app.send(request(&method, &path, Some(&right))).await;
        assert_ne!(status, StatusCode::UNAUTHORIZED, "{method} {path}: {body}");
    }
}

#[tokio::test]
async fn without_a_token_nothing_is_refused() {
    let app = App::new(None, Limits::development()).await;
    for (method, path, _) in all_routes() {
        let (status, _, body) = app.send(request(&method, &path, None)).await;
        assert_ne!(status, StatusCode::UNAUTHORIZED, "{method} {path}: {body}");
    }
}

#[tokio::test]
async fn aws_sdks_pass_the_token_as_their_access_key() {
    let app = App::new(Some(TOKEN), Limits::server()).await;
    let sigv4 = format!(
        "AWS4-HMAC-SHA256 Credential={TOKEN}/20260101/us-east-1/sqs/aws4_request, SignedHeaders=host, Signature=00"
    );
    let mut req = request(&Method::POST, "/", Some(&sigv4));
    req.headers_mut()
        .insert("x-amz-target", "AmazonSQS.ListQueues".parse().unwrap());
    let (status, _, body) = app.send(req).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["QueueUrls"][0].as_str().unwrap().ends_with("/jobs"));
}

#[tokio::test]
async fn the_ui_signs_in_with_an_http_only_same_site_cookie() {
    let app = App::new(Some(TOKEN), Limits::server()).await;
    let login = |token: &str| {
        Request::post("/ui/login")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(json!({ "token": token }).to_string()))
            .unwrap()
    };
    let (status, headers, body) = app.send(login("wrong-token-0123456789")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(!headers.contains_key(header::SET_COOKIE));

    let (status, headers, _) = app.send(login(TOKEN)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let cookie = headers[header::SET_COOKIE].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(
        !cookie.contains(TOKEN),
        "the cookie is not the token: {cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_string();
    for path in ["/v1/executions", "/ui/api/counts", "/v1/schedules"] {
        let req = Request::get(path)
            .header(header::COOKIE, &pair)
            .body(Body::empty())
            .unwrap();
        let (status, _, body) = app.send(req).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
    }

    let (status, headers, _) = app
        .send(Request::post("/ui/logout").body(Body::empty()).unwrap())
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(
        headers[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let (status, _, _) = app
        .send(Request::post("/ui/login").body(Body::from("{")).unwrap())
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn oversized_bodies_are_413_with_the_json_error() {
    let app = App::new(Some(TOKEN), Limits::server()).await;
    let tables = api::ROUTES
        .iter()
        .map(|r| (r.method.clone(), r.path, r.body_limit))
        .chain(
            ui::ROUTES
                .iter()
                .map(|r| (r.method.clone(), r.path, r.body_limit)),
        )
        .chain(
            schedules::ROUTES
                .iter()
                .map(|r| (r.method.clone(), r.path, r.body_limit)),
        )
        .chain(
            queues::protocol::ROUTES
                .iter()
                .map(|r| (r.method.clone(), r.path, r.body_limit)),
        )
        .chain(
            lambda_api::invoke_api::ROUTES
                .iter()
                .map(|r| (r.method.clone(), r.path, r.body_limit)),
        );
    for (method, path, limit) in tables.filter(|(m, ..)| *m == Method::POST) {
        let path = example_path(path).replace("/functions/x/", "/functions/order/");
        // Declared too large: refused before the body is read.
        let req = Request::builder()
            .method(method.clone())
            .uri(&path)
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
            .header(header::CONTENT_LENGTH, (limit + 1).to_string())
            .body(Body::from(vec![b' '; limit + 1]))
            .unwrap();
        let (status, _, body) = app.send(req).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{path}: {body}");
        assert_eq!(body["error"]["code"], "PayloadTooLarge", "{path}");
    }
    // A body that runs over without saying so (chunked): the JSON error too.
    for (path, limit) in [
        ("/v1/functions/order/executions", api::PAYLOAD_BODY),
        ("/v1/executions/x/events/e", api::PAYLOAD_BODY),
        ("/v1/callbacks/x/succeed", api::PAYLOAD_BODY),
        ("/", queues::protocol::ROUTES[0].body_limit),
        (
            "/2015-03-31/functions/order/invocations",
            lambda_api::invoke_api::ROUTES[0].body_limit,
        ),
        ("/ui/login", ui::ROUTES[7].body_limit),
    ] {
        let chunks = futures::stream::iter(
            std::iter::repeat_n(vec![b' '; 64 * 1024], limit / (64 * 1024) + 2)
                .map(Ok::<_, std::io::Error>),
        );
        let mut req = Request::post(path)
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from_stream(chunks))
            .unwrap();
        if path == "/" {
            req.headers_mut()
                .insert("x-amz-target", "AmazonSQS.ListQueues".parse().unwrap());
        }
        let (status, _, body) = app.send(req).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{path}: {body}");
        assert_eq!(body["error"]["code"], "PayloadTooLarge", "{path}: {body}");
    }
}

#[tokio::test]
async fn floods_of_starts_events_and_callbacks_get_429_with_retry_after() {
    let limits = Limits {
        rate: Some(RateLimit {
            per_second: 0.01,
            burst: 5,
        }),
    };
    let app = App::new(Some(TOKEN), limits).await;
    let limited: Vec<_> = api::ROUTES
        .iter()
        .filter(|r| r.rate_limited)
        .map(|r| r.path)
        .collect();
    assert_eq!(
        limited,
        [
            "/v1/functions/{function}/executions",
            "/v1/executions/{id}/events/{name}",
            "/v1/callbacks/{token}/{action}",
            // Reset and rerun start executions too.
            "/v1/executions/{id}/reset",
            "/v1/executions/{id}/rerun",
        ]
    );
    for path in [
        "/v1/callbacks/x/succeed",
        "/v1/executions/x/events/e",
        "/v1/functions/nope/executions",
        "/2015-03-31/functions/order/invocations",
        "/ui/login",
    ] {
        for i in 0..5 {
            let (status, body) = app.call("POST", path, None).await;
            assert_ne!(status, StatusCode::TOO_MANY_REQUESTS, "{path} #{i}: {body}");
        }
        let (status, headers, body) = app
            .send(request(
                &Method::POST,
                path,
                Some(&format!("Bearer {TOKEN}")),
            ))
            .await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{path}: {body}");
        assert_eq!(body["error"]["code"], "TooManyRequests");
        // One token every 100 s.
        let retry: u64 = headers[header::RETRY_AFTER]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((99..=100).contains(&retry), "{retry}");
    }
    // Reads are not limited.
    for _ in 0..20 {
        assert_eq!(
            app.call("GET", "/v1/executions", None).await.0,
            StatusCode::OK
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_flooded_route_takes_requests_again_as_its_bucket_refills() {
    let limits = Limits {
        rate: Some(RateLimit {
            per_second: 2.0,
            burst: 3,
        }),
    };
    let app = App::new(Some(TOKEN), limits).await;
    // A malformed callback id is refused without touching the store, so
    // virtual time only moves when told to.
    let path = "/v1/callbacks/x/succeed";
    for _ in 0..3 {
        assert_eq!(app.call("POST", path, None).await.0, StatusCode::NOT_FOUND);
    }
    let (status, headers, _) = app
        .send(request(
            &Method::POST,
            path,
            Some(&format!("Bearer {TOKEN}")),
        ))
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers[header::RETRY_AFTER], "1");
    tokio::time::advance(Duration::from_millis(500)).await;
    assert_eq!(app.call("POST", path, None).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        app.call("POST", path, None).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn cors_is_off() {
    let app = App::new(Some(TOKEN), Limits::server()).await;
    let preflight = Request::builder()
        .method(Method::OPTIONS)
        .uri("/v1/executions")
        .header(header::ORIGIN, "https://evil.example")
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "GET")
        .body(Body::empty())
        .unwrap();
    let (_, headers, _) = app.send(preflight).await;
    assert!(!headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN));
    let mut get = request(
        &Method::GET,
        "/v1/executions",
        Some(&format!("Bearer {TOKEN}")),
    );
    get.headers_mut()
        .insert(header::ORIGIN, "https://evil.example".parse().unwrap());
    let (status, headers, _) = app.send(get).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN));
}

#[tokio::test]
async fn the_rest_api_starts_lists_describes_and_cancels() {
    let app = App::new(None, Limits::development()).await;
    let (status, v) = app
        .call(
            "POST",
            "/v1/functions/order/executions",
            Some(json!({"name": "o-1", "input": {"n": 1}})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v["id"], "o-1");
    assert_eq!(v["status"], "PENDING");
    // Same name, same input: the same execution; different input: 409.
    let (status, _) = app
        .call(
            "POST",
            "/v1/functions/order/executions",
            Some(json!({"name": "o-1", "input": {"n": 1}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, v) = app
        .call(
            "POST",
            "/v1/functions/order/executions",
            Some(json!({"name": "o-1", "input": {"n": 2}})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{v}");
    let (status, v) = app
        .call("POST", "/v1/functions/nope/executions", Some(json!({})))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(v["error"]["code"], "FunctionNotFound");
    let (status, v) = app
        .call("POST", "/v1/functions/order/executions", Some(json!("{")))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");

    let (status, v) = app.call("GET", "/v1/executions?function=order", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["executions"][0]["id"], "o-1", "{v}");
    let (status, v) = app
        .call("GET", "/v1/executions?since=yesterday", None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    let (status, v) = app
        .call("GET", "/v1/executions?since=2020-01-01T00:00:00Z", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["executions"].as_array().unwrap().len(), 1);
    let (status, v) = app.call("GET", "/v1/executions/o-1", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["function"], "order", "{v}");
    let (status, v) = app.call("GET", "/v1/executions/o-1/history", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["operations"], json!([]));
    let (status, v) = app.call("POST", "/v1/executions/o-1/cancel", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["status"], "CANCELLED");
    // Cancelling again changes nothing.
    let (status, v) = app.call("POST", "/v1/executions/o-1/cancel", None).await;
    assert_eq!(
        (status, &v["status"]),
        (StatusCode::OK, &json!("CANCELLED"))
    );
    let (status, v) = app.call("GET", "/v1/executions/nope", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(v["error"]["code"], "ExecutionNotFound");
    let (status, v) = app
        .call("POST", "/v1/callbacks/cb2.00.1.00/succeed", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
    let (status, v) = app.call("GET", "/healthz", None).await;
    assert_eq!((status, v), (StatusCode::OK, json!({"ok": true})));
    let (status, v) = app.call("GET", "/metrics", None).await;
    assert_eq!(status, StatusCode::OK);
    // Prometheus text from the process-wide recorder (other tests of this
    // binary count too): the start above is there, and the store's gauges.
    let text = v.as_str().unwrap();
    assert!(
        text.contains("durafn_executions_started_total{function=\"order\",via=\"api\"}"),
        "{text}"
    );
    assert!(text.contains("durafn_due_backlog{shard=\"00\"} "), "{text}");
}

#[tokio::test]
async fn the_ui_serves_its_pages_with_a_strict_policy_and_counts() {
    let app = App::new(None, Limits::development()).await;
    let (status, headers, body) = app.send(request(&Method::GET, "/ui/", None)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.as_str().unwrap().contains("/ui/assets/app.js"));
    assert!(
        headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("script-src 'self'")
    );
    let (status, headers, _) = app.send(request(&Method::GET, "/ui", None)).await;
    assert!(status.is_redirection());
    assert_eq!(headers[header::LOCATION], "/ui/");
    let (status, _, _) = app
        .send(request(&Method::GET, "/ui/executions/o-1", None))
        .await;
    assert_eq!(status, StatusCode::OK);
    app.call(
        "POST",
        "/v1/functions/order/executions",
        Some(json!({"name": "c-1"})),
    )
    .await;
    let (status, v) = app.call("GET", "/ui/api/counts?function=order", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["counts"]["PENDING"], 1, "{v}");
    assert_eq!(v["total"], 1);
    assert_eq!(v["functions"], json!(["order"]));
    let (status, _) = app.call("GET", "/ui/api/counts?since=nope", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_schedules_api_lists_pauses_and_triggers() {
    let app = App::new(None, Limits::development()).await;
    // The scheduler loop registers the template's schedules at start.
    let mut listed = Value::Null;
    for _ in 0..200 {
        let (_, v) = app.call("GET", "/v1/schedules", None).await;
        if v["schedules"].as_array().is_some_and(|s| !s.is_empty()) {
            listed = v;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(listed["schedules"][0]["name"], "nightly", "{listed}");
    let (status, v) = app.call("POST", "/v1/schedules/nightly/pause", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["state"], "PAUSED");
    let (status, v) = app.call("POST", "/v1/schedules/nightly/resume", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["state"], "ENABLED");
    let (status, v) = app
        .call("POST", "/v1/schedules/nightly/trigger", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["new"], true);
    let id = v["execution_id"].as_str().unwrap().to_string();
    let (status, _) = app.call("GET", &format!("/v1/executions/{id}"), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, v) = app.call("GET", "/v1/schedules/nope", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(v["error"]["code"], "ScheduleNotFound");
    let (status, _) = app
        .call("POST", "/v1/schedules/nightly/explode", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_runtime_api_answers_only_its_own_processes() {
    let app = App::new(Some(TOKEN), Limits::server()).await;
    // No token needed (nor accepted as a way in): the path's secret is the key.
    let (status, _, _) = app
        .send(request(
            &Method::GET,
            "/fn/order/1-guess/2018-06-01/runtime/invocation/next",
            Some(&format!("Bearer {TOKEN}")),
        ))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "no such function here");
    let dir = tempfile::tempdir().unwrap();
    let spec = lambda_api::FunctionSpec {
        name: "order".into(),
        executable: dir.path().join("no-such-binary"),
        env: Vec::new(),
        timeout: Duration::from_secs(3),
        memory_mb: 128,
        max_instances: 1,
        idle_timeout: Duration::from_secs(60),
    };
    let host = lambda_api::FunctionHost::new(spec, "127.0.0.1:1".into());
    let hosts: Hosts = Arc::new(HashMap::from([("order".to_string(), host)]));
    let router = lambda_api::router(hosts, &Guard::new(Some(TOKEN)), &Limits::server());
    for (method, path) in [
        (
            Method::GET,
            "/fn/order/1-guess/2018-06-01/runtime/invocation/next",
        ),
        (
            Method::GET,
            "/fn/order/guess/2018-06-01/runtime/invocation/next",
        ),
        (
            Method::POST,
            "/fn/order/1-guess/2018-06-01/runtime/invocation/r-1/response",
        ),
        (
            Method::POST,
            "/fn/order/1-guess/2018-06-01/runtime/invocation/r-1/error",
        ),
        (
            Method::POST,
            "/fn/order/1-guess/2018-06-01/runtime/init/error",
        ),
    ] {
        let response = router
            .clone()
            .oneshot(request(&method, path, None))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{method} {path}");
    }
    let response = router
        .oneshot(request(
            &Method::GET,
            "/fn/nope/1-x/2018-06-01/runtime/invocation/next",
            None,
        ))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn starts_missing_a_flow_key_or_using_a_reserved_name_are_refused() {
    use durafn_runtime::dispatch::flow::{Debounce, FlowControl, InputKey};
    let debounce = Debounce {
        period: std::time::Duration::from_secs(5),
        key: InputKey::parse("input.user"),
    };
    let flow = HashMap::from([(
        "order".to_string(),
        FlowControl::new(None, Some(debounce), None),
    )]);
    let app = App::with_flow(Some(TOKEN), Limits::development(), flow).await;
    let (status, v) = app
        .call(
            "POST",
            "/v1/functions/order/executions",
            Some(json!({"name": "n1", "input": {"other": 1}})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"]["code"], "InvalidFlowKey", "{v}");
    assert!(v.to_string().contains("input.user"), "{v}");
    // Nothing was created.
    let (status, _) = app.call("GET", "/v1/executions/n1", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, v) = app
        .call(
            "POST",
            "/v1/functions/order/executions",
            Some(json!({"name": "_durafn.batch.x", "input": {"user": 1}})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"]["code"], "InvalidName", "{v}");
    let (status, v) = app
        .call(
            "POST",
            "/v1/functions/order/executions",
            Some(json!({"name": "n2", "input": {"user": 1}})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v["status"], "PENDING", "{v}");
}

#[tokio::test]
async fn with_a_blob_store_payload_routes_take_64_mib_and_answer_whole() {
    let app = App::build(Some(TOKEN), Limits::development(), true, HashMap::new()).await;
    let pad = "i".repeat(20 << 20);
    let (status, v) = app
        .call(
            "POST",
            "/v1/functions/order/executions",
            Some(json!({ "name": "big", "input": { "pad": pad } })),
        )
        .await;
    assert!(
        status == StatusCode::CREATED || status == StatusCode::ACCEPTED,
        "{status}"
    );
    assert_eq!(v["input"]["pad"].as_str().map(str::len), Some(20 << 20));
    let (status, d) = app.call("GET", "/v1/executions/big", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(d["input"]["pad"].as_str().map(str::len), Some(20 << 20));

    // Over 64 MiB: refused before the body is read, naming the limit.
    let limit = api::payload_body(MAX_OFFLOADED_PAYLOAD_BYTES);
    let req = Request::builder()
        .method(Method::POST)
        .uri("/v1/functions/order/executions")
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .header(header::CONTENT_LENGTH, (limit + 1).to_string())
        .body(Body::from(vec![b' '; limit + 1]))
        .unwrap();
    let (status, _, body) = app.send(req).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(&limit.to_string()), "{body}");

    // Without a blob store the routes keep the 4 MiB limit.
    let plain = App::new(Some(TOKEN), Limits::development()).await;
    let (status, body) = plain
        .call(
            "POST",
            "/v1/functions/order/executions",
            Some(json!({ "name": "big", "input": "p".repeat(5 << 20) })),
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
}
