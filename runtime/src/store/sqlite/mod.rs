//! The embedded store: one SQLite file, WAL, `synchronous=FULL`, group commit.
//!
//! All writes go through one writer ([`writer`]). It takes every write that is
//! waiting, runs each in its own savepoint inside one transaction, commits once
//! (one fsync), and only then answers each caller: concurrent checkpoints share a
//! commit without any of them being acknowledged before it is durable. A lone
//! write commits on its caller's thread, without a hop to the writer thread.
//! Reads run on a small pool of reader connections (WAL lets them run beside
//! the writer).
//!
//! The SQL lives by concern: [`schema`] (tables, migration), `rows`
//! (decoding an execution row), `executions` (create, claim, suspend,
//! finish, wake, due, purge, resume, cancel), `journal` (operations and
//! events), `history` (attempt and invocation records), `list` (paged listing), `schedules` and `queues` (queue
//! messages and leases); each is a set of plain
//! functions over a [`Connection`], unit-tested on an in-memory database.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::Connection;
use serde_json::Value;
use tokio::sync::oneshot;

use super::queue::{validate_lease, validate_message};
use super::{
    Created, DueItem, ExecutionPage, Lease, LeaseRequest, LeaseTake, ListFilter, OpWrite, Outcome,
    QueueMessage, QueueStats, Schedule, ScheduleWrite, SentEvent, Store, SuspendWrite, Transition,
    validate_new, validate_op, validate_outcome, validate_schedule,
};
use crate::error::{Result, StoreError};
use crate::model::{
    DEFAULT_RETENTION, Execution, ExecutionId, HistoryEntry, Journal, NewExecution, Operation,
    Timestamp, check_payload,
};

