//! The scheduler against the SQLite store, on a manual clock: DST changes,
//! restarts with missed fires, racing schedulers, overlap, pause / resume /
//! trigger. Every test checks exactly which executions exist.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::sync::Arc;
use std::time::Duration;

use durafn_runtime::clock::{Clock, ManualClock};
use durafn_runtime::model::{ExecutionStatus, NewExecution, Timestamp};
use durafn_runtime::store::{CatchUp, ListFilter, Outcome, Overlap, SqliteStore, Store};
use durafn_runtime::trigger::schedule::{ScheduleDef, Scheduler, SchedulerConfig, fire_id};
use serde_json::json;

fn t(s: &str) -> Timestamp {
    Timestamp(s.parse::<jiff::Timestamp>().unwrap().as_millisecond())
}

struct Env {
    dir: tempfile::TempDir,
    clock: ManualClock,
}

impl Env {
    fn new(start: &str) -> Env {
        Env {
            dir: tempfile::tempdir().unwrap(),
            clock: ManualClock::new(t(start)),
        }
    }

    /// A store handle on the shared file (each "process" opens its own).
    fn store(&self) -> Arc<dyn Store> {
        Arc::new(SqliteStore::open(self.dir.path().join("durafn.db")).unwrap())
    }

    fn scheduler(&self) -> Scheduler {
        Scheduler::new(
            self.store(),
            Arc::new(self.clock.clone()),
            SchedulerConfig::default(),
        )
    }

    fn at(&self, s: &str) {
        self.clock.advance_to(t(s));
    }
}

/// Every execution id, sorted.
async fn executions(store: &Arc<dyn Store>) -> Vec<String> {
    let page = store
        .list_executions(&ListFilter {
            limit: 1000,
            ..ListFilter::default()
        })
        .await
        .unwrap();
    let mut ids: Vec<String> = page.executions.iter().map(|e| e.id.to_string()).collect();
    ids.sort();
    ids
}

/// Runs every unfinished execution to success (what a dispatcher would do).
async fn finish_all(store: &Arc<dyn Store>, now: Timestamp) {
    let page = store
        .list_executions(&ListFilter {
            limit: 1000,
            ..ListFilter::default()
        })
        .await
        .unwrap();
    for e in page.executions.iter().filter(|e| !e.status.is_final()) {
        let c = store
            .claim(&e.id, now, now.plus(Duration::from_secs(30)))
            .await
            .unwrap()
            .expect("claimable");
        let out = Outcome {
            status: ExecutionStatus::Succeeded,
            output: Some(json!("ok")),
            error: None,
            expires_at: None,
        };
        store.finish(&e.id, c.epoch, &out, now).await.unwrap();
    }
}

fn hourly(name: &str) -> ScheduleDef {
    ScheduleDef::new(name, "job", "cron(0 * * * ? *)", None)
}

#[tokio::test]
async fn a_schedule_across_dst_changes_fires_at_local_times() {
    // 02:30 every night in Paris, from 28 March to 1 April 2025 (spring
    // forward on the 30th: 02:30 does not exist that night).
    let env = Env::new("2025-03-28T00:00:00Z");
    let s = env.scheduler();
    let mut def = ScheduleDef::new(
        "paris",
        "job",
        "cron(30 2 * * ? *)",
        Some("Europe/Paris".into()),
    );
    def.overlap = Overlap::Allow;
    s.register(&def).await.unwrap();
    // Tick every five minutes for four days.
    let end = t("2025-04-01T12:00:00Z");
    while env.clock.now() < end {
        s.tick().await.unwrap();
        env.clock.advance(Duration::from_secs(300));
    }
    let store = env.store();
    assert_eq!(
        executions(&store).await,
        [
            "paris:20250328T013000Z", // 02:30 CET
            "paris:20250329T013000Z",
            "paris:20250331T003000Z", // 02:30 CEST
            "paris:20250401T003000Z",
        ]
    );
    let e = store
        .get_execution(&fire_id("paris", t("2025-03-31T00:30:00Z")).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        e.input,
        json!({"schedule": "paris", "scheduled_time": "2025-03-31T00:30:00Z"})
    );

    // Fall back (26 October): 02:30 happens twice, fires once.
    let env = Env::new("2025-10-25T12:00:00Z");
    let s = env.scheduler();
    s.register(&def).await.unwrap();
    let end = t("2025-10-27T12:00:00Z");
    while env.clock.now() < end {
        s.tick().await.unwrap();
        env.clock.advance(Duration::from_secs(300));
    }
    assert_eq!(
        executions(&env.store()).await,
        ["paris:20251026T003000Z", "paris:20251027T013000Z"]
    );
}

