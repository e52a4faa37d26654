//! The execution SQL on an in-memory database.

use serde_json::json;

use super::*;

fn db() -> Connection {
    let conn = Connection::open_in_memory().unwrap();
    super::super::schema::install(&conn).unwrap();
    conn
}

fn new(id: &str, now: i64) -> NewExecution {
    NewExecution {
        id: ExecutionId::new(id).unwrap(),
        function: "f".into(),
        version: "1".into(),
        input: json!({"n": 1}),
        now: Timestamp(now),
    }
}

fn created(conn: &Connection, id: &str, now: i64) -> NewExecution {
    let n = new(id, now);
    assert!(matches!(
        insert(conn, &n, r#"{"n":1}"#, "seed").unwrap(),
        Created::New(_)
    ));
    n
}

#[test]
fn insert_is_idempotent_and_conflicts_on_another_start() {
    let conn = db();
    let n = created(&conn, "x-1", 5);
    let again = insert(&conn, &n, r#"{"n":1}"#, "other").unwrap();
    let Created::Existing(e) = again else {
        panic!("{again:?}")
    };
    assert_eq!(
        (e.status, e.due_at, e.seed.as_str()),
        (ExecutionStatus::Pending, Some(Timestamp(5)), "seed")
    );
    let mut other = n.clone();
    other.input = json!({"n": 2});
    assert!(matches!(
        insert(&conn, &other, r#"{"n":2}"#, "s"),
        Err(StoreError::Conflict { what: "input", .. })
    ));
    other.function = "g".into();
    assert!(matches!(
        insert(&conn, &other, r#"{"n":2}"#, "s"),
        Err(StoreError::Conflict {
            what: "function",
            ..
        })
    ));
}

#[test]
fn claim_takes_due_executions_only_and_bumps_the_epoch() {
    let conn = db();
    created(&conn, "x-1", 10);
    assert!(
        claim(&conn, "x-1", Timestamp(9), Timestamp(100))
            .unwrap()
            .is_none(),
        "not due yet"
    );
    let c = claim(&conn, "x-1", Timestamp(10), Timestamp(100))
        .unwrap()
        .unwrap();
    assert_eq!(
        (c.status, c.epoch, c.due_at),
        (ExecutionStatus::Running, 1, Some(Timestamp(100)))
    );
    assert!(
        claim(&conn, "x-1", Timestamp(99), Timestamp(200))
            .unwrap()
            .is_none(),
        "leased"
    );
    let c = claim(&conn, "x-1", Timestamp(100), Timestamp(200))
        .unwrap()
        .unwrap();
    assert_eq!(c.epoch, 2, "an expired lease is claimed again");
    assert!(
        claim(&conn, "ghost", Timestamp(100), Timestamp(200))
            .unwrap()
            .is_none()
    );
}

#[test]
fn suspend_and_finish_are_conditional_on_the_epoch() {
    let conn = db();
    created(&conn, "x-1", 0);
    let c = claim(&conn, "x-1", Timestamp(0), Timestamp(50))
        .unwrap()
        .unwrap();
    let stale = suspend(
        &conn,
        "x-1",
        c.epoch + 1,
        c.wakeups,
        Some(Timestamp(70)),
        Timestamp(1),
    );
    assert_eq!(stale.unwrap(), Transition::Stale);
    for _ in 0..2 {
        // The same claimant again: still done.
        let t = suspend(
            &conn,
            "x-1",
            c.epoch,
            c.wakeups,
            Some(Timestamp(70)),
            Timestamp(1),
        );
        assert_eq!(t.unwrap(), Transition::Done);
    }
    let e = select_execution(&conn, "x-1").unwrap().unwrap();
    assert_eq!(
        (e.status, e.due_at),
        (ExecutionStatus::Suspended, Some(Timestamp(70)))
    );

    let c = claim(&conn, "x-1", Timestamp(70), Timestamp(90))
        .unwrap()
        .unwrap();
    let end = Ending {
        status: ExecutionStatus::Succeeded,
        output: Some("2".into()),
        error: None,
        expires_at: Some(1_000),
    };
    assert_eq!(
        finish(&conn, "x-1", c.epoch - 1, &end, Timestamp(80)).unwrap(),
        Transition::Stale
    );
    assert_eq!(
        finish(&conn, "x-1", c.epoch, &end, Timestamp(80)).unwrap(),
        Transition::Done
    );
    assert_eq!(
        finish(&conn, "x-1", c.epoch, &end, Timestamp(81)).unwrap(),
        Transition::Done
    );
    let e = select_execution(&conn, "x-1").unwrap().unwrap();
    assert_eq!(e.output, Some(json!(2)));
    assert_eq!(
        (e.due_at, e.ended_at, e.expires_at),
        (None, Some(Timestamp(80)), Some(Timestamp(1_000)))
    );
    assert!(matches!(
        finish(&conn, "ghost", 1, &end, Timestamp(80)),
        Err(StoreError::NotFound(_))
    ));
}

#[test]
fn a_wake_during_an_invocation_makes_the_suspension_due_now() {
    let conn = db();
    created(&conn, "x-1", 0);
    let c = claim(&conn, "x-1", Timestamp(0), Timestamp(50))
        .unwrap()
        .unwrap();
    assert!(wake(&conn, "x-1", Timestamp(3)).unwrap());
    assert!(!wake(&conn, "ghost", Timestamp(3)).unwrap());
    suspend(
        &conn,
        "x-1",
        c.epoch,
        c.wakeups,
        Some(Timestamp(900)),
        Timestamp(4),
    )
    .unwrap();
    let e = select_execution(&conn, "x-1").unwrap().unwrap();
    assert_eq!(e.due_at, Some(Timestamp(4)));
    // A wake of a suspended execution pulls its due time in, never out.
    assert!(wake(&conn, "x-1", Timestamp(2)).unwrap());
    assert_eq!(
        select_execution(&conn, "x-1").unwrap().unwrap().due_at,
        Some(Timestamp(2))
    );
    assert!(wake(&conn, "x-1", Timestamp(9)).unwrap());
    assert_eq!(
        select_execution(&conn, "x-1").unwrap().unwrap().due_at,
        Some(Timestamp(2))
    );
}

#[test]
fn due_reads_one_shard_in_due_order_up_to_the_limit() {
    let conn = db();
    let mut ids: Vec<NewExecution> = Vec::new();
    for i in 0..64 {
        ids.push(created(&conn, &format!("d-{i}"), 100 - i));
    }
    let shard = ids[0].id.due_shard();
    let mine: Vec<_> = ids.iter().filter(|n| n.id.due_shard() == shard).collect();
    let got = due(&conn, shard, Timestamp(1_000), 2).unwrap();
    assert_eq!(got.len(), 2.min(mine.len()));
    assert!(got.windows(2).all(|w| w[0].due_at <= w[1].due_at));
    let all = due(&conn, shard, Timestamp(1_000), 100).unwrap();
    assert_eq!(all.len(), mine.len());
    assert!(due(&conn, shard, Timestamp(0), 100).unwrap().is_empty());
}

#[test]
fn resume_cancel_and_purge() {
    let conn = db();
    created(&conn, "x-1", 0);
    let c = claim(&conn, "x-1", Timestamp(0), Timestamp(50))
        .unwrap()
        .unwrap();
    let failed = Ending {
        status: ExecutionStatus::Failed,
        output: None,
        error: Some(r#"{"type":"E","message":"m"}"#.into()),
        expires_at: Some(500),
    };
    finish(&conn, "x-1", c.epoch, &failed, Timestamp(1)).unwrap();
    let e = resume(&conn, "x-1", Timestamp(2)).unwrap().unwrap();
    assert_eq!(
        (e.status, e.due_at, e.error, e.expires_at),
        (ExecutionStatus::Suspended, Some(Timestamp(2)), None, None)
    );
    let e = cancel(&conn, "x-1", Timestamp(3), Timestamp(10))
        .unwrap()
        .unwrap();
    assert_eq!(
        (e.status, e.due_at, e.expires_at),
        (ExecutionStatus::Cancelled, None, Some(Timestamp(10)))
    );
    // Resuming a cancelled execution changes nothing.
    assert_eq!(
        resume(&conn, "x-1", Timestamp(4)).unwrap().unwrap().status,
        ExecutionStatus::Cancelled
    );
    conn.execute_batch(
        "INSERT INTO operations VALUES ('x-1', '1', 1, '{}'); \
         INSERT INTO events (execution_id, name, payload, sent_at) VALUES ('x-1', 'e', '1', 0)",
    )
    .unwrap();
    assert_eq!(purge(&conn, Timestamp(9)).unwrap(), 0);
    assert_eq!(purge(&conn, Timestamp(10)).unwrap(), 1);
    for table in ["executions", "operations", "events"] {
        let n: i64 = conn
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0, "{table}");
    }
}
