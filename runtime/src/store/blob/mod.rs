//! Blob stores: where payloads too large for a record are kept.
//!
//! An [`OffloadingStore`](super::OffloadingStore) writes each payload over
//! [`OFFLOAD_THRESHOLD_BYTES`](super::OFFLOAD_THRESHOLD_BYTES) to a
//! [`BlobStore`] under its execution and its content hash, and records a
//! small reference in its place (see `docs/payloads.md`). Two backends, one
//! trait and one contract ([`contract`], run against each):
//! - [`DirBlobStore`] (`file:///PATH`): files under
//!   `PATH/x-<execution id>/<sha256>`, what `durafn dev` uses under its state
//!   folder;
//! - `S3BlobStore` (`s3://BUCKET/PREFIX`, feature `s3`): objects under
//!   `PREFIX/x-<execution id>/<sha256>` (see `s3.rs`).
//!
//! Keys are content hashes, so a write is idempotent (writing the same
//! payload twice writes one blob) and a blob never changes once written.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::{Result, StoreError};
use crate::model::{ExecutionId, Timestamp};

#[cfg(feature = "testing")]
pub mod contract;
mod dir;
#[cfg(feature = "s3")]
mod s3;

pub use dir::DirBlobStore;
#[cfg(feature = "s3")]
pub use s3::S3BlobStore;

/// Where one blob lives: its execution and the SHA-256 of its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BlobKey {
    /// The execution whose record references it.
    pub execution: ExecutionId,
    /// The SHA-256 of its bytes, 64 lower-case hex digits.
    pub sha256: String,
}

impl BlobKey {
    /// The key of `bytes` under `execution`.
    pub fn of(execution: &ExecutionId, bytes: &[u8]) -> BlobKey {
        BlobKey {
            execution: execution.clone(),
            sha256: sha256_hex(bytes),
        }
    }

    /// A key from a recorded hash; `None` unless it is 64 hex digits (so a
    /// key can never name a path outside its execution's folder).
    pub fn parse(execution: &ExecutionId, sha256: &str) -> Option<BlobKey> {
        let ok = sha256.len() == 64 && sha256.bytes().all(|b| b.is_ascii_hexdigit());
        ok.then(|| BlobKey {
            execution: execution.clone(),
            sha256: sha256.to_ascii_lowercase(),
        })
    }

    /// The relative path (or object key) `x-<execution id>/<sha256>`.
    pub fn path(&self) -> String {
        format!("{}/{}", execution_folder(&self.execution), self.sha256)
    }
}

/// The folder (key prefix) of an execution's blobs: `x-<id>`. The `x-`
/// keeps ids such as `.` and `..` (valid execution names) from being read as
/// relative paths.
pub fn execution_folder(id: &ExecutionId) -> String {
    format!("x-{id}")
}

/// The execution a folder name belongs to (the inverse of [`execution_folder`]).
pub fn folder_execution(folder: &str) -> Option<ExecutionId> {
    folder
        .strip_prefix("x-")
        .and_then(|id| ExecutionId::new(id).ok())
}

/// SHA-256 of `bytes`, lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// One execution's blobs, as [`BlobStore::executions`] lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobFolder {
    /// The execution.
    pub execution: ExecutionId,
    /// When its newest blob was written (wall clock).
    pub newest: Timestamp,
}

/// Keeps payload blobs by [`BlobKey`].
#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// What it is, for logs and errors (`file:///…`, `s3://bucket/prefix`).
    fn describe(&self) -> String;

    /// Writes a blob durably (it is readable, after a crash too, once this
    /// returns). Writing a key that exists is a no-op: keys are hashes.
    async fn put(&self, key: &BlobKey, bytes: Bytes) -> Result<()>;

    /// Reads a blob; `None` if there is none under `key`.
    async fn get(&self, key: &BlobKey) -> Result<Option<Bytes>>;

    /// Deletes one blob (absent is fine).
    async fn delete(&self, key: &BlobKey) -> Result<()>;

    /// Deletes every blob of an execution; returns how many.
    async fn delete_execution(&self, id: &ExecutionId) -> Result<u64>;

    /// Up to `limit` executions that have blobs, in id order, after `after`
    /// (for a garbage collection walking them a page at a time).
    async fn executions(
        &self,
        after: Option<&ExecutionId>,
        limit: usize,
    ) -> Result<Vec<BlobFolder>>;
}

/// Opens a blob store from a URL, without I/O:
/// - `file:///ABSOLUTE/PATH` (or `file://relative/path`): a folder, created on
///   first write;
/// - `s3://BUCKET/PREFIX?endpoint=URL&region=R` (feature `s3`): an S3 bucket
///   (or an S3-compatible server at `endpoint`, addressed path-style).
pub fn open(url: &str) -> Result<Arc<dyn BlobStore>> {
    if let Some(path) = url.strip_prefix("file://") {
        if path.is_empty() {
            return Err(StoreError::Invalid(
                "blob store URL file:// needs a folder, e.g. file:///var/lib/durafn/blobs".into(),
            ));
        }
        return Ok(Arc::new(DirBlobStore::new(path)));
    }
    if url.starts_with("s3://") {
        #[cfg(feature = "s3")]
        return Ok(Arc::new(S3BlobStore::open(url)?));
        #[cfg(not(feature = "s3"))]
        return Err(StoreError::Invalid(format!(
            "blob store URL {url:?} needs the S3 backend: build durafn-runtime with feature \"s3\""
        )));
    }
    Err(StoreError::Invalid(format!(
        "unsupported blob store URL {url:?}: use file:///PATH or s3://BUCKET/PREFIX"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_hashes_under_the_execution_folder() {
        let id = ExecutionId::new("..").unwrap();
        let k = BlobKey::of(&id, b"abc");
        assert_eq!(
            k.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(k.path(), format!("x-../{}", k.sha256));
        assert_eq!(folder_execution("x-.."), Some(id.clone()));
        assert_eq!(folder_execution("tmp"), None);
        assert!(BlobKey::parse(&id, "../../etc/passwd").is_none());
        assert!(BlobKey::parse(&id, &"A".repeat(64)).is_some());
    }

    #[test]
    fn urls_name_their_backend() {
        assert!(open("file:///tmp/x").is_ok());
        assert!(open("file://").is_err());
        let err = open("ftp://x")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("file:///PATH"), "{err}");
    }
}
