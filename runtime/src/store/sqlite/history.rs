//! The SQL of history records (`history`: one row per attempt or invocation,
//! keyed by execution and [`HistoryEntry::key`]).

use rusqlite::{Connection, params};

use super::{json_err, sql_err};
use crate::error::Result;
use crate::model::HistoryEntry;

/// Writes `entry` (`body` is its JSON), replacing the row with its key, and
/// deletes the row `keep` places before it in its series.
pub(super) fn put(
    conn: &Connection,
    id: &str,
    entry: &HistoryEntry,
    body: &str,
    keep: u32,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO history (execution_id, key, body) VALUES (?1, ?2, ?3) \
         ON CONFLICT(execution_id, key) DO UPDATE SET body = excluded.body",
    )
    .map_err(sql_err)?
    .execute(params![id, entry.key(), body])
    .map_err(sql_err)?;
    if let Some(old) = entry.evicted_key(keep) {
        conn.prepare_cached("DELETE FROM history WHERE execution_id = ?1 AND key = ?2")
            .map_err(sql_err)?
            .execute(params![id, old])
            .map_err(sql_err)?;
    }
    Ok(())
}

/// Every history record of an execution, in key order.
pub(super) fn load(conn: &Connection, id: &str) -> Result<Vec<HistoryEntry>> {
    let mut stmt = conn
        .prepare_cached("SELECT body FROM history WHERE execution_id = ?1 ORDER BY key")
        .map_err(sql_err)?;
    let bodies = stmt
        .query_map(params![id], |r| r.get::<_, String>(0))
        .map_err(sql_err)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(sql_err)?;
    bodies
        .iter()
        .map(|b| serde_json::from_str(b).map_err(json_err))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{
        AttemptOutcome, AttemptRecord, InvocationOutcome, InvocationRecord, OpKind, Timestamp,
    };

    fn attempt(n: u32) -> HistoryEntry {
        HistoryEntry::Attempt(AttemptRecord {
            op_id: "2".into(),
            kind: OpKind::Step,
            name: "s".into(),
            attempt: n,
            epoch: 1,
            started_at: Timestamp(1),
            ended_at: Timestamp(2),
            outcome: AttemptOutcome::Retrying,
            error: None,
            retry_at: None,
        })
    }

    fn put_json(conn: &Connection, id: &str, e: &HistoryEntry, keep: u32) {
        let body = serde_json::to_string(e).unwrap();
        put(conn, id, e, &body, keep).unwrap();
    }

    #[test]
    fn a_series_keeps_its_last_entries_and_rewrites_replace() {
        let conn = Connection::open_in_memory().unwrap();
        super::super::schema::install(&conn).unwrap();
        for n in 1..=5 {
            put_json(&conn, "x", &attempt(n), 3);
        }
        let mut inv = InvocationRecord {
            epoch: 1,
            started_at: Timestamp(1),
            ended_at: None,
            outcome: None,
            status: None,
            wake_at: None,
            deadline: None,
            process: None,
            error: None,
            expires_at: None,
            usage: None,
            memory_mb: None,
        };
        put_json(&conn, "x", &HistoryEntry::Invocation(inv.clone()), 3);
        inv.outcome = Some(InvocationOutcome::Suspended);
        put_json(&conn, "x", &HistoryEntry::Invocation(inv.clone()), 3);
        put_json(&conn, "y", &attempt(1), 3);
        let got = load(&conn, "x").unwrap();
        let seqs: Vec<u64> = got.iter().map(HistoryEntry::seq).collect();
        assert_eq!(
            seqs,
            vec![3, 4, 5, 1],
            "attempts 1 and 2 evicted; one invocation"
        );
        assert_eq!(got[3], HistoryEntry::Invocation(inv));
        assert_eq!(load(&conn, "y").unwrap().len(), 1);
    }
}
