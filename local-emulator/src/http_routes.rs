//! The template's `HttpApi` events: each route invokes its function with an
//! API Gateway HTTP API (payload 2.0) event, exactly as API Gateway would.
//!
//! The function's SDK starts the execution (idempotently: an `Idempotency-Key`
//! header names it, else the request id) and answers 200 with the output if
//! it finished in its first invocation, 202 with the execution id otherwise.
//! A `Prefer: wait=N` header makes the emulator wait up to N seconds for a 202
//! execution to finish and answer with its result instead.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{RawPathParams, Request};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter};
use serde_json::{Value, json};

use crate::api::{ApiError, ApiState, render};
use crate::lambda_api::FunctionHost;
use crate::template::{EventKind, Template};

/// Paths the emulator serves itself; template routes may not shadow them.
const RESERVED: [&str; 6] = ["/v1", "/fn/", "/2015-03-31", "/healthz", "/metrics", "/ui"];

/// The largest request body (Lambda's synchronous payload limit).
const MAX_BODY: usize = 6 * 1024 * 1024;

/// One route of the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRoute {
    /// `POST`, `GET`, ... or `ANY`.
    pub method: String,
    /// The API Gateway path, e.g. `/orders/{id}` or `/files/{proxy+}`.
    pub path: String,
    /// The function it invokes.
    pub function: String,
}

/// The template's HttpApi routes, checked for clashes.
pub fn routes_of(template: &Template) -> anyhow::Result<Vec<HttpRoute>> {
    let mut seen: HashMap<(String, String), String> = HashMap::new();
    let mut out = Vec::new();
    for f in &template.functions {
        for e in &f.events {
            let EventKind::HttpApi { method, path } = &e.kind else {
                continue;
            };
            if let Some(r) = RESERVED.iter().find(|r| path.starts_with(**r)) {
                anyhow::bail!(
                    "HttpApi event {:?} of function {:?} (line {}): path {path} is reserved by durafn ({r}…); choose another path",
                    e.name,
                    f.name,
                    e.line
                );
            }
            let key = (method.to_ascii_uppercase(), path.clone());
            if let Some(other) = seen.insert(key, f.name.clone()) {
                anyhow::bail!(
                    "HttpApi event {:?} of function {:?} (line {}): {method} {path} is already routed to {other:?}",
                    e.name,
                    f.name,
                    e.line
                );
            }
            out.push(HttpRoute {
                method: method.to_ascii_uppercase(),
                path: path.clone(),
                function: f.name.clone(),
            });
        }
    }
    Ok(out)
}

/// `{proxy+}` (API Gateway) → `{*proxy}` (axum).
fn axum_path(path: &str) -> String {
    path.split('/')
        .map(
            |seg| match seg.strip_prefix('{').and_then(|s| s.strip_suffix("+}")) {
                Some(name) => format!("{{*{name}}}"),
                None => seg.to_string(),
            },
        )
        .collect::<Vec<_>>()
        .join("/")
}

fn method_filter(method: &str) -> anyhow::Result<MethodFilter> {
    Ok(match method {
        "ANY" => MethodFilter::GET
            .or(MethodFilter::POST)
            .or(MethodFilter::PUT)
            .or(MethodFilter::PATCH)
            .or(MethodFilter::DELETE)
            .or(MethodFilter::HEAD)
            .or(MethodFilter::OPTIONS),
        "GET" => MethodFilter::GET,
        "POST" => MethodFilter::POST,
        "PUT" => MethodFilter::PUT,
        "PATCH" => MethodFilter::PATCH,
        "DELETE" => MethodFilter::DELETE,
        "HEAD" => MethodFilter::HEAD,
        "OPTIONS" => MethodFilter::OPTIONS,
        other => anyhow::bail!("HttpApi method {other:?} is not supported"),
    })
}

