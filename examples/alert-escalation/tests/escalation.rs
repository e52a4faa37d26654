//! The alert-escalation workflow under the test runtime.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::time::Duration;

use alert_escalation_example::{Alert, Resolution, workflow};
use durafn::prelude::*;
use durafn::testing::TestRuntime;
use serde_json::json;

fn alert() -> Alert {
    Alert {
        alert: "db down".into(),
        oncall: vec!["ana".into(), "bo".into(), "cy".into()],
        ack_within_secs: 300,
    }
}

#[tokio::test]
async fn the_first_responder_acknowledges() {
    let rt = TestRuntime::new();
    let exec = rt.start(handler(workflow), alert()).await.unwrap();
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Suspended);
    exec.send_event("ack", json!({"by": "ana"})).await.unwrap();
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Succeeded);
    let r: Resolution = exec.result().await.unwrap();
    assert_eq!(
        r,
        Resolution {
            acknowledged_by: Some("ana".into()),
            paged: vec!["ana".into()]
        }
    );
}

#[tokio::test]
async fn no_acknowledgement_escalates_to_the_next_person() {
    let rt = TestRuntime::new();
    let exec = rt.start(handler(workflow), alert()).await.unwrap();
    exec.run_until_settled().await.unwrap();
    rt.advance(Duration::from_secs(300));
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Suspended);
    assert!(
        exec.operation("page-1").await.unwrap().is_some(),
        "bo was paged"
    );
    exec.send_event("ack", json!({"by": "bo"})).await.unwrap();
    exec.run_until_settled().await.unwrap();
    let r: Resolution = exec.result().await.unwrap();
    assert_eq!(r.acknowledged_by.as_deref(), Some("bo"));
    assert_eq!(r.paged, vec!["ana".to_string(), "bo".to_string()]);
}

#[tokio::test]
async fn nobody_acknowledging_pages_everyone() {
    let rt = TestRuntime::new();
    let exec = rt.start(handler(workflow), alert()).await.unwrap();
    for _ in 0..3 {
        exec.run_until_settled().await.unwrap();
        rt.advance(Duration::from_secs(300));
    }
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Succeeded);
    let r: Resolution = exec.result().await.unwrap();
    assert_eq!(r.acknowledged_by, None);
    assert_eq!(r.paged.len(), 3);
    assert!(exec.operation("page-everyone").await.unwrap().is_some());
}

#[tokio::test]
async fn an_acknowledgement_sent_early_is_not_lost() {
    let rt = TestRuntime::new();
    let exec = rt.start(handler(workflow), alert()).await.unwrap();
    exec.send_event("ack", json!({"by": "ana"})).await.unwrap();
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Succeeded);
    let r: Resolution = exec.result().await.unwrap();
    assert_eq!(r.acknowledged_by.as_deref(), Some("ana"));
}

#[tokio::test]
async fn an_empty_oncall_list_is_a_clear_error() {
    let rt = TestRuntime::new();
    let mut a = alert();
    a.oncall.clear();
    let exec = rt.start(handler(workflow), a).await.unwrap();
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Failed);
    assert!(
        exec.error()
            .await
            .unwrap()
            .unwrap()
            .message
            .contains("oncall")
    );
}
