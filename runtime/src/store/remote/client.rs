//! [`HttpStore`]: a [`Store`] whose every call is one `POST` to a server
//! running [`serve`](super::serve).

use std::borrow::Cow;

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::wire::{
    Answer, Call, DeferredHistory, SeededExecution, WireCreated, WireJournal, WirePage,
};
use crate::error::{Result, StoreError};
use crate::model::{
    Execution, ExecutionId, HistoryEntry, Journal, NewExecution, Operation, Timestamp,
};
use crate::store::{
    Created, DueItem, ExecutionPage, Lease, LeaseRequest, LeaseTake, ListFilter, OpWrite, Outcome,
    QueueMessage, QueueStats, Schedule, ScheduleWrite, SentEvent, Store, SuspendWrite, Transition,
};

/// A store reached over HTTP (`http://HOST:PORT/PATH`), as handler processes
/// reach the emulator's, or over HTTP on a Unix domain socket
/// (`http+unix://SOCKET/PATH`, the socket's path percent-encoded: `%2F` for
/// `/`), which the emulator gives them with `DURAFN_STORE_TRANSPORT=unix`.
/// Connections are kept alive and reused. A request
/// that cannot reach the server, or a 5xx, is a transient error (wrap the
/// store in [`RetryingStore`](crate::store::RetryingStore) to retry it); the
/// server's own store errors come back as they were.
///
/// `put_history` is deferred: its record travels with the client's next call
/// (in the same request; a checkpoint or an invocation's end is written in the
/// same commit on an SQLite server), so history costs no round trip of its
/// own. History is best effort: records still queued when the process dies
/// are lost, and the server logs, rather than returns, a failure to write one.
pub struct HttpStore {
    url: hyper::Uri,
    shown: String,
    http: Transport,
    deferred: std::sync::Mutex<Vec<DeferredHistory>>,
}

/// How an [`HttpStore`]'s requests travel.
enum Transport {
    Tcp(Client<HttpConnector, Full<Bytes>>),
    Unix(Client<UnixConnector, Full<Bytes>>),
}

impl Transport {
    async fn request(
        &self,
        request: Request<Full<Bytes>>,
    ) -> std::result::Result<hyper::Response<Incoming>, hyper_util::client::legacy::Error> {
        match self {
            Transport::Tcp(c) => c.request(request).await,
            Transport::Unix(c) => c.request(request).await,
        }
    }
}

/// Connects every request to one Unix domain socket, whatever its URI says.
#[derive(Clone)]
struct UnixConnector(std::sync::Arc<std::path::Path>);

impl tower_service::Service<hyper::Uri> for UnixConnector {
    type Response = hyper_util::rt::TokioIo<tokio::net::UnixStream>;
    type Error = std::io::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = std::io::Result<Self::Response>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: hyper::Uri) -> Self::Future {
        let path = self.0.clone();
        Box::pin(async move {
            tokio::net::UnixStream::connect(&*path)
                .await
                .map(hyper_util::rt::TokioIo::new)
        })
    }
}

/// The URL scheme of a store on a Unix domain socket.
pub const UNIX_SCHEME: &str = "http+unix://";

/// The URL of the store served on the Unix socket `socket` at `path`
/// (`/_durafn/store/…`).
pub fn unix_url(socket: &std::path::Path, path: &str) -> String {
    let encoded: String =
        percent_encoding::utf8_percent_encode(&socket.to_string_lossy(), SOCKET_PATH).collect();
    format!("{UNIX_SCHEME}{encoded}{path}")
}

/// What a socket path escapes in a URL's host part: `/` and `%`, and
/// whatever else is not plain.
const SOCKET_PATH: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.');

/// At most this many history records wait for the next call; one more is
/// sent at once, with those waiting.
const MAX_DEFERRED: usize = 32;

impl std::fmt::Debug for HttpStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpStore")
            .field("url", &self.shown)
            .finish()
    }
}

