//! Pausing and unpausing an execution (see
//! [`crate::store::Store::set_paused`]): the `paused` column. A paused row
//! keeps its `due_at` (what it would wake for), but the due index scan and
//! the claim skip it; an unpause makes a `PENDING` or `SUSPENDED` one due at
//! once, so whatever arrived while it was paused is caught up.

use rusqlite::{Connection, params};

use super::rows::select_execution;
use super::sql_err;
use crate::error::Result;
use crate::model::{Execution, Timestamp};

/// Adds the `paused`, `priority` and `fairness_key` columns to a file
/// written before they existed.
pub(super) fn migrate(conn: &Connection) -> Result<()> {
    let has_paused: bool = conn
        .query_row(
            "SELECT count(*) FROM pragma_table_info('executions') WHERE name = 'paused'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map_err(sql_err)?
        > 0;
    if !has_paused {
        conn.execute_batch("ALTER TABLE executions ADD COLUMN paused INTEGER NOT NULL DEFAULT 0")
            .map_err(sql_err)?;
    }
    let has_priority: bool = conn
        .query_row(
            "SELECT count(*) FROM pragma_table_info('executions') WHERE name = 'priority'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map_err(sql_err)?
        > 0;
    if !has_priority {
        conn.execute_batch(
            "ALTER TABLE executions ADD COLUMN priority INTEGER NOT NULL DEFAULT 3; \
             ALTER TABLE executions ADD COLUMN fairness_key TEXT",
        )
        .map_err(sql_err)?;
    }
    Ok(())
}

/// Pauses (an unfinished: `PENDING`, `RUNNING`, `SUSPENDED`) or unpauses
/// (a paused) execution; returns it as it is afterwards.
pub(super) fn set_paused(
    conn: &Connection,
    id: &str,
    paused: bool,
    now: Timestamp,
) -> Result<Option<Execution>> {
    let sql = if paused {
        "UPDATE executions SET paused = 1, updated_at = ?2 \
         WHERE id = ?1 AND paused = 0 AND status IN ('PENDING', 'RUNNING', 'SUSPENDED')"
    } else {
        "UPDATE executions SET paused = 0, updated_at = ?2, \
         due_at = CASE WHEN status IN ('PENDING', 'SUSPENDED') THEN ?2 ELSE due_at END \
         WHERE id = ?1 AND paused = 1"
    };
    conn.prepare_cached(sql)
        .map_err(sql_err)?
        .execute(params![id, now.0])
        .map_err(sql_err)?;
    select_execution(conn, id)
}

/// Records a start's priority and fairness key on an unfinished execution;
/// returns it as it is afterwards.
pub(super) fn set_start_options(
    conn: &Connection,
    id: &str,
    options: &crate::model::StartOptions,
    now: Timestamp,
) -> Result<Option<Execution>> {
    conn.prepare_cached(
        "UPDATE executions SET priority = ?2, fairness_key = ?3, updated_at = ?4 \
         WHERE id = ?1 AND status IN ('PENDING', 'RUNNING', 'SUSPENDED', 'BLOCKED')",
    )
    .map_err(sql_err)?
    .execute(params![id, options.priority, options.fairness_key, now.0])
    .map_err(sql_err)?;
    select_execution(conn, id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ExecutionStatus;

    fn db() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        super::super::schema::install(&conn).unwrap();
        conn.execute_batch(
            "INSERT INTO executions (id, function, version, status, input, epoch, wakeups, \
             due_shard, due_at, created_at, updated_at, seed) VALUES \
             ('s', 'f', '1', 'SUSPENDED', 'null', 1, 0, 0, 500, 1, 1, ''), \
             ('r', 'f', '1', 'RUNNING', 'null', 1, 0, 0, 900, 1, 1, ''), \
             ('d', 'f', '1', 'SUCCEEDED', 'null', 1, 0, 0, NULL, 1, 1, '')",
        )
        .unwrap();
        conn
    }

    #[test]
    fn paused_rows_leave_the_due_scan_and_come_back_due_now() {
        let conn = db();
        let e = set_paused(&conn, "s", true, Timestamp(10))
            .unwrap()
            .unwrap();
        assert!(e.paused);
        assert_eq!(e.due_at, Some(Timestamp(500)));
        assert!(
            super::super::executions::due(&conn, 0, Timestamp(1_000), 10)
                .unwrap()
                .iter()
                .all(|d| d.id.as_str() != "s")
        );
        let e = set_paused(&conn, "s", false, Timestamp(20))
            .unwrap()
            .unwrap();
        assert!(!e.paused);
        assert_eq!(e.due_at, Some(Timestamp(20)), "due at once on unpause");
        // A running one keeps its lease as its due time.
        set_paused(&conn, "r", true, Timestamp(30)).unwrap();
        let e = set_paused(&conn, "r", false, Timestamp(40))
            .unwrap()
            .unwrap();
        assert_eq!(
            (e.status, e.due_at),
            (ExecutionStatus::Running, Some(Timestamp(900)))
        );
        // A finished one cannot be paused.
        let e = set_paused(&conn, "d", true, Timestamp(50))
            .unwrap()
            .unwrap();
        assert!(!e.paused);
        assert!(
            set_paused(&conn, "nope", true, Timestamp(50))
                .unwrap()
                .is_none()
        );
    }
}
