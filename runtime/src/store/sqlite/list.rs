//! The SQL of listing executions: a query built from a [`ListFilter`],
//! newest first, paged by a `<created_at>:<id>` cursor.

use rusqlite::Connection;
use rusqlite::types::Value as SqlValue;

use super::rows::exec_from_row;
use super::schema::EXEC_COLS;
use super::sql_err;
use crate::error::{Result, StoreError};
use crate::store::{ExecutionPage, ListFilter};

/// The page size a filter asks for (0: 100; at most 1000).
fn page_size(filter: &ListFilter) -> usize {
    match filter.limit {
        0 => 100,
        n => n.min(1000),
    }
}

/// The query for one page (one row more than the page, to know if another
/// follows) and its arguments.
fn query(filter: &ListFilter, limit: usize) -> Result<(String, Vec<SqlValue>)> {
    let mut sql = format!("SELECT {EXEC_COLS} FROM executions WHERE 1 = 1");
    let mut args: Vec<SqlValue> = Vec::new();
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
    Ok((sql, args))
}

/// One page of executions matching `filter`.
pub(super) fn page(conn: &Connection, filter: &ListFilter) -> Result<ExecutionPage> {
    let limit = page_size(filter);
    let (sql, args) = query(filter, limit)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ExecutionId, ExecutionStatus, NewExecution, Timestamp};

    #[test]
    fn filters_become_conditions_in_order() {
        let filter = ListFilter {
            function: Some("order".into()),
            status: Some(ExecutionStatus::Running),
            created_after: Some(Timestamp(1)),
            created_before: Some(Timestamp(9)),
            id_contains: Some("o-".into()),
            limit: 5,
            cursor: Some("7:o-3".into()),
        };
        let (sql, args) = query(&filter, page_size(&filter)).unwrap();
        let tail = sql.split_once("WHERE 1 = 1").unwrap().1;
        assert_eq!(
            tail,
            " AND function = ? AND status = ? AND created_at >= ? AND created_at < ? \
             AND instr(id, ?) > 0 AND (created_at < ? OR (created_at = ? AND id < ?)) \
             ORDER BY created_at DESC, id DESC LIMIT ?"
        );
        let expected: Vec<SqlValue> = vec![
            "order".to_string().into(),
            "RUNNING".to_string().into(),
            1i64.into(),
            9i64.into(),
            "o-".to_string().into(),
            7i64.into(),
            7i64.into(),
            "o-3".to_string().into(),
            6i64.into(),
        ];
        assert_eq!(args, expected);
        let (plain, args) = query(&ListFilter::default(), 100).unwrap();
        assert!(plain.ends_with("WHERE 1 = 1 ORDER BY created_at DESC, id DESC LIMIT ?"));
        assert_eq!(args, vec![SqlValue::from(101i64)]);
    }

    #[test]
    fn page_sizes_and_cursors() {
        let with = |limit| ListFilter {
            limit,
            ..ListFilter::default()
        };
        assert_eq!([0, 7, 5_000].map(|n| page_size(&with(n))), [100, 7, 1000]);
        assert_eq!(parse_cursor("12:a:b").unwrap(), (12, "a:b".to_string()));
        for bad in ["", "x:y", "12"] {
            let e = parse_cursor(bad).unwrap_err().to_string();
            assert!(e.contains("next_cursor"), "{e}");
        }
    }

    #[test]
    fn pages_follow_each_other_newest_first() {
        let conn = Connection::open_in_memory().unwrap();
        super::super::schema::install(&conn).unwrap();
        for i in 0..5 {
            let new = NewExecution {
                id: ExecutionId::new(format!("e-{i}")).unwrap(),
                function: "f".into(),
                version: "1".into(),
                input: serde_json::json!(i),
                now: Timestamp(i / 2),
            };
            super::super::executions::insert(&conn, &new, &i.to_string(), "s").unwrap();
        }
        let mut filter = ListFilter {
            limit: 2,
            ..ListFilter::default()
        };
        let mut seen = Vec::new();
        loop {
            let page = page(&conn, &filter).unwrap();
            seen.extend(page.executions.iter().map(|e| e.id.to_string()));
            match page.next_cursor {
                Some(c) => filter.cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(seen, ["e-4", "e-3", "e-2", "e-1", "e-0"]);
    }
}
