//! The media-sync workflow under the test runtime (virtual time, real SQLite journal).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use durafn::prelude::*;
use durafn::testing::TestRuntime;
use media_sync_example::{
    DOWNLOAD_ATTEMPTS, SyncRequest, SyncResult, library, network, storage, transcoder, workflow,
};

fn request(asset: &str, fail_first: u32) -> SyncRequest {
    SyncRequest {
        asset: asset.into(),
        fail_first,
    }
}

#[tokio::test]
async fn an_asset_syncs_in_one_invocation_when_the_network_behaves() {
    let rt = TestRuntime::new();
    let exec = rt
        .start(handler(workflow), request("calm.mov", 0))
        .await
        .unwrap();
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Succeeded);
    let out: SyncResult = exec.result().await.unwrap();
    assert_eq!(out.download_attempts, 1);
    assert_eq!(out.rendition, "calm.720p.mp4");
    assert_eq!(out.url, "https://media.example.com/calm.720p.mp4");
    assert_eq!(out.metadata.content_type, "video/quicktime");
    assert_eq!(exec.invocations(), 1);
    let ops = exec.operations().await.unwrap();
    let summary: Vec<(String, String, String, u32)> = ops
        .iter()
        .map(|o| {
            (
                o.kind.as_str().to_string(),
                o.name.clone(),
                o.status.as_str().to_string(),
                o.attempt,
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                "STEP".into(),
                "fetch-metadata".into(),
                "SUCCEEDED".into(),
                1
            ),
            ("STEP".into(), "download".into(), "SUCCEEDED".into(), 1),
            ("STEP".into(), "transcode".into(), "SUCCEEDED".into(), 1),
            ("STEP".into(), "upload".into(), "SUCCEEDED".into(), 1),
        ]
    );
}

#[tokio::test]
async fn a_flaky_download_is_retried_with_backoff_and_nothing_else_repeats() {
    let rt = TestRuntime::new();
    let start = rt.now();
    let exec = rt
        .start(handler(workflow), request("flaky.mp4", 3))
        .await
        .unwrap();
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Succeeded);
    let out: SyncResult = exec.result().await.unwrap();
    assert_eq!(out.download_attempts, 4);
    assert_eq!(network::attempts("flaky.mp4"), 4);
    // Each retry waited in a suspension: one invocation per attempt.
    assert_eq!(exec.invocations(), 4);
    assert!(rt.now().0 >= start.0, "virtual time moved forward");
    assert_eq!(library::lookups("flaky.mp4"), 1, "metadata fetched once");
    assert_eq!(transcoder::runs("flaky.mp4"), 1);
    assert_eq!(storage::uploads("flaky.720p.mp4"), 1);
    let download = exec.operation("download").await.unwrap().unwrap();
    assert_eq!(download.attempt, 4);
}

#[tokio::test]
async fn a_download_that_never_works_fails_the_sync_after_five_attempts() {
    let rt = TestRuntime::new();
    let exec = rt
        .start(handler(workflow), request("dead-link.wav", 99))
        .await
        .unwrap();
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Failed);
    assert_eq!(network::attempts("dead-link.wav"), DOWNLOAD_ATTEMPTS);
    let error = exec.error().await.unwrap().unwrap();
    assert!(error.message.contains("connection reset"), "{error:?}");
    assert_eq!(
        transcoder::runs("dead-link.wav"),
        0,
        "nothing after the failed step"
    );
}

#[tokio::test]
async fn a_request_without_an_asset_fails_at_once() {
    let rt = TestRuntime::new();
    let exec = rt.start(handler(workflow), request(" ", 0)).await.unwrap();
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Failed);
    let op = exec.operation("fetch-metadata").await.unwrap().unwrap();
    assert_eq!(op.attempt, 1, "a terminal error is not retried");
}
