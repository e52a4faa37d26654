//! The SQL of schedule records: whole-record writes conditional on `rev`,
//! and the schedules' part of the due index.

use rusqlite::{Connection, OptionalExtension, params};

use super::{json_err, sql_err, to_i64};
use crate::error::{Result, StoreError};
use crate::model::Timestamp;
use crate::store::{Schedule, ScheduleWrite};

/// Inserts revision 1 (`body` is the record's JSON) unless the name is taken.
pub(super) fn create(
    conn: &Connection,
    name: &str,
    due_at: Option<i64>,
    body: &str,
) -> Result<ScheduleWrite> {
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
    match select(conn, name)? {
        Some(current) => Ok(ScheduleWrite::Conflict(current)),
        None => Err(StoreError::Backend("schedule vanished".into())),
    }
}

/// Replaces revision `rev - 1` with revision `rev`.
pub(super) fn update(
    conn: &Connection,
    name: &str,
    rev: u64,
    due_at: Option<i64>,
    body: &str,
) -> Result<ScheduleWrite> {
    let changed = conn
        .prepare_cached(
            "UPDATE schedules SET rev = ?2, due_at = ?3, body = ?4 \
             WHERE name = ?1 AND rev = ?2 - 1",
        )
        .map_err(sql_err)?
        .execute(params![name, to_i64(rev), due_at, body])
        .map_err(sql_err)?;
    if changed == 1 {
        return Ok(ScheduleWrite::Written);
    }
    Ok(match select(conn, name)? {
        Some(current) => ScheduleWrite::Conflict(current),
        None => ScheduleWrite::Missing,
    })
}

/// One schedule by name.
pub(super) fn select(conn: &Connection, name: &str) -> Result<Option<Schedule>> {
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

/// Every schedule, by name.
pub(super) fn all(conn: &Connection) -> Result<Vec<Schedule>> {
    bodies(conn, "SELECT body FROM schedules ORDER BY name", [])
}

/// Up to `limit` schedules due by `now`, earliest first.
pub(super) fn due(conn: &Connection, now: Timestamp, limit: i64) -> Result<Vec<Schedule>> {
    bodies(
        conn,
        "SELECT body FROM schedules WHERE due_at IS NOT NULL AND due_at <= ?1 \
         ORDER BY due_at LIMIT ?2",
        params![now.0, limit],
    )
}

fn bodies(conn: &Connection, sql: &str, args: impl rusqlite::Params) -> Result<Vec<Schedule>> {
    let mut stmt = conn.prepare_cached(sql).map_err(sql_err)?;
    let rows = stmt
        .query_map(args, |r| r.get::<_, String>(0))
        .map_err(sql_err)?;
    let mut out = Vec::new();
    for body in rows {
        out.push(serde_json::from_str(&body.map_err(sql_err)?).map_err(json_err)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sched(name: &str, rev: u64, due_at: Option<i64>) -> (Schedule, String) {
        let s = Schedule {
            name: name.into(),
            function: "f".into(),
            expression: "rate(1 minute)".into(),
            timezone: None,
            input: serde_json::json!({}),
            enabled: true,
            paused: false,
            catch_up: Default::default(),
            overlap: Default::default(),
            anchor: Timestamp(0),
            next_fire_at: due_at.map(Timestamp),
            pending_fire_at: None,
            last_fire_at: None,
            last_execution: None,
            fires: 0,
            skipped: 0,
            due_at: due_at.map(Timestamp),
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
            rev,
        };
        let body = serde_json::to_string(&s).unwrap();
        (s, body)
    }

    fn db() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        super::super::schema::install(&conn).unwrap();
        conn
    }

    #[test]
    fn records_are_created_once_and_replaced_by_the_next_revision() {
        let conn = db();
        let (first, body) = sched("a", 1, Some(5));
        assert_eq!(
            create(&conn, "a", Some(5), &body).unwrap(),
            ScheduleWrite::Written
        );
        assert_eq!(
            create(&conn, "a", Some(5), &body).unwrap(),
            ScheduleWrite::Conflict(first)
        );
        let (second, body) = sched("a", 2, None);
        assert_eq!(
            update(&conn, "a", 2, None, &body).unwrap(),
            ScheduleWrite::Written
        );
        assert_eq!(
            update(&conn, "a", 2, None, &body).unwrap(),
            ScheduleWrite::Conflict(second.clone())
        );
        assert_eq!(
            update(&conn, "b", 2, None, &body).unwrap(),
            ScheduleWrite::Missing
        );
        assert_eq!(select(&conn, "a").unwrap(), Some(second));
    }

    #[test]
    fn the_due_part_is_ordered_limited_and_skips_undue_records() {
        let conn = db();
        for (name, due_at) in [("c", Some(3)), ("a", Some(9)), ("b", None), ("d", Some(1))] {
            let (_, body) = sched(name, 1, due_at);
            create(&conn, name, due_at, &body).unwrap();
        }
        let names = |v: Vec<Schedule>| v.into_iter().map(|s| s.name).collect::<Vec<_>>();
        assert_eq!(names(due(&conn, Timestamp(5), 10).unwrap()), ["d", "c"]);
        assert_eq!(names(due(&conn, Timestamp(10), 1).unwrap()), ["d"]);
        assert_eq!(names(all(&conn).unwrap()), ["a", "b", "c", "d"]);
    }
}
