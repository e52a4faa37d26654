//! Route tables: every protected router is built from a table of
//! [`RouteSpec`]s, and the table says, per route, who may call it, how large
//! its body may be, how long it may take and whether it is rate-limited.
//! [`build`] applies all of it, so a route cannot be added without them, and
//! the tests walk the same tables (a new route is checked for 401 at once).
//!
//! - Authentication: [`crate::auth::require_token`] on every
//!   [`Access::Token`] route.
//! - Body size: over [`RouteSpec::body_limit`] the answer is 413 with the
//!   JSON error, whether `Content-Length` says so or the body runs over.
//! - Time: past [`RouteSpec::timeout`] the answer is 503 `RequestTimeout`.
//! - Rate: with [`Limits::rate`] set (`durafn server`, the control
//!   function), each rate-limited route has its own token bucket; an empty
//!   bucket answers 429 with `Retry-After`. The bucket follows tokio's clock,
//!   so tests run it in virtual time.
//! - CORS: none. No route answers with `Access-Control-Allow-*` headers, so
//!   browsers keep other origins out.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter};
use tokio::time::Instant;

use crate::api::ApiError;
use crate::auth::{Guard, require_token};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (the UI's pages and assets, its sign-in, health checks).
    Public,
    /// Only a caller proving the API token (when one is configured).
    Token,
}

/// One route of a table.
#[derive(Debug, Clone)]
pub struct RouteSpec<E> {
    /// The method.
    pub method: Method,
    /// The path, in axum's syntax (`/v1/executions/{id}`).
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
    /// The largest body accepted, in bytes.
    pub body_limit: usize,
    /// The longest the answer may take (`None`: as long as it takes — the
    /// Invoke API waits for the function, which has its own timeout).
    pub timeout: Option<Duration>,
    /// Subject to [`Limits::rate`].
    pub rate_limited: bool,
    /// The handler (each table's own enum).
    pub endpoint: E,
}

/// The default time limit of a request.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The body limit of a request that carries no payload.
pub const SMALL_BODY: usize = 16 * 1024;

/// A token bucket's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Tokens added per second.
    pub per_second: f64,
    /// The bucket's size (the burst allowed after a quiet spell).
    pub burst: u32,
}

/// The limits that differ between `durafn dev` and a server.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Limits {
    /// The rate limit of rate-limited routes; `None`: unlimited.
    pub rate: Option<RateLimit>,
}

impl Limits {
    /// The rate limit of `durafn server` and the control function: per
    /// route, 100 requests a second with bursts of 200.
    pub const SERVER_RATE: RateLimit = RateLimit {
        per_second: 100.0,
        burst: 200,
    };

    /// No rate limit (`durafn dev`: one developer, benchmarks).
    pub fn development() -> Limits {
        Limits { rate: None }
    }

    /// The limits of a server.
    pub fn server() -> Limits {
        Limits {
            rate: Some(Self::SERVER_RATE),
        }
    }

    /// A server's limits where a token is required, else development's.
    pub fn for_guard(guard: &Guard) -> Limits {
        if guard.is_open() {
            Limits::development()
        } else {
            Limits::server()
        }
    }
}

/// Builds a router from `table`, `endpoint` turning each entry's endpoint
/// into its handler for the given method.
pub fn build<S, E>(
    table: &[RouteSpec<E>],
    endpoint: impl Fn(E, MethodFilter) -> MethodRouter<S>,
    guard: &Guard,
    limits: &Limits,
) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    E: Copy,
{
    let mut router = Router::new();
    for spec in table {
        let Ok(filter) = MethodFilter::try_from(spec.method.clone()) else {
            tracing::error!(method = %spec.method, path = spec.path, "unroutable method in a route table");
            continue;
        };
        let mut route = endpoint(spec.endpoint, filter)
            .layer(DefaultBodyLimit::max(spec.body_limit))
            .layer(from_fn_with_state(spec.body_limit, limit_body));
        if let Some(t) = spec.timeout {
            route = route.layer(from_fn_with_state(t, time_limit));
        }
        if let (true, Some(rate)) = (spec.rate_limited, limits.rate) {
            route = route.layer(from_fn_with_state(
                Arc::new(TokenBucket::new(rate)),
                rate_limit,
            ));
        }
        if spec.access == Access::Token {
            route = route.layer(from_fn_with_state(guard.clone(), require_token));
        }
        router = router.route(spec.path, route);
    }
    router
}

