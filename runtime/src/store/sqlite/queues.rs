//! The SQL of queue messages and leases. Each function runs inside the
//! writer's transaction (or a reader's snapshot), so a receive's select and
//! its claims are one atomic step.

use rusqlite::{Connection, OptionalExtension, params};

use super::{json_err, sql_err};
use crate::error::Result;
use crate::model::Timestamp;
use crate::store::queue::{lease_free_for, new_receipt};
use crate::store::{Lease, LeaseRequest, LeaseTake, QueueMessage, QueueStats};

/// Inserts a message unless its id is taken.
pub(super) fn send(conn: &Connection, m: &QueueMessage) -> Result<bool> {
    let body = serde_json::to_string(&m.body).map_err(json_err)?;
    let changed = conn
        .prepare_cached(
            "INSERT INTO queue_messages (queue, id, body, sent_at, visible_at, receive_count, \
             first_received_at, receipt) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
             ON CONFLICT(queue, id) DO NOTHING",
        )
        .map_err(sql_err)?
        .execute(params![
            m.queue,
            m.id,
            body,
            m.sent_at.0,
            m.visible_at.0,
            m.receive_count,
            m.first_received_at.map(|t| t.0),
            m.receipt
        ])
        .map_err(sql_err)?;
    Ok(changed == 1)
}

fn message_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(QueueMessage, String)> {
    Ok((
        QueueMessage {
            queue: r.get(0)?,
            id: r.get(1)?,
            body: serde_json::Value::Null,
            sent_at: Timestamp(r.get(3)?),
            visible_at: Timestamp(r.get(4)?),
            receive_count: r.get(5)?,
            first_received_at: r.get::<_, Option<i64>>(6)?.map(Timestamp),
            receipt: r.get(7)?,
        },
        r.get(2)?,
    ))
}

/// Claims up to `max` visible messages.
pub(super) fn receive(
    conn: &Connection,
    queue: &str,
    now: Timestamp,
    hidden_until: Timestamp,
    max: usize,
) -> Result<Vec<QueueMessage>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT queue, id, body, sent_at, visible_at, receive_count, first_received_at, receipt \
             FROM queue_messages WHERE queue = ?1 AND visible_at <= ?2 \
             ORDER BY visible_at, sent_at, id LIMIT ?3",
        )
        .map_err(sql_err)?;
    let limit = i64::try_from(max).unwrap_or(i64::MAX);
    let rows = stmt
        .query_map(params![queue, now.0, limit], message_from_row)
        .map_err(sql_err)?;
    let mut found = Vec::new();
    for row in rows {
        let (mut m, body) = row.map_err(sql_err)?;
        m.body = serde_json::from_str(&body).map_err(json_err)?;
        found.push(m);
    }
    let mut update = conn
        .prepare_cached(
            "UPDATE queue_messages SET visible_at = ?3, receive_count = receive_count + 1, \
             first_received_at = COALESCE(first_received_at, ?4), receipt = ?5 \
             WHERE queue = ?1 AND id = ?2",
        )
        .map_err(sql_err)?;
    for m in &mut found {
        let receipt = new_receipt();
        update
            .execute(params![queue, m.id, hidden_until.0, now.0, receipt])
            .map_err(sql_err)?;
        m.visible_at = hidden_until;
        m.receive_count += 1;
        m.first_received_at.get_or_insert(now);
        m.receipt = Some(receipt);
    }
    Ok(found)
}

/// Deletes a message by its latest receipt.
pub(super) fn delete(conn: &Connection, queue: &str, id: &str, receipt: &str) -> Result<bool> {
    let changed = conn
        .prepare_cached("DELETE FROM queue_messages WHERE queue = ?1 AND id = ?2 AND receipt = ?3")
        .map_err(sql_err)?
        .execute(params![queue, id, receipt])
        .map_err(sql_err)?;
    Ok(changed == 1)
}

/// Moves a hidden message's visibility.
pub(super) fn change_visibility(
    conn: &Connection,
    queue: &str,
    id: &str,
    receipt: &str,
    visible_at: Timestamp,
    now: Timestamp,
) -> Result<bool> {
    let changed = conn
        .prepare_cached(
            "UPDATE queue_messages SET visible_at = ?4 \
             WHERE queue = ?1 AND id = ?2 AND receipt = ?3 AND visible_at > ?5",
        )
        .map_err(sql_err)?
        .execute(params![queue, id, receipt, visible_at.0, now.0])
        .map_err(sql_err)?;
    Ok(changed == 1)
}

