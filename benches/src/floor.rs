//! The floor every embedded-store figure is compared with: one raw durable
//! SQLite commit, with the store's durability settings (WAL,
//! `synchronous=FULL`) and nothing of Durafn around it.

use std::time::{Duration, Instant};

use rusqlite::{Connection, TransactionBehavior, params};

use crate::measure::{Result, scratch_dir};

/// The size of the row each floor commit inserts: about what one step's
/// operation record weighs (see `step_cost::STEP_RESULT`).
pub(crate) const ROW_BYTES: usize = 200;

/// A fresh SQLite file in a scratch folder, ready to time commits on.
pub(crate) struct CommitFloor {
    conn: Connection,
    row: String,
    // Dropped after the connection (fields drop in order): the folder goes last.
    _dir: tempfile::TempDir,
}

impl CommitFloor {
    /// Creates a fresh database with the store's pragmas and one table.
    pub(crate) fn open() -> Result<Self> {
        let dir = scratch_dir()?;
        let conn = Connection::open(dir.path().join("floor.db"))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(format!("the floor database is in journal mode {mode:?}, not WAL").into());
        }
        conn.execute_batch("CREATE TABLE rows (id INTEGER PRIMARY KEY, body TEXT NOT NULL);")?;
        Ok(CommitFloor {
            conn,
            row: "x".repeat(ROW_BYTES),
            _dir: dir,
        })
    }

    /// Runs `n` sequential transactions of one small INSERT each; returns the
    /// total time. `BEGIN IMMEDIATE` as the store's writer does.
    pub(crate) fn time_commits(&mut self, n: usize) -> Result<Duration> {
        let start = Instant::now();
        for _ in 0..n {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.prepare_cached("INSERT INTO rows (body) VALUES (?1)")?
                .execute(params![self.row])?;
            tx.commit()?;
        }
        Ok(start.elapsed())
    }

    /// On a fresh database, times `n` commits on a blocking thread (the
    /// floor does synchronous I/O, which must not hold up a tokio worker).
    pub(crate) async fn measure(n: usize) -> Result<Duration> {
        tokio::task::spawn_blocking(move || CommitFloor::open()?.time_commits(n))
            .await
            .map_err(|e| format!("the floor's thread failed: {e}"))?
    }
}

/// How long the dispatcher's scan of the due index takes on the SQLite
/// store, in this process: one `Store::due` query per shard (16), one after
/// another, as `Dispatcher::tick` does on every wake-up. On a fresh store
/// holding one due execution; the median over `scans` scans, in µs.
pub(crate) async fn due_scan_us(scans: usize) -> Result<f64> {
    use durafn_runtime::model::{DUE_SHARDS, ExecutionId, NewExecution, Timestamp};
    use durafn_runtime::store::{SqliteStore, Store};

    let dir = scratch_dir()?;
    let store = SqliteStore::open(dir.path().join("due.db"))?;
    let now = Timestamp(1_767_225_600_000);
    store
        .create_execution(&NewExecution {
            id: ExecutionId::new("due-scan")?,
            function: "bench".into(),
            version: "1".into(),
            input: serde_json::Value::Null,
            now,
        })
        .await?;
    let mut samples = Vec::with_capacity(scans);
    for _ in 0..scans.max(1) {
        let started = Instant::now();
        let mut found = 0;
        for shard in 0..DUE_SHARDS {
            found += store.due(shard, now, 256).await?.len();
        }
        samples.push(crate::measure::micros(started.elapsed()));
        if found != 1 {
            return Err(format!("the due index held {found} executions, expected 1").into());
        }
    }
    crate::measure::median(&samples).ok_or_else(|| "no scans were run".into())
}
