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

use aws_lambda_events::apigw::{
    ApiGatewayV2httpRequest, ApiGatewayV2httpRequestContext,
    ApiGatewayV2httpRequestContextHttpDescription,
};
use aws_lambda_events::query_map::QueryMap;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{RawPathParams, Request};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter};
use serde_json::Value;

use crate::api::{ApiError, ApiState, render};
use crate::lambda_api::FunctionHost;
use crate::template::{EventKind, Template};

/// Paths the emulator serves itself; template routes may not shadow them.
const RESERVED: [&str; 6] = ["/v1", "/fn/", "/2015-03-31", "/healthz", "/metrics", "/ui"];

/// The largest request body (Lambda's synchronous payload limit).
const MAX_BODY: usize = 6 * 1024 * 1024;

/// One route of the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HttpRoute {
    /// `POST`, `GET`, ... or `ANY`.
    pub method: String,
    /// The API Gateway path, e.g. `/orders/{id}` or `/files/{proxy+}`.
    pub path: String,
    /// The function it invokes.
    pub function: String,
}

/// The template's HttpApi routes, checked for clashes.
pub(crate) fn routes_of(template: &Template) -> anyhow::Result<Vec<HttpRoute>> {
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
pub(crate) fn router(
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
    let event = event(
        &route_key,
        &parts.method,
        &parts.uri,
        &parts.headers,
        // axum has percent-decoded the path parameters already.
        params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        body,
    );
    let payload = match serde_json::to_vec(&event) {
        Ok(p) => Bytes::from(p),
        Err(e) => {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                format!("the request cannot be passed on as an HTTP API event: {e}"),
            )
            .into_response();
        }
    };
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

/// The HTTP API (payload format 2.0) event API Gateway would send for this
/// request.
///
/// Serialized, the crate's type differs from what API Gateway sends in a few
/// keys the handler side ignores: it writes its v1-compatibility fields
/// (`type`, `methodArn`, `identitySource`, `authorizationToken`,
/// `resource`) as `null`, a top-level `httpMethod` (`GET`, its default) and
/// `stageVariables` as `{}` where API Gateway leaves them out.
fn event(
    route_key: &str,
    method: &Method,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    path_parameters: HashMap<String, String>,
    body: String,
) -> ApiGatewayV2httpRequest {
    let query = uri.query().unwrap_or("");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let now = i64::try_from(now).unwrap_or(0);
    let ua = headers
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");

    let mut http = ApiGatewayV2httpRequestContextHttpDescription::default();
    http.method = method.clone();
    http.path = Some(uri.path().to_string());
    http.protocol = Some("HTTP/1.1".into());
    http.source_ip = Some("127.0.0.1".into());
    http.user_agent = Some(ua.to_string());

    let mut context = ApiGatewayV2httpRequestContext::default();
    context.account_id = Some("000000000000".into());
    context.apiid = Some("durafn-local".into());
    context.domain_name = Some("127.0.0.1".into());
    context.domain_prefix = Some("127".into());
    context.request_id = Some(uuid::Uuid::new_v4().to_string());
    context.route_key = Some(route_key.to_string());
    context.stage = Some("$default".into());
    context.time = Some(render::iso(durafn_runtime::model::Timestamp(now)));
    context.time_epoch = now;
    context.http = http;

    let mut event = ApiGatewayV2httpRequest::default();
    event.version = Some("2.0".into());
    event.route_key = Some(route_key.to_string());
    event.raw_path = Some(uri.path().to_string());
    event.raw_query_string = Some(query.to_string());
    event.headers = joined_headers(headers);
    event.query_string_parameters = query_parameters(query);
    event.path_parameters = path_parameters;
    event.request_context = context;
    event.body = Some(body);
    event.is_base64_encoded = false;
    event
}

/// The headers as API Gateway v2 passes them: one value per name, a repeated
/// name's values joined with commas. (The crate serializes only a name's
/// first value, and refuses a value that is not UTF-8: both are settled
/// here.)
fn joined_headers(headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(headers.keys_len());
    for name in headers.keys() {
        let values: Vec<String> = headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        // Bytes from a valid value, commas and U+FFFD are all valid again.
        if let Ok(v) = HeaderValue::from_str(&values.join(",")) {
            out.insert(name.clone(), v);
        }
    }
    out
}

/// `queryStringParameters` as API Gateway v2 fills it: percent-decoded
/// (`+` is a space), a repeated name's values joined with commas (the
/// crate's serializer joins a name's values).
fn query_parameters(query: &str) -> QueryMap {
    let mut qs: HashMap<String, Vec<String>> = HashMap::new();
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        qs.entry(k.into_owned()).or_default().push(v.into_owned());
    }
    QueryMap::from(qs)
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
        assert_eq!(q.first("name"), Some("Jürgen M"));
        assert_eq!(q.all("tag"), Some(vec!["a", "b,c"]));
        assert_eq!(q.first("empty"), Some(""));
        assert_eq!(q.first("flag"), Some(""));
        assert_eq!(q.first("A"), Some("1"));
        assert!(query_parameters("").is_empty());
        // Serialized as API Gateway sends it: the values joined with commas.
        let mut e = ApiGatewayV2httpRequest::default();
        e.query_string_parameters = q;
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["queryStringParameters"]["tag"], "a,b,c");
        assert_eq!(v["queryStringParameters"]["name"], "Jürgen M");
    }

    #[test]
    fn the_event_has_api_gateway_v2_keys_and_parses_back() {
        let uri: axum::http::Uri = "/orders/42?tag=a&tag=b&q=x%20y".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.append("accept", HeaderValue::from_static("text/plain"));
        headers.append("accept", HeaderValue::from_static("application/json"));
        headers.append("user-agent", HeaderValue::from_static("curl/8"));
        headers.append("x-bytes", HeaderValue::from_bytes(b"caf\xe9").unwrap());
        let path = HashMap::from([("id".to_string(), "42".to_string())]);
        let e = event(
            "GET /orders/{id}",
            &Method::GET,
            &uri,
            &headers,
            path,
            "{}".into(),
        );
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["version"], "2.0");
        assert_eq!(json["routeKey"], "GET /orders/{id}");
        assert_eq!(json["rawPath"], "/orders/42");
        assert_eq!(json["rawQueryString"], "tag=a&tag=b&q=x%20y");
        assert_eq!(json["headers"]["accept"], "text/plain,application/json");
        assert_eq!(json["headers"]["x-bytes"], "caf\u{fffd}");
        assert_eq!(json["queryStringParameters"]["tag"], "a,b");
        assert_eq!(json["queryStringParameters"]["q"], "x y");
        assert_eq!(json["pathParameters"], serde_json::json!({"id": "42"}));
        assert_eq!(json["body"], "{}");
        assert_eq!(json["isBase64Encoded"], false);
        let c = &json["requestContext"];
        assert_eq!(c["accountId"], "000000000000");
        assert_eq!(c["apiId"], "durafn-local");
        assert_eq!(c["domainName"], "127.0.0.1");
        assert_eq!(c["domainPrefix"], "127");
        assert_eq!(c["routeKey"], "GET /orders/{id}");
        assert_eq!(c["stage"], "$default");
        assert!(c["requestId"].as_str().is_some_and(|id| id.len() == 36));
        assert!(c["time"].is_string());
        assert!(c["timeEpoch"].as_i64().is_some_and(|t| t > 0));
        assert_eq!(c["http"]["method"], "GET");
        assert_eq!(c["http"]["path"], "/orders/42");
        assert_eq!(c["http"]["protocol"], "HTTP/1.1");
        assert_eq!(c["http"]["sourceIp"], "127.0.0.1");
        assert_eq!(c["http"]["userAgent"], "curl/8");
        // With no query and no path parameters, both keys are left out (as
        // API Gateway does).
        let bare = event(
            "POST /x",
            &Method::POST,
            &"/x".parse().unwrap(),
            &HeaderMap::new(),
            HashMap::new(),
            String::new(),
        );
        let bare = serde_json::to_value(&bare).unwrap();
        assert!(bare.get("queryStringParameters").is_none(), "{bare}");
        assert!(bare.get("pathParameters").is_none(), "{bare}");
        assert_eq!(bare["requestContext"]["http"]["method"], "POST");

        // The handler side reads it with the same crate.
        let back: ApiGatewayV2httpRequest = serde_json::from_value(json).unwrap();
        assert_eq!(back.raw_path.as_deref(), Some("/orders/42"));
        assert_eq!(back.route_key.as_deref(), Some("GET /orders/{id}"));
        assert_eq!(back.request_context.http.method, Method::GET);
        assert_eq!(
            back.headers.get("accept").unwrap(),
            "text/plain,application/json"
        );
        // The crate splits a joined value back on its commas.
        assert_eq!(
            back.query_string_parameters.all("tag"),
            Some(vec!["a", "b"])
        );
        assert_eq!(back.query_string_parameters.first("q"), Some("x y"));
        assert_eq!(back.path_parameters["id"], "42");
        assert_eq!(back.body.as_deref(), Some("{}"));
        assert_eq!(back.request_context.stage.as_deref(), Some("$default"));
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
