//! [`S3BlobStore`]: blobs as S3 objects (feature `s3`, on `aws-sdk-s3`).
//!
//! `s3://BUCKET/PREFIX?endpoint=URL&region=REGION`: objects
//! `PREFIX/x-<execution id>/<sha256>`. With an `endpoint` (an S3-compatible
//! server: MinIO, s3rver, a proxy) requests are path-style and the
//! credentials are `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` from the
//! environment, else `S3RVER` / `S3RVER` (what s3rver accepts); without one
//! the default AWS chain is used. `DURAFN_S3_ENDPOINT` gives the endpoint
//! when the URL does not. The bucket must exist (the stack creates it; a
//! test creates its own). The client is built on first use.

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;

use super::{BlobFolder, BlobKey, BlobStore, execution_folder, folder_execution};
use crate::error::{Result, StoreError};
use crate::model::{ExecutionId, Timestamp};

/// Blobs in an S3 bucket.
pub struct S3BlobStore {
    bucket: String,
    /// Empty, or ends with `/`.
    prefix: String,
    endpoint: Option<String>,
    region: Option<String>,
    /// Keys for an endpoint, instead of the environment's.
    keys: Option<(String, String)>,
    client: tokio::sync::OnceCell<Client>,
}

impl std::fmt::Debug for S3BlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3BlobStore")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

fn env_nonempty(k: &str) -> Option<String> {
    std::env::var(k).ok().filter(|v| !v.trim().is_empty())
}

fn invalid(url: &str, why: impl std::fmt::Display) -> StoreError {
    StoreError::Invalid(format!(
        "bad blob store URL {url:?}: {why} (expected s3://BUCKET/PREFIX?endpoint=URL&region=REGION; \
         prefix, endpoint and region are optional)"
    ))
}

impl S3BlobStore {
    /// Parses `s3://BUCKET[/PREFIX][?endpoint=URL][&region=REGION]`; no I/O.
    pub fn open(url: &str) -> Result<Self> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| invalid(url, "it does not start with s3://"))?;
        let (path, query) = match rest.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (rest, None),
        };
        let (bucket, prefix) = path.split_once('/').unwrap_or((path, ""));
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !bucket_ok {
            return Err(invalid(
                url,
                format!("{bucket:?} is not a bucket name (3-63 of a-z, 0-9, '-', '.')"),
            ));
        }
        let prefix = prefix.trim_matches('/');
        let mut store = S3BlobStore {
            bucket: bucket.to_string(),
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
            endpoint: None,
            region: None,
            keys: None,
            client: tokio::sync::OnceCell::new(),
        };
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| invalid(url, format!("parameter {pair:?} has no value")))?;
            let slot = match key {
                "endpoint" => &mut store.endpoint,
                "region" => &mut store.region,
                other => {
                    return Err(invalid(
                        url,
                        format!("unknown parameter {other:?} (known: endpoint, region)"),
                    ));
                }
            };
            *slot = Some(value.to_string());
        }
        if store.endpoint.is_none() {
            store.endpoint = env_nonempty("DURAFN_S3_ENDPOINT");
        }
        if let Some(ep) = &store.endpoint {
            if !(ep.starts_with("http://") || ep.starts_with("https://")) {
                return Err(invalid(
                    url,
                    format!("endpoint {ep:?} must start with http(s)://"),
                ));
            }
        }
        Ok(store)
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Signs with these keys (with an endpoint) instead of the environment's.
    pub fn with_keys(mut self, access_key: &str, secret_key: &str) -> Self {
        self.keys = Some((access_key.to_string(), secret_key.to_string()));
        self
    }

    async fn client(&self) -> &Client {
        self.client
            .get_or_init(|| async {
                let conf = match &self.endpoint {
                    Some(endpoint) => {
                        let region = self
                            .region
                            .clone()
                            .or_else(|| env_nonempty("AWS_REGION"))
                            .unwrap_or_else(|| "us-east-1".into());
                        let keys = self.keys.clone().map(|(k, s)| (Some(k), Some(s)));
                        let credentials = match keys.unwrap_or_else(|| {
                            (
                                env_nonempty("AWS_ACCESS_KEY_ID"),
                                env_nonempty("AWS_SECRET_ACCESS_KEY"),
                            )
                        }) {
                            (Some(k), Some(s)) => Credentials::new(
                                k,
                                s,
                                self.keys
                                    .is_none()
                                    .then(|| env_nonempty("AWS_SESSION_TOKEN"))
                                    .flatten(),
                                None,
                                "durafn-environment",
                            ),
                            _ => Credentials::new("S3RVER", "S3RVER", None, None, "durafn-local"),
                        };
                        aws_sdk_s3::Config::builder()
                            .behavior_version(BehaviorVersion::latest())
                            .endpoint_url(endpoint.clone())
                            .region(Region::new(region))
                            .credentials_provider(credentials)
                            .force_path_style(true)
                            // S3-compatible servers may not know the newer
                            // default checksums (aws-chunked bodies).
                            .request_checksum_calculation(
                                aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired,
                            )
                            .response_checksum_validation(
                                aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired,
                            )
                            .build()
                    }
                    None => {
                        let mut loader = aws_config::defaults(BehaviorVersion::latest());
                        if let Some(r) = &self.region {
                            loader = loader.region(Region::new(r.clone()));
                        }
                        aws_sdk_s3::config::Builder::from(&loader.load().await).build()
                    }
                };
                Client::from_conf(conf)
            })
            .await
    }

    fn object(&self, key: &BlobKey) -> String {
        format!("{}{}", self.prefix, key.path())
    }

    fn failed(&self, what: &str, e: impl std::error::Error) -> StoreError {
        StoreError::Transient(format!(
            "blob store {}: {what}: {}",
            self.describe(),
            DisplayErrorContext(&e)
        ))
    }

    /// Creates the bucket if it does not exist (tests and local servers).
    pub async fn create_bucket_if_missing(&self) -> Result<()> {
        let client = self.client().await;
        if client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .is_ok()
        {
            return Ok(());
        }
        client
            .create_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map_err(|e| self.failed("creating the bucket", e))?;
        Ok(())
    }
}

