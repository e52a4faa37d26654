//! The store over HTTP: the whole store contract suite through a real
//! `HttpStore` talking to the emulator's store route over loopback TCP, in
//! front of a real SQLite store; and the route's refusals.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::sync::Arc;

use durafn_emulator::store_api;
use durafn_runtime::StoreError;
use durafn_runtime::model::{ExecutionId, NewExecution, Timestamp};
use durafn_runtime::store::contract::Fixture;
use durafn_runtime::store::{HttpStore, SqliteStore, Store};
use serde_json::json;

struct Served {
    _dir: tempfile::TempDir,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Serves a fresh SQLite store on a free port; returns its base address and secret.
async fn serve() -> (String, String, Served) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(dir.path().join("durafn.db")).expect("open store"));
    let secret = store_api::new_secret();
    let app = store_api::router(store, &secret);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let authority = listener.local_addr().unwrap().to_string();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (authority, secret, Served { _dir: dir, server })
}

async fn fixture() -> Fixture {
    let (authority, secret, served) = serve().await;
    let url = store_api::url(&authority, &secret);
    let store = durafn_runtime::store::open(&url).expect("an http:// URL opens an HttpStore");
    assert_eq!(store.backend(), "http");
    Fixture::new(store, served)
}

durafn_runtime::store_contract_tests!(fixture);

fn new_exec(name: &str) -> NewExecution {
    NewExecution {
        id: ExecutionId::new(name).unwrap(),
        function: "order".into(),
        version: "1".into(),
        input: json!({"n": 1}),
        now: Timestamp(1_000),
    }
}

#[tokio::test]
async fn the_secret_seed_crosses_the_wire() {
    let (authority, secret, _served) = serve().await;
    let store = HttpStore::open(&store_api::url(&authority, &secret)).unwrap();
    let created = store.create_execution(&new_exec("s-1")).await.unwrap();
    let seed = created.execution().seed.clone();
    assert_eq!(seed.len(), 32, "a 128-bit hex seed, got {seed:?}");
    let read = store.get_execution(&ExecutionId::new("s-1").unwrap()).await;
    assert_eq!(read.unwrap().unwrap().seed, seed);
    let journal = store.load_journal(&ExecutionId::new("s-1").unwrap()).await;
    assert_eq!(journal.unwrap().unwrap().execution.seed, seed);
}

#[tokio::test]
async fn a_wrong_secret_is_refused_and_writes_nothing() {
    let (authority, secret, _served) = serve().await;
    let wrong = HttpStore::open(&store_api::url(&authority, &store_api::new_secret())).unwrap();
    let err = wrong.create_execution(&new_exec("w-1")).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Invalid(m) if m.contains("404")),
        "expected a clear refusal, got {err:?}"
    );
    // The message names the server but never the secret.
    assert!(!err.to_string().contains(&secret));
    let right = HttpStore::open(&store_api::url(&authority, &secret)).unwrap();
    let id = ExecutionId::new("w-1").unwrap();
    assert!(right.get_execution(&id).await.unwrap().is_none());
}

#[tokio::test]
async fn a_malformed_call_is_a_clear_error() {
    let (authority, secret, _served) = serve().await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let req = hyper::Request::post(store_api::url(&authority, &secret))
        .body(http_body_util::Full::new(bytes::Bytes::from_static(
            b"{\"call\": \"drop_table\"}",
        )))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    use http_body_util::BodyExt;
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["err"]["kind"], "invalid", "{v}");
    assert!(
        v["err"]["message"].as_str().unwrap().contains("drop_table"),
        "{v}"
    );
}

#[tokio::test]
async fn an_unreachable_store_is_a_transient_error() {
    // Bind and drop a listener: nothing serves that port any more.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let store = HttpStore::open(&format!("http://127.0.0.1:{port}/_durafn/store/x")).unwrap();
    let err = store
        .get_execution(&ExecutionId::new("u-1").unwrap())
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
}

#[test]
fn bad_remote_urls_are_clear_errors() {
    let err = durafn_runtime::store::open("http://").err().unwrap();
    assert!(err.to_string().contains("http://"), "{err}");
    let err = durafn_runtime::store::open("ftp://x").err().unwrap();
    assert!(err.to_string().contains("http://HOST:PORT/PATH"), "{err}");
}

fn invocation(epoch: u64) -> durafn_runtime::model::HistoryEntry {
    durafn_runtime::model::HistoryEntry::Invocation(durafn_runtime::model::InvocationRecord {
        epoch,
        started_at: Timestamp(2_000),
        ended_at: None,
        outcome: None,
        status: None,
        wake_at: None,
        deadline: None,
        process: Some("pid 1".into()),
        error: None,
        expires_at: None,
        usage: None,
        memory_mb: None,
    })
}

