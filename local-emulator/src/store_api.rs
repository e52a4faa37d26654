//! The emulator's store, served to its handler processes
//! (`POST /_durafn/store/{secret}`; see [`durafn_runtime::store::remote`]).
//!
//! With the embedded SQLite store, handler processes get
//! `DURAFN_STORE=http://127.0.0.1:PORT/_durafn/store/<secret>` (with
//! `DURAFN_STORE_TRANSPORT=unix`, `http+unix://<socket>/_durafn/store/<secret>`
//! on a Unix domain socket of the emulator's own, see [`UnixSocket`]) instead
//! of the database file, so every checkpoint
//! of every process goes through the emulator's one writer and concurrent ones
//! share a commit. The secret is
//! random per start and checked in constant time; a wrong one is a 404, as if
//! the route did not exist.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use durafn_runtime::model::MAX_PAYLOAD_BYTES;
use durafn_runtime::store::Store;

use crate::auth::same_secret;

/// The path prefix of the store route.
pub const STORE_PATH: &str = "/_durafn/store";

#[derive(Clone)]
struct StoreApi {
    store: Arc<dyn Store>,
    secret: Arc<str>,
}

/// A fresh random secret for the store route (128 bits, hex).
pub fn new_secret() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The store URL a handler process uses to reach this route.
pub fn url(authority: &str, secret: &str) -> String {
    format!("http://{authority}{STORE_PATH}/{secret}")
}

/// How handler processes reach the store route: `tcp` (the default), the
/// emulator's port; `unix`, a Unix domain socket of its own. The bench
/// (`wf10_seq_p50_ms`, `tcp_over_unix`) finds them equal in latency and CPU
/// on this machine class, so the default stays the simpler one.
pub(crate) const TRANSPORT_ENV: &str = "DURAFN_STORE_TRANSPORT";

/// The store route's Unix domain socket: bound at start (mode 0600, in the
/// temp folder), removed when dropped.
pub(crate) struct UnixSocket {
    path: std::path::PathBuf,
    listener: Option<tokio::net::UnixListener>,
}

impl UnixSocket {
    /// Whether `DURAFN_STORE_TRANSPORT` asks for a socket (`unix`); an
    /// error for a value that is neither `tcp` nor `unix`.
    pub(crate) fn wanted() -> anyhow::Result<bool> {
        match std::env::var(TRANSPORT_ENV).ok().as_deref().map(str::trim) {
            None | Some("" | "tcp") => Ok(false),
            Some("unix") => Ok(true),
            Some(other) => {
                anyhow::bail!("{TRANSPORT_ENV}={other:?}: use tcp (the default) or unix")
            }
        }
    }

    /// Binds one. If the socket cannot be bound, the route stays on TCP (a
    /// warning says why).
    pub(crate) fn bind(secret: &str) -> anyhow::Result<Option<UnixSocket>> {
        let name = format!(
            "durafn-store-{}-{}.sock",
            std::process::id(),
            secret.get(..12).unwrap_or(secret)
        );
        remove_stale_sockets();
        let path = std::env::temp_dir().join(name);
        let _ = std::fs::remove_file(&path);
        match tokio::net::UnixListener::bind(&path) {
            Ok(listener) => {
                use std::os::unix::fs::PermissionsExt;
                let socket = UnixSocket {
                    path,
                    listener: Some(listener),
                };
                std::fs::set_permissions(&socket.path, std::fs::Permissions::from_mode(0o600))?;
                Ok(Some(socket))
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot bind the store's Unix socket; handler processes reach the store over TCP");
                Ok(None)
            }
        }
    }

    /// The store URL a handler process uses to reach the route on it.
    pub(crate) fn url(&self, secret: &str) -> String {
        durafn_runtime::store::remote::unix_url(&self.path, &format!("{STORE_PATH}/{secret}"))
    }

    /// Serves `router` on the socket until `stop` turns true.
    pub(crate) fn serve(
        &mut self,
        router: Router,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let listener = self.listener.take()?;
        Some(tokio::spawn(async move {
            let served = axum::serve(listener, router).with_graceful_shutdown(async move {
                let _ = stop.wait_for(|stop| *stop).await;
            });
            if let Err(e) = served.await {
                tracing::warn!(error = %e, "the store's Unix socket stopped serving");
            }
        }))
    }
}

/// Removes the sockets emulators that no longer run left behind (a `kill -9`
/// skips the removal at exit): `durafn-store-<pid>-…` whose pid is gone.
fn remove_stale_sockets() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("durafn-store-"))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        // Only where /proc tells which processes run.
        let proc = std::path::Path::new("/proc");
        if proc.join("self").exists() && !proc.join(pid.to_string()).exists() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

impl Drop for UnixSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The route serving `store` to callers that know `secret`.
pub fn router(store: Arc<dyn Store>, secret: &str) -> Router {
    Router::new()
        .route(&format!("{STORE_PATH}/{{secret}}"), post(call))
        // A call carries at most one payload of MAX_PAYLOAD_BYTES, JSON-escaped.
        .layer(DefaultBodyLimit::max(4 * MAX_PAYLOAD_BYTES))
        .with_state(StoreApi {
            store,
            secret: Arc::from(secret),
        })
}

async fn call(
    State(api): State<StoreApi>,
    Path(secret): Path<String>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Response {
    use durafn_runtime::store::remote;
    if !same_secret(&secret, &api.secret) {
        return StatusCode::NOT_FOUND.into_response();
    }
    metrics::counter!("durafn_store_requests_total").increment(1);
    // A caller counting its store usage (cost per execution) asks for ours.
    let count = headers.contains_key(remote::USAGE_HEADER);
    let (answer, usage) = remote::serve_counted(&api.store, &body, count).await;
    let mut response = ([(header::CONTENT_TYPE, "application/json")], answer).into_response();
    if let Some(value) = usage
        .map(|u| remote::usage_header(&u))
        .and_then(|v| axum::http::HeaderValue::from_str(&v).ok())
    {
        response.headers_mut().insert(remote::USAGE_HEADER, value);
    }
    response
}
