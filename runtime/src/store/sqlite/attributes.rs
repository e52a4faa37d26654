//! The SQL of search attributes (see `store/attributes.rs`): `attributes`,
//! one row per `(execution_id, name)` with the value as compact JSON, the
//! execution's function and creation time; the index
//! `attributes_by_value(name, value, created_at, execution_id)` answers a
//! search newest first without reading executions. A trigger deletes an
//! execution's rows with it (so `purge` needs no change).

use rusqlite::{Connection, params};

use super::sql_err;
use crate::error::Result;
use crate::model::ExecutionId;
use crate::store::attributes::{
    AttributePage, AttributeQuery, SearchAttribute, cursor, page_size, parse_cursor,
};

/// The table, its index and the purge trigger (installed with the schema).
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS attributes (
    execution_id TEXT NOT NULL,
    name         TEXT NOT NULL,
    value        TEXT NOT NULL,
    function     TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (execution_id, name)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS attributes_by_value
    ON attributes(name, value, created_at, execution_id);
CREATE TRIGGER IF NOT EXISTS attributes_go_with_their_execution
    AFTER DELETE ON executions
    BEGIN DELETE FROM attributes WHERE execution_id = old.id; END;
";

/// Sets (or replaces) one attribute; `value` is its index form.
pub(super) fn put(conn: &Connection, id: &str, attr: &SearchAttribute, value: &str) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO attributes (execution_id, name, value, function, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT(execution_id, name) DO UPDATE SET value = excluded.value",
    )
    .map_err(sql_err)?
    .execute(params![
        id,
        attr.name,
        value,
        attr.function,
        attr.created_at.0
    ])
    .map_err(sql_err)?;
    Ok(())
}

/// One page of the executions whose attribute has `value` (index form).
pub(super) fn find(conn: &Connection, q: &AttributeQuery, value: &str) -> Result<AttributePage> {
    let limit = page_size(q.limit);
    let after = q.cursor.as_deref().and_then(parse_cursor);
    let (after_t, after_id) = match after {
        Some((t, id)) => (Some(t), id),
        None => (None, String::new()),
    };
    let mut stmt = conn
        .prepare_cached(
            "SELECT execution_id, created_at FROM attributes \
             WHERE name = ?1 AND value = ?2 AND (?3 IS NULL OR function = ?3) \
             AND (?4 IS NULL OR created_at < ?4 OR (created_at = ?4 AND execution_id < ?5)) \
             ORDER BY created_at DESC, execution_id DESC LIMIT ?6",
        )
        .map_err(sql_err)?;
    let rows = stmt
        .query_map(
            params![
                q.name,
                value,
                q.function,
                after_t,
                after_id,
                (limit + 1) as i64
            ],
            |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)),
        )
        .map_err(sql_err)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(sql_err)?;
    let more = rows.len() > limit;
    let rows = &rows[..rows.len().min(limit)];
    let next_cursor = match rows.last() {
        Some((id, t)) if more => Some(cursor(crate::model::Timestamp(*t), id)),
        _ => None,
    };
    let ids = rows
        .iter()
        .filter_map(|(id, _)| ExecutionId::new(id.as_str()).ok())
        .collect();
    Ok(AttributePage { ids, next_cursor })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Timestamp;
    use serde_json::json;

    #[test]
    fn found_newest_first_paged_and_replaced_values_move() {
        let conn = Connection::open_in_memory().unwrap();
        super::super::schema::install(&conn).unwrap();
        for n in 0..5 {
            let a = SearchAttribute {
                name: "customer".into(),
                value: json!(42),
                function: if n == 4 { "other" } else { "order" }.into(),
                created_at: Timestamp(n),
            };
            put(&conn, &format!("x{n}"), &a, "42").unwrap();
        }
        let mut q = AttributeQuery {
            name: "customer".into(),
            value: json!(42),
            function: Some("order".into()),
            limit: 2,
            cursor: None,
        };
        let p = find(&conn, &q, "42").unwrap();
        assert_eq!(
            p.ids.iter().map(|i| i.as_str()).collect::<Vec<_>>(),
            ["x3", "x2"]
        );
        q.cursor = p.next_cursor;
        let p = find(&conn, &q, "42").unwrap();
        assert_eq!(
            p.ids.iter().map(|i| i.as_str()).collect::<Vec<_>>(),
            ["x1", "x0"]
        );
        assert_eq!(p.next_cursor, None);
        // x1 gets another value: it leaves the first's results.
        let a = SearchAttribute {
            name: "customer".into(),
            value: json!(7),
            function: "order".into(),
            created_at: Timestamp(1),
        };
        put(&conn, "x1", &a, "7").unwrap();
        q.cursor = None;
        q.limit = 10;
        let p = find(&conn, &q, "42").unwrap();
        assert_eq!(p.ids.len(), 3);
        q.function = None;
        assert_eq!(find(&conn, &q, "42").unwrap().ids.len(), 4);
    }
}
