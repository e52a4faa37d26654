//! The SQL of journals: operation records (first writer wins by revision),
//! events, and loading both with their execution in one read transaction.

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

use super::executions::WAKE_SQL;
use super::rows::select_execution;
use super::{json_err, sql_err, to_i64};
use crate::error::{Result, StoreError};
use crate::model::{EventRecord, Journal, Operation, Timestamp};
use crate::store::{OpWrite, SentEvent};

/// Writes revision `rev` of an operation (`body` is its JSON): creates it at
/// 1, else replaces `rev - 1`; a lost race returns the stored record.
pub(super) fn put_operation(
    conn: &Connection,
    id: &str,
    op_id: &str,
    rev: u64,
    body: &str,
) -> Result<OpWrite> {
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
    match select_operation(conn, id, op_id)? {
        Some(current) => Ok(OpWrite::Conflict(current)),
        None => Err(StoreError::Invalid(format!(
            "operation {op_id} of {id} has no revision {} to replace",
            rev - 1
        ))),
    }
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

/// An execution with its operations (in start order) and events, read in
/// one transaction.
pub(super) fn load(conn: &Connection, id: &str) -> Result<Option<Journal>> {
    let tx = conn.unchecked_transaction().map_err(sql_err)?;
    let Some(execution) = select_execution(&tx, id)? else {
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
    let events = select_events(&tx, id)?;
    tx.commit().map_err(sql_err)?;
    crate::model::sort_operations(&mut operations);
    Ok(Some(Journal {
        execution,
        operations,
        events,
    }))
}

/// Stores an event (`body` is `payload`'s JSON) for an unfinished execution
/// and wakes it.
pub(super) fn send_event(
    conn: &Connection,
    id: &str,
    name: String,
    payload: Value,
    body: &str,
    now: Timestamp,
) -> Result<SentEvent> {
    let Some(exec) = select_execution(conn, id)? else {
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
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::model::{ExecutionId, ExecutionStatus, NewExecution, OpKind, OpStatus};

    fn db_with(id: &str) -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        super::super::schema::install(&conn).unwrap();
        let new = NewExecution {
            id: ExecutionId::new(id).unwrap(),
            function: "f".into(),
            version: "1".into(),
            input: json!(null),
            now: Timestamp(0),
        };
        super::super::executions::insert(&conn, &new, "null", "s").unwrap();
        conn
    }

    fn op(op_id: &str, rev: u64, result: Value) -> (Operation, String) {
        let op = Operation {
            id: op_id.into(),
            kind: OpKind::Step,
            name: "s".into(),
            status: OpStatus::Succeeded,
            attempt: 1,
            result: Some(result),
            error: None,
            started_at: Timestamp(0),
            ended_at: Some(Timestamp(0)),
            wake_at: None,
            rev,
        };
        let body = serde_json::to_string(&op).unwrap();
        (op, body)
    }

    #[test]
    fn the_first_writer_of_each_revision_wins() {
        let conn = db_with("x-1");
        let (first, body) = op("1", 1, json!("a"));
        assert_eq!(
            put_operation(&conn, "x-1", "1", 1, &body).unwrap(),
            OpWrite::Written
        );
        let (_, late) = op("1", 1, json!("b"));
        assert_eq!(
            put_operation(&conn, "x-1", "1", 1, &late).unwrap(),
            OpWrite::Conflict(first)
        );
        let (second, body) = op("1", 2, json!("c"));
        assert_eq!(
            put_operation(&conn, "x-1", "1", 2, &body).unwrap(),
            OpWrite::Written
        );
        assert_eq!(
            put_operation(&conn, "x-1", "1", 2, &body).unwrap(),
            OpWrite::Conflict(second)
        );
        let (_, body) = op("9", 3, json!(0));
        assert!(matches!(
            put_operation(&conn, "x-1", "9", 3, &body),
            Err(StoreError::Invalid(_))
        ));
    }

    #[test]
    fn a_journal_holds_operations_in_start_order_and_events_in_send_order() {
        let conn = db_with("x-1");
        for op_id in ["10", "2", "1.1", "1"] {
            let (_, body) = op(op_id, 1, json!(op_id));
            put_operation(&conn, "x-1", op_id, 1, &body).unwrap();
        }
        for n in 0..3 {
            let sent = send_event(
                &conn,
                "x-1",
                "e".into(),
                json!(n),
                &n.to_string(),
                Timestamp(n),
            );
            assert!(matches!(sent.unwrap(), SentEvent::Delivered(_)));
        }
        let j = load(&conn, "x-1").unwrap().unwrap();
        let ids: Vec<_> = j.operations.iter().map(|o| o.id.as_str()).collect();
        assert_eq!(ids, ["1", "1.1", "2", "10"]);
        let payloads: Vec<_> = j.events.iter().map(|e| e.payload.clone()).collect();
        assert_eq!(payloads, [json!(0), json!(1), json!(2)]);
        assert!(j.events.windows(2).all(|w| w[0].seq < w[1].seq));
        assert_eq!(j.execution.wakeups, 3, "each event wakes the execution");
        assert!(load(&conn, "ghost").unwrap().is_none());
    }

    #[test]
    fn events_for_missing_or_ended_executions_are_not_stored() {
        let conn = db_with("x-1");
        let ghost = send_event(&conn, "ghost", "e".into(), json!(1), "1", Timestamp(1));
        assert_eq!(ghost.unwrap(), SentEvent::NotFound);
        conn.execute_batch("UPDATE executions SET status = 'SUCCEEDED'")
            .unwrap();
        let ended = send_event(&conn, "x-1", "e".into(), json!(1), "1", Timestamp(1));
        assert_eq!(ended.unwrap(), SentEvent::Ended(ExecutionStatus::Succeeded));
        let n: i64 = conn
            .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0);
    }
}