/// Registers an hourly schedule at 00:10, fires 01:00, then the process is
/// down until 04:30 (02:00, 03:00 and 04:00 missed); a new scheduler on the
/// same store registers the same definition again and ticks.
async fn restart_with(catch_up: CatchUp) -> (Vec<String>, Env) {
    let env = Env::new("2025-01-01T00:10:00Z");
    let mut def = hourly("hourly");
    def.catch_up = catch_up;
    {
        let first = env.scheduler();
        first.register(&def).await.unwrap();
        env.at("2025-01-01T01:00:02Z");
        let r = first.tick().await.unwrap();
        assert_eq!(r.fired.len(), 1);
        finish_all(&env.store(), env.clock.now()).await;
    }
    env.at("2025-01-01T04:30:00Z");
    let second = env.scheduler();
    let kept = second.register(&def).await.unwrap();
    assert_eq!(
        kept.next_fire_at,
        Some(t("2025-01-01T02:00:00Z")),
        "a restart keeps the schedule's state"
    );
    second.tick().await.unwrap();
    // Ticking again changes nothing.
    assert!(second.tick().await.unwrap().fired.is_empty());
    let after = second.get("hourly").await.unwrap().unwrap();
    assert_eq!(after.next_fire_at, Some(t("2025-01-01T05:00:00Z")));
    (executions(&env.store()).await, env)
}

