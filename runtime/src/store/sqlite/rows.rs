//! Execution rows: reading one and decoding it into an [`Execution`].

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::schema::EXEC_COLS;
use super::{json_err, sql_err};
use crate::error::{Result, StoreError};
use crate::model::{ErrorObject, Execution, ExecutionId, ExecutionStatus, Timestamp};

pub(super) fn exec_from_row(row: &Row<'_>) -> rusqlite::Result<RawExecution> {
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
        paused: row.get(15)?,
        priority: row.get(16)?,
        fairness_key: row.get(17)?,
    })
}

/// A row as stored; decoded outside rusqlite's error type.
pub(super) struct RawExecution {
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
    paused: bool,
    priority: u8,
    fairness_key: Option<String>,
}

impl RawExecution {
    pub(super) fn decode(self) -> Result<Execution> {
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
            paused: self.paused,
            priority: self.priority,
            fairness_key: self.fairness_key,
        })
    }
}

pub(super) fn select_execution(conn: &Connection, id: &str) -> Result<Option<Execution>> {
    let sql = format!("SELECT {EXEC_COLS} FROM executions WHERE id = ?1");
    let mut stmt = conn.prepare_cached(&sql).map_err(sql_err)?;
    let raw = stmt
        .query_row(params![id], exec_from_row)
        .optional()
        .map_err(sql_err)?;
    raw.map(RawExecution::decode).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_decodes_into_its_execution_and_bad_rows_are_errors() {
        let conn = Connection::open_in_memory().unwrap();
        super::super::schema::install(&conn).unwrap();
        conn.execute_batch(
            "INSERT INTO executions (id, function, version, status, input, output, error, \
             epoch, wakeups, due_shard, due_at, created_at, updated_at, seed) VALUES \
             ('x-1', 'f', '3', 'FAILED', '{\"a\":1}', NULL, '{\"type\":\"E\",\"message\":\"m\"}', \
              2, 1, 0, NULL, 10, 20, 's'), \
             ('x-2', 'f', '3', 'WHATEVER', '1', NULL, NULL, 0, 0, 0, 5, 10, 10, '')",
        )
        .unwrap();
        let e = select_execution(&conn, "x-1").unwrap().unwrap();
        assert_eq!(e.status, ExecutionStatus::Failed);
        assert_eq!(e.input, serde_json::json!({"a": 1}));
        assert_eq!(e.error.as_ref().map(|e| e.message.as_str()), Some("m"));
        assert_eq!((e.epoch, e.wakeups, e.seed.as_str()), (2, 1, "s"));
        assert_eq!(e.updated_at, Timestamp(20));
        assert!(select_execution(&conn, "nope").unwrap().is_none());
        let bad = select_execution(&conn, "x-2").unwrap_err().to_string();
        assert!(bad.contains("WHATEVER"), "{bad}");
    }
}