impl HttpStore {
    /// A store served at `url` (`http://...` or `http+unix://...`; no I/O
    /// until the first call).
    pub fn open(url: &str) -> Result<Self> {
        if let Some(rest) = url.strip_prefix(UNIX_SCHEME) {
            return Self::open_unix(rest);
        }
        if !url.starts_with("http://") {
            return Err(StoreError::Invalid(format!(
                "store URL {url:?}: a remote store URL starts with http://"
            )));
        }
        let uri: hyper::Uri = url
            .parse()
            .map_err(|e| StoreError::Invalid(format!("store URL {url:?} is not a URL: {e}")))?;
        if uri.host().is_none() {
            return Err(StoreError::Invalid(format!(
                "store URL {url:?} has no host"
            )));
        }
        // The path carries the secret: never print it.
        let shown = format!(
            "http://{}/…",
            uri.authority().map(|a| a.as_str()).unwrap_or_default()
        );
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        Ok(HttpStore {
            url: uri,
            shown,
            http: Transport::Tcp(Client::builder(TokioExecutor::new()).build(connector)),
            deferred: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// `http+unix://SOCKET/PATH`: `rest` is what follows the scheme.
    fn open_unix(rest: &str) -> Result<Self> {
        let shown_url = format!(
            "{UNIX_SCHEME}{}",
            rest.split('/').next().unwrap_or_default()
        );
        let Some((socket, path)) = rest.split_once('/') else {
            return Err(StoreError::Invalid(format!(
                "store URL {shown_url:?}…: an http+unix:// URL is http+unix://SOCKET/PATH (the socket's path percent-encoded)"
            )));
        };
        let socket = percent_encoding::percent_decode_str(socket)
            .decode_utf8()
            .map_err(|e| {
                StoreError::Invalid(format!(
                    "store URL {shown_url:?}…: the socket path is not UTF-8: {e}"
                ))
            })?
            .into_owned();
        if socket.is_empty() {
            return Err(StoreError::Invalid(format!(
                "store URL {shown_url:?}… names no socket"
            )));
        }
        // The authority is a placeholder: every connection goes to the socket.
        let uri: hyper::Uri = format!("http://localhost/{path}").parse().map_err(|e| {
            StoreError::Invalid(format!("store URL {shown_url:?}… has a bad path: {e}"))
        })?;
        Ok(HttpStore {
            url: uri,
            shown: format!("{UNIX_SCHEME}{socket}/…"),
            http: Transport::Unix(Client::builder(TokioExecutor::new()).build(UnixConnector(
                std::sync::Arc::from(std::path::Path::new(&socket)),
            ))),
            deferred: std::sync::Mutex::new(Vec::new()),
        })
    }

    fn deferred(&self) -> std::sync::MutexGuard<'_, Vec<DeferredHistory>> {
        self.deferred
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn call<T: DeserializeOwned>(&self, call: Call<'_>) -> Result<T> {
        let history = std::mem::take(&mut *self.deferred());
        if history.is_empty() {
            return self.send(&call).await;
        }
        let batched = Call::Batched {
            history,
            then: Box::new(call),
        };
        let answer = self.send(&batched).await;
        if let (Err(StoreError::Transient(_)), Call::Batched { history, .. }) = (&answer, batched) {
            // Not delivered (or not known to be): they go with the next call.
            let mut deferred = self.deferred();
            let room = MAX_DEFERRED.saturating_sub(deferred.len());
            deferred.extend(history.into_iter().take(room));
        }
        answer
    }

    async fn send<T: DeserializeOwned>(&self, call: &Call<'_>) -> Result<T> {
        let body = serde_json::to_vec(call)
            .map_err(|e| StoreError::Invalid(format!("cannot encode a store call: {e}")))?;
        let counting = crate::cost::counting();
        let mut request =
            Request::post(self.url.clone()).header("content-type", "application/json");
        if counting {
            request = request.header(super::USAGE_HEADER, "1");
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| StoreError::Invalid(format!("cannot build a store request: {e}")))?;
        let response = self.http.request(request).await.map_err(|e| {
            StoreError::Transient(format!("cannot reach the store at {}: {e}", self.shown))
        })?;
        let status = response.status();
        if counting {
            // What the server's backend sent for this call.
            if let Some(u) = response
                .headers()
                .get(super::USAGE_HEADER)
                .and_then(|v| v.to_str().ok())
                .and_then(super::parse_usage_header)
            {
                crate::cost::record(&u);
            }
        }
        let bytes = read_body(response.into_body()).await.map_err(|e| {
            StoreError::Transient(format!(
                "the store at {} broke off its answer: {e}",
                self.shown
            ))
        })?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&bytes);
            let text = text.chars().take(300).collect::<String>();
            let message = format!("the store at {} answered {status}: {text}", self.shown);
            return Err(if status.is_server_error() {
                StoreError::Transient(message)
            } else {
                StoreError::Invalid(message)
            });
        }
        match serde_json::from_slice::<Answer<T>>(&bytes) {
            Ok(Answer::Ok(v)) => Ok(v),
            Ok(Answer::Err(e)) => Err(e.into()),
            Err(e) => Err(StoreError::Backend(format!(
                "the store at {} sent an answer this client cannot read: {e}",
                self.shown
            ))),
        }
    }
}

async fn read_body(body: Incoming) -> std::result::Result<Bytes, hyper::Error> {
    Ok(body.collect().await?.to_bytes())
}

fn seeded(e: Option<SeededExecution>) -> Option<Execution> {
    e.map(|e| e.0)
}

#[async_trait]
impl Store for HttpStore {
    fn backend(&self) -> &'static str {
        "http"
    }

