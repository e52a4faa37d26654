//! TEMPORARY: where does a store put's time go beyond a raw commit.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::sync::mpsc;
use std::time::{Duration, Instant};

use rusqlite::{Connection, params};
use tokio::sync::oneshot;

use crate::Scale;
use crate::measure::{median, micros, scratch_dir};
use crate::report::Report;

pub(crate) const METRICS: &[&str] = &[];

const SCHEMA: &str = "CREATE TABLE operations (execution_id TEXT NOT NULL, op_id TEXT NOT NULL, rev INTEGER NOT NULL, body TEXT NOT NULL, PRIMARY KEY (execution_id, op_id)) WITHOUT ROWID;
CREATE TABLE rows (id INTEGER PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE ops_rowid (seq INTEGER PRIMARY KEY, execution_id TEXT NOT NULL, op_id TEXT NOT NULL, rev INTEGER NOT NULL, body TEXT NOT NULL, UNIQUE (execution_id, op_id));
CREATE TABLE ops_int (execution_id TEXT NOT NULL, op_seq INTEGER NOT NULL, body TEXT NOT NULL, PRIMARY KEY (execution_id, op_seq)) WITHOUT ROWID;
CREATE TABLE ops_padded (execution_id TEXT NOT NULL, op_id TEXT NOT NULL, rev INTEGER NOT NULL, body TEXT NOT NULL, PRIMARY KEY (execution_id, op_id)) WITHOUT ROWID;";

fn open(dir: &tempfile::TempDir) -> Connection {
    let conn = Connection::open(dir.path().join("p.db")).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", "FULL").unwrap();
    conn.execute_batch(SCHEMA).unwrap();
    if std::env::var("PROBE_WAL").is_ok() { conn.pragma_update(None, "wal_autocheckpoint", 0).unwrap(); }
    conn
}

fn body() -> String { "y".repeat(218) }

fn one(conn: &Connection, variant: usize, i: usize, body: &str) {
    match variant {
        0 => {
            conn.execute_batch("BEGIN IMMEDIATE").unwrap();
            conn.prepare_cached("INSERT INTO rows (body) VALUES (?1)").unwrap().execute(params![body]).unwrap();
            conn.execute_batch("COMMIT").unwrap();
        }
        1 | 2 => {
            conn.execute_batch("BEGIN IMMEDIATE").unwrap();
            if variant == 2 { conn.execute_batch("SAVEPOINT job").unwrap(); }
            conn.prepare_cached("INSERT INTO operations (execution_id, op_id, rev, body) VALUES (?1, ?2, 1, ?3) ON CONFLICT(execution_id, op_id) DO NOTHING").unwrap()
                .execute(params!["0198a0b2-1111-7222-8333-444455556666", i.to_string(), body]).unwrap();
            if variant == 2 { conn.execute_batch("RELEASE job").unwrap(); }
            conn.execute_batch("COMMIT").unwrap();
        }
        10 => {
            conn.execute_batch("BEGIN IMMEDIATE").unwrap();
            conn.prepare_cached("INSERT INTO ops_int (execution_id, op_seq, body) VALUES (?1, ?2, ?3)").unwrap()
                .execute(params!["0198a0b2-1111-7222-8333-444455556666", i as i64, body]).unwrap();
            conn.execute_batch("COMMIT").unwrap();
        }
        11 => {
            conn.execute_batch("BEGIN IMMEDIATE").unwrap();
            conn.prepare_cached("INSERT INTO ops_padded (execution_id, op_id, rev, body) VALUES (?1, ?2, 1, ?3)").unwrap()
                .execute(params!["0198a0b2-1111-7222-8333-444455556666", format!("{i:08}"), body]).unwrap();
            conn.execute_batch("COMMIT").unwrap();
        }
        12 => {
            conn.execute_batch("BEGIN IMMEDIATE").unwrap();
            conn.prepare_cached("INSERT INTO operations (execution_id, op_id, rev, body) VALUES (?1, ?2, 1, ?3)").unwrap()
                .execute(params!["0198a0b2-1111-7222-8333-444455556666", i.to_string(), &body[..60]]).unwrap();
            conn.execute_batch("COMMIT").unwrap();
        }
        13 => {
            conn.execute_batch("BEGIN IMMEDIATE").unwrap();
            conn.prepare_cached("INSERT INTO ops_rowid (execution_id, op_id, rev, body) VALUES (?1, ?2, 1, ?3) ON CONFLICT(execution_id, op_id) DO NOTHING").unwrap()
                .execute(params!["0198a0b2-1111-7222-8333-444455556666", i.to_string(), body]).unwrap();
            conn.execute_batch("COMMIT").unwrap();
        }
        _ => unreachable!(),
    }
}

fn sync_variant(variant: usize, n: usize) -> Duration {
    let dir = scratch_dir().unwrap();
    let conn = open(&dir);
    let b = body();
    let t = Instant::now();
    for i in 1..=n { one(&conn, variant, i, &b); }
    let e = t.elapsed();
    let wal = std::fs::metadata(dir.path().join("p.db-wal")).map(|m| m.len()).unwrap_or(0);
    eprintln!("variant {variant}: wal bytes per commit {}", wal as f64 / n as f64);
    e
}

type Job = (usize, oneshot::Sender<()>);

async fn threaded(n: usize) -> Duration {
    let dir = scratch_dir().unwrap();
    let conn = open(&dir);
    let (tx, rx) = mpsc::channel::<Job>();
    let h = std::thread::spawn(move || {
        let b = body();
        while let Ok((i, done)) = rx.recv() { one(&conn, 2, i, &b); let _ = done.send(()); }
    });
    let t = Instant::now();
    for i in 1..=n {
        let (dtx, drx) = oneshot::channel();
        tx.send((i, dtx)).unwrap();
        drx.await.unwrap();
    }
    let e = t.elapsed();
    drop(tx);
    h.join().unwrap();
    drop(dir);
    e
}

/// A round trip to a thread that does nothing: the handoff alone.
async fn handoff_only(n: usize) -> Duration {
    let (tx, rx) = mpsc::channel::<Job>();
    let h = std::thread::spawn(move || { while let Ok((_, done)) = rx.recv() { let _ = done.send(()); } });
    let t = Instant::now();
    for i in 1..=n {
        let (dtx, drx) = oneshot::channel();
        tx.send((i, dtx)).unwrap();
        drx.await.unwrap();
    }
    let e = t.elapsed();
    drop(tx);
    h.join().unwrap();
    e
}

/// Caller and writer are plain threads; `spin_caller`/`spin_writer` busy-poll instead of blocking.
fn plain_threads(n: usize, spin_caller: bool, spin_writer: bool) -> Duration {
    let dir = scratch_dir().unwrap();
    let conn = open(&dir);
    let (tx, rx) = mpsc::channel::<usize>();
    let (atx, arx) = mpsc::channel::<()>();
    let h = std::thread::spawn(move || {
        let b = body();
        loop {
            let got = if spin_writer {
                loop {
                    match rx.try_recv() {
                        Ok(i) => break Some(i),
                        Err(mpsc::TryRecvError::Empty) => std::hint::spin_loop(),
                        Err(_) => break None,
                    }
                }
            } else {
                rx.recv().ok()
            };
            let Some(i) = got else { break };
            one(&conn, 2, i, &b);
            let _ = atx.send(());
        }
    });
    let t = Instant::now();
    for i in 1..=n {
        tx.send(i).unwrap();
        if spin_caller {
            loop {
                match arx.try_recv() {
                    Ok(()) => break,
                    Err(_) => std::hint::spin_loop(),
                }
            }
        } else {
            arx.recv().unwrap();
        }
    }
    let e = t.elapsed();
    drop(tx);
    h.join().unwrap();
    e
}

/// The tokio task commits inline, on its worker, in `block_in_place`.
async fn inline(n: usize) -> Duration {
    let dir = scratch_dir().unwrap();
    let conn = std::sync::Mutex::new(open(&dir));
    let b = body();
    let t = Instant::now();
    for i in 1..=n {
        tokio::task::block_in_place(|| one(&conn.lock().unwrap(), 2, i, &b));
        tokio::task::yield_now().await;
    }
    t.elapsed()
}

pub(crate) async fn run(_scale: Scale, report: &mut Report) {
    if std::env::var("PROBE_WAL").is_ok() {
        for v in [0, 1, 10, 11, 12, 13] {
            tokio::task::spawn_blocking(move || sync_variant(v, 1000)).await.unwrap();
        }
        return;
    }
    let n = 300;
    let names = ["raw_rowid", "raw_ops_table", "raw_ops_savepoint", "thread_ops_savepoint", "handoff_only", "plain_block_block", "plain_spincaller", "plain_spinwriter", "inline_block_in_place"];
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    for round in 0..7 {
        let mut order: Vec<usize> = (0..names.len()).collect();
        order.rotate_left(round % names.len());
        for v in order {
            let d = match v {
                0..=2 => tokio::task::spawn_blocking(move || sync_variant(v, n)).await.unwrap(),
                3 => threaded(n).await,
                4 => handoff_only(n).await,
                5 => tokio::task::spawn_blocking(move || plain_threads(n, false, false)).await.unwrap(),
                6 => tokio::task::spawn_blocking(move || plain_threads(n, true, false)).await.unwrap(),
                7 => tokio::task::spawn_blocking(move || plain_threads(n, false, true)).await.unwrap(),
                _ => inline(n).await,
            };
            samples[v].push(micros(d) / n as f64);
        }
    }
    let fields: Vec<(&str, f64)> = names.iter().zip(&samples).map(|(k, v)| (*k, median(v).unwrap())).collect();
    report.info("probe", &fields);
}