/// A queue's counts.
pub(super) fn stats(conn: &Connection, queue: &str, now: Timestamp) -> Result<QueueStats> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT \
               COALESCE(SUM(visible_at <= ?2), 0), \
               COALESCE(SUM(visible_at > ?2 AND receipt IS NOT NULL), 0), \
               COALESCE(SUM(visible_at > ?2 AND receipt IS NULL), 0), \
               MIN(CASE WHEN visible_at > ?2 THEN visible_at END) \
             FROM queue_messages WHERE queue = ?1",
        )
        .map_err(sql_err)?;
    stmt.query_row(params![queue, now.0], |r| {
        Ok(QueueStats {
            visible: r.get::<_, i64>(0)?.max(0).unsigned_abs(),
            in_flight: r.get::<_, i64>(1)?.max(0).unsigned_abs(),
            delayed: r.get::<_, i64>(2)?.max(0).unsigned_abs(),
            next_visible_at: r.get::<_, Option<i64>>(3)?.map(Timestamp),
        })
    })
    .map_err(sql_err)
}

/// Deletes every message of a queue.
pub(super) fn purge(conn: &Connection, queue: &str) -> Result<u64> {
    let changed = conn
        .prepare_cached("DELETE FROM queue_messages WHERE queue = ?1")
        .map_err(sql_err)?
        .execute(params![queue])
        .map_err(sql_err)?;
    Ok(changed as u64)
}

fn lease_row(conn: &Connection, group: &str, name: &str) -> Result<Option<Lease>> {
    conn.prepare_cached("SELECT owner, until FROM leases WHERE grp = ?1 AND name = ?2")
        .map_err(sql_err)?
        .query_row(params![group, name], |r| {
            Ok(Lease {
                group: group.to_string(),
                name: name.to_string(),
                owner: r.get(0)?,
                until: Timestamp(r.get(1)?),
            })
        })
        .optional()
        .map_err(sql_err)
}

/// Takes or renews a lease.
pub(super) fn take_lease(conn: &Connection, r: &LeaseRequest, now: Timestamp) -> Result<LeaseTake> {
    let wanted = Lease {
        group: r.group.clone(),
        name: r.name.clone(),
        owner: r.owner.clone(),
        until: r.until,
    };
    match lease_row(conn, &r.group, &r.name)? {
        Some(current) if !lease_free_for(&current, r, now) => Ok(LeaseTake::Held(current)),
        _ => {
            conn.prepare_cached(
                "INSERT INTO leases (grp, name, owner, until) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT(grp, name) DO UPDATE SET owner = excluded.owner, until = excluded.until",
            )
            .map_err(sql_err)?
            .execute(params![r.group, r.name, r.owner, r.until.0])
            .map_err(sql_err)?;
            Ok(LeaseTake::Taken(wanted))
        }
    }
}

/// Deletes a lease its owner holds.
pub(super) fn release_lease(
    conn: &Connection,
    group: &str,
    name: &str,
    owner: &str,
) -> Result<bool> {
    let changed = conn
        .prepare_cached("DELETE FROM leases WHERE grp = ?1 AND name = ?2 AND owner = ?3")
        .map_err(sql_err)?
        .execute(params![group, name, owner])
        .map_err(sql_err)?;
    Ok(changed == 1)
}

/// Every lease of a group, by name.
pub(super) fn list_leases(conn: &Connection, group: &str) -> Result<Vec<Lease>> {
    let mut stmt = conn
        .prepare_cached("SELECT name, owner, until FROM leases WHERE grp = ?1 ORDER BY name")
        .map_err(sql_err)?;
    let rows = stmt
        .query_map(params![group], |r| {
            Ok(Lease {
                group: group.to_string(),
                name: r.get(0)?,
                owner: r.get(1)?,
                until: Timestamp(r.get(2)?),
            })
        })
        .map_err(sql_err)?;
    rows.collect::<rusqlite::Result<Vec<_>>>().map_err(sql_err)
}
