//! `dynamodb://TABLE?endpoint=URL&region=REGION` store URLs and the SDK client
//! configuration they stand for.
//!
//! - With an `endpoint` (DynamoDB Local, ScyllaDB Alternator, a proxy) the
//!   configuration is built synchronously: the region is the URL's, else
//!   `AWS_REGION` / `AWS_DEFAULT_REGION`, else `us-east-1`; credentials are
//!   `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (/ `AWS_SESSION_TOKEN`) from
//!   the environment, else the static pair `x` / `x` that DynamoDB Local accepts.
//! - Without one (AWS itself) the default AWS credential and region chain is
//!   loaded (asynchronously, on first use); `region` overrides the chain's region.
//!
//! Either way the SDK's own retries are disabled: the store retries itself (see
//! `retry.rs`) so that conditional-check failures are never retried blindly.

use std::time::Duration;

use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::config::{BehaviorVersion, Builder, Credentials, Region};

use crate::error::{Result, StoreError};

/// The region used with an explicit endpoint when none is configured.
const FALLBACK_REGION: &str = "us-east-1";

/// A parsed `dynamodb://` store URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DynamoUrl {
    /// The table name.
    pub table: String,
    /// An explicit endpoint (`http://127.0.0.1:8000`), or `None` for AWS.
    pub endpoint: Option<String>,
    /// An explicit region, or `None` for the environment's.
    pub region: Option<String>,
}

fn invalid(url: &str, why: impl std::fmt::Display) -> StoreError {
    StoreError::Invalid(format!(
        "bad store URL {url:?}: {why} (expected dynamodb://TABLE?endpoint=URL&region=REGION; \
         endpoint and region are optional)"
    ))
}

impl DynamoUrl {
    /// Parses `dynamodb://TABLE[?endpoint=URL][&region=REGION]`.
    pub fn parse(url: &str) -> Result<Self> {
        let rest = url
            .strip_prefix("dynamodb://")
            .ok_or_else(|| invalid(url, "it does not start with dynamodb://"))?;
        let (table, query) = match rest.split_once('?') {
            Some((t, q)) => (t, Some(q)),
            None => (rest, None),
        };
        let table = table.strip_suffix('/').unwrap_or(table);
        validate_table(table).map_err(|why| invalid(url, why))?;
        let mut parsed = DynamoUrl {
            table: table.to_string(),
            endpoint: None,
            region: None,
        };
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| invalid(url, format!("parameter {pair:?} has no value")))?;
            let value = percent_decode(value).map_err(|why| invalid(url, why))?;
            if value.is_empty() {
                return Err(invalid(url, format!("parameter {key:?} is empty")));
            }
            let slot = match key {
                "endpoint" => &mut parsed.endpoint,
                "region" => &mut parsed.region,
                other => {
                    return Err(invalid(
                        url,
                        format!("unknown parameter {other:?} (known: endpoint, region)"),
                    ));
                }
            };
            if slot.replace(value).is_some() {
                return Err(invalid(url, format!("parameter {key:?} is given twice")));
            }
        }
        if let Some(ep) = &parsed.endpoint {
            let host = ep
                .strip_prefix("http://")
                .or_else(|| ep.strip_prefix("https://"))
                .ok_or_else(|| {
                    invalid(
                        url,
                        format!("endpoint {ep:?} must start with http:// or https://"),
                    )
                })?;
            if host.is_empty() || host.starts_with('/') {
                return Err(invalid(url, format!("endpoint {ep:?} has no host")));
            }
        }
        Ok(parsed)
    }

    /// The SDK configuration for a URL with an explicit endpoint, built without
    /// any I/O (so [`super::DynamoStore::open`] can be called from sync code).
    /// `None` when the URL has no endpoint: then use [`DynamoUrl::load_config`].
    pub fn config_builder(&self) -> Option<Builder> {
        let endpoint = self.endpoint.as_ref()?;
        let region = self
            .region
            .clone()
            .or_else(|| env_nonempty("AWS_REGION"))
            .or_else(|| env_nonempty("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| FALLBACK_REGION.to_string());
        let credentials = match (
            env_nonempty("AWS_ACCESS_KEY_ID"),
            env_nonempty("AWS_SECRET_ACCESS_KEY"),
        ) {
            (Some(key), Some(secret)) => Credentials::new(
                key,
                secret,
                env_nonempty("AWS_SESSION_TOKEN"),
                None,
                "durafn-environment",
            ),
            _ => Credentials::new("x", "x", None, None, "durafn-static-local"),
        };
        let builder = aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(endpoint.clone())
            .region(Region::new(region))
            .credentials_provider(credentials);
        Some(tune(builder))
    }

    /// The SDK configuration: [`DynamoUrl::config_builder`] with an endpoint,
    /// otherwise the default AWS credential and region chain.
    pub async fn load_config(&self) -> aws_sdk_dynamodb::Config {
        if let Some(builder) = self.config_builder() {
            return builder.build();
        }
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(region) = &self.region {
            loader = loader.region(Region::new(region.clone()));
        }
        let shared = loader.load().await;
        tune(Builder::from(&shared)).build()
    }
}

/// Settings every client of the store gets: no SDK retries (the store retries),
/// and bounded timeouts so a hung connection becomes a retryable error.
/// Every request is counted for [`crate::cost`] (see `usage.rs`).
fn tune(builder: Builder) -> Builder {
    builder
        .interceptor(super::usage::CountRequests)
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .operation_attempt_timeout(Duration::from_secs(20))
                .build(),
        )
}

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// DynamoDB's rule for table names: 3–255 of `[A-Za-z0-9_.-]`.
fn validate_table(table: &str) -> std::result::Result<(), String> {
    if table.is_empty() {
        return Err("the table name is missing".into());
    }
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    if table.len() < 3 || table.len() > 255 || !table.chars().all(ok) {
        return Err(format!(
            "table name {table:?} is not valid: use 3-255 characters of letters, digits, '_', '.' or '-'"
        ));
    }
    Ok(())
}

