//! The emulator's store, served to its handler processes
//! (`POST /_durafn/store/{secret}`; see [`durafn_runtime::store::remote`]).
//!
//! With the embedded SQLite store, handler processes get
//! `DURAFN_STORE=http://127.0.0.1:PORT/_durafn/store/<secret>` instead of the
//! database file, so every checkpoint of every process goes through the
//! emulator's one writer and concurrent ones share a commit. The secret is
//! random per start and checked in constant time; a wrong one is a 404, as if
//! the route did not exist.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use durafn_runtime::model::MAX_PAYLOAD_BYTES;
use durafn_runtime::store::Store;

use crate::auth::same_secret;

/// The path prefix of the store route.
pub const STORE_PATH: &str = "/_durafn/store";

#[derive(Clone)]
struct StoreApi {
    store: Arc<dyn Store>,
    secret: Arc<str>,
}

/// A fresh random secret for the store route (128 bits, hex).
pub fn new_secret() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The store URL a handler process uses to reach this route.
pub fn url(authority: &str, secret: &str) -> String {
    format!("http://{authority}{STORE_PATH}/{secret}")
}

/// The route serving `store` to callers that know `secret`.
pub fn router(store: Arc<dyn Store>, secret: &str) -> Router {
    Router::new()
        .route(&format!("{STORE_PATH}/{{secret}}"), post(call))
        // A call carries at most one payload of MAX_PAYLOAD_BYTES, JSON-escaped.
        .layer(DefaultBodyLimit::max(4 * MAX_PAYLOAD_BYTES))
        .with_state(StoreApi {
            store,
            secret: Arc::from(secret),
        })
}

async fn call(
    State(api): State<StoreApi>,
    Path(secret): Path<String>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Response {
    use durafn_runtime::store::remote;
    if !same_secret(&secret, &api.secret) {
        return StatusCode::NOT_FOUND.into_response();
    }
    metrics::counter!("durafn_store_requests_total").increment(1);
    // A caller counting its store usage (cost per execution) asks for ours.
    let count = headers.contains_key(remote::USAGE_HEADER);
    let (answer, usage) = remote::serve_counted(&api.store, &body, count).await;
    let mut response = ([(header::CONTENT_TYPE, "application/json")], answer).into_response();
    if let Some(value) = usage
        .map(|u| remote::usage_header(&u))
        .and_then(|v| axum::http::HeaderValue::from_str(&v).ok())
    {
        response.headers_mut().insert(remote::USAGE_HEADER, value);
    }
    response
}