/// History records cost no request of their own: `put_history` queues the
/// record, and the client's next call carries it (a checkpoint's in the same
/// commit); a newer record of the same key replaces a queued one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_records_travel_with_the_next_call() {
    let dir = tempfile::tempdir().unwrap();
    let inner: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path().join("durafn.db")).unwrap());
    let secret = store_api::new_secret();
    let app = store_api::router(inner.clone(), &secret);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let authority = listener.local_addr().unwrap().to_string();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let client = HttpStore::open(&store_api::url(&authority, &secret)).unwrap();
    let id = ExecutionId::new("h-1").unwrap();
    client.create_execution(&new_exec("h-1")).await.unwrap();

    client.put_history(&id, &invocation(1), 100).await.unwrap();
    assert!(
        inner.load_history(&id).await.unwrap().is_empty(),
        "the record waits for the next call"
    );
    let claimed = client
        .claim(&id, Timestamp(2_000), Timestamp(60_000))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(inner.load_history(&id).await.unwrap(), vec![invocation(1)]);

    // Queued twice under one key: only the newer goes, with a checkpoint.
    let mut ended = invocation(1);
    if let durafn_runtime::model::HistoryEntry::Invocation(r) = &mut ended {
        r.ended_at = Some(Timestamp(3_000));
        r.outcome = Some(durafn_runtime::model::InvocationOutcome::Suspended);
    }
    client.put_history(&id, &invocation(2), 100).await.unwrap();
    client.put_history(&id, &ended, 100).await.unwrap();
    client.put_history(&id, &invocation(2), 100).await.unwrap();
    let op = durafn_runtime::model::Operation {
        id: "1".into(),
        kind: durafn_runtime::model::OpKind::Step,
        name: "a".into(),
        status: durafn_runtime::model::OpStatus::Succeeded,
        attempt: 1,
        result: Some(json!(1)),
        error: None,
        started_at: Timestamp(2_500),
        ended_at: Some(Timestamp(2_600)),
        wake_at: None,
        rev: 1,
    };
    assert!(matches!(
        client.put_operation(&id, &op).await.unwrap(),
        durafn_runtime::store::OpWrite::Written
    ));
    assert_eq!(claimed.epoch, 1);
    let history = inner.load_history(&id).await.unwrap();
    assert_eq!(history, vec![ended, invocation(2)]);
    // What the client reads back through the server includes them.
    assert_eq!(client.load_history(&id).await.unwrap(), history);
    server.abort();
}

/// The same contract through an `HttpStore` on a Unix domain socket
/// (`http+unix://`), the transport `durafn dev` gives its handler processes.
mod over_a_unix_socket {
    use super::*;

    async fn fixture() -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(dir.path().join("durafn.db")).expect("open store"));
        let secret = store_api::new_secret();
        let app = store_api::router(store, &secret);
        let socket = dir.path().join("store.sock");
        let listener = tokio::net::UnixListener::bind(&socket).unwrap();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let url = durafn_runtime::store::remote::unix_url(
            &socket,
            &format!("{}/{secret}", store_api::STORE_PATH),
        );
        assert!(url.starts_with("http+unix://%2F"), "{url}");
        let store =
            durafn_runtime::store::open(&url).expect("an http+unix:// URL opens an HttpStore");
        assert_eq!(store.backend(), "http");
        Fixture::new(store, Served { _dir: dir, server })
    }

    durafn_runtime::store_contract_tests!(fixture);

    #[tokio::test]
    async fn a_socket_nobody_serves_is_a_transient_error() {
        let dir = tempfile::tempdir().unwrap();
        let url = durafn_runtime::store::remote::unix_url(
            &dir.path().join("nobody.sock"),
            "/_durafn/store/x",
        );
        let store = HttpStore::open(&url).unwrap();
        let err = store
            .get_execution(&ExecutionId::new("u-1").unwrap())
            .await
            .unwrap_err();
        assert!(err.is_transient(), "{err:?}");
        assert!(err.to_string().contains("nobody.sock"), "{err}");
    }

    #[test]
    fn malformed_unix_urls_are_clear_errors() {
        for (url, says) in [
            ("http+unix://", "http+unix://SOCKET/PATH"),
            ("http+unix://%2Ftmp%2Fs.sock", "http+unix://SOCKET/PATH"),
            ("http+unix:///_durafn/store/x", "names no socket"),
            ("http+unix://%FF%FE/x", "not UTF-8"),
        ] {
            let err = HttpStore::open(url).unwrap_err();
            assert!(err.to_string().contains(says), "{url}: {err}");
        }
    }
}