mod attributes;
mod executions;
mod history;
mod journal;
mod list;
mod pause;
mod queues;
mod rows;
mod schedules;
mod schema;
mod usage;
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
        schema::install(&conn)?;
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
        self.write_sized(0, f).await
    }

    /// [`SqliteStore::write`] of a job carrying `bytes` of records (counted
    /// for [`crate::cost`] on the caller's task).
    async fn write_sized<R, F>(&self, bytes: usize, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R> + Send + 'static,
    {
        usage::wrote(bytes);
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
        let result = with_reader(&self.inner, f);
        usage::read(&result, |_| 0);
        result
    }

    /// Runs `f` on a reader connection, off the async threads (for reads
    /// whose size has no bound: journals, listings).
    async fn read<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R> + Send + 'static,
    {
        self.read_sized(f, |_| 0).await
    }

    /// [`SqliteStore::read`], counted with the bytes `size` finds in what it read.
    async fn read_sized<R, F>(&self, f: F, size: impl FnOnce(&R) -> usize) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R> + Send + 'static,
    {
        let inner = self.inner.clone();
        let result = tokio::task::spawn_blocking(move || with_reader(&inner, f))
            .await
            .map_err(|e| StoreError::Backend(format!("reader task failed: {e}")))?;
        usage::read(&result, size);
        result
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

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Encodes a value for a JSON column.
fn to_json(v: &impl serde::Serialize) -> Result<String> {
    serde_json::to_string(v).map_err(json_err)
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn atomic_create_and_claim(&self) -> bool {
        true
    }

    fn payload_limit(&self) -> usize {
        crate::model::MAX_PAYLOAD_BYTES
    }

    async fn create_execution(&self, new: &NewExecution) -> Result<Created> {
        validate_new(new)?;
        let (new, input, seed) = (new.clone(), to_json(&new.input)?, crate::model::new_seed());
        self.write_sized(input.len(), move |conn| {
            executions::insert(conn, &new, &input, &seed)
        })
        .await
    }

    async fn create_and_claim(
        &self,
        new: &NewExecution,
        lease_until: Timestamp,
    ) -> Result<(Created, Option<Execution>)> {
        validate_new(new)?;
        let (new, input, seed) = (new.clone(), to_json(&new.input)?, crate::model::new_seed());
        // One job, so one commit: no dispatcher sees the new execution unclaimed.
        self.write_sized(input.len(), move |conn| {
            let created = executions::insert(conn, &new, &input, &seed)?;
            let claimed = executions::claim(conn, new.id.as_str(), new.now, lease_until)?;
            Ok((created, claimed))
        })
        .await
    }

    async fn get_execution(&self, id: &ExecutionId) -> Result<Option<Execution>> {
        let result = with_reader(&self.inner, |conn| {
            rows::select_execution(conn, id.as_str())
        });
        usage::read(&result, |e| e.as_ref().map_or(0, usage::execution));
        result
    }

    async fn load_journal(&self, id: &ExecutionId) -> Result<Option<Journal>> {
        let id = id.to_string();
        self.read_sized(
            move |conn| journal::load(conn, &id),
            |j: &Option<Journal>| j.as_ref().map_or(0, usage::journal),
        )
        .await
    }

    async fn claim(
        &self,
        id: &ExecutionId,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Option<Execution>> {
        let id = id.to_string();
        self.write(move |conn| executions::claim(conn, &id, now, lease_until))
            .await
    }

    async fn claim_with_journal(
        &self,
        id: &ExecutionId,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Option<(Execution, Option<Journal>)>> {
        let Some(claimed) = self.claim(id, now, lease_until).await? else {
            return Ok(None);
        };
        // Read after the claim's commit, on a reader (off the writer's
        // thread): nothing but this claimant writes operations now.
        let journal = match self.load_journal(id).await? {
            Some(j) if j.execution.epoch == claimed.epoch => Some(j),
            _ => None,
        };
        Ok(Some((claimed, journal)))
    }

    async fn put_operation(&self, id: &ExecutionId, op: &Operation) -> Result<OpWrite> {
        validate_op(op)?;
        let (id, op_id, rev, body) = (id.to_string(), op.id.clone(), op.rev, to_json(op)?);
        self.write_sized(body.len(), move |conn| {
            journal::put_operation(conn, &id, &op_id, rev, &body)
        })
        .await
    }

    async fn put_history(&self, id: &ExecutionId, entry: &HistoryEntry, keep: u32) -> Result<()> {
        let (id, entry, body) = (id.to_string(), entry.clone(), to_json(entry)?);
        self.write_sized(body.len(), move |conn| {
            history::put(conn, &id, &entry, &body, keep)
        })
        .await
    }

    async fn load_history(&self, id: &ExecutionId) -> Result<Vec<HistoryEntry>> {
        let id = id.to_string();
        self.read_sized(
            move |conn| history::load(conn, &id),
            |h: &Vec<HistoryEntry>| usage::history(h),
        )
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
        self.write(move |conn| executions::suspend(conn, &id, epoch, seen_wakeups, wake_at, now))
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
        let end = executions::Ending {
            status: outcome.status,
            output: outcome.output.as_ref().map(to_json).transpose()?,
            error: outcome.error.as_ref().map(to_json).transpose()?,
            expires_at: outcome.expires_at.map(|t| t.0),
        };
        let bytes =
            end.output.as_ref().map_or(0, String::len) + end.error.as_ref().map_or(0, String::len);
        self.write_sized(bytes, move |conn| {
            executions::finish(conn, &id, epoch, &end, now)
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
        let mut bodies = Vec::with_capacity(ops.len());
        for op in ops {
            validate_op(op)?;
            bodies.push((op.clone(), to_json(op)?));
        }
        let id = id.to_string();
        let bytes = bodies.iter().map(|(_, b)| b.len()).sum::<usize>();
        // One job, so one commit: the records and the suspension.
        self.write_sized(bytes, move |conn| {
            for (op, body) in &bodies {
                let written = journal::put_operation(conn, &id, &op.id, op.rev, body)?;
                if let Some(theirs) = written.theirs(op) {
                    return Ok(SuspendWrite::Conflict(theirs));
                }
            }
            Ok(executions::suspend(conn, &id, epoch, seen_wakeups, wake_at, now)?.into())
        })
        .await
    }

    async fn wake(&self, id: &ExecutionId, now: Timestamp) -> Result<bool> {
        let id = id.to_string();
        self.write(move |conn| executions::wake(conn, &id, now))
            .await
    }

    async fn due(&self, shard: u32, now: Timestamp, limit: usize) -> Result<Vec<DueItem>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read_now(|conn| executions::due(conn, shard, now, limit))
    }

    async fn purge_expired(&self, now: Timestamp) -> Result<u64> {
        self.write(move |conn| executions::purge(conn, now)).await
    }

    async fn list_executions(&self, filter: &ListFilter) -> Result<ExecutionPage> {
        let filter = filter.clone();
        self.read(move |conn| list::page(conn, &filter)).await
    }

    async fn send_event(
        &self,
        id: &ExecutionId,
        name: &str,
        payload: &Value,
        now: Timestamp,
    ) -> Result<SentEvent> {
        check_payload(&format!("event {name:?} payload"), payload)?;
        let (id, name, body) = (id.to_string(), name.to_string(), to_json(payload)?);
        let payload = payload.clone();
        self.write_sized(body.len(), move |conn| {
            journal::send_event(conn, &id, name, payload, &body, now)
        })
        .await
    }

    async fn resume(&self, id: &ExecutionId, now: Timestamp) -> Result<Option<Execution>> {
        let id = id.to_string();
        self.write(move |conn| executions::resume(conn, &id, now))
            .await
    }

    async fn cancel(&self, id: &ExecutionId, now: Timestamp) -> Result<Option<Execution>> {
        let id = id.to_string();
        let expires_at = now.plus(DEFAULT_RETENTION);
        self.write(move |conn| executions::cancel(conn, &id, now, expires_at))
            .await
    }

    async fn set_paused(
        &self,
        id: &ExecutionId,
        paused: bool,
        now: Timestamp,
    ) -> Result<Option<Execution>> {
        let id = id.to_string();
        self.write(move |conn| pause::set_paused(conn, &id, paused, now))
            .await
    }

    async fn set_start_options(
        &self,
        id: &ExecutionId,
        options: &crate::model::StartOptions,
        now: Timestamp,
    ) -> Result<Option<Execution>> {
        let (id, options) = (id.to_string(), options.clone());
        self.write(move |conn| pause::set_start_options(conn, &id, &options, now))
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
        let (name, body) = (schedule.name.clone(), to_json(schedule)?);
        let due_at = schedule.due_at.map(|t| t.0);
        self.write(move |conn| schedules::create(conn, &name, due_at, &body))
            .await
    }

    async fn update_schedule(&self, schedule: &Schedule) -> Result<ScheduleWrite> {
        validate_schedule(schedule)?;
        let (name, rev, body) = (schedule.name.clone(), schedule.rev, to_json(schedule)?);
        let due_at = schedule.due_at.map(|t| t.0);
        self.write(move |conn| schedules::update(conn, &name, rev, due_at, &body))
            .await
    }

    async fn get_schedule(&self, name: &str) -> Result<Option<Schedule>> {
        self.read_now(|conn| schedules::select(conn, name))
    }

    async fn list_schedules(&self) -> Result<Vec<Schedule>> {
        self.read(schedules::all).await
    }

    async fn due_schedules(&self, now: Timestamp, limit: usize) -> Result<Vec<Schedule>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |conn| schedules::due(conn, now, limit))
            .await
    }

    async fn send_message(&self, message: &QueueMessage) -> Result<bool> {
        validate_message(message)?;
        let message = message.clone();
        self.write(move |conn| queues::send(conn, &message)).await
    }

    async fn receive_messages(
        &self,
        queue: &str,
        now: Timestamp,
        hidden_until: Timestamp,
        max: usize,
    ) -> Result<Vec<QueueMessage>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let queue = queue.to_string();
        self.write(move |conn| queues::receive(conn, &queue, now, hidden_until, max))
            .await
    }

    async fn delete_message(&self, queue: &str, id: &str, receipt: &str) -> Result<bool> {
        let (queue, id, receipt) = (queue.to_string(), id.to_string(), receipt.to_string());
        self.write(move |conn| queues::delete(conn, &queue, &id, &receipt))
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
        let (queue, id, receipt) = (queue.to_string(), id.to_string(), receipt.to_string());
        self.write(move |conn| {
            queues::change_visibility(conn, &queue, &id, &receipt, visible_at, now)
        })
        .await
    }

    async fn queue_stats(&self, queue: &str, now: Timestamp) -> Result<QueueStats> {
        self.read_now(|conn| queues::stats(conn, queue, now))
    }

    async fn purge_queue(&self, queue: &str) -> Result<u64> {
        let queue = queue.to_string();
        self.write(move |conn| queues::purge(conn, &queue)).await
    }

    async fn take_lease(&self, request: &LeaseRequest, now: Timestamp) -> Result<LeaseTake> {
        validate_lease(request)?;
        let request = request.clone();
        self.write(move |conn| queues::take_lease(conn, &request, now))
            .await
    }

    async fn release_lease(&self, group: &str, name: &str, owner: &str) -> Result<bool> {
        let (group, name, owner) = (group.to_string(), name.to_string(), owner.to_string());
        self.write(move |conn| queues::release_lease(conn, &group, &name, &owner))
            .await
    }

    async fn list_leases(&self, group: &str) -> Result<Vec<Lease>> {
        self.read_now(|conn| queues::list_leases(conn, group))
    }

    async fn put_attribute(&self, id: &ExecutionId, attr: &super::SearchAttribute) -> Result<()> {
        let value = super::attributes::validate(attr)?;
        let (id, attr) = (id.to_string(), attr.clone());
        self.write_sized(value.len() + attr.name.len(), move |conn| {
            attributes::put(conn, &id, &attr, &value)
        })
        .await
    }

    async fn find_by_attribute(
        &self,
        query: &super::AttributeQuery,
    ) -> Result<super::AttributePage> {
        super::attributes::validate_attribute_name(&query.name)?;
        let value = super::attributes::index_value(&query.value)?;
        let query = query.clone();
        self.read(move |conn| attributes::find(conn, &query, &value))
            .await
    }
}
