//! End to end through `durafn dev`'s local queues: an unmodified
//! `aws-sdk-sqs` client sends to the emulator, the event-source poller
//! invokes the real media-sync binary with SQS batches, the SDK starts one
//! execution per record and reports the records it could not start, which
//! are redelivered after the visibility timeout and finally dead-lettered.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::{
    MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName,
    SendMessageBatchRequestEntry,
};
use durafn_emulator::client::ApiClient;
use serde_json::{Value, json};

fn media_sync_exe() -> PathBuf {
    durafn_tests::binaries::example_exe("media-sync-example", "media-sync")
}

/// Visibility timeout 1 s and two receives before the dead-letter queue, so
/// a poison message is dead-lettered within a few seconds.
const TEMPLATE: &str = r#"
Transform: AWS::Serverless-2016-10-31
Resources:
  MediaQueue:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: media
      VisibilityTimeout: 1
      RedrivePolicy:
        deadLetterTargetArn: !GetAtt MediaDlq.Arn
        maxReceiveCount: 2
  MediaDlq:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: media-dlq
  MediaSyncFunction:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: media-sync
      CodeUri: examples/media-sync
      Handler: media-sync
      Timeout: 10
      Events:
        Media:
          Type: SQS
          Properties:
            Queue: !GetAtt MediaQueue.Arn
            BatchSize: 10
            FunctionResponseTypes:
              - ReportBatchItemFailures
"#;

/// A `durafn dev` process and an SQS client pointed at it.
struct Dev {
    child: Child,
    api: ApiClient,
    sqs: aws_sdk_sqs::Client,
    port: u16,
}

