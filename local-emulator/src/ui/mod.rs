//! The visibility UI at `/ui/` (executions) and `/ui/executions/{id}`.
//!
//! A single-page app in plain HTML, CSS and JavaScript, embedded in the
//! binary (no CDN, no build step, works offline). The pages themselves load
//! without a token; the data comes from the REST API (`/v1`), which in
//! `durafn server` needs `Authorization: Bearer <token>`: the page asks for the
//! token, keeps it in `sessionStorage` and sends it on every request.
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
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, Router};
use durafn_runtime::model::{ExecutionStatus, Timestamp};
use durafn_runtime::store::ListFilter;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::{ApiError, ApiState};

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

/// The UI routes (static assets embedded in the binary).
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(index))
        .route("/ui/executions/{id}", get(index))
        .route("/ui/assets/app.js", get(app_js))
        .route("/ui/assets/app.css", get(app_css))
        .route("/ui/assets/favicon.svg", get(favicon))
        .route("/ui/api/counts", get(counts))
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(state)
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

/// The same rule as the `/v1` API: with a token configured, the request must
/// carry `Authorization: Bearer <token>`.
fn authorize(state: &ApiState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(token) = &state.token else {
        return Ok(());
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if given.is_some_and(|g| constant_time_eq(g.as_bytes(), token.as_bytes())) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "missing or wrong API token: send `Authorization: Bearer <token>` (the token is in the server's --token-file)",
        ))
    }
}

use crate::api::constant_time_eq;

#[derive(Debug, Deserialize)]
struct CountsQuery {
    function: Option<String>,
    since: Option<String>,
    until: Option<String>,
    q: Option<String>,
}

fn parse_time(what: &str, s: &str) -> Result<Option<Timestamp>, ApiError> {
    if s.is_empty() {
        return Ok(None);
    }
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(Some(Timestamp(ms)));
    }
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map(|d| {
            Some(Timestamp(
                i64::try_from(d.unix_timestamp_nanos() / 1_000_000).unwrap_or(0),
            ))
        })
        .map_err(|_| {
            ApiError::bad_request(
                "InvalidRequest",
                format!("{what}={s:?} is not an RFC 3339 time or epoch milliseconds"),
            )
        })
}

/// `GET /ui/api/counts`: how many executions are in each status, for the
/// same `function`, `since`, `until` and `q` filters as `GET /v1/executions`.
///
/// Cost: the store has no count query, so this pages through
/// `list_executions` (1,000 at a time, whole records) and counts — O(n) in the
/// matching executions, stopping after [`MAX_COUNTED`] with `"capped": true`.
/// Fine for a development and operations tool that asks every few seconds;
/// not something to put behind a public dashboard.
async fn counts(
    State(state): State<ApiState>,
    headers: HeaderMap,
    query: Result<Query<CountsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers)?;
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

    #[test]
    fn tokens_compare_exactly() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
