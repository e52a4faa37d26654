//! The backup-verify workflow under the test runtime, fired by its real
//! nightly schedule (`cron(0 3 * * ? *)` in Europe/Paris) on virtual time.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::sync::Arc;
use std::time::Duration;

use backup_verify_example::{Report, Run, Simulate, alerts, storage, workflow};
use durafn::prelude::*;
use durafn::testing::TestRuntime;
use durafn_runtime::clock::Clock;
use durafn_runtime::trigger::schedule::{ScheduleDef, Scheduler, SchedulerConfig};

fn run(snapshot: &str, simulate: Simulate) -> Run {
    Run {
        snapshot: Some(snapshot.into()),
        simulate,
        ..Run::default()
    }
}

fn names(ops: &[durafn_runtime::model::Operation]) -> Vec<(String, String)> {
    ops.iter()
        .map(|o| (o.name.clone(), o.status.as_str().to_string()))
        .collect()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[tokio::test]
async fn a_good_backup_is_verified_step_by_step() {
    let rt = TestRuntime::new();
    let exec = rt
        .start(handler(workflow), run("snap-good", Simulate::default()))
        .await
        .unwrap();
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Succeeded);
    let report: Report = exec.result().await.unwrap();
    assert_eq!(report.scratch, "scratch-snap-good");
    assert_eq!(
        names(&exec.operations().await.unwrap()),
        pairs(&[
            ("snapshot-exists", "SUCCEEDED"),
            ("restore-to-scratch", "SUCCEEDED"),
            ("checksum", "SUCCEEDED"),
            ("cleanup", "SUCCEEDED"),
        ])
    );
    assert_eq!(storage::deletes("scratch-snap-good"), 1);
    assert_eq!(alerts::sent("snap-good"), 0);
}

#[tokio::test]
async fn a_slow_restore_is_retried_with_backoff() {
    let rt = TestRuntime::new();
    let sim = Simulate {
        restore_failures: 2,
        ..Simulate::default()
    };
    let start = rt.now();
    let exec = rt
        .start(handler(workflow), run("snap-slow", sim))
        .await
        .unwrap();
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Succeeded);
    let restore = exec.operation("restore-to-scratch").await.unwrap().unwrap();
    assert_eq!(restore.attempt, 3);
    assert_eq!(storage::restores("snap-slow"), 3);
    // Full jitter: each backoff is uniform in [0, cap], caps 30 s then 60 s.
    let waited = rt.now().0 - start.0;
    assert!(
        waited > 0 && waited <= 90_000,
        "the backoffs passed in virtual time, within their caps: {waited} ms"
    );
    assert_eq!(alerts::sent("snap-slow"), 0);
}

#[tokio::test]
async fn a_corrupt_backup_alerts_once_and_still_cleans_up() {
    let rt = TestRuntime::new();
    let sim = Simulate {
        corrupt: true,
        ..Simulate::default()
    };
    let exec = rt
        .start(handler(workflow), run("snap-bad", sim))
        .await
        .unwrap();
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Failed);
    let error = exec.error().await.unwrap().unwrap();
    assert!(error.message.contains("checksum mismatch"), "{error:?}");
    assert_eq!(
        names(&exec.operations().await.unwrap()),
        pairs(&[
            ("snapshot-exists", "SUCCEEDED"),
            ("restore-to-scratch", "SUCCEEDED"),
            ("checksum", "FAILED"),
            ("cleanup", "SUCCEEDED"),
            ("send-alert", "SUCCEEDED"),
        ])
    );
    let checksum = exec.operation("checksum").await.unwrap().unwrap();
    assert_eq!(checksum.attempt, 1, "a mismatch is not retried");
    assert_eq!(alerts::sent("snap-bad"), 1);
    assert_eq!(storage::deletes("scratch-snap-bad"), 1);
}

#[tokio::test]
async fn a_missing_snapshot_alerts_without_restoring() {
    let rt = TestRuntime::new();
    let sim = Simulate {
        missing_snapshot: true,
        ..Simulate::default()
    };
    let exec = rt
        .start(handler(workflow), run("snap-none", sim))
        .await
        .unwrap();
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Failed);
    assert_eq!(
        names(&exec.operations().await.unwrap()),
        pairs(&[("snapshot-exists", "FAILED"), ("send-alert", "SUCCEEDED")])
    );
    assert_eq!(storage::restores("snap-none"), 0);
    assert_eq!(alerts::sent("snap-none"), 1);
}

#[tokio::test]
async fn the_nightly_schedule_starts_one_verification_per_night() {
    let rt = TestRuntime::new();
    // The test runtime starts at 2026-01-01T00:00:00Z, 01:00 in Paris.
    let clock: Arc<dyn Clock> = Arc::new(rt.clock().clone());
    let scheduler = Scheduler::new(rt.store(), clock, SchedulerConfig::default());
    let def = ScheduleDef::new(
        "backup-verify-nightly",
        // The test runtime runs every execution as function "test".
        "test",
        "cron(0 3 * * ? *)",
        Some("Europe/Paris".into()),
    );
    scheduler.register(&def).await.unwrap();
    let mut ran = Vec::new();
    for _ in 0..3 * 24 {
        rt.advance(Duration::from_secs(3600));
        for fire in scheduler.tick().await.unwrap().fired {
            // The fire created the execution; run it with the same input.
            let e = rt
                .store()
                .get_execution(&fire.execution_id)
                .await
                .unwrap()
                .unwrap();
            let run: Run = serde_json::from_value(e.input.clone()).unwrap();
            assert_eq!(run.schedule.as_deref(), Some("backup-verify-nightly"));
            let exec = rt
                .start_named(fire.execution_id.as_str(), handler(workflow), e.input)
                .await
                .unwrap();
            assert_eq!(exec.run_until_settled().await.unwrap(), Status::Succeeded);
            ran.push(fire.execution_id.to_string());
        }
    }
    assert_eq!(
        ran,
        [
            "backup-verify-nightly:20260101T020000Z",
            "backup-verify-nightly:20260102T020000Z",
            "backup-verify-nightly:20260103T020000Z",
        ]
    );
    assert_eq!(storage::restores("snap-2026-01-02"), 1);
}