/// A router serving every route, invoking through `hosts`.
pub fn router(
    routes: &[HttpRoute],
    hosts: &HashMap<String, Arc<FunctionHost>>,
    api: ApiState,
) -> anyhow::Result<Router> {
    let mut by_path: BTreeMap<String, MethodRouter> = BTreeMap::new();
    for r in routes {
        let Some(host) = hosts.get(&r.function).cloned() else {
            continue;
        };
        let route_key = format!("{} {}", r.method, r.path);
        let api = api.clone();
        let handler = move |params: RawPathParams, req: Request| {
            let (host, route_key, api) = (host.clone(), route_key.clone(), api.clone());
            async move { handle(host, route_key, api, params, req).await }
        };
        let filter = method_filter(&r.method)?;
        let path = axum_path(&r.path);
        let entry = by_path.remove(&path).unwrap_or_default();
        by_path.insert(path, entry.on(filter, handler));
    }
    let mut router = Router::new();
    for (path, methods) in by_path {
        router = router.route(&path, methods);
    }
    Ok(router)
}

async fn handle(
    host: Arc<FunctionHost>,
    route_key: String,
    api: ApiState,
    params: RawPathParams,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let body: Bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "PayloadTooLarge",
                format!("the request body is over the {MAX_BODY}-byte limit"),
            )
            .into_response();
        }
    };
    let Ok(body) = String::from_utf8(body.to_vec()) else {
        return ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedBody",
            "send the input as a JSON body, not binary",
        )
        .into_response();
    };
    let wait = prefer_wait(&parts.headers);
    let event = event_json(
        &route_key,
        &parts.method,
        &parts.uri,
        &parts.headers,
        &params,
        body,
    );
    let payload = Bytes::from(event.to_string());
    let answer = match host.invoke(payload).await {
        Ok(a) => a,
        Err(e) => {
            return ApiError::new(StatusCode::BAD_GATEWAY, "InvocationFailed", e.to_string())
                .into_response();
        }
    };
    let Ok(resp) = serde_json::from_slice::<Value>(&answer) else {
        return ApiError::new(
            StatusCode::BAD_GATEWAY,
            "BadFunctionResponse",
            "the function's answer is not JSON",
        )
        .into_response();
    };
    let status = resp["statusCode"].as_u64().unwrap_or(200);
    if status == 202 && !wait.is_zero() {
        if let Some(id) = resp["body"]
            .as_str()
            .and_then(|b| serde_json::from_str::<Value>(b).ok())
            .and_then(|b| b["execution_id"].as_str().map(str::to_string))
        {
            if let Some(done) = settled_result(&api, &id, wait).await {
                return done;
            }
        }
    }
    to_http(&resp)
}

/// `Prefer: wait=N` (seconds, at most 300).
fn prefer_wait(headers: &HeaderMap) -> Duration {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|p| p.trim().strip_prefix("wait="))
        .filter_map(|n| n.trim().parse::<u64>().ok())
        .map(|n| Duration::from_secs(n.min(300)))
        .next()
        .unwrap_or(Duration::ZERO)
}

async fn settled_result(api: &ApiState, id: &str, wait: Duration) -> Option<Response> {
    let id = durafn_runtime::model::ExecutionId::new(id).ok()?;
    crate::api::wait_until_settled(api, &id, wait).await.ok()?;
    let journal = api.store.load_journal(&id).await.ok()??;
    let e = &journal.execution;
    if !e.status.is_final() {
        return None;
    }
    let code = if e.status == durafn_runtime::model::ExecutionStatus::Succeeded {
        StatusCode::OK
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    let body = render::describe(e, &journal.operations);
    Some((code, axum::Json(body)).into_response())
}

fn event_json(
    route_key: &str,
    method: &Method,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    params: &RawPathParams,
    body: String,
) -> Value {
    let mut hdrs = serde_json::Map::new();
    for (name, value) in headers {
        let v = String::from_utf8_lossy(value.as_bytes()).to_string();
        match hdrs.get_mut(name.as_str()) {
            Some(Value::String(prev)) => {
                prev.push(',');
                prev.push_str(&v);
            }
            _ => {
                hdrs.insert(name.as_str().to_string(), Value::String(v));
            }
        }
    }
    let query = uri.query().unwrap_or("");
    let qs = query_parameters(query);
    // axum has percent-decoded the path parameters already.
    let path_params: serde_json::Map<String, Value> = params
        .iter()
        .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
        .collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let ua = headers
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    json!({
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": uri.path(),
        "rawQueryString": query,
        "headers": hdrs,
        "queryStringParameters": if qs.is_empty() { Value::Null } else { Value::Object(qs) },
        "pathParameters": if path_params.is_empty() { Value::Null } else { Value::Object(path_params) },
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "durafn-local",
            "domainName": "127.0.0.1",
            "domainPrefix": "127",
            "requestId": uuid::Uuid::new_v4().to_string(),
            "routeKey": route_key,
            "stage": "$default",
            "time": render::iso(durafn_runtime::model::Timestamp(i64::try_from(now).unwrap_or(0))),
            "timeEpoch": now,
            "http": {
                "method": method.as_str(),
                "path": uri.path(),
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": ua,
            },
        },
        "body": body,
        "isBase64Encoded": false,
    })
}