fn too_large(limit: usize) -> Response {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "PayloadTooLarge",
        format!("the request body is over this route's {limit}-byte limit"),
    )
    .into_response()
}

/// 413 with the JSON error: at once when `Content-Length` is over the
/// limit, and in place of the extractors' plain-text 413 when a body runs
/// over while read.
async fn limit_body(State(limit): State<usize>, req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > u64::try_from(limit).unwrap_or(u64::MAX)) {
        return too_large(limit);
    }
    let response = next.run(req).await;
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE && !is_json {
        return too_large(limit);
    }
    response
}

async fn time_limit(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "RequestTimeout",
            format!(
                "the request took longer than {} s; retry it (a start's `wait` ends on its own before this limit)",
                limit.as_secs()
            ),
        )
        .into_response(),
    }
}

/// A token bucket on tokio's clock.
#[derive(Debug)]
pub struct TokenBucket {
    rate: RateLimit,
    state: Mutex<(f64, Instant)>,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate: RateLimit) -> TokenBucket {
        TokenBucket {
            rate,
            state: Mutex::new((f64::from(rate.burst), Instant::now())),
        }
    }

    /// Takes a token, or says how long until one is there.
    pub fn take(&self) -> Result<(), Duration> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let (tokens, at) = *st;
        let per_second = self.rate.per_second.max(f64::MIN_POSITIVE);
        let refilled = (tokens + now.duration_since(at).as_secs_f64() * per_second)
            .min(f64::from(self.rate.burst));
        if refilled >= 1.0 {
            *st = (refilled - 1.0, now);
            Ok(())
        } else {
            *st = (refilled, now);
            Err(Duration::from_secs_f64((1.0 - refilled) / per_second))
        }
    }
}

async fn rate_limit(State(bucket): State<Arc<TokenBucket>>, req: Request, next: Next) -> Response {
    match bucket.take() {
        Ok(()) => next.run(req).await,
        Err(wait) => {
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            let secs = secs.max(1);
            let mut response = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                format!("this route takes at most {} requests a second (bursts of {}); retry after {secs} s",
                    bucket.rate.per_second, bucket.rate.burst),
            )
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
            response
        }
    }
}

/// A concrete path for a table's path: every `{param}` becomes `x`.
pub fn example_path(path: &str) -> String {
    let mut out = String::new();
    let mut in_param = false;
    for c in path.chars() {
        match (c, in_param) {
            ('{', _) => in_param = true,
            ('}', true) => {
                in_param = false;
                out.push('x');
            }
            (_, true) => {}
            (c, false) => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn buckets_refill_on_tokios_clock() {
        let b = TokenBucket::new(RateLimit {
            per_second: 2.0,
            burst: 3,
        });
        for _ in 0..3 {
            assert!(b.take().is_ok());
        }
        let wait = b.take().unwrap_err();
        assert!(
            wait <= Duration::from_millis(500) && wait > Duration::ZERO,
            "{wait:?}"
        );
        tokio::time::advance(Duration::from_millis(500)).await;
        assert!(b.take().is_ok());
        assert!(b.take().is_err());
        tokio::time::advance(Duration::from_secs(60)).await;
        for _ in 0..3 {
            assert!(b.take().is_ok(), "refilled up to the burst, no more");
        }
        assert!(b.take().is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn slow_requests_end_with_a_json_503() {
        use tower::ServiceExt;
        let table = [RouteSpec {
            method: Method::GET,
            path: "/slow",
            access: Access::Public,
            body_limit: SMALL_BODY,
            timeout: Some(Duration::from_secs(5)),
            rate_limited: false,
            endpoint: (),
        }];
        let app: Router = build(
            &table,
            |(), m| {
                axum::routing::on(m, || async {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    "late"
                })
            },
            &Guard::new(None),
            &Limits::development(),
        );
        let req = axum::http::Request::get("/slow")
            .body(axum::body::Body::empty())
            .unwrap();
        let started = Instant::now();
        let response = app.oneshot(req).await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(started.elapsed(), Duration::from_secs(5));
        let body = axum::body::to_bytes(response.into_body(), 10_000)
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["code"], "RequestTimeout");
    }

    #[test]
    fn example_paths_fill_parameters() {
        assert_eq!(
            example_path("/v1/callbacks/{token}/{action}"),
            "/v1/callbacks/x/x"
        );
        assert_eq!(example_path("/ui/"), "/ui/");
    }
}