    /// The serving store decides, and the client cannot know it: it
    /// promises nothing.
    fn atomic_create_and_claim(&self) -> bool {
        false
    }

    // The server's backend keeps payloads inline; a handler process with a
    // blob store wraps this store in an `OffloadingStore`, so large payloads
    // never travel over HTTP.
    fn payload_limit(&self) -> usize {
        crate::model::MAX_PAYLOAD_BYTES
    }

    async fn create_execution(&self, new: &NewExecution) -> Result<Created> {
        let c: WireCreated = self
            .call(Call::CreateExecution {
                new: Cow::Borrowed(new),
            })
            .await?;
        Ok(c.into())
    }

    async fn create_and_claim(
        &self,
        new: &NewExecution,
        lease_until: Timestamp,
    ) -> Result<(Created, Option<Execution>)> {
        let (c, e): (WireCreated, Option<SeededExecution>) = self
            .call(Call::CreateAndClaim {
                new: Cow::Borrowed(new),
                lease_until,
            })
            .await?;
        Ok((c.into(), seeded(e)))
    }

    async fn get_execution(&self, id: &ExecutionId) -> Result<Option<Execution>> {
        let e = self
            .call(Call::GetExecution {
                id: Cow::Borrowed(id),
            })
            .await?;
        Ok(seeded(e))
    }

    async fn load_journal(&self, id: &ExecutionId) -> Result<Option<Journal>> {
        let j: Option<WireJournal> = self
            .call(Call::LoadJournal {
                id: Cow::Borrowed(id),
            })
            .await?;
        Ok(j.map(|j| Journal {
            execution: j.execution.0,
            operations: j.operations,
            events: j.events,
        }))
    }

