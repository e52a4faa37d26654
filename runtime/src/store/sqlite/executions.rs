//! The SQL of an execution's life: create, claim, suspend, finish, wake,
//! resume, cancel, the due index and purging. Each function runs on the
//! writer's connection inside one job's savepoint (or on a reader).

use rusqlite::{Connection, OptionalExtension, params};

use super::rows::{RawExecution, exec_from_row, select_execution};
use super::schema::EXEC_COLS;
use super::{sql_err, to_i64};
use crate::error::{Result, StoreError};
use crate::model::{Execution, ExecutionId, ExecutionStatus, NewExecution, Timestamp};
use crate::store::{Created, DueItem, Transition};

/// Bumps `wakeups`; a suspended execution becomes due now.
pub(super) const WAKE_SQL: &str = "UPDATE executions SET wakeups = wakeups + 1, updated_at = ?2, \
     due_at = CASE WHEN status = 'SUSPENDED' AND (due_at IS NULL OR due_at > ?2) \
              THEN ?2 ELSE due_at END \
     WHERE id = ?1";

/// Inserts a new execution unless one has its id (then checks it is the same start).
pub(super) fn insert(
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

/// Claims an execution if it is due (see [`crate::store::Store::claim`]).
pub(super) fn claim(
    conn: &Connection,
    id: &str,
    now: Timestamp,
    lease_until: Timestamp,
) -> Result<Option<Execution>> {
    let sql = format!(
        "UPDATE executions SET status = 'RUNNING', epoch = epoch + 1, due_at = ?3, \
         updated_at = ?2 \
         WHERE id = ?1 AND due_at IS NOT NULL AND due_at <= ?2 \
         AND status IN ('PENDING', 'SUSPENDED', 'RUNNING') AND paused = 0 \
         RETURNING {EXEC_COLS}"
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(sql_err)?;
    let raw = stmt
        .query_row(params![id, now.0, lease_until.0], exec_from_row)
        .optional()
        .map_err(sql_err)?;
    raw.map(RawExecution::decode).transpose()
}

/// Suspends a running execution of this `epoch` (see [`crate::store::Store::suspend`]).
pub(super) fn suspend(
    conn: &Connection,
    id: &str,
    epoch: u64,
    seen_wakeups: u64,
    wake_at: Option<Timestamp>,
    now: Timestamp,
) -> Result<Transition> {
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
    let done = |e: &Execution| e.status == ExecutionStatus::Suspended;
    settled(conn, id, epoch, changed, done)
}

/// The columns [`finish`] writes, encoded.
pub(super) struct Ending {
    pub(super) status: ExecutionStatus,
    pub(super) output: Option<String>,
    pub(super) error: Option<String>,
    pub(super) expires_at: Option<i64>,
}

/// Ends a running execution of this `epoch` (see [`crate::store::Store::finish`]).
pub(super) fn finish(
    conn: &Connection,
    id: &str,
    epoch: u64,
    end: &Ending,
    now: Timestamp,
) -> Result<Transition> {
    let changed = conn
        .prepare_cached(
            "UPDATE executions SET status = ?4, output = ?5, error = ?6, updated_at = ?3, \
             ended_at = CASE WHEN ?4 = 'BLOCKED' THEN NULL ELSE ?3 END, \
             due_at = NULL, expires_at = ?7, paused = 0 \
             WHERE id = ?1 AND epoch = ?2 AND status = 'RUNNING'",
        )
        .map_err(sql_err)?
        .execute(params![
            id,
            to_i64(epoch),
            now.0,
            end.status.as_str(),
            end.output,
            end.error,
            end.expires_at
        ])
        .map_err(sql_err)?;
    settled(conn, id, epoch, changed, |e| e.status == end.status)
}

/// An epoch-conditional update's answer: applied now, applied before by the
/// same claimant (`done` holds for the record at the same epoch), or stale.
fn settled(
    conn: &Connection,
    id: &str,
    epoch: u64,
    changed: usize,
    done: impl Fn(&Execution) -> bool,
) -> Result<Transition> {
    if changed == 1 {
        return Ok(Transition::Done);
    }
    let current = select_execution(conn, id)?.ok_or_else(|| StoreError::NotFound(id.into()))?;
    Ok(if current.epoch == epoch && done(&current) {
        Transition::Done
    } else {
        Transition::Stale
    })
}

/// Bumps `wakeups` (see [`WAKE_SQL`]); false when there is no such execution.
pub(super) fn wake(conn: &Connection, id: &str, now: Timestamp) -> Result<bool> {
    let changed = conn
        .prepare_cached(WAKE_SQL)
        .map_err(sql_err)?
        .execute(params![id, now.0])
        .map_err(sql_err)?;
    Ok(changed == 1)
}

/// Up to `limit` executions of `shard` due by `now`, earliest first.
pub(super) fn due(
    conn: &Connection,
    shard: u32,
    now: Timestamp,
    limit: i64,
) -> Result<Vec<DueItem>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT id, due_at FROM executions \
             WHERE due_shard = ?1 AND due_at IS NOT NULL AND due_at <= ?2 AND paused = 0 \
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
}

/// Deletes executions (with their operations and events) expired by `now`.
pub(super) fn purge(conn: &Connection, now: Timestamp) -> Result<u64> {
    for child in ["operations", "events", "history"] {
        conn.prepare_cached(&format!(
            "DELETE FROM {child} WHERE execution_id IN \
             (SELECT id FROM executions WHERE expires_at IS NOT NULL AND expires_at <= ?1)"
        ))
        .map_err(sql_err)?
        .execute(params![now.0])
        .map_err(sql_err)?;
    }
    let n = conn
        .prepare_cached("DELETE FROM executions WHERE expires_at IS NOT NULL AND expires_at <= ?1")
        .map_err(sql_err)?
        .execute(params![now.0])
        .map_err(sql_err)?;
    Ok(n as u64)
}

/// Reopens a `FAILED` or `BLOCKED` execution, due now; returns it as it is.
pub(super) fn resume(conn: &Connection, id: &str, now: Timestamp) -> Result<Option<Execution>> {
    conn.prepare_cached(
        "UPDATE executions SET status = 'SUSPENDED', due_at = ?2, error = NULL, \
         ended_at = NULL, expires_at = NULL, updated_at = ?2 \
         WHERE id = ?1 AND status IN ('FAILED', 'BLOCKED')",
    )
    .map_err(sql_err)?
    .execute(params![id, now.0])
    .map_err(sql_err)?;
    select_execution(conn, id)
}

/// Cancels an unfinished execution, kept until `expires_at`; returns it as it is.
pub(super) fn cancel(
    conn: &Connection,
    id: &str,
    now: Timestamp,
    expires_at: Timestamp,
) -> Result<Option<Execution>> {
    conn.prepare_cached(
        "UPDATE executions SET status = 'CANCELLED', due_at = NULL, ended_at = ?2, \
         updated_at = ?2, expires_at = ?3, paused = 0 \
         WHERE id = ?1 AND status IN ('PENDING', 'RUNNING', 'SUSPENDED', 'BLOCKED')",
    )
    .map_err(sql_err)?
    .execute(params![id, now.0, expires_at.0])
    .map_err(sql_err)?;
    select_execution(conn, id)
}

#[cfg(test)]
#[path = "executions_tests.rs"]
mod tests;
