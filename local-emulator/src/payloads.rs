//! Large payloads in the emulator: the blob store `durafn dev` and `durafn
//! server` offload payloads over 1 MiB to (see `docs/payloads.md`).
//!
//! The emulator's own store users (REST API, UI, triggers, the purge) go
//! through an [`OffloadingStore`]; handler processes get the blob store's URL
//! as `DURAFN_BLOBS` and offload and resolve by themselves, so a 20 MiB
//! step result is written once, to the blob store, and never crosses the
//! store over HTTP.

use std::sync::Arc;

use anyhow::Context;
use durafn_runtime::store::{OffloadingStore, Store, blob};

/// The variable naming the blob store for handler processes.
pub(crate) const BLOBS_VAR: &str = "DURAFN_BLOBS";

/// `store` offloading to the blob store at `url`, or `store` itself without one.
pub(crate) fn offloading(
    store: &Arc<dyn Store>,
    url: Option<&str>,
) -> anyhow::Result<Arc<dyn Store>> {
    let Some(url) = url else {
        return Ok(store.clone());
    };
    let blobs = blob::open(url).with_context(|| format!("opening the blob store {url}"))?;
    tracing::info!(blobs = %blobs.describe(), "payloads over 1 MiB go to the blob store");
    Ok(Arc::new(OffloadingStore::new(store.clone(), blobs)))
}

/// Gives a handler process the blob store (`DURAFN_BLOBS`), replacing any
/// the template set; without one, removes it, so records and handlers agree.
pub(crate) fn environment(env: &mut Vec<(String, String)>, url: Option<&str>) {
    env.retain(|(k, _)| k != BLOBS_VAR);
    if let Some(url) = url {
        env.push((BLOBS_VAR.into(), url.to_string()));
    }
}

/// The blob store `durafn dev` uses by default: a folder under its state
/// folder, as an absolute `file://` URL (handler processes run elsewhere).
pub(crate) fn default_dev_url(state: &std::path::Path) -> anyhow::Result<String> {
    let dir = std::path::absolute(state.join("blobs"))
        .with_context(|| format!("resolving {}", state.display()))?;
    Ok(format!("file://{}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handlers_get_the_emulators_blob_store_and_no_other() {
        let mut env = vec![
            (
                BLOBS_VAR.to_string(),
                "s3://from-the-template/x".to_string(),
            ),
            ("OTHER".to_string(), "1".to_string()),
        ];
        environment(&mut env, Some("file:///state/blobs"));
        assert_eq!(
            env,
            [
                ("OTHER".to_string(), "1".to_string()),
                (BLOBS_VAR.to_string(), "file:///state/blobs".to_string()),
            ]
        );
        environment(&mut env, None);
        assert_eq!(env, [("OTHER".to_string(), "1".to_string())]);
    }

    #[test]
    fn the_dev_default_is_an_absolute_folder_under_the_state() {
        let url = default_dev_url(std::path::Path::new(".durafn")).unwrap();
        assert!(url.starts_with("file:///"), "{url}");
        assert!(url.ends_with("/.durafn/blobs"), "{url}");
    }

    #[test]
    fn without_a_blob_store_the_store_is_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(durafn_runtime::store::SqliteStore::open(dir.path().join("s.db")).unwrap());
        let same = offloading(&store, None).unwrap();
        assert!(Arc::ptr_eq(&same, &store));
        let wrapped = offloading(&store, Some("file:///tmp/durafn-blobs-test")).unwrap();
        assert_eq!(
            wrapped.payload_limit(),
            durafn_runtime::model::MAX_OFFLOADED_PAYLOAD_BYTES
        );
        assert!(offloading(&store, Some("ftp://nope")).is_err());
    }
}
