//! Durable queues: every message `durafn dev` acknowledged (`200` to
//! `SendMessageBatch`) survives a kill -9 of the emulator. Messages are sent
//! with an unmodified `aws-sdk-sqs` client while the event-source poller
//! delivers them in batches (many are still queued), the emulator
//! and its handler processes are SIGKILLed mid-stream, a new `durafn dev`
//! starts on the same state, and every acknowledged message ends up
//! delivered (its execution `sqs-<messageId>` exists) and the queue empty.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::{QueueAttributeName, SendMessageBatchRequestEntry};
use durafn_tests::binaries::example_exe;
use durafn_tests::procs::{self, Dev, DevSpec};
use serde_json::json;

const TEMPLATE: &str = r#"
Transform: AWS::Serverless-2016-10-31
Resources:
  MediaQueue:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: media
      VisibilityTimeout: 5
  MediaSyncFunction:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: media-sync
      CodeUri: examples/media-sync
      Handler: media-sync
      Timeout: 5
      Events:
        Media:
          Type: SQS
          Properties:
            Queue: !GetAtt MediaQueue.Arn
            BatchSize: 10
            FunctionResponseTypes:
              - ReportBatchItemFailures
"#;

fn sqs(port: u16) -> aws_sdk_sqs::Client {
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
        .region(aws_sdk_sqs::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "local", "local", None, None, "test",
        ))
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .timeout_config(
            aws_sdk_sqs::config::timeout::TimeoutConfig::builder()
                .operation_timeout(Duration::from_secs(5))
                .build(),
        )
        .retry_config(aws_sdk_sqs::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_sqs::Client::from_conf(config)
}

/// `(visible, in flight)`.
async fn counts(sqs: &aws_sdk_sqs::Client, url: &str) -> (u64, u64) {
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap();
    let n = |a: QueueAttributeName| attrs[&a].parse::<u64>().unwrap();
    (
        n(QueueAttributeName::ApproximateNumberOfMessages),
        n(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_messages_survive_kill_9_of_the_emulator() {
    let root = tempfile::tempdir().unwrap();
    let template = root.path().join("template.yaml");
    std::fs::write(&template, TEMPLATE).unwrap();
    let mut spec = DevSpec {
        durafn: env!("CARGO_BIN_EXE_durafn-under-test").into(),
        state: root.path().join(".durafn"),
        template,
        store: None,
        exes: vec![(
            "media-sync".into(),
            example_exe("media-sync-example", "media-sync"),
        )],
        env: vec![],
        port: 0,
    };
    let mut dev = Dev::start(&spec).await;
    // The restart after the kill comes back on the same port (the client keeps it).
    spec.port = dev.port;
    let client = sqs(spec.port);
    let url = client
        .get_queue_url()
        .queue_name("media")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();

    // Send batches until 300 messages are acknowledged; SIGKILL the emulator
    // (and its handler processes) after the first 150.
    let mut acked: BTreeSet<String> = BTreeSet::new();
    let mut killed_at = None;
    let mut batch_no = 0;
    while acked.len() < 300 {
        if killed_at.is_none() && acked.len() >= 150 {
            let queued = counts(&client, &url).await;
            let handlers = procs::children(dev.pid());
            dev.kill9();
            for pid in handlers {
                procs::signal(pid, "KILL");
            }
            println!(
                "killed durafn dev with {} messages acknowledged, (visible, in flight) = {queued:?}",
                acked.len()
            );
            assert!(
                queued.0 + queued.1 > 0,
                "every message was already delivered before the kill: the test proves nothing"
            );
            killed_at = Some(acked.len());
            dev = Dev::start_retrying(&spec).await;
        }
        batch_no += 1;
        let entries: Vec<SendMessageBatchRequestEntry> = (0..10)
            .map(|i| {
                SendMessageBatchRequestEntry::builder()
                    .id(format!("e{i}"))
                    .message_body(json!({ "asset": format!("a{batch_no}-{i}.mov") }).to_string())
                    .build()
                    .unwrap()
            })
            .collect();
        let sent = client
            .send_message_batch()
            .queue_url(&url)
            .set_entries(Some(entries))
            .send()
            .await
            .unwrap();
        assert!(sent.failed.is_empty(), "{:?}", sent.failed);
        for s in sent.successful {
            acked.insert(s.message_id);
        }
    }
    assert!(killed_at.is_some());

    // Every acknowledged message is delivered: its execution exists.
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut missing: Vec<String> = acked.iter().cloned().collect();
    while !missing.is_empty() {
        let mut still = Vec::new();
        for id in &missing {
            match dev
                .call("GET", &format!("/v1/executions/sqs-{id}"), None)
                .await
            {
                Some((200, _)) => {}
                _ => still.push(id.clone()),
            }
        }
        missing = still;
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} acknowledged messages were never delivered, e.g. {:?}",
            missing.len(),
            acked.len(),
            &missing[..missing.len().min(5)]
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let c = counts(&client, &url).await;
        if c == (0, 0) {
            break;
        }
        assert!(Instant::now() < deadline, "the queue never drained: {c:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "all {} acknowledged messages delivered after the kill -9 (killed at {:?})",
        acked.len(),
        killed_at
    );
}
