//! [`DirBlobStore`]: blobs as files in a folder (`durafn dev`'s backend).
//!
//! `ROOT/x-<execution id>/<sha256>`; a write goes to a temporary file in the
//! same folder, is synced, then renamed into place (and the folder synced),
//! so a reader never sees half a blob and a blob the journal references
//! survives a crash.

use std::io::Write;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;

use super::{BlobFolder, BlobKey, BlobStore, execution_folder, folder_execution};
use crate::error::{Result, StoreError};
use crate::model::{ExecutionId, Timestamp};

/// Blobs as files under one folder.
#[derive(Debug, Clone)]
pub struct DirBlobStore {
    root: PathBuf,
}

impl DirBlobStore {
    /// Blobs under `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DirBlobStore { root: root.into() }
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn file(&self, key: &BlobKey) -> PathBuf {
        self.root
            .join(execution_folder(&key.execution))
            .join(&key.sha256)
    }
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Backend(format!("blob store: {what} {}: {e}", path.display()))
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Backend(format!("blob store task failed: {e}")))?
}

fn write_file(dir: &Path, file: &Path, bytes: &[u8]) -> Result<()> {
    if file.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(|e| io_err("creating", dir, e))?;
    let tmp = dir.join(format!(".tmp-{}", uuid::Uuid::new_v4().simple()));
    fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        let mut f = std::fs::File::create(path)?;
        f.write_all(bytes)?;
        f.sync_all()
    }
    if let Err(e) = write_synced(&tmp, bytes) {
        let _ = std::fs::remove_file(&tmp);
        return Err(io_err("writing", &tmp, e));
    }
    std::fs::rename(&tmp, file).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io_err("renaming into", file, e)
    })?;
    // The rename is durable once the folder is synced.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn newest_in(dir: &Path) -> Option<Timestamp> {
    let mut newest: Option<i64> = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let modified = entry.metadata().ok().and_then(|m| m.modified().ok());
        let ms = modified
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        if let Some(ms) = ms {
            newest = Some(newest.map_or(ms, |n| n.max(ms)));
        }
    }
    newest.map(Timestamp)
}

#[async_trait]
impl BlobStore for DirBlobStore {
    fn describe(&self) -> String {
        format!("file://{}", self.root.display())
    }

    async fn put(&self, key: &BlobKey, bytes: Bytes) -> Result<()> {
        let file = self.file(key);
        let dir = self.root.join(execution_folder(&key.execution));
        blocking(move || write_file(&dir, &file, &bytes)).await
    }

    async fn get(&self, key: &BlobKey) -> Result<Option<Bytes>> {
        let file = self.file(key);
        blocking(move || match std::fs::read(&file) {
            Ok(b) => Ok(Some(Bytes::from(b))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("reading", &file, e)),
        })
        .await
    }

    async fn delete(&self, key: &BlobKey) -> Result<()> {
        let file = self.file(key);
        blocking(move || match std::fs::remove_file(&file) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("deleting", &file, e)),
        })
        .await
    }

    async fn delete_execution(&self, id: &ExecutionId) -> Result<u64> {
        let dir = self.root.join(execution_folder(id));
        blocking(move || {
            let entries = match std::fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
                Err(e) => return Err(io_err("listing", &dir, e)),
            };
            let mut n = 0;
            for entry in entries.flatten() {
                let is_blob = !entry.file_name().to_string_lossy().starts_with('.');
                match std::fs::remove_file(entry.path()) {
                    Ok(()) => n += u64::from(is_blob),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_err("deleting", &entry.path(), e)),
                }
            }
            // Fails only if a write raced the deletion: its blob stays, for
            // the next pass.
            let _ = std::fs::remove_dir(&dir);
            Ok(n)
        })
        .await
    }

    async fn executions(
        &self,
        after: Option<&ExecutionId>,
        limit: usize,
    ) -> Result<Vec<BlobFolder>> {
        let root = self.root.clone();
        let after = after.cloned();
        blocking(move || {
            let entries = match std::fs::read_dir(&root) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(io_err("listing", &root, e)),
            };
            let mut ids: Vec<ExecutionId> = entries
                .flatten()
                .filter_map(|e| folder_execution(&e.file_name().to_string_lossy()))
                .filter(|id| after.as_ref().is_none_or(|a| id > a))
                .collect();
            ids.sort();
            ids.truncate(limit);
            Ok(ids
                .into_iter()
                .filter_map(|id| {
                    let newest = newest_in(&root.join(execution_folder(&id)))?;
                    Some(BlobFolder {
                        execution: id,
                        newest,
                    })
                })
                .collect())
        })
        .await
    }
}