fn percent_decode(s: &str) -> std::result::Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad percent-escape in {s:?}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{s:?} is not UTF-8 once decoded"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(url: &str) -> DynamoUrl {
        DynamoUrl::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"))
    }

    fn err(url: &str) -> String {
        match DynamoUrl::parse(url) {
            Ok(u) => panic!("{url} parsed as {u:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn parses_table_endpoint_and_region() {
        let u = ok("dynamodb://durafn?endpoint=http://127.0.0.1:8000&region=eu-west-1");
        assert_eq!(u.table, "durafn");
        assert_eq!(u.endpoint.as_deref(), Some("http://127.0.0.1:8000"));
        assert_eq!(u.region.as_deref(), Some("eu-west-1"));
        let u = ok("dynamodb://my.table-1");
        assert_eq!((u.endpoint, u.region), (None, None));
        let u = ok("dynamodb://tbl?endpoint=http%3A%2F%2Fscylla%3A8000");
        assert_eq!(u.endpoint.as_deref(), Some("http://scylla:8000"));
    }

    #[test]
    fn rejects_bad_urls_clearly() {
        assert!(err("dynamodb://").contains("table name is missing"));
        assert!(err("dynamodb://?endpoint=http://x").contains("table name is missing"));
        assert!(err("dynamodb://a/b").contains("not valid"));
        assert!(err("dynamodb://ab").contains("not valid"));
        assert!(err("dynamodb://tbl?endpoint=127.0.0.1:8000").contains("http://"));
        assert!(err("dynamodb://tbl?endpoint=http://").contains("no host"));
        assert!(err("dynamodb://tbl?foo=1").contains("unknown parameter"));
        assert!(err("dynamodb://tbl?region").contains("no value"));
        assert!(err("dynamodb://tbl?region=").contains("empty"));
        assert!(err("dynamodb://tbl?region=a&region=b").contains("twice"));
        assert!(err("dynamodb://tbl?region=%zz").contains("percent"));
        assert!(err("sqlite://x").contains("dynamodb://"));
    }

    #[test]
    fn endpoint_urls_configure_without_io() {
        let u = ok("dynamodb://tbl?endpoint=http://127.0.0.1:1&region=ap-south-1");
        let conf = u.config_builder().map(|b| b.build());
        let conf = conf.unwrap_or_else(|| panic!("an endpoint URL configures synchronously"));
        assert_eq!(conf.region().map(|r| r.as_ref()), Some("ap-south-1"));
        assert!(ok("dynamodb://tbl").config_builder().is_none());
    }
}
