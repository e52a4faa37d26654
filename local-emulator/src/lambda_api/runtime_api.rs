//! The Lambda Runtime API, one base path per handler process:
//! `/fn/{function}/{instance}/2018-06-01/runtime/...`, which the emulator passes
//! to each process as `AWS_LAMBDA_RUNTIME_API`. The `lambda_runtime` crate
//! polls it exactly as it polls AWS Lambda's.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::{FunctionHost, Hosts, InvokeFailure};

/// The Runtime API routes.
pub(crate) fn routes() -> Router<Hosts> {
    Router::new()
        // GET /2018-06-01/runtime/invocation/next
        .route(
            "/fn/{function}/{instance}/2018-06-01/runtime/invocation/next",
            get(next),
        )
        // POST /2018-06-01/runtime/invocation/{request_id}/response
        .route(
            "/fn/{function}/{instance}/2018-06-01/runtime/invocation/{request_id}/response",
            post(response),
        )
        // POST /2018-06-01/runtime/invocation/{request_id}/error
        .route(
            "/fn/{function}/{instance}/2018-06-01/runtime/invocation/{request_id}/error",
            post(error),
        )
        // POST /2018-06-01/runtime/init/error
        .route(
            "/fn/{function}/{instance}/2018-06-01/runtime/init/error",
            post(init_error),
        )
}

fn host(hosts: &Hosts, function: &str) -> Result<Arc<FunctionHost>, Response> {
    hosts.get(function).cloned().ok_or_else(|| {
        (
            StatusCode::NOT_FOUND,
            format!("unknown function {function:?}"),
        )
            .into_response()
    })
}

/// The function's host and the process the path segment proves to be.
fn process(
    hosts: &Hosts,
    function: &str,
    segment: &str,
) -> Result<(Arc<FunctionHost>, u64), Response> {
    let h = host(hosts, function)?;
    match h.authenticate(segment) {
        Some(id) => Ok((h, id)),
        None => Err((StatusCode::FORBIDDEN, "not a process of this emulator").into_response()),
    }
}

/// The ARN the emulator reports for a function.
pub fn function_arn(function: &str) -> String {
    format!("arn:aws:lambda:us-east-1:000000000000:function:{function}")
}

async fn next(
    State(hosts): State<Hosts>,
    Path((function, instance)): Path<(String, String)>,
) -> Response {
    let (host, instance) = match process(&hosts, &function, &instance) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let Some(d) = host.next(instance).await else {
        return (StatusCode::GONE, "this process has been retired").into_response();
    };
    let mut headers = HeaderMap::new();
    let mut put = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    };
    put("lambda-runtime-aws-request-id", d.request_id.clone());
    put("lambda-runtime-deadline-ms", d.deadline_ms.to_string());
    put(
        "lambda-runtime-invoked-function-arn",
        function_arn(&function),
    );
    put(
        "lambda-runtime-trace-id",
        trace_header(d.deadline_ms, &d.request_id),
    );
    put("content-type", "application/json".into());
    (StatusCode::OK, headers, d.payload).into_response()
}

async fn response(
    State(hosts): State<Hosts>,
    Path((function, instance, request_id)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    let (host, instance) = match process(&hosts, &function, &instance) {
        Ok(p) => p,
        Err(r) => return r,
    };
    if host.complete(instance, &request_id, Ok(body)) {
        StatusCode::ACCEPTED.into_response()
    } else {
        (StatusCode::BAD_REQUEST, "unknown or finished request id").into_response()
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ErrorReport {
    #[serde(default)]
    error_type: String,
    #[serde(default)]
    error_message: String,
}

fn read_report(body: &[u8]) -> ErrorReport {
    serde_json::from_slice(body).unwrap_or_else(|_| ErrorReport {
        error_type: "Unknown".into(),
        error_message: String::from_utf8_lossy(body).into_owned(),
    })
}

async fn error(
    State(hosts): State<Hosts>,
    Path((function, instance, request_id)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    let (host, instance) = match process(&hosts, &function, &instance) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let report = read_report(&body);
    let failure = InvokeFailure::FunctionError {
        error_type: report.error_type,
        message: report.error_message,
    };
    if host.complete(instance, &request_id, Err(failure)) {
        StatusCode::ACCEPTED.into_response()
    } else {
        (StatusCode::BAD_REQUEST, "unknown or finished request id").into_response()
    }
}

async fn init_error(
    State(hosts): State<Hosts>,
    Path((function, instance)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    if let Err(r) = process(&hosts, &function, &instance) {
        return r;
    }
    let report = read_report(&body);
    tracing::error!(%function, error_type = %report.error_type, message = %report.error_message, "handler failed to initialise");
    if hosts.contains_key(&function) {
        StatusCode::ACCEPTED.into_response()
    } else {
        (
            StatusCode::NOT_FOUND,
            format!("unknown function {function:?}"),
        )
            .into_response()
    }
}

/// The invocation's X-Ray trace header, in X-Ray's form
/// `Root=1-<8 hex: epoch seconds>-<24 hex>`, derived from the request id.
fn trace_header(deadline_ms: u64, request_id: &str) -> String {
    let id: String = request_id
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(24)
        .collect();
    format!("Root=1-{:08x}-{id:0>24}", deadline_ms / 1000)
}

#[cfg(test)]
mod trace_header_tests {
    use super::trace_header;

    #[test]
    fn trace_headers_have_x_ray_s_form() {
        let h = trace_header(1_796_225_253_000, "0190d2c4-7a3b-7c1d-9e8f-0123456789ab");
        let root = h.strip_prefix("Root=").unwrap_or_else(|| panic!("{h}"));
        let parts: Vec<&str> = root.split('-').collect();
        assert_eq!(parts.len(), 3, "{h}");
        assert_eq!(parts[0], "1");
        assert_eq!(parts[1].len(), 8, "{h}");
        assert_eq!(parts[2].len(), 24, "{h}");
        assert!(
            parts[1..]
                .iter()
                .all(|p| p.chars().all(|c| c.is_ascii_hexdigit()))
        );
        // A short id is padded, never cut below X-Ray's length.
        assert!(trace_header(0, "ab").ends_with(&format!("{:0>24}", "ab")));
    }
}
