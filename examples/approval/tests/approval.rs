//! The approval workflow under the test runtime.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use approval_example::{ANSWER_WITHIN, ApprovalRequest, Outcome, workflow};
use durafn::prelude::*;
use durafn::testing::TestRuntime;
use serde_json::json;

fn request() -> ApprovalRequest {
    ApprovalRequest {
        request: "deploy".into(),
        approver: "ops".into(),
        escalate_to: "cto".into(),
    }
}

#[tokio::test]
async fn an_approval_resumes_the_workflow() {
    let rt = TestRuntime::new();
    let exec = rt.start(handler(workflow), request()).await.unwrap();
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Suspended);
    assert!(
        exec.callback_id("approval")
            .await
            .unwrap()
            .starts_with("cb2.")
    );
    exec.callback_succeed("approval", json!({"approved": true, "by": "ops"}))
        .await
        .unwrap();
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Succeeded);
    let out: Outcome = exec.result().await.unwrap();
    assert_eq!(
        out,
        Outcome {
            status: "approved".into(),
            decided_by: Some("ops".into()),
            escalated: false
        }
    );
    assert!(exec.operation("execute").await.unwrap().is_some());
}

#[tokio::test]
async fn a_rejection_does_not_execute() {
    let rt = TestRuntime::new();
    let exec = rt.start(handler(workflow), request()).await.unwrap();
    exec.run_until_settled().await.unwrap();
    exec.callback_succeed(
        "approval",
        json!({"approved": false, "by": "ops", "note": "freeze"}),
    )
    .await
    .unwrap();
    exec.run_until_settled().await.unwrap();
    let out: Outcome = exec.result().await.unwrap();
    assert_eq!(out.status, "rejected");
    assert!(exec.operation("execute").await.unwrap().is_none());
}

#[tokio::test]
async fn no_answer_in_24_hours_escalates_and_the_escalation_can_approve() {
    let rt = TestRuntime::new();
    let exec = rt.start(handler(workflow), request()).await.unwrap();
    exec.run_until_settled().await.unwrap();
    rt.advance(ANSWER_WITHIN);
    assert_eq!(
        exec.run_until_settled().await.unwrap(),
        Status::Suspended,
        "waiting on the escalation"
    );
    let first = exec.operation("approval").await.unwrap().unwrap();
    assert_eq!(first.status.as_str(), "TIMED_OUT");
    exec.callback_succeed("escalated-approval", json!({"approved": true, "by": "cto"}))
        .await
        .unwrap();
    exec.run_until_settled().await.unwrap();
    let out: Outcome = exec.result().await.unwrap();
    assert_eq!(
        out,
        Outcome {
            status: "approved".into(),
            decided_by: Some("cto".into()),
            escalated: true
        }
    );
}

#[tokio::test]
async fn nobody_answering_for_48_hours_expires_the_request() {
    let rt = TestRuntime::new();
    let exec = rt.start(handler(workflow), request()).await.unwrap();
    exec.run_until_settled().await.unwrap();
    rt.advance(ANSWER_WITHIN);
    exec.run_until_settled().await.unwrap();
    rt.advance(ANSWER_WITHIN);
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Succeeded);
    let out: Outcome = exec.result().await.unwrap();
    assert_eq!(out.status, "expired");
    assert!(out.escalated);
}