impl Dev {
    async fn start(state: &Path) -> Dev {
        let template = state.join("template.yaml");
        std::fs::write(&template, TEMPLATE).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_durafn-under-test"));
        cmd.args(["dev", "--port", "0"])
            .arg("--state")
            .arg(state.join(".durafn"))
            .arg("--template")
            .arg(&template)
            .arg("--exe")
            .arg(format!("media-sync={}", media_sync_exe().display()))
            .env("RUST_LOG", "warn");
        let (child, port) =
            durafn_tests::procs::spawn_listening(&mut cmd, "dev", durafn_tests::procs::Lines::Echo)
                .await
                .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let config = aws_sdk_sqs::Config::builder()
            .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
            .region(aws_sdk_sqs::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_sqs::config::Credentials::new(
                "local", "local", None, None, "test",
            ))
            .endpoint_url(&url)
            .build();
        let dev = Dev {
            child,
            api: ApiClient::new(&url, None),
            sqs: aws_sdk_sqs::Client::from_conf(config),
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok((200, _)) = dev.api.call("GET", "/healthz", None).await {
                return dev;
            }
            assert!(Instant::now() < deadline, "durafn dev did not come up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.api.call(method, path, body.as_ref()).await.unwrap()
    }

    async fn queue_url(&self, name: &str) -> String {
        self.sqs
            .get_queue_url()
            .queue_name(name)
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap()
    }

    /// Waits until execution `id` exists and reaches `want`.
    async fn wait_status(&self, id: &str, want: &str, limit: Duration) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let (status, v) = self
                .call("GET", &format!("/v1/executions/{id}"), None)
                .await;
            if status == 200 && v["status"] == want {
                return v;
            }
            assert!(
                status == 200 || status == 404,
                "describing {id}: {status} {v}"
            );
            assert!(
                Instant::now() < deadline,
                "{id} did not reach {want}: {status} {v}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn history(&self, id: &str) -> Vec<Value> {
        let (status, v) = self
            .call("GET", &format!("/v1/executions/{id}/history"), None)
            .await;
        assert_eq!(status, 200, "{v}");
        v["operations"].as_array().unwrap().clone()
    }

    /// `(visible, in flight)` messages of a queue.
    async fn counts(&self, url: &str) -> (u64, u64) {
        let attrs = self
            .sqs
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

    /// Waits until a queue holds no message at all.
    async fn wait_drained(&self, url: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let counts = self.counts(url).await;
            if counts == (0, 0) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{url} still holds (visible, in flight) = {counts:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn step_summary(ops: &[Value]) -> Vec<(String, String, u64)> {
    ops.iter()
        .map(|o| {
            (
                o["name"].as_str().unwrap_or("").to_string(),
                o["status"].as_str().unwrap_or("").to_string(),
                o["attempt"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_sent_with_aws_sdk_sqs_starts_the_media_sync_workflow() {
    let dir = tempfile::tempdir().unwrap();
    let dev = Dev::start(dir.path()).await;

    let url = dev.queue_url("media").await;
    assert_eq!(
        url,
        format!("http://127.0.0.1:{}/000000000000/media", dev.port)
    );
    let listed = dev
        .sqs
        .list_queues()
        .send()
        .await
        .unwrap()
        .queue_urls
        .unwrap();
    assert_eq!(
        listed.len(),
        2,
        "the queue and its dead-letter queue: {listed:?}"
    );

    let body = r#"{"asset":"talk.mov","fail_first":2}"#;
    let sent = dev
        .sqs
        .send_message()
        .queue_url(&url)
        .message_body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        sent.md5_of_message_body.as_deref(),
        Some("86ac8095872fc99de0536c6402d0e654"),
        "MD5 of the body, as SQS computes it"
    );
    let message_id = sent.message_id.unwrap();

    // The message id names the execution; the download fails twice and is retried.
    let id = format!("sqs-{message_id}");
    let done = dev
        .wait_status(&id, "SUCCEEDED", Duration::from_secs(60))
        .await;
    assert_eq!(done["function"], "media-sync");
    assert_eq!(done["input"], json!({"asset": "talk.mov", "fail_first": 2}));
    assert_eq!(done["output"]["download_attempts"], 3);
    assert_eq!(done["output"]["rendition"], "talk.720p.mp4");
    assert_eq!(
        step_summary(&dev.history(&id).await),
        vec![
            ("fetch-metadata".to_string(), "SUCCEEDED".to_string(), 1),
            ("download".to_string(), "SUCCEEDED".to_string(), 3),
            ("transcode".to_string(), "SUCCEEDED".to_string(), 1),
            ("upload".to_string(), "SUCCEEDED".to_string(), 1),
        ]
    );
    // Started, so deleted from the queue: nothing is redelivered.
    dev.wait_drained(&url, Duration::from_secs(10)).await;

    // A batch send starts one execution per entry.
    let entries = ["a.mp4", "b.wav"].iter().enumerate().map(|(i, asset)| {
        SendMessageBatchRequestEntry::builder()
            .id(format!("e{i}"))
            .message_body(json!({ "asset": asset }).to_string())
            .build()
            .unwrap()
    });
    let batch = dev
        .sqs
        .send_message_batch()
        .queue_url(&url)
        .set_entries(Some(entries.collect()))
        .send()
        .await
        .unwrap();
    assert!(batch.failed.is_empty(), "{:?}", batch.failed);
    assert_eq!(batch.successful.len(), 2);
    for s in &batch.successful {
        let id = format!("sqs-{}", s.message_id);
        dev.wait_status(&id, "SUCCEEDED", Duration::from_secs(30))
            .await;
    }
    dev.wait_drained(&url, Duration::from_secs(10)).await;

    // AWS-shaped errors reach the SDK as its typed errors.
    let err = dev
        .sqs
        .get_queue_url()
        .queue_name("no-such-queue")
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_queue_does_not_exist()),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_whose_start_fails_is_redelivered_then_dead_lettered() {
    let dir = tempfile::tempdir().unwrap();
    let dev = Dev::start(dir.path()).await;
    let url = dev.queue_url("media").await;
    let dlq = dev.queue_url("media-dlq").await;

    // An execution named "clash" already exists with another input: a
    // message naming the same execution cannot start it (a conflict), so
    // the SDK lists it in batchItemFailures, every time it is delivered.
    let (status, v) = dev
        .call(
            "POST",
            "/v1/functions/media-sync/executions",
            Some(json!({"name": "clash", "input": {"asset": "original.mov"}})),
        )
        .await;
    assert!(status == 201 || status == 202, "{status} {v}");
    dev.wait_status("clash", "SUCCEEDED", Duration::from_secs(30))
        .await;

    let name = MessageAttributeValue::builder()
        .data_type("String")
        .string_value("clash")
        .build()
        .unwrap();
    let batch = dev
        .sqs
        .send_message_batch()
        .queue_url(&url)
        .entries(
            SendMessageBatchRequestEntry::builder()
                .id("poison")
                .message_body(r#"{"asset":"other.mov"}"#)
                .message_attributes("durafn-name", name)
                .build()
                .unwrap(),
        )
        .entries(
            SendMessageBatchRequestEntry::builder()
                .id("fine")
                .message_body(r#"{"asset":"fine.mov"}"#)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert!(batch.failed.is_empty(), "{:?}", batch.failed);
    let id_of = |entry: &str| {
        batch
            .successful
            .iter()
            .find(|s| s.id == entry)
            .map(|s| s.message_id.clone())
            .unwrap()
    };
    let (poison, fine) = (id_of("poison"), id_of("fine"));
    assert!(
        batch
            .successful
            .iter()
            .find(|s| s.id == "poison")
            .and_then(|s| s.md5_of_message_attributes.as_ref())
            .is_some(),
        "MD5OfMessageAttributes is answered for a message with attributes"
    );

    // The good record of the batch starts and is not redelivered.
    dev.wait_status(&format!("sqs-{fine}"), "SUCCEEDED", Duration::from_secs(30))
        .await;

    // The poison message lands in the dead-letter queue after two receives.
    let deadline = Instant::now() + Duration::from_secs(30);
    let dead = loop {
        let got = dev
            .sqs
            .receive_message()
            .queue_url(&dlq)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .unwrap();
        if let Some(m) = got.messages.unwrap_or_default().into_iter().next() {
            break m;
        }
        assert!(
            Instant::now() < deadline,
            "the poison message was not dead-lettered; main queue (visible, in flight) = {:?}",
            dev.counts(&url).await
        );
    };
    assert_eq!(dead.message_id.as_deref(), Some(poison.as_str()));
    assert_eq!(dead.body.as_deref(), Some(r#"{"asset":"other.mov"}"#));
    let attrs = dead.attributes.unwrap();
    let receives: u32 = attrs[&MessageSystemAttributeName::ApproximateReceiveCount]
        .parse()
        .unwrap();
    // Delivered twice to the function (maxReceiveCount), then once here.
    assert_eq!(receives, 3, "{attrs:?}");
    assert_eq!(
        attrs[&MessageSystemAttributeName::DeadLetterQueueSourceArn],
        "arn:aws:sqs:us-east-1:000000000000:media"
    );
    assert_eq!(
        dead.message_attributes.unwrap()["durafn-name"]
            .string_value
            .as_deref(),
        Some("clash")
    );
    dev.sqs
        .delete_message()
        .queue_url(&dlq)
        .receipt_handle(dead.receipt_handle.unwrap())
        .send()
        .await
        .unwrap();

    // The main queue is empty; the existing execution kept its input, and
    // the poison message started nothing under its own id.
    dev.wait_drained(&url, Duration::from_secs(10)).await;
    dev.wait_drained(&dlq, Duration::from_secs(10)).await;
    let (_, clash) = dev.call("GET", "/v1/executions/clash", None).await;
    assert_eq!(clash["input"], json!({"asset": "original.mov"}));
    let (status, _) = dev
        .call("GET", &format!("/v1/executions/sqs-{poison}"), None)
        .await;
    assert_eq!(status, 404);
}
