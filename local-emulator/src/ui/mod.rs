//! The visibility UI at `/ui/` (executions) and `/ui/executions/{id}`.
//!
//! A single-page app in plain HTML, CSS and JavaScript, embedded in the
//! binary (no CDN, no build step, works offline). The pages themselves load
//! without a token; the data comes from the REST API (`/v1`), which in
//! `durafn server` needs the token: the page shows a sign-in form that posts
//! it to `POST /ui/login`, which answers with an `HttpOnly; SameSite=Strict`
//! session cookie (an HMAC of the token, not the token) that the browser then
//! sends with every API request; script never holds the token.
//! `POST /ui/logout` clears the cookie.
//!
//! Besides the REST API the UI uses one endpoint of its own,
//! `GET /ui/api/counts?function=&since=&until=&q=`: executions per status for
//! the list's filters, and the template's function names.
//!
//! Every UI response carries a strict Content-Security-Policy (no inline
//! scripts or styles, nothing from other origins); the script builds its DOM
//! with `textContent`, never with HTML strings.

use std::collections::BTreeMap;

use axum::extract::{Query, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use axum::{Json, Router};
use durafn_runtime::model::ExecutionStatus;
use durafn_runtime::store::ListFilter;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::{ApiError, ApiState};
use crate::auth::Guard;
use crate::routes::{Access, DEFAULT_TIMEOUT, Limits, RouteSpec, SMALL_BODY};

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");
const FAVICON_SVG: &str = include_str!("assets/favicon.svg");

/// The Content-Security-Policy of every UI response: only this origin's own
/// script, styles and API; no inline code, no framing, no plugins.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
                   img-src 'self' data:; connect-src 'self'; object-src 'none'; \
                   base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The most executions one counts request reads (see [`counts`]).
const MAX_COUNTED: usize = 10_000;

/// The UI's handlers (see [`ROUTES`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `GET /ui`: a redirect to `/ui/`.
    Redirect,
    /// The page (`/ui/`, `/ui/executions/{id}`).
    Index,
    /// The script.
    AppJs,
    /// The styles.
    AppCss,
    /// The icon.
    Favicon,
    /// `GET /ui/api/counts`.
    Counts,
    /// `POST /ui/login`: sets the session cookie.
    Login,
    /// `POST /ui/logout`: clears it.
    Logout,
}

const fn spec(
    method: Method,
    path: &'static str,
    access: Access,
    rate_limited: bool,
    endpoint: Endpoint,
) -> RouteSpec<Endpoint> {
    RouteSpec {
        method,
        path,
        access,
        body_limit: SMALL_BODY,
        timeout: Some(DEFAULT_TIMEOUT),
        rate_limited,
        endpoint,
    }
}

/// Every route of the UI. The pages, assets and the sign-in are public (the
/// sign-in form must load); the data comes from token-checked routes.
pub const ROUTES: &[RouteSpec<Endpoint>] = &[
    spec(
        Method::GET,
        "/ui",
        Access::Public,
        false,
        Endpoint::Redirect,
    ),
    spec(Method::GET, "/ui/", Access::Public, false, Endpoint::Index),
    spec(
        Method::GET,
        "/ui/executions/{id}",
        Access::Public,
        false,
        Endpoint::Index,
    ),
    spec(
        Method::GET,
        "/ui/assets/app.js",
        Access::Public,
        false,
        Endpoint::AppJs,
    ),
    spec(
        Method::GET,
        "/ui/assets/app.css",
        Access::Public,
        false,
        Endpoint::AppCss,
    ),
    spec(
        Method::GET,
        "/ui/assets/favicon.svg",
        Access::Public,
        false,
        Endpoint::Favicon,
    ),
    spec(
        Method::GET,
        "/ui/api/counts",
        Access::Token,
        false,
        Endpoint::Counts,
    ),
    // Guessing the token is rate-limited like starts.
    spec(
        Method::POST,
        "/ui/login",
        Access::Public,
        true,
        Endpoint::Login,
    ),
    spec(
        Method::POST,
        "/ui/logout",
        Access::Public,
        false,
        Endpoint::Logout,
    ),
];

#[derive(Clone)]
struct UiState {
    api: ApiState,
    guard: Guard,
}

fn endpoint(e: Endpoint, m: MethodFilter) -> MethodRouter<UiState> {
    match e {
        Endpoint::Redirect => on(m, || async { Redirect::to("/ui/") }),
        Endpoint::Index => on(m, index),
        Endpoint::AppJs => on(m, app_js),
        Endpoint::AppCss => on(m, app_css),
        Endpoint::Favicon => on(m, favicon),
        Endpoint::Counts => on(m, counts),
        Endpoint::Login => on(m, login),
        Endpoint::Logout => on(m, logout),
    }
}

/// The UI routes (static assets embedded in the binary), with a server's
/// limits where the state requires a token.
pub fn router(state: ApiState) -> Router {
    let guard = Guard::new(state.token.as_deref());
    let limits = Limits::for_guard(&guard);
    router_with(state, &guard, &limits)
}