    async fn claim(
        &self,
        id: &ExecutionId,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Option<Execution>> {
        let e = self
            .call(Call::Claim {
                id: Cow::Borrowed(id),
                now,
                lease_until,
            })
            .await?;
        Ok(seeded(e))
    }

    async fn put_operation(&self, id: &ExecutionId, op: &Operation) -> Result<OpWrite> {
        self.call(Call::PutOperation {
            id: Cow::Borrowed(id),
            op: Cow::Borrowed(op),
        })
        .await
    }

    async fn put_history(&self, id: &ExecutionId, entry: &HistoryEntry, keep: u32) -> Result<()> {
        let record = DeferredHistory {
            id: id.clone(),
            entry: entry.clone(),
            keep,
        };
        let full = {
            let mut deferred = self.deferred();
            // A newer record of the same key replaces the queued one.
            let key = entry.key();
            deferred.retain(|d| d.id != *id || d.entry.key() != key);
            if deferred.len() < MAX_DEFERRED {
                deferred.push(record);
                return Ok(());
            }
            std::mem::take(&mut *deferred)
        };
        self.send(&Call::Batched {
            history: full,
            then: Box::new(Call::PutHistory {
                id: Cow::Borrowed(id),
                entry: Cow::Borrowed(entry),
                keep,
            }),
        })
        .await
    }

    async fn load_history(&self, id: &ExecutionId) -> Result<Vec<HistoryEntry>> {
        self.call(Call::LoadHistory {
            id: Cow::Borrowed(id),
        })
        .await
    }

    async fn suspend(
        &self,
        id: &ExecutionId,
        epoch: u64,
        seen_wakeups: u64,
        wake_at: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<Transition> {
        self.call(Call::Suspend {
            id: Cow::Borrowed(id),
            epoch,
            seen_wakeups,
            wake_at,
            now,
        })
        .await
    }

    async fn finish(
        &self,
        id: &ExecutionId,
        epoch: u64,
        outcome: &Outcome,
        now: Timestamp,
    ) -> Result<Transition> {
        self.call(Call::Finish {
            id: Cow::Borrowed(id),
            epoch,
            outcome: Cow::Borrowed(outcome),
            now,
        })
        .await
    }

    async fn suspend_with(
        &self,
        id: &ExecutionId,
        epoch: u64,
        seen_wakeups: u64,
        ops: &[Operation],
        wake_at: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<SuspendWrite> {
        self.call(Call::SuspendWith {
            id: Cow::Borrowed(id),
            epoch,
            seen_wakeups,
            ops: Cow::Borrowed(ops),
            wake_at,
            now,
        })
        .await
    }

    async fn wake(&self, id: &ExecutionId, now: Timestamp) -> Result<bool> {
        self.call(Call::Wake {
            id: Cow::Borrowed(id),
            now,
        })
        .await
    }

    async fn due(&self, shard: u32, now: Timestamp, limit: usize) -> Result<Vec<DueItem>> {
        self.call(Call::Due { shard, now, limit }).await
    }

    async fn purge_expired(&self, now: Timestamp) -> Result<u64> {
        self.call(Call::PurgeExpired { now }).await
    }

    async fn list_executions(&self, filter: &ListFilter) -> Result<ExecutionPage> {
        let p: WirePage = self
            .call(Call::ListExecutions {
                filter: Cow::Borrowed(filter),
            })
            .await?;
        Ok(p.into())
    }

    async fn send_event(
        &self,
        id: &ExecutionId,
        name: &str,
        payload: &Value,
        now: Timestamp,
    ) -> Result<SentEvent> {
        self.call(Call::SendEvent {
            id: Cow::Borrowed(id),
            name: Cow::Borrowed(name),
            payload: Cow::Borrowed(payload),
            now,
        })
        .await
    }

    async fn resume(&self, id: &ExecutionId, now: Timestamp) -> Result<Option<Execution>> {
        let e = self
            .call(Call::Resume {
                id: Cow::Borrowed(id),
                now,
            })
            .await?;
        Ok(seeded(e))
    }

    async fn cancel(&self, id: &ExecutionId, now: Timestamp) -> Result<Option<Execution>> {
        let e = self
            .call(Call::Cancel {
                id: Cow::Borrowed(id),
                now,
            })
            .await?;
        Ok(seeded(e))
    }

    async fn set_start_options(
        &self,
        id: &ExecutionId,
        options: &crate::model::StartOptions,
        now: Timestamp,
    ) -> Result<Option<Execution>> {
        let e = self
            .call(Call::SetStartOptions {
                id: Cow::Borrowed(id),
                options: Cow::Borrowed(options),
                now,
            })
            .await?;
        Ok(seeded(e))
    }

    async fn set_paused(
        &self,
        id: &ExecutionId,
        paused: bool,
        now: Timestamp,
    ) -> Result<Option<Execution>> {
        let e = self
            .call(Call::SetPaused {
                id: Cow::Borrowed(id),
                paused,
                now,
            })
            .await?;
        Ok(seeded(e))
    }

    async fn create_schedule(&self, schedule: &Schedule) -> Result<ScheduleWrite> {
        self.call(Call::CreateSchedule {
            schedule: Cow::Borrowed(schedule),
        })
        .await
    }

    async fn update_schedule(&self, schedule: &Schedule) -> Result<ScheduleWrite> {
        self.call(Call::UpdateSchedule {
            schedule: Cow::Borrowed(schedule),
        })
        .await
    }

    async fn get_schedule(&self, name: &str) -> Result<Option<Schedule>> {
        self.call(Call::GetSchedule {
            name: Cow::Borrowed(name),
        })
        .await
    }

    async fn list_schedules(&self) -> Result<Vec<Schedule>> {
        self.call(Call::ListSchedules).await
    }

    async fn due_schedules(&self, now: Timestamp, limit: usize) -> Result<Vec<Schedule>> {
        self.call(Call::DueSchedules { now, limit }).await
    }

    async fn send_message(&self, message: &QueueMessage) -> Result<bool> {
        self.call(Call::SendMessage {
            message: Cow::Borrowed(message),
        })
        .await
    }

    async fn receive_messages(
        &self,
        queue: &str,
        now: Timestamp,
        hidden_until: Timestamp,
        max: usize,
    ) -> Result<Vec<QueueMessage>> {
        self.call(Call::ReceiveMessages {
            queue: Cow::Borrowed(queue),
            now,
            hidden_until,
            max,
        })
        .await
    }

    async fn delete_message(&self, queue: &str, id: &str, receipt: &str) -> Result<bool> {
        self.call(Call::DeleteMessage {
            queue: Cow::Borrowed(queue),
            id: Cow::Borrowed(id),
            receipt: Cow::Borrowed(receipt),
        })
        .await
    }

    async fn change_message_visibility(
        &self,
        queue: &str,
        id: &str,
        receipt: &str,
        visible_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool> {
        self.call(Call::ChangeMessageVisibility {
            queue: Cow::Borrowed(queue),
            id: Cow::Borrowed(id),
            receipt: Cow::Borrowed(receipt),
            visible_at,
            now,
        })
        .await
    }

    async fn queue_stats(&self, queue: &str, now: Timestamp) -> Result<QueueStats> {
        self.call(Call::QueueStats {
            queue: Cow::Borrowed(queue),
            now,
        })
        .await
    }

    async fn purge_queue(&self, queue: &str) -> Result<u64> {
        self.call(Call::PurgeQueue {
            queue: Cow::Borrowed(queue),
        })
        .await
    }

    async fn take_lease(&self, request: &LeaseRequest, now: Timestamp) -> Result<LeaseTake> {
        self.call(Call::TakeLease {
            request: Cow::Borrowed(request),
            now,
        })
        .await
    }

    async fn release_lease(&self, group: &str, name: &str, owner: &str) -> Result<bool> {
        self.call(Call::ReleaseLease {
            group: Cow::Borrowed(group),
            name: Cow::Borrowed(name),
            owner: Cow::Borrowed(owner),
        })
        .await
    }

    async fn list_leases(&self, group: &str) -> Result<Vec<Lease>> {
        self.call(Call::ListLeases {
            group: Cow::Borrowed(group),
        })
        .await
    }

    async fn put_attribute(
        &self,
        id: &ExecutionId,
        attr: &crate::store::SearchAttribute,
    ) -> Result<()> {
        self.call(Call::PutAttribute {
            id: Cow::Borrowed(id),
            attr: Cow::Borrowed(attr),
        })
        .await
    }

    async fn find_by_attribute(
        &self,
        query: &crate::store::AttributeQuery,
    ) -> Result<crate::store::AttributePage> {
        self.call(Call::FindByAttribute {
            query: Cow::Borrowed(query),
        })
        .await
    }
}
