//! The media-sync workflow, started by a queue: each SQS message
//! `{"asset": "talk.mov", "fail_first": 2}` syncs one media asset —
//! fetch its metadata, download it (a flaky network call, retried with
//! exponential backoff), transcode it, upload the rendition.
//!
//! The services are in-memory stand-ins that count their calls, so tests can
//! prove that retries repeat only the failed step. `fail_first` makes the
//! download fail its first `n` attempts with a retryable error.

use std::collections::HashMap;
use std::sync::Mutex;

use durafn::prelude::*;
use serde::{Deserialize, Serialize};

/// How many download attempts the workflow makes before giving up.
pub const DOWNLOAD_ATTEMPTS: u32 = 5;

/// One asset to sync: `{"asset": "talk.mov", "fail_first": 2}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncRequest {
    /// The asset's key in the source library.
    pub asset: String,
    /// Demo knob: how many download attempts fail before one succeeds.
    #[serde(default)]
    pub fail_first: u32,
}

/// What the metadata service knows about an asset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// The asset's size.
    pub size_bytes: u64,
    /// Its content type.
    pub content_type: String,
}

/// What a synced asset returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncResult {
    /// The asset.
    pub asset: String,
    /// Its metadata.
    pub metadata: Metadata,
    /// The attempt on which the download succeeded (1 = first try).
    pub download_attempts: u32,
    /// The transcoded rendition's key.
    pub rendition: String,
    /// Where the rendition was uploaded.
    pub url: String,
}

/// Errors of the stand-in services.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The asset name is empty: retrying will not help.
    #[error("the request names no asset")]
    NoAsset,
    /// The download's connection dropped: worth another try.
    #[error("connection reset while downloading {asset} (attempt {attempt})")]
    ConnectionReset {
        /// The asset.
        asset: String,
        /// The failed attempt.
        attempt: u32,
    },
}

/// The durable workflow.
pub async fn workflow(ctx: DurableContext, req: SyncRequest) -> Result<SyncResult, DurableError> {
    let metadata: Metadata = ctx
        .step("fetch-metadata", |_| {
            let asset = req.asset.clone();
            async move { library::metadata(&asset).map_err(DurableError::terminal) }
        })
        .await?;

    let download_attempts: u32 = ctx
        .step("download", |s| {
            let req = req.clone();
            async move { network::download(&req, s.attempt()) }
        })
        .retry(RetryPolicy::exponential().max_attempts(DOWNLOAD_ATTEMPTS))
        .await?;

    let rendition: String = ctx
        .step("transcode", |_| {
            let asset = req.asset.clone();
            async move { Ok::<_, DurableError>(transcoder::transcode(&asset)) }
        })
        .await?;

    let url: String = ctx
        .step("upload", |s| {
            let rendition = rendition.clone();
            async move {
                // The execution id + op id make a natural idempotency key.
                let key = format!("{}/{}", s.execution_id(), s.op_id());
                Ok::<_, DurableError>(storage::upload(&rendition, &key))
            }
        })
        .await?;

    Ok(SyncResult {
        asset: req.asset,
        metadata,
        download_attempts,
        rendition,
        url,
    })
}

fn bump(calls: &Mutex<HashMap<String, u32>>, key: &str) -> u32 {
    let mut calls = calls.lock().unwrap_or_else(|p| p.into_inner());
    let n = calls.entry(key.to_string()).or_insert(0);
    *n += 1;
    *n
}

fn count(calls: &Mutex<HashMap<String, u32>>, key: &str) -> u32 {
    let calls = calls.lock().unwrap_or_else(|p| p.into_inner());
    calls.get(key).copied().unwrap_or(0)
}

/// The stand-in media library (metadata lookups).
pub mod library {
    use super::*;

    static CALLS: std::sync::LazyLock<Mutex<HashMap<String, u32>>> =
        std::sync::LazyLock::new(Default::default);

    /// Looks an asset up; its size and type follow from its name.
    pub fn metadata(asset: &str) -> Result<Metadata, MediaError> {
        if asset.trim().is_empty() {
            return Err(MediaError::NoAsset);
        }
        bump(&CALLS, asset);
        let content_type = match asset.rsplit('.').next() {
            Some("mov") => "video/quicktime",
            Some("mp4") => "video/mp4",
            Some("wav") => "audio/wav",
            _ => "application/octet-stream",
        };
        let size_bytes = asset.bytes().fold(1_000_000u64, |acc, b| {
            acc.wrapping_mul(31).wrapping_add(u64::from(b))
        }) % 1_000_000_000;
        Ok(Metadata {
            size_bytes,
            content_type: content_type.to_string(),
        })
    }

    /// How many metadata lookups an asset has seen.
    pub fn lookups(asset: &str) -> u32 {
        count(&CALLS, asset)
    }
}

/// The stand-in network (the flaky download).
pub mod network {
    use super::*;

    static CALLS: std::sync::LazyLock<Mutex<HashMap<String, u32>>> =
        std::sync::LazyLock::new(Default::default);

    /// Downloads an asset; the first `fail_first` attempts drop the connection.
    /// Returns the attempt that succeeded.
    pub fn download(req: &SyncRequest, attempt: u32) -> Result<u32, MediaError> {
        bump(&CALLS, &req.asset);
        if attempt <= req.fail_first {
            tracing::warn!(asset = %req.asset, attempt, "download failed");
            return Err(MediaError::ConnectionReset {
                asset: req.asset.clone(),
                attempt,
            });
        }
        Ok(attempt)
    }

    /// How many download attempts an asset has seen.
    pub fn attempts(asset: &str) -> u32 {
        count(&CALLS, asset)
    }
}

/// The stand-in transcoder.
pub mod transcoder {
    use super::*;

    static CALLS: std::sync::LazyLock<Mutex<HashMap<String, u32>>> =
        std::sync::LazyLock::new(Default::default);

    /// Transcodes an asset to the web rendition.
    pub fn transcode(asset: &str) -> String {
        bump(&CALLS, asset);
        let stem = asset.rsplit_once('.').map_or(asset, |(s, _)| s);
        format!("{stem}.720p.mp4")
    }

    /// How many times an asset has been transcoded.
    pub fn runs(asset: &str) -> u32 {
        count(&CALLS, asset)
    }
}

/// The stand-in object storage.
pub mod storage {
    use super::*;

    static CALLS: std::sync::LazyLock<Mutex<HashMap<String, u32>>> =
        std::sync::LazyLock::new(Default::default);

    /// Uploads a rendition; returns its URL.
    pub fn upload(rendition: &str, idempotency_key: &str) -> String {
        bump(&CALLS, rendition);
        tracing::info!(rendition, idempotency_key, "uploaded");
        format!("https://media.example.com/{rendition}")
    }

    /// How many times a rendition has been uploaded.
    pub fn uploads(rendition: &str) -> u32 {
        count(&CALLS, rendition)
    }
}