/// The UI routes behind `guard`, with `limits`.
pub fn router_with(state: ApiState, guard: &Guard, limits: &Limits) -> Router {
    crate::routes::build(ROUTES, endpoint, guard, limits)
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(UiState {
            api: state,
            guard: guard.clone(),
        })
}

#[derive(Debug, Deserialize)]
struct LoginRequest {
    token: String,
}

/// `POST /ui/login {"token": "..."}`: 204 with the session cookie
/// (`HttpOnly; SameSite=Strict`) for the right token, 401 otherwise.
async fn login(
    State(st): State<UiState>,
    body: Result<Json<LoginRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(req) = match body {
        Ok(b) => b,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "PayloadTooLarge",
                format!("the request body is over the {SMALL_BODY}-byte limit"),
            )
            .into_response();
        }
        Err(e) => {
            return ApiError::bad_request(
                "InvalidRequest",
                format!("{}; expected {{\"token\": string}}", e.body_text()),
            )
            .into_response();
        }
    };
    if !st.guard.is_token(req.token.trim()) {
        return crate::auth::unauthorized();
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Some(cookie) = st
        .guard
        .session_value()
        .and_then(crate::auth::session_cookie)
    {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

/// `POST /ui/logout`: clears the session cookie.
async fn logout() -> Response {
    (
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, crate::auth::cleared_session_cookie())],
    )
        .into_response()
}

async fn security_headers(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // Assets ship inside the binary: revalidate so an upgrade shows at once.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        body,
    )
        .into_response()
}

async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

async fn app_css() -> Response {
    asset("text/css; charset=utf-8", APP_CSS)
}

async fn favicon() -> Response {
    asset("image/svg+xml", FAVICON_SVG)
}

#[derive(Debug, Deserialize)]
struct CountsQuery {
    function: Option<String>,
    since: Option<String>,
    until: Option<String>,
    q: Option<String>,
}

use crate::api::render::parse_time;

/// `GET /ui/api/counts`: how many executions are in each status, for the
/// same `function`, `since`, `until` and `q` filters as `GET /v1/executions`.
///
/// Cost: the store has no count query, so this pages through
/// `list_executions` (1,000 at a time, whole records) and counts — O(n) in the
/// matching executions, stopping after [`MAX_COUNTED`] with `"capped": true`.
/// Fine for a development and operations tool that asks every few seconds;
/// not something to put behind a public dashboard.
async fn counts(
    State(UiState { api: state, .. }): State<UiState>,
    query: Result<Query<CountsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request("InvalidRequest", e.body_text()))?;
    let mut filter = ListFilter {
        function: q.function.filter(|f| !f.is_empty()),
        status: None,
        created_after: q
            .since
            .as_deref()
            .map(|s| parse_time("since", s))
            .transpose()?
            .flatten(),
        created_before: q
            .until
            .as_deref()
            .map(|s| parse_time("until", s))
            .transpose()?
            .flatten(),
        id_contains: q.q.filter(|s| !s.is_empty()),
        limit: 1000,
        cursor: None,
    };
    let mut counts: BTreeMap<&'static str, u64> = ExecutionStatus::ALL
        .iter()
        .map(|s| (s.as_str(), 0))
        .collect();
    let mut total: u64 = 0;
    let mut seen = 0usize;
    let mut capped = false;
    loop {
        let page = state.store.list_executions(&filter).await?;
        for e in &page.executions {
            *counts.entry(e.status.as_str()).or_insert(0) += 1;
            total += 1;
        }
        seen += page.executions.len();
        match page.next_cursor {
            Some(_) if seen >= MAX_COUNTED => {
                capped = true;
                break;
            }
            Some(cursor) => filter.cursor = Some(cursor),
            None => break,
        }
    }
    Ok(Json(json!({
        "counts": counts,
        "total": total,
        "capped": capped,
        "functions": state.functions.iter().collect::<Vec<_>>(),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use durafn_runtime::model::Timestamp;

    #[test]
    fn assets_are_embedded_and_free_of_inline_code() {
        assert!(INDEX_HTML.contains("/ui/assets/app.js"));
        assert!(!INDEX_HTML.contains("<script>"), "no inline scripts");
        assert!(!INDEX_HTML.contains("style="), "no inline styles");
        assert!(
            !APP_JS.contains("innerHTML"),
            "the script never parses HTML"
        );
        assert!(!APP_JS.contains("http://") && !APP_JS.contains("https://"));
        assert!(!APP_CSS.contains("http://") && !APP_CSS.contains("https://"));
    }

    #[test]
    fn times_parse_like_the_api() {
        assert_eq!(parse_time("since", ""), Ok(None));
        assert_eq!(parse_time("since", "1000"), Ok(Some(Timestamp(1000))));
        assert_eq!(
            parse_time("since", "2026-01-01T00:00:00.123Z"),
            Ok(Some(Timestamp(1_767_225_600_123)))
        );
        assert!(parse_time("since", "yesterday").is_err());
    }
}
