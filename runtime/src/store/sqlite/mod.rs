//! The embedded store: one SQLite file, WAL, `synchronous=FULL`, group commit.
//!
//! All writes go through one writer ([`writer`]). It takes every write that is
//! waiting, runs each in its own savepoint inside one transaction, commits once
//! (one fsync), and only then answers each caller: concurrent checkpoints share a
//! commit without any of them being acknowledged before it is durable. A lone
//! write commits on its caller's thread, without a hop to the writer thread.
//! Reads run on a small pool of reader connections (WAL lets them run beside
//! the writer).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::Value;
use tokio::sync::oneshot;

use super::{
    Created, DueItem, ExecutionPage, ListFilter, OpWrite, Outcome, Schedule, ScheduleWrite,
    SentEvent, Store, Transition, validate_new, validate_op, validate_outcome, validate_schedule,
};
use crate::error::{Result, StoreError};
use crate::model::{
    DEFAULT_RETENTION, ErrorObject, EventRecord, Execution, ExecutionId, ExecutionStatus, Journal,
    NewExecution, Operation, Timestamp, check_payload,
};

/// Bumps `wakeups`; a suspended execution becomes due now.
const WAKE_SQL: &str = "UPDATE executions SET wakeups = wakeups + 1, updated_at = ?2, \
     due_at = CASE WHEN status = 'SUSPENDED' AND (due_at IS NULL OR due_at > ?2) \
              THEN ?2 ELSE due_at END \
     WHERE id = ?1";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS executions (
    id          TEXT PRIMARY KEY,
    function    TEXT NOT NULL,
    version     TEXT NOT NULL,
    status      TEXT NOT NULL,
    input       TEXT NOT NULL,
    output      TEXT,
    error       TEXT,
    epoch       INTEGER NOT NULL,
    wakeups     INTEGER NOT NULL,
    due_shard   INTEGER NOT NULL,
    due_at      INTEGER,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    ended_at    INTEGER,
    expires_at  INTEGER,
    seed        TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS executions_due ON executions(due_shard, due_at) WHERE due_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS executions_list ON executions(function, created_at);
CREATE INDEX IF NOT EXISTS executions_expiry ON executions(expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS events (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    execution_id TEXT NOT NULL,
    name         TEXT NOT NULL,
    payload      TEXT NOT NULL,
    sent_at      INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_execution ON events(execution_id, seq);
CREATE TABLE IF NOT EXISTS operations (
    execution_id TEXT NOT NULL,
    op_id        TEXT NOT NULL,
    rev          INTEGER NOT NULL,
    body         TEXT NOT NULL,
    PRIMARY KEY (execution_id, op_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS schedules (
    name    TEXT PRIMARY KEY,
    rev     INTEGER NOT NULL,
    due_at  INTEGER,
    body    TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS schedules_due ON schedules(due_at) WHERE due_at IS NOT NULL;
";

const EXEC_COLS: &str = "id, function, version, status, input, output, error, epoch, wakeups, \
                         due_at, created_at, updated_at, ended_at, expires_at, seed";

mod writer;

use writer::{Job, Writer};

/// The embedded SQLite store.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    writer: Writer,
    readers: Mutex<Vec<Connection>>,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .finish()
    }
}

fn sql_err(e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
            StoreError::Transient(e.to_string())
        }
        _ => StoreError::Backend(e.to_string()),
    }
}

fn json_err(e: serde_json::Error) -> StoreError {
    StoreError::Backend(format!("corrupt record: {e}"))
}

fn open_connection(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path).map_err(|e| {
        StoreError::Invalid(format!("cannot open SQLite store {}: {e}", path.display()))
    })?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(sql_err)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(sql_err)?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(sql_err)?;
    // Room for every statement the store runs, so none is parsed twice.
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path`, and its parent folder.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                StoreError::Invalid(format!("cannot create folder {}: {e}", parent.display()))
            })?;
        }
        let conn = open_connection(&path)?;
        migrate(&conn)?;
        conn.execute_batch(SCHEMA).map_err(sql_err)?;
        let writer = Writer::start(conn)
            .map_err(|e| StoreError::Backend(format!("cannot start the SQLite writer: {e}")))?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                writer,
                readers: Mutex::new(Vec::new()),
                path,
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `f` inside the next group commit; answers after the commit.
    async fn write<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<Result<R>>();
        let job: Job = Box::new(move |conn: &Connection| {
            let result = in_savepoint(conn, f);
            Box::new(move |commit: std::result::Result<(), String>| {
                let answer = match commit {
                    Ok(()) => result,
                    Err(e) => Err(StoreError::Transient(format!("commit failed: {e}"))),
                };
                let _ = tx.send(answer);
            })
        });
        if !self.inner.writer.submit(job).await {
            return Err(StoreError::Backend("the SQLite writer has stopped".into()));
        }
        rx.await
            .map_err(|_| StoreError::Backend("the SQLite writer dropped a write".into()))?
    }

    /// Runs a short read (a point lookup, one index range) on a reader
    /// connection, on the caller's thread: it takes microseconds, less than
    /// handing it to another thread and back. WAL readers never wait for the
    /// writer.
    fn read_now<R>(&self, f: impl FnOnce(&Connection) -> Result<R>) -> Result<R> {
        with_reader(&self.inner, f)
    }

    /// Runs `f` on a reader connection, off the async threads (for reads
    /// whose size has no bound: journals, listings).
    async fn read<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || with_reader(&inner, f))
            .await
            .map_err(|e| StoreError::Backend(format!("reader task failed: {e}")))?
    }
}

/// Runs `f` on a pooled reader connection (opening one if none is free).
fn with_reader<R>(inner: &Inner, f: impl FnOnce(&Connection) -> Result<R>) -> Result<R> {
    let pooled = inner.readers.lock().ok().and_then(|mut p| p.pop());
    let conn = match pooled {
        Some(c) => c,
        None => open_connection(&inner.path)?,
    };
    let result = f(&conn);
    if let Ok(mut pool) = inner.readers.lock() {
        if pool.len() < 8 {
            pool.push(conn);
        }
    }
    result
}

/// Brings a store file written by an older version up to date.
fn migrate(conn: &Connection) -> Result<()> {
    let has_table: bool = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'executions'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map_err(sql_err)?
        > 0;
    if !has_table {
        return Ok(());
    }
    let has_seed: bool = conn
        .query_row(
            "SELECT count(*) FROM pragma_table_info('executions') WHERE name = 'seed'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map_err(sql_err)?
        > 0;
    if !has_seed {
        conn.execute_batch("ALTER TABLE executions ADD COLUMN seed TEXT NOT NULL DEFAULT ''")
            .map_err(sql_err)?;
    }
    Ok(())
}

/// Runs a statement without parameters from the connection's statement cache.
pub(super) fn run_cached(conn: &Connection, sql: &str) -> Result<()> {
    conn.prepare_cached(sql)
        .and_then(|mut st| st.execute([]))
        .map(|_| ())
        .map_err(sql_err)
}

fn in_savepoint<R>(conn: &Connection, f: impl FnOnce(&Connection) -> Result<R>) -> Result<R> {
    // Prepared once per connection: parsing these on every write shows up in profiles.
    run_cached(conn, "SAVEPOINT job")?;
    let result = f(conn);
    if result.is_err() {
        run_cached(conn, "ROLLBACK TO job")?;
    }
    run_cached(conn, "RELEASE job")?;
    result
}

/// Inserts a new execution unless one has its id (then checks it is the same start).
fn insert_execution(
    conn: &Connection,
    new: &NewExecution,
    input: &str,
    seed: &str,
) -> Result<Created> {
    let inserted = conn
        .prepare_cached(
            "INSERT INTO executions (id, function, version, status, input, epoch, wakeups, \
             due_shard, due_at, created_at, updated_at, seed) \
             VALUES (?1, ?2, ?3, 'PENDING', ?4, 0, 0, ?5, ?6, ?6, ?6, ?7) \
             ON CONFLICT(id) DO NOTHING",
        )
        .map_err(sql_err)?
        .execute(params![
            new.id.as_str(),
            new.function,
            new.version,
            input,
            new.id.due_shard(),
            new.now.0,
            seed
        ])
        .map_err(sql_err)?;
    let existing = select_execution(conn, new.id.as_str())?
        .ok_or_else(|| StoreError::Backend("created execution vanished".into()))?;
    if inserted == 1 {
        return Ok(Created::New(existing));
    }
    if existing.function != new.function {
        return Err(StoreError::Conflict {
            id: new.id.to_string(),
            what: "function",
        });
    }
    if existing.input != new.input {
        return Err(StoreError::Conflict {
            id: new.id.to_string(),
            what: "input",
        });
    }
    Ok(Created::Existing(existing))
}

/// Claims an execution if it is due (see [`Store::claim`]).
fn claim_row(
    conn: &Connection,
    id: &str,
    now: Timestamp,
    lease_until: Timestamp,
) -> Result<Option<Execution>> {
    let sql = format!(
        "UPDATE executions SET status = 'RUNNING', epoch = epoch + 1, due_at = ?3, \
         updated_at = ?2 \
         WHERE id = ?1 AND due_at IS NOT NULL AND due_at <= ?2 \
         AND status IN ('PENDING', 'SUSPENDED', 'RUNNING') \
         RETURNING {EXEC_COLS}"
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(sql_err)?;
    let raw = stmt
        .query_row(params![id, now.0, lease_until.0], exec_from_row)
        .optional()
        .map_err(sql_err)?;
    raw.map(RawExecution::decode).transpose()
}

fn exec_from_row(row: &Row<'_>) -> rusqlite::Result<RawExecution> {
    Ok(RawExecution {
        id: row.get(0)?,
        function: row.get(1)?,
        version: row.get(2)?,
        status: row.get(3)?,
        input: row.get(4)?,
        output: row.get(5)?,
        error: row.get(6)?,
        epoch: row.get(7)?,
        wakeups: row.get(8)?,
        due_at: row.get(9)?,
        created_at: row.get(10)?,
        updated_at: row.get(11)?,
        ended_at: row.get(12)?,
        expires_at: row.get(13)?,
        seed: row.get(14)?,
    })
}

/// A row as stored; decoded outside rusqlite's error type.
struct RawExecution {
    id: String,
    function: String,
    version: String,
    status: String,
    input: String,
    output: Option<String>,
    error: Option<String>,
    epoch: i64,
    wakeups: i64,
    due_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
    ended_at: Option<i64>,
    expires_at: Option<i64>,
    seed: String,
}

impl RawExecution {
    fn decode(self) -> Result<Execution> {
        let status = ExecutionStatus::parse(&self.status)
            .ok_or_else(|| StoreError::Backend(format!("unknown status {:?}", self.status)))?;
        let output = match self.output {
            Some(s) => Some(serde_json::from_str(&s).map_err(json_err)?),
            None => None,
        };
        let error: Option<ErrorObject> = match self.error {
            Some(s) => Some(serde_json::from_str(&s).map_err(json_err)?),
            None => None,
        };
        Ok(Execution {
            id: ExecutionId::new(self.id)?,
            function: self.function,
            version: self.version,
            status,
            input: serde_json::from_str(&self.input).map_err(json_err)?,
            output,
            error,
            epoch: u64::try_from(self.epoch).unwrap_or(0),
            wakeups: u64::try_from(self.wakeups).unwrap_or(0),
            due_at: self.due_at.map(Timestamp),
            created_at: Timestamp(self.created_at),
            updated_at: Timestamp(self.updated_at),
            ended_at: self.ended_at.map(Timestamp),
            expires_at: self.expires_at.map(Timestamp),
            seed: self.seed,
        })
    }
}

fn select_execution(conn: &Connection, id: &str) -> Result<Option<Execution>> {
    let sql = format!("SELECT {EXEC_COLS} FROM executions WHERE id = ?1");
    let mut stmt = conn.prepare_cached(&sql).map_err(sql_err)?;
    let raw = stmt
        .query_row(params![id], exec_from_row)
        .optional()
        .map_err(sql_err)?;
    raw.map(RawExecution::decode).transpose()
}

fn select_operation(conn: &Connection, id: &str, op_id: &str) -> Result<Option<Operation>> {
    let mut stmt = conn
        .prepare_cached("SELECT body FROM operations WHERE execution_id = ?1 AND op_id = ?2")
        .map_err(sql_err)?;
    let body: Option<String> = stmt
        .query_row(params![id, op_id], |r| r.get(0))
        .optional()
        .map_err(sql_err)?;
    body.map(|b| serde_json::from_str(&b).map_err(json_err))
        .transpose()
}

fn select_events(conn: &Connection, id: &str) -> Result<Vec<EventRecord>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT seq, name, payload, sent_at FROM events WHERE execution_id = ?1 ORDER BY seq",
        )
        .map_err(sql_err)?;
    let rows = stmt
        .query_map(params![id], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })
        .map_err(sql_err)?;
    let mut events = Vec::new();
    for row in rows {
        let (seq, name, payload, sent_at) = row.map_err(sql_err)?;
        events.push(EventRecord {
            seq: format!("{seq:020}"),
            name,
            payload: serde_json::from_str(&payload).map_err(json_err)?,
            sent_at: Timestamp(sent_at),
        });
    }
    Ok(events)
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn create_execution(&self, new: &NewExecution) -> Result<Created> {
        validate_new(new)?;
        let new = new.clone();
        let input = serde_json::to_string(&new.input).map_err(json_err)?;
        let seed = crate::model::new_seed();
        self.write(move |conn| insert_execution(conn, &new, &input, &seed))
            .await
    }

    async fn create_and_claim(
        &self,
        new: &NewExecution,
        lease_until: Timestamp,
    ) -> Result<(Created, Option<Execution>)> {
        validate_new(new)?;
        let new = new.clone();
        let input = serde_json::to_string(&new.input).map_err(json_err)?;
        let seed = crate::model::new_seed();
        // One job, so one commit: no dispatcher sees the new execution unclaimed.
        self.write(move |conn| {
            let created = insert_execution(conn, &new, &input, &seed)?;
            let claimed = claim_row(conn, new.id.as_str(), new.now, lease_until)?;
            Ok((created, claimed))
        })
        .await
    }

    async fn get_execution(&self, id: &ExecutionId) -> Result<Option<Execution>> {
        let id = id.to_string();
        self.read_now(move |conn| select_execution(conn, &id))
    }

    async fn load_journal(&self, id: &ExecutionId) -> Result<Option<Journal>> {
        let id = id.to_string();
        self.read(move |conn| {
            let tx = conn.unchecked_transaction().map_err(sql_err)?;
            let Some(execution) = select_execution(&tx, &id)? else {
                return Ok(None);
            };
            let mut operations = Vec::new();
            {
                let mut stmt = tx
                    .prepare_cached("SELECT body FROM operations WHERE execution_id = ?1")
                    .map_err(sql_err)?;
                let rows = stmt
                    .query_map(params![id], |r| r.get::<_, String>(0))
                    .map_err(sql_err)?;
                for body in rows {
                    let body = body.map_err(sql_err)?;
                    operations.push(serde_json::from_str::<Operation>(&body).map_err(json_err)?);
                }
            }
            let events = select_events(&tx, &id)?;
            tx.commit().map_err(sql_err)?;
            crate::model::sort_operations(&mut operations);
            Ok(Some(Journal {
                execution,
                operations,
                events,
            }))
        })
        .await
    }

    async fn claim(
        &self,
        id: &ExecutionId,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Option<Execution>> {
        let id = id.to_string();
        self.write(move |conn| claim_row(conn, &id, now, lease_until))
            .await
    }

    async fn put_operation(&self, id: &ExecutionId, op: &Operation) -> Result<OpWrite> {
        validate_op(op)?;
        let id = id.to_string();
        let op_id = op.id.clone();
        let rev = op.rev;
        let body = serde_json::to_string(op).map_err(json_err)?;
        self.write(move |conn| {
            let changed = if rev == 1 {
                conn.prepare_cached(
                    "INSERT INTO operations (execution_id, op_id, rev, body) VALUES (?1, ?2, 1, ?3) \
                     ON CONFLICT(execution_id, op_id) DO NOTHING",
                )
                .map_err(sql_err)?
                .execute(params![id, op_id, body])
                .map_err(sql_err)?
            } else {
                conn.prepare_cached(
                    "UPDATE operations SET rev = ?3, body = ?4 \
                     WHERE execution_id = ?1 AND op_id = ?2 AND rev = ?3 - 1",
                )
                .map_err(sql_err)?
                .execute(params![id, op_id, to_i64(rev), body])
                .map_err(sql_err)?
            };
            if changed == 1 {
                return Ok(OpWrite::Written);
            }
            match select_operation(conn, &id, &op_id)? {
                Some(current) => Ok(OpWrite::Conflict(current)),
                None => Err(StoreError::Invalid(format!(
                    "operation {op_id} of {id} has no revision {} to replace",
                    rev - 1
                ))),
            }
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
        let id = id.to_string();
        self.write(move |conn| {
            let changed = conn
                .prepare_cached(
                    "UPDATE executions SET status = 'SUSPENDED', updated_at = ?3, \
                     due_at = CASE WHEN wakeups != ?4 THEN ?3 ELSE ?5 END \
                     WHERE id = ?1 AND epoch = ?2 AND status = 'RUNNING'",
                )
                .map_err(sql_err)?
                .execute(params![
                    id,
                    to_i64(epoch),
                    now.0,
                    to_i64(seen_wakeups),
                    wake_at.map(|t| t.0)
                ])
                .map_err(sql_err)?;
            if changed == 1 {
                return Ok(Transition::Done);
            }
            let current = select_execution(conn, &id)?.ok_or(StoreError::NotFound(id))?;
            Ok(
                if current.epoch == epoch && current.status == ExecutionStatus::Suspended {
                    Transition::Done
                } else {
                    Transition::Stale
                },
            )
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
        validate_outcome(outcome)?;
        let id = id.to_string();
        let status = outcome.status;
        let output = outcome
            .output
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(json_err)?;
        let error = outcome
            .error
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(json_err)?;
        let expires_at = outcome.expires_at.map(|t| t.0);
        self.write(move |conn| {
            let changed = conn
                .prepare_cached(
                    "UPDATE executions SET status = ?4, output = ?5, error = ?6, updated_at = ?3, \
                     ended_at = CASE WHEN ?4 = 'BLOCKED' THEN NULL ELSE ?3 END, \
                     due_at = NULL, expires_at = ?7 \
                     WHERE id = ?1 AND epoch = ?2 AND status = 'RUNNING'",
                )
                .map_err(sql_err)?
                .execute(params![
                    id,
                    to_i64(epoch),
                    now.0,
                    status.as_str(),
                    output,
                    error,
                    expires_at
                ])
                .map_err(sql_err)?;
            if changed == 1 {
                return Ok(Transition::Done);
            }
            let current = select_execution(conn, &id)?.ok_or(StoreError::NotFound(id))?;
            Ok(if current.epoch == epoch && current.status == status {
                Transition::Done
            } else {
                Transition::Stale
            })
        })
        .await
    }

    async fn wake(&self, id: &ExecutionId, now: Timestamp) -> Result<bool> {
        let id = id.to_string();
        self.write(move |conn| {
            let changed = conn
                .prepare_cached(WAKE_SQL)
                .map_err(sql_err)?
                .execute(params![id, now.0])
                .map_err(sql_err)?;
            Ok(changed == 1)
        })
        .await
    }

    async fn due(&self, shard: u32, now: Timestamp, limit: usize) -> Result<Vec<DueItem>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read_now(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT id, due_at FROM executions \
                     WHERE due_shard = ?1 AND due_at IS NOT NULL AND due_at <= ?2 \
                     ORDER BY due_at LIMIT ?3",
                )
                .map_err(sql_err)?;
            let rows = stmt
                .query_map(params![shard, now.0, limit], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
                })
                .map_err(sql_err)?;
            let mut items = Vec::new();
            for row in rows {
                let (id, due_at) = row.map_err(sql_err)?;
                items.push(DueItem {
                    id: ExecutionId::new(id)?,
                    due_at: Timestamp(due_at),
                });
            }
            Ok(items)
        })
    }

    async fn purge_expired(&self, now: Timestamp) -> Result<u64> {
        self.write(move |conn| {
            conn.prepare_cached(
                "DELETE FROM operations WHERE execution_id IN \
                 (SELECT id FROM executions WHERE expires_at IS NOT NULL AND expires_at <= ?1)",
            )
            .map_err(sql_err)?
            .execute(params![now.0])
            .map_err(sql_err)?;
            conn.prepare_cached(
                "DELETE FROM events WHERE execution_id IN \
                 (SELECT id FROM executions WHERE expires_at IS NOT NULL AND expires_at <= ?1)",
            )
            .map_err(sql_err)?
            .execute(params![now.0])
            .map_err(sql_err)?;
            let n = conn
                .prepare_cached(
                    "DELETE FROM executions WHERE expires_at IS NOT NULL AND expires_at <= ?1",
                )
                .map_err(sql_err)?
                .execute(params![now.0])
                .map_err(sql_err)?;
            Ok(n as u64)
        })
        .await
    }

    async fn list_executions(&self, filter: &ListFilter) -> Result<ExecutionPage> {
        let filter = filter.clone();
        self.read(move |conn| {
            let limit = match filter.limit {
                0 => 100,
                n => n.min(1000),
            };
            let mut sql = format!("SELECT {EXEC_COLS} FROM executions WHERE 1 = 1");
            let mut args: Vec<rusqlite::types::Value> = Vec::new();
            if let Some(f) = &filter.function {
                sql.push_str(" AND function = ?");
                args.push(f.clone().into());
            }
            if let Some(st) = filter.status {
                sql.push_str(" AND status = ?");
                args.push(st.as_str().to_string().into());
            }
            if let Some(t) = filter.created_after {
                sql.push_str(" AND created_at >= ?");
                args.push(t.0.into());
            }
            if let Some(t) = filter.created_before {
                sql.push_str(" AND created_at < ?");
                args.push(t.0.into());
            }
            if let Some(text) = filter.id_contains.as_ref().filter(|t| !t.is_empty()) {
                sql.push_str(" AND instr(id, ?) > 0");
                args.push(text.clone().into());
            }
            if let Some(cursor) = &filter.cursor {
                let (at, id) = parse_cursor(cursor)?;
                sql.push_str(" AND (created_at < ? OR (created_at = ? AND id < ?))");
                args.push(at.into());
                args.push(at.into());
                args.push(id.into());
            }
            sql.push_str(" ORDER BY created_at DESC, id DESC LIMIT ?");
            args.push(i64::try_from(limit + 1).unwrap_or(i64::MAX).into());
            let mut stmt = conn.prepare(&sql).map_err(sql_err)?;
            let rows = stmt
                .query_map(rusqlite::params_from_iter(args), exec_from_row)
                .map_err(sql_err)?;
            let mut executions = Vec::new();
            for row in rows {
                executions.push(row.map_err(sql_err)?.decode()?);
            }
            let next_cursor = if executions.len() > limit {
                executions.truncate(limit);
                executions
                    .last()
                    .map(|e| format!("{}:{}", e.created_at.0, e.id))
            } else {
                None
            };
            Ok(ExecutionPage {
                executions,
                next_cursor,
            })
        })
        .await
    }

    async fn send_event(
        &self,
        id: &ExecutionId,
        name: &str,
        payload: &Value,
        now: Timestamp,
    ) -> Result<SentEvent> {
        check_payload(&format!("event {name:?} payload"), payload)?;
        let id = id.to_string();
        let name = name.to_string();
        let body = serde_json::to_string(payload).map_err(json_err)?;
        let payload = payload.clone();
        self.write(move |conn| {
            let Some(exec) = select_execution(conn, &id)? else {
                return Ok(SentEvent::NotFound);
            };
            if exec.status.is_final() {
                return Ok(SentEvent::Ended(exec.status));
            }
            conn.prepare_cached(
                "INSERT INTO events (execution_id, name, payload, sent_at) VALUES (?1, ?2, ?3, ?4)",
            )
            .map_err(sql_err)?
            .execute(params![id, name, body, now.0])
            .map_err(sql_err)?;
            let seq = conn.last_insert_rowid();
            conn.prepare_cached(WAKE_SQL)
                .map_err(sql_err)?
                .execute(params![id, now.0])
                .map_err(sql_err)?;
            Ok(SentEvent::Delivered(EventRecord {
                seq: format!("{seq:020}"),
                name,
                payload,
                sent_at: now,
            }))
        })
        .await
    }

    async fn resume(&self, id: &ExecutionId, now: Timestamp) -> Result<Option<Execution>> {
        let id = id.to_string();
        self.write(move |conn| {
            conn.prepare_cached(
                "UPDATE executions SET status = 'SUSPENDED', due_at = ?2, error = NULL, \
                 ended_at = NULL, expires_at = NULL, updated_at = ?2 \
                 WHERE id = ?1 AND status IN ('FAILED', 'BLOCKED')",
            )
            .map_err(sql_err)?
            .execute(params![id, now.0])
            .map_err(sql_err)?;
            select_execution(conn, &id)
        })
        .await
    }

    async fn cancel(&self, id: &ExecutionId, now: Timestamp) -> Result<Option<Execution>> {
        let id = id.to_string();
        let expires_at = now.plus(DEFAULT_RETENTION).0;
        self.write(move |conn| {
            conn.prepare_cached(
                "UPDATE executions SET status = 'CANCELLED', due_at = NULL, ended_at = ?2, \
                 updated_at = ?2, expires_at = ?3 \
                 WHERE id = ?1 AND status IN ('PENDING', 'RUNNING', 'SUSPENDED', 'BLOCKED')",
            )
            .map_err(sql_err)?
            .execute(params![id, now.0, expires_at])
            .map_err(sql_err)?;
            select_execution(conn, &id)
        })
        .await
    }

    async fn create_schedule(&self, schedule: &Schedule) -> Result<ScheduleWrite> {
        validate_schedule(schedule)?;
        if schedule.rev != 1 {
            return Err(StoreError::Invalid(format!(
                "a new schedule has revision 1, not {}",
                schedule.rev
            )));
        }
        let name = schedule.name.clone();
        let due_at = schedule.due_at.map(|t| t.0);
        let body = serde_json::to_string(schedule).map_err(json_err)?;
        self.write(move |conn| {
            let changed = conn
                .prepare_cached(
                    "INSERT INTO schedules (name, rev, due_at, body) VALUES (?1, 1, ?2, ?3) \
                     ON CONFLICT(name) DO NOTHING",
                )
                .map_err(sql_err)?
                .execute(params![name, due_at, body])
                .map_err(sql_err)?;
            if changed == 1 {
                return Ok(ScheduleWrite::Written);
            }
            match select_schedule(conn, &name)? {
                Some(current) => Ok(ScheduleWrite::Conflict(current)),
                None => Err(StoreError::Backend("schedule vanished".into())),
            }
        })
        .await
    }

    async fn update_schedule(&self, schedule: &Schedule) -> Result<ScheduleWrite> {
        validate_schedule(schedule)?;
        let name = schedule.name.clone();
        let rev = to_i64(schedule.rev);
        let due_at = schedule.due_at.map(|t| t.0);
        let body = serde_json::to_string(schedule).map_err(json_err)?;
        self.write(move |conn| {
            let changed = conn
                .prepare_cached(
                    "UPDATE schedules SET rev = ?2, due_at = ?3, body = ?4 \
                     WHERE name = ?1 AND rev = ?2 - 1",
                )
                .map_err(sql_err)?
                .execute(params![name, rev, due_at, body])
                .map_err(sql_err)?;
            if changed == 1 {
                return Ok(ScheduleWrite::Written);
            }
            Ok(match select_schedule(conn, &name)? {
                Some(current) => ScheduleWrite::Conflict(current),
                None => ScheduleWrite::Missing,
            })
        })
        .await
    }

    async fn get_schedule(&self, name: &str) -> Result<Option<Schedule>> {
        let name = name.to_string();
        self.read_now(move |conn| select_schedule(conn, &name))
    }

    async fn list_schedules(&self) -> Result<Vec<Schedule>> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare_cached("SELECT body FROM schedules ORDER BY name")
                .map_err(sql_err)?;
            let rows = stmt
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(sql_err)?;
            let mut out = Vec::new();
            for body in rows {
                out.push(serde_json::from_str(&body.map_err(sql_err)?).map_err(json_err)?);
            }
            Ok(out)
        })
        .await
    }

    async fn due_schedules(&self, now: Timestamp, limit: usize) -> Result<Vec<Schedule>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT body FROM schedules WHERE due_at IS NOT NULL AND due_at <= ?1 \
                     ORDER BY due_at LIMIT ?2",
                )
                .map_err(sql_err)?;
            let rows = stmt
                .query_map(params![now.0, limit], |r| r.get::<_, String>(0))
                .map_err(sql_err)?;
            let mut out = Vec::new();
            for body in rows {
                out.push(serde_json::from_str(&body.map_err(sql_err)?).map_err(json_err)?);
            }
            Ok(out)
        })
        .await
    }
}

fn select_schedule(conn: &Connection, name: &str) -> Result<Option<Schedule>> {
    let mut stmt = conn
        .prepare_cached("SELECT body FROM schedules WHERE name = ?1")
        .map_err(sql_err)?;
    let body: Option<String> = stmt
        .query_row(params![name], |r| r.get(0))
        .optional()
        .map_err(sql_err)?;
    body.map(|b| serde_json::from_str(&b).map_err(json_err))
        .transpose()
}

/// Splits a list cursor `<created_at>:<id>`.
fn parse_cursor(cursor: &str) -> Result<(i64, String)> {
    let bad = || {
        StoreError::Invalid(format!(
            "bad cursor {cursor:?}: pass the next_cursor of a previous page"
        ))
    };
    let (at, id) = cursor.split_once(':').ok_or_else(bad)?;
    Ok((at.parse().map_err(|_| bad())?, id.to_string()))
}
