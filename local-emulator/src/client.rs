//! A small HTTP client for the CLI's API calls.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

type Connector = hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>;

/// Talks to a running `durafn dev` or `durafn server` (HTTP), or to a
/// deployed stack's control API (HTTPS, the system's root certificates).
pub struct ApiClient {
    base: String,
    token: Option<String>,
    http: Client<Connector, Full<Bytes>>,
}

/// HTTP and HTTPS; without system root certificates HTTPS calls fail with a
/// certificate error (plain HTTP still works).
fn connector() -> Connector {
    match hyper_rustls::HttpsConnectorBuilder::new().with_native_roots() {
        Ok(b) => b.https_or_http().enable_http1().build(),
        Err(e) => {
            tracing::debug!(error = %e, "no system root certificates; HTTPS endpoints will be refused");
            let config = rustls::ClientConfig::builder()
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth();
            hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(config)
                .https_or_http()
                .enable_http1()
                .build()
        }
    }
}

impl ApiClient {
    /// A client for `base` (e.g. `http://127.0.0.1:9000`).
    pub fn new(base: &str, token: Option<String>) -> Self {
        ApiClient {
            base: base.trim_end_matches('/').to_string(),
            token,
            http: Client::builder(TokioExecutor::new()).build(connector()),
        }
    }

    /// Sends a request; returns the status and the JSON body.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let url = format!("{}{path}", self.base);
        let mut req = Request::builder().method(method).uri(&url);
        if let Some(t) = &self.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let payload = match body {
            Some(b) => {
                req = req.header("content-type", "application/json");
                Bytes::from(serde_json::to_vec(b)?)
            }
            None => Bytes::new(),
        };
        let req = req.body(Full::new(payload))?;
        let resp = self.http.request(req).await.map_err(|e| {
            anyhow::anyhow!("cannot reach durafn at {}: {e}. Is `durafn dev` running? (set --endpoint or DURAFN_URL)", self.base)
        })?;
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await?.to_bytes();
        let json = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Ok((status, json))
    }
}
