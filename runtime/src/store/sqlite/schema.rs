//! The tables and indexes of the SQLite store, and the migration of files
//! written by older versions.

use rusqlite::Connection;

use super::sql_err;
use crate::error::Result;

/// Every table and index; idempotent (`IF NOT EXISTS`).
pub(super) const SCHEMA: &str = "
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
    seed        TEXT NOT NULL DEFAULT '',
    paused      INTEGER NOT NULL DEFAULT 0,
    priority    INTEGER NOT NULL DEFAULT 3,
    fairness_key TEXT
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
CREATE TABLE IF NOT EXISTS history (
    execution_id TEXT NOT NULL,
    key          TEXT NOT NULL,
    body         TEXT NOT NULL,
    PRIMARY KEY (execution_id, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS schedules (
    name    TEXT PRIMARY KEY,
    rev     INTEGER NOT NULL,
    due_at  INTEGER,
    body    TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS schedules_due ON schedules(due_at) WHERE due_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS queue_messages (
    queue              TEXT NOT NULL,
    id                 TEXT NOT NULL,
    body               TEXT NOT NULL,
    sent_at            INTEGER NOT NULL,
    visible_at         INTEGER NOT NULL,
    receive_count      INTEGER NOT NULL,
    first_received_at  INTEGER,
    receipt            TEXT,
    PRIMARY KEY (queue, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS queue_messages_visible ON queue_messages(queue, visible_at);
CREATE TABLE IF NOT EXISTS leases (
    grp    TEXT NOT NULL,
    name   TEXT NOT NULL,
    owner  TEXT NOT NULL,
    until  INTEGER NOT NULL,
    PRIMARY KEY (grp, name)
) WITHOUT ROWID;
";

/// The columns of an execution row, in the order [`super::rows::exec_from_row`] reads.
pub(super) const EXEC_COLS: &str = "id, function, version, status, input, output, error, epoch, wakeups, \
                         due_at, created_at, updated_at, ended_at, expires_at, seed, paused, priority, fairness_key";

/// Brings a store file written by an older version up to date.
pub(super) fn migrate(conn: &Connection) -> Result<()> {
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
    super::pause::migrate(conn)?;
    Ok(())
}

/// Creates the schema in `conn` (migrating an older file first).
pub(super) fn install(conn: &Connection) -> Result<()> {
    migrate(conn)?;
    conn.execute_batch(SCHEMA).map_err(sql_err)?;
    conn.execute_batch(super::attributes::SCHEMA)
        .map_err(sql_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns(conn: &Connection, table: &str) -> Vec<String> {
        let mut st = conn
            .prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))
            .unwrap();
        st.query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .map(|c| c.unwrap())
            .collect()
    }

    #[test]
    fn the_schema_installs_twice_and_has_every_execution_column() {
        let conn = Connection::open_in_memory().unwrap();
        install(&conn).unwrap();
        install(&conn).unwrap();
        let cols = columns(&conn, "executions");
        for c in EXEC_COLS.split(',').map(str::trim) {
            assert!(cols.iter().any(|have| have == c), "missing column {c}");
        }
        for table in [
            "operations",
            "events",
            "schedules",
            "queue_messages",
            "leases",
        ] {
            assert!(!columns(&conn, table).is_empty(), "no table {table}");
        }
    }

    #[test]
    fn a_file_without_seeds_gets_the_column() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE executions (id TEXT PRIMARY KEY, function TEXT NOT NULL, \
             version TEXT NOT NULL, status TEXT NOT NULL, input TEXT NOT NULL, output TEXT, \
             error TEXT, epoch INTEGER NOT NULL, wakeups INTEGER NOT NULL, \
             due_shard INTEGER NOT NULL, due_at INTEGER, created_at INTEGER NOT NULL, \
             updated_at INTEGER NOT NULL, ended_at INTEGER, expires_at INTEGER)",
        )
        .unwrap();
        assert!(!columns(&conn, "executions").contains(&"seed".to_string()));
        install(&conn).unwrap();
        assert!(columns(&conn, "executions").contains(&"seed".to_string()));
    }

    #[test]
    fn due_scans_use_the_due_index() {
        let conn = Connection::open_in_memory().unwrap();
        install(&conn).unwrap();
        let plan: String = conn
            .query_row(
                "EXPLAIN QUERY PLAN SELECT id, due_at FROM executions \
                 WHERE due_shard = 1 AND due_at IS NOT NULL AND due_at <= 5 ORDER BY due_at LIMIT 3",
                [],
                |r| r.get(3),
            )
            .unwrap();
        assert!(plan.contains("executions_due"), "{plan}");
    }
}