#[async_trait]
impl BlobStore for S3BlobStore {
    fn describe(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }

    async fn put(&self, key: &BlobKey, bytes: Bytes) -> Result<()> {
        self.client()
            .await
            .put_object()
            .bucket(&self.bucket)
            .key(self.object(key))
            .content_type("application/json")
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| self.failed("writing", e))?;
        Ok(())
    }

    async fn get(&self, key: &BlobKey) -> Result<Option<Bytes>> {
        let got = self
            .client()
            .await
            .get_object()
            .bucket(&self.bucket)
            .key(self.object(key))
            .send()
            .await;
        let out = match got {
            Ok(out) => out,
            Err(e) => {
                let missing = e.as_service_error().is_some_and(|s| s.is_no_such_key());
                if missing {
                    return Ok(None);
                }
                return Err(self.failed("reading", e));
            }
        };
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| self.failed("reading", e))?;
        Ok(Some(body.into_bytes()))
    }

    async fn delete(&self, key: &BlobKey) -> Result<()> {
        self.client()
            .await
            .delete_object()
            .bucket(&self.bucket)
            .key(self.object(key))
            .send()
            .await
            .map_err(|e| self.failed("deleting", e))?;
        Ok(())
    }

    async fn delete_execution(&self, id: &ExecutionId) -> Result<u64> {
        let client = self.client().await;
        let prefix = format!("{}{}/", self.prefix, execution_folder(id));
        let mut deleted = 0;
        loop {
            let out = client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(&prefix)
                .send()
                .await
                .map_err(|e| self.failed("listing", e))?;
            let keys: Vec<String> = out
                .contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_string))
                .collect();
            if keys.is_empty() {
                return Ok(deleted);
            }
            for key in keys {
                client
                    .delete_object()
                    .bucket(&self.bucket)
                    .key(&key)
                    .send()
                    .await
                    .map_err(|e| self.failed("deleting", e))?;
                deleted += 1;
            }
        }
    }

    async fn executions(
        &self,
        after: Option<&ExecutionId>,
        limit: usize,
    ) -> Result<Vec<BlobFolder>> {
        let client = self.client().await;
        let mut folders: Vec<BlobFolder> = Vec::new();
        let mut token: Option<String> = None;
        // Keys after every key of `after`'s folder (`~` sorts after hex digits).
        let start_after = after.map(|a| format!("{}{}/~", self.prefix, execution_folder(a)));
        loop {
            let mut req = client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(&self.prefix);
            req = match (&token, &start_after) {
                (Some(t), _) => req.continuation_token(t),
                (None, Some(s)) => req.start_after(s),
                (None, None) => req,
            };
            let out = req.send().await.map_err(|e| self.failed("listing", e))?;
            for obj in out.contents() {
                let Some(rest) = obj.key().and_then(|k| k.strip_prefix(&self.prefix)) else {
                    continue;
                };
                let Some(id) = rest.split_once('/').and_then(|(f, _)| folder_execution(f)) else {
                    continue;
                };
                let modified = obj
                    .last_modified()
                    .and_then(|t| t.to_millis().ok())
                    .unwrap_or(0);
                match folders.last_mut() {
                    Some(f) if f.execution == id => f.newest = Timestamp(f.newest.0.max(modified)),
                    _ => {
                        if folders.len() == limit {
                            return Ok(folders);
                        }
                        folders.push(BlobFolder {
                            execution: id,
                            newest: Timestamp(modified),
                        });
                    }
                }
            }
            match out.next_continuation_token() {
                Some(t) if out.is_truncated() == Some(true) => token = Some(t.to_string()),
                _ => return Ok(folders),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_without_io() {
        let s = S3BlobStore::open("s3://durafn-blobs/payloads/?endpoint=http://127.0.0.1:4568")
            .unwrap();
        assert_eq!(s.bucket(), "durafn-blobs");
        assert_eq!(s.describe(), "s3://durafn-blobs/payloads/");
        assert_eq!(s.endpoint.as_deref(), Some("http://127.0.0.1:4568"));
        assert!(S3BlobStore::open("s3://B").is_err());
        assert!(S3BlobStore::open("s3://ok-bucket?colour=red").is_err());
    }
}
