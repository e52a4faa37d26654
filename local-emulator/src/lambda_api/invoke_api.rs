//! The Lambda Invoke API, so `aws-sdk-lambda` clients work against the emulator:
//! `POST /2015-03-31/functions/{name}/invocations` with
//! `X-Amz-Invocation-Type: RequestResponse | Event | DryRun`.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use serde_json::json;

use super::{Hosts, InvokeFailure};
use crate::auth::Guard;
use crate::routes::{Access, Limits, RouteSpec};

/// The Invoke API's handler (see [`ROUTES`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /2015-03-31/functions/{name}/invocations`.
    Invoke,
}

/// The Invoke API's routes (token-checked).
pub const ROUTES: &[RouteSpec<Endpoint>] = &[RouteSpec {
    method: Method::POST,
    path: "/2015-03-31/functions/{name}/invocations",
    access: Access::Token,
    // Lambda's limit for a synchronous invocation's payload.
    body_limit: 6 * 1024 * 1024,
    // The function's own timeout bounds a synchronous invocation.
    timeout: None,
    rate_limited: true,
    endpoint: Endpoint::Invoke,
}];

fn endpoint(_: Endpoint, m: MethodFilter) -> MethodRouter<Hosts> {
    on(m, invoke)
}

/// The Invoke API route.
pub(crate) fn routes(guard: &Guard, limits: &Limits) -> Router<Hosts> {
    crate::routes::build(ROUTES, endpoint, guard, limits)
}

fn aws_error(status: StatusCode, kind: &str, message: String) -> Response {
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(kind) {
        headers.insert("x-amzn-errortype", v);
    }
    (
        status,
        headers,
        axum::Json(json!({ "Type": "User", "message": message })),
    )
        .into_response()
}

/// The function name and qualifier of `FunctionName` (a name, `name:qualifier`,
/// or an ARN `arn:aws:lambda:region:account:function:name[:qualifier]`).
fn name_and_qualifier(function: &str) -> (String, Option<String>) {
    let rest = match function.split_once(":function:") {
        Some((_, rest)) => rest,
        None => function,
    };
    match rest.split_once(':') {
        Some((name, q)) => (name.to_string(), Some(q.to_string())),
        None => (rest.to_string(), None),
    }
}

/// Every function here is `$LATEST`: that is the one qualifier that exists.
const LATEST: &str = "$LATEST";

#[derive(serde::Deserialize)]
struct InvokeQuery {
    #[serde(rename = "Qualifier")]
    qualifier: Option<String>,
}

async fn invoke(
    State(hosts): State<Hosts>,
    Path(function): Path<String>,
    Query(query): Query<InvokeQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (name, in_name) = name_and_qualifier(&function);
    let qualifier = query.qualifier.or(in_name).filter(|q| !q.is_empty());
    let arn = match &qualifier {
        Some(q) => format!("{}:{q}", super::runtime_api::function_arn(&name)),
        None => super::runtime_api::function_arn(&name),
    };
    let host = match hosts.get(&name) {
        Some(host) if qualifier.as_deref().is_none_or(|q| q == LATEST) => host.clone(),
        _ => {
            return aws_error(
                StatusCode::NOT_FOUND,
                "ResourceNotFoundException",
                format!("Function not found: {arn}"),
            );
        }
    };
    if !body.is_empty() && serde_json::from_slice::<serde_json::Value>(&body).is_err() {
        return aws_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequestContentException",
            "Could not parse request body into json".into(),
        );
    }
    let body = if body.is_empty() {
        Bytes::from_static(b"{}")
    } else {
        body
    };
    let kind = headers
        .get("x-amz-invocation-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("RequestResponse");
    match kind {
        "DryRun" => StatusCode::NO_CONTENT.into_response(),
        "Event" => {
            tokio::spawn(async move {
                if let Err(e) = host.invoke(body).await {
                    tracing::warn!(function = %host.spec().name, error = %e, "asynchronous invocation failed");
                }
            });
            StatusCode::ACCEPTED.into_response()
        }
        "RequestResponse" => {
            let mut out = HeaderMap::new();
            out.insert(
                "x-amz-executed-version",
                HeaderValue::from_static("$LATEST"),
            );
            match host.invoke(body).await {
                Ok(answer) => (StatusCode::OK, out, answer).into_response(),
                Err(failure) => {
                    out.insert(
                        "x-amz-function-error",
                        HeaderValue::from_static("Unhandled"),
                    );
                    let (error_type, message) = match failure {
                        InvokeFailure::FunctionError {
                            error_type,
                            message,
                        } => (error_type, message),
                        other => ("Runtime.ExitError".to_string(), other.to_string()),
                    };
                    let body = json!({ "errorType": error_type, "errorMessage": message });
                    (StatusCode::OK, out, axum::Json(body)).into_response()
                }
            }
        }
        other => aws_error(
            StatusCode::BAD_REQUEST,
            "InvalidParameterValueException",
            format!("X-Amz-Invocation-Type {other:?} is not one of RequestResponse, Event, DryRun"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::name_and_qualifier;

    #[test]
    fn function_names_may_be_arns_and_carry_a_qualifier() {
        let n = |s: &str| name_and_qualifier(s);
        assert_eq!(n("order"), ("order".into(), None));
        assert_eq!(n("order:7"), ("order".into(), Some("7".into())));
        assert_eq!(
            n("arn:aws:lambda:us-east-1:000000000000:function:order"),
            ("order".into(), None)
        );
        assert_eq!(
            n("arn:aws:lambda:us-east-1:000000000000:function:order:$LATEST"),
            ("order".into(), Some("$LATEST".into()))
        );
    }
}