/// `queryStringParameters` as API Gateway v2 fills it: percent-decoded
/// (`+` is a space), a repeated name's values joined with commas.
fn query_parameters(query: &str) -> serde_json::Map<String, Value> {
    let mut qs = serde_json::Map::new();
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match qs.get_mut(k.as_ref()) {
            Some(Value::String(prev)) => {
                prev.push(',');
                prev.push_str(&v);
            }
            _ => {
                qs.insert(k.into_owned(), Value::String(v.into_owned()));
            }
        }
    }
    qs
}

/// An API Gateway v2 response object → an HTTP response.
fn to_http(resp: &Value) -> Response {
    // A bare JSON answer (not a response object) is returned as the body, as API Gateway does.
    if resp.get("statusCode").is_none() {
        return (StatusCode::OK, axum::Json(resp.clone())).into_response();
    }
    let status = resp["statusCode"]
        .as_u64()
        .and_then(|s| u16::try_from(s).ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::BAD_GATEWAY);
    let mut builder = Response::builder().status(status);
    if let Some(h) = resp["headers"].as_object() {
        for (k, v) in h {
            if let (Ok(name), Some(Ok(value))) = (
                HeaderName::try_from(k.as_str()),
                v.as_str().map(HeaderValue::from_str),
            ) {
                builder = builder.header(name, value);
            }
        }
    }
    let body = resp["body"].as_str().unwrap_or("").to_string();
    builder
        .body(Body::from(body))
        .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_are_percent_decoded_and_repeats_joined() {
        let q = query_parameters("name=J%C3%BCrgen+M&tag=a&tag=b%2Cc&empty=&flag&%41=1");
        assert_eq!(q["name"], "Jürgen M");
        assert_eq!(q["tag"], "a,b,c");
        assert_eq!(q["empty"], "");
        assert_eq!(q["flag"], "");
        assert_eq!(q["A"], "1");
        assert!(query_parameters("").is_empty());
    }

    #[test]
    fn greedy_paths_become_axum_wildcards() {
        assert_eq!(axum_path("/files/{proxy+}"), "/files/{*proxy}");
        assert_eq!(axum_path("/orders/{id}"), "/orders/{id}");
    }

    #[test]
    fn prefer_wait_is_read_and_capped() {
        let mut h = HeaderMap::new();
        h.insert("prefer", HeaderValue::from_static("respond-async, wait=5"));
        assert_eq!(prefer_wait(&h), Duration::from_secs(5));
        h.insert("prefer", HeaderValue::from_static("wait=9999"));
        assert_eq!(prefer_wait(&h), Duration::from_secs(300));
        assert_eq!(prefer_wait(&HeaderMap::new()), Duration::ZERO);
    }

    #[test]
    fn reserved_and_duplicate_routes_are_refused() {
        let t = crate::template::parse(
            "Resources:\n  F:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: x\n      Events:\n        A:\n          Type: HttpApi\n          Properties:\n            Path: /v1/x\n            Method: get\n",
            "t.yaml",
        )
        .unwrap();
        let err = routes_of(&t).unwrap_err().to_string();
        assert!(err.contains("reserved"), "{err}");
    }
}