#[tokio::test]
async fn a_restart_spanning_three_missed_fires_follows_the_catch_up_policy() {
    let (latest, _) = restart_with(CatchUp::Latest).await;
    assert_eq!(
        latest,
        ["hourly:20250101T010000Z", "hourly:20250101T040000Z"]
    );
    let (all, _) = restart_with(CatchUp::All).await;
    assert_eq!(
        all,
        [
            "hourly:20250101T010000Z",
            "hourly:20250101T020000Z",
            "hourly:20250101T030000Z",
            "hourly:20250101T040000Z",
        ]
    );
    let (none, env) = restart_with(CatchUp::None).await;
    assert_eq!(none, ["hourly:20250101T010000Z"]);
    // ... and the next fire runs as usual.
    env.at("2025-01-01T05:00:01Z");
    env.scheduler().tick().await.unwrap();
    assert_eq!(
        executions(&env.store()).await,
        ["hourly:20250101T010000Z", "hourly:20250101T050000Z"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_schedulers_start_each_fire_once() {
    let env = Env::new("2025-01-01T00:00:00Z");
    let schedulers: Vec<Scheduler> = (0..3).map(|_| env.scheduler()).collect();
    let mut def = ScheduleDef::new("race", "job", "rate(1 minute)", None);
    def.overlap = Overlap::Allow;
    // Every scheduler registers it (as every replica does at start).
    for s in &schedulers {
        s.register(&def).await.unwrap();
    }
    let mut fired = Vec::new();
    for _ in 0..20 {
        env.clock.advance(Duration::from_secs(60));
        let (a, b, c) = tokio::join!(
            schedulers[0].tick(),
            schedulers[1].tick(),
            schedulers[2].tick()
        );
        for r in [a, b, c] {
            fired.extend(r.unwrap().fired.into_iter().filter(|f| f.new));
        }
    }
    let ids = executions(&env.store()).await;
    assert_eq!(ids.len(), 20, "{ids:?}");
    assert_eq!(ids[0], "race:20250101T000100Z");
    assert_eq!(ids[19], "race:20250101T002000Z");
    assert_eq!(fired.len(), 20, "each fire reported new exactly once");
}

#[tokio::test]
async fn a_crash_between_creating_and_advancing_starts_nothing_twice() {
    let env = Env::new("2025-01-01T00:10:00Z");
    let s = env.scheduler();
    s.register(&hourly("crashy")).await.unwrap();
    env.at("2025-01-01T01:00:05Z");
    // The crashed attempt created the execution but never advanced the schedule.
    let id = fire_id("crashy", t("2025-01-01T01:00:00Z")).unwrap();
    env.store()
        .create_execution(&NewExecution {
            id: id.clone(),
            function: "job".into(),
            version: "$LATEST".into(),
            input: json!({"schedule": "crashy", "scheduled_time": "2025-01-01T01:00:00Z"}),
            now: env.clock.now(),
        })
        .await
        .unwrap();
    let r = s.tick().await.unwrap();
    assert_eq!(r.fired.len(), 1);
    assert!(!r.fired[0].new);
    let after = s.get("crashy").await.unwrap().unwrap();
    assert_eq!(after.last_execution, Some(id));
    assert_eq!(after.next_fire_at, Some(t("2025-01-01T02:00:00Z")));
    assert_eq!(executions(&env.store()).await, ["crashy:20250101T010000Z"]);
}

#[tokio::test]
async fn overlap_policies_skip_buffer_or_allow() {
    let env = Env::new("2025-01-01T00:10:00Z");
    let s = env.scheduler();
    for (name, overlap) in [
        ("skip", Overlap::Skip),
        ("buffer", Overlap::BufferOne),
        ("allow", Overlap::Allow),
    ] {
        let mut def = hourly(name);
        def.overlap = overlap;
        s.register(&def).await.unwrap();
    }
    // 01:00, 02:00 and 03:00 fire while the 01:00 executions never end.
    for hour in ["01", "02", "03"] {
        env.at(&format!("2025-01-01T{hour}:00:01Z"));
        s.tick().await.unwrap();
    }
    let ids = executions(&env.store()).await;
    assert_eq!(
        ids,
        [
            "allow:20250101T010000Z",
            "allow:20250101T020000Z",
            "allow:20250101T030000Z",
            "buffer:20250101T010000Z",
            "skip:20250101T010000Z",
        ]
    );
    let buffer = s.get("buffer").await.unwrap().unwrap();
    assert_eq!(buffer.pending_fire_at, Some(t("2025-01-01T03:00:00Z")));
    assert_eq!(s.get("skip").await.unwrap().unwrap().skipped, 2);
    // The previous runs end: the buffered fire starts at the next re-check.
    finish_all(&env.store(), env.clock.now()).await;
    env.clock.advance(Duration::from_secs(6));
    s.tick().await.unwrap();
    let ids = executions(&env.store()).await;
    assert!(
        ids.contains(&"buffer:20250101T030000Z".to_string()),
        "{ids:?}"
    );
    assert_eq!(ids.len(), 6, "{ids:?}");
    assert_eq!(
        s.get("buffer").await.unwrap().unwrap().pending_fire_at,
        None
    );
}

#[tokio::test]
async fn pause_resume_and_trigger() {
    let env = Env::new("2025-01-01T00:10:00Z");
    let s = env.scheduler();
    s.register(&hourly("p")).await.unwrap();
    let paused = s.pause("p").await.unwrap().unwrap();
    assert!(paused.paused && paused.due_at.is_none());
    env.at("2025-01-01T03:30:00Z");
    assert!(s.tick().await.unwrap().fired.is_empty());
    // A restart keeps it paused.
    let again = env.scheduler().register(&hourly("p")).await.unwrap();
    assert!(again.paused);
    // Resuming counts from now: the fires missed while paused are not run.
    let resumed = s.resume("p").await.unwrap().unwrap();
    assert_eq!(resumed.next_fire_at, Some(t("2025-01-01T04:00:00Z")));
    assert!(s.tick().await.unwrap().fired.is_empty());
    // Trigger now: keyed by the request time; twice in a second is once.
    env.at("2025-01-01T03:31:07.250Z");
    let fired = s.trigger("p").await.unwrap().unwrap();
    assert_eq!(fired.execution_id.as_str(), "p:20250101T033107Z");
    assert!(fired.new);
    let twice = s.trigger("p").await.unwrap().unwrap();
    assert!(!twice.new);
    assert!(s.trigger("nope").await.unwrap().is_none());
    assert!(s.pause("nope").await.unwrap().is_none());
    let p = s.get("p").await.unwrap().unwrap();
    assert_eq!(p.last_execution, Some(fired.execution_id));
    assert_eq!(executions(&env.store()).await, ["p:20250101T033107Z"]);
    // A disabled schedule never fires; a changed expression counts from now.
    let mut def = hourly("p");
    def.enabled = false;
    let disabled = s.register(&def).await.unwrap();
    assert_eq!(disabled.due_at, None);
    def.enabled = true;
    def.expression = "rate(10 minutes)".into();
    let changed = s.register(&def).await.unwrap();
    assert_eq!(changed.next_fire_at, Some(t("2025-01-01T03:41:07.250Z")));
}

#[tokio::test]
async fn bad_definitions_are_refused() {
    let env = Env::new("2025-01-01T00:00:00Z");
    let s = env.scheduler();
    let bad = ScheduleDef::new("x", "job", "cron(0 3 * * * *)", None);
    let err = s.register(&bad).await.unwrap_err().to_string();
    assert!(err.contains("cron(0 3 * * * *)"), "{err}");
    let bad = ScheduleDef::new("x", "job", "rate(1 hour)", Some("Nowhere/City".into()));
    assert!(s.register(&bad).await.is_err());
    let bad = ScheduleDef::new("bad name", "job", "rate(1 hour)", None);
    assert!(s.register(&bad).await.is_err());
    assert!(s.list().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_one_shot_fires_once_and_leaves_the_due_index() {
    let env = Env::new("2025-01-01T00:00:00Z");
    let s = env.scheduler();
    let def = ScheduleDef::new(
        "once",
        "job",
        "at(2025-01-01T10:00:00)",
        Some("America/New_York".into()),
    );
    s.register(&def).await.unwrap();
    env.at("2025-01-01T15:00:00Z");
    assert_eq!(s.tick().await.unwrap().fired.len(), 1);
    env.at("2025-02-01T00:00:00Z");
    assert!(s.tick().await.unwrap().fired.is_empty());
    let done = s.get("once").await.unwrap().unwrap();
    assert_eq!((done.next_fire_at, done.due_at), (None, None));
    assert_eq!(executions(&env.store()).await, ["once:20250101T150000Z"]);
}
