//! Fuzzing the SQS JSON protocol (proptest, bounded case counts): any
//! `X-Amz-Target` action, any body — raw bytes, any JSON, and objects of the
//! protocol's own parameters with values of any type — sent to the protocol's
//! handler itself (no socket). Every answer is a 200 with a JSON object, or a
//! 4xx in SQS's error shape (`__type` `com.amazonaws.sqs#…`, a `message`, the
//! `x-amzn-query-error` header) — never a panic or a 5xx — and a rejected
//! request changes no queue.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use http_body_util::BodyExt;
use proptest::prelude::*;
use serde_json::{Value, json};

use super::{SqsState, handle};

const URL: &str = "http://127.0.0.1:9000/000000000000/jobs";

const ACTIONS: &[&str] = &[
    "SendMessage",
    "SendMessageBatch",
    "ReceiveMessage",
    "DeleteMessage",
    "DeleteMessageBatch",
    "ChangeMessageVisibility",
    "ChangeMessageVisibilityBatch",
    "GetQueueUrl",
    "ListQueues",
    "GetQueueAttributes",
    "PurgeQueue",
    "CreateQueue",
    "DeleteQueue",
];

/// One queue, `jobs` (the protocol tests' own state).
fn state() -> SqsState {
    super::tests::state(None)
}

async fn send(
    s: &SqsState,
    target: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, Option<String>, Vec<u8>) {
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static("127.0.0.1:9000"));
    headers.insert(
        "content-type",
        HeaderValue::from_static("application/x-amz-json-1.0"),
    );
    if let Some(t) = target.and_then(|t| HeaderValue::from_str(t).ok()) {
        headers.insert("x-amz-target", t);
    }
    // A long poll is at most 20 s; anything longer hangs.
    let res = tokio::time::timeout(
        Duration::from_secs(25),
        handle(State(s.clone()), headers, Bytes::from(body)),
    )
    .await
    .expect("the SQS protocol answered within 25 s");
    let status = res.status();
    let query_error = res
        .headers()
        .get("x-amzn-query-error")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let bytes = res.into_body().collect().await.unwrap().to_bytes().to_vec();
    (status, query_error, bytes)
}

/// The queue's visible and in-flight message counts.
async fn depth(s: &SqsState) -> (String, String) {
    let body = json!({ "QueueUrl": URL, "AttributeNames": ["All"] }).to_string();
    let (status, _, answer) =
        send(s, Some("AmazonSQS.GetQueueAttributes"), body.into_bytes()).await;
    assert_eq!(status, StatusCode::OK);
    let v: Value = serde_json::from_slice(&answer).unwrap();
    let a = &v["Attributes"];
    (
        a["ApproximateNumberOfMessages"].to_string(),
        a["ApproximateNumberOfMessagesNotVisible"].to_string(),
    )
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-5i64..40).prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::from),
        Just(Value::from(URL)),
        Just(Value::from("jobs")),
        Just(Value::from("All")),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(".{0,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

const PARAMS: &[&str] = &[
    "QueueUrl",
    "QueueName",
    "QueueNamePrefix",
    "MessageBody",
    "DelaySeconds",
    "MessageAttributes",
    "MessageSystemAttributes",
    "MessageGroupId",
    "MessageDeduplicationId",
    "ReceiptHandle",
    "MaxNumberOfMessages",
    "VisibilityTimeout",
    "AttributeNames",
    "MessageAttributeNames",
    "MessageSystemAttributeNames",
    "Entries",
    "Id",
    "Attributes",
    "MaxResults",
    "NextToken",
];

/// A batch entry or message attribute: protocol keys with values of any type.
fn entry() -> impl Strategy<Value = Value> {
    prop::collection::btree_map(
        prop_oneof![
            prop::sample::select(PARAMS).prop_map(str::to_string),
            Just("DataType".to_string()),
            Just("StringValue".to_string()),
            Just("BinaryValue".to_string()),
        ],
        prop_oneof![json_value(), ".{0,20}".prop_map(Value::from)],
        0..5,
    )
    .prop_map(|m| Value::Object(m.into_iter().collect()))
}

/// Objects of the protocol's parameters, with values of any type. Never a
/// real positive `WaitTimeSeconds` (a long poll on an empty queue waits it out).
fn request_object() -> impl Strategy<Value = Value> {
    let value = prop_oneof![
        3 => json_value(),
        1 => prop::collection::vec(entry(), 0..12).prop_map(Value::from),
        1 => prop::collection::btree_map(".{0,8}", entry(), 0..3)
            .prop_map(|m| Value::Object(m.into_iter().collect())),
    ];
    (
        prop::collection::btree_map(
            prop::sample::select(PARAMS).prop_map(str::to_string),
            value,
            0..6,
        ),
        any::<bool>(),
        prop::option::of(prop_oneof![
            Just(json!(0)),
            Just(json!(-1)),
            Just(json!(21)),
            Just(json!("3")),
            Just(json!(1.5))
        ]),
    )
        .prop_map(|(m, with_url, wait)| {
            let mut m: serde_json::Map<String, Value> = m.into_iter().collect();
            if with_url {
                m.insert("QueueUrl".into(), Value::from(URL));
            }
            if let Some(w) = wait {
                m.insert("WaitTimeSeconds".into(), w);
            }
            Value::Object(m)
        })
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..200),
        1 => json_value().prop_map(|v| v.to_string().into_bytes()),
        3 => request_object().prop_map(|v| v.to_string().into_bytes()),
        1 => (request_object(), any::<prop::sample::Index>(), any::<u8>()).prop_map(|(v, i, b)| {
            let mut s = v.to_string().into_bytes();
            let at = i.index(s.len());
            if b % 2 == 0 {
                s.truncate(at);
            } else {
                s[at] = b;
            }
            s
        }),
    ]
}

fn target() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        6 => prop::sample::select(ACTIONS).prop_map(|a| Some(format!("AmazonSQS.{a}"))),
        1 => Just(None),
        1 => "[ -~]{0,30}".prop_map(Some),
        1 => "[A-Za-z]{0,20}".prop_map(|a| Some(format!("AmazonSQS.{a}"))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 600, ..ProptestConfig::default() })]

    #[test]
    fn any_request(target in target(), body in body(), seeded in any::<bool>()) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let s = state();
            if seeded {
                // One message waiting, so deletes and visibility changes have something to hit.
                let m = json!({ "QueueUrl": URL, "MessageBody": "seed" }).to_string();
                let (st, _, _) = send(&s, Some("AmazonSQS.SendMessage"), m.into_bytes()).await;
                prop_assert_eq!(st, StatusCode::OK);
            }
            let before = depth(&s).await;
            let what = format!("{target:?} {:?}", String::from_utf8_lossy(&body));
            let (status, query_error, answer) = send(&s, target.as_deref(), body).await;
            prop_assert!(!status.is_server_error(), "{}: {} {}", what, status, String::from_utf8_lossy(&answer));
            let v: Value = serde_json::from_slice(&answer)
                .map_err(|e| TestCaseError::fail(format!("{what}: {status}, body not JSON: {e}")))?;
            prop_assert!(v.is_object(), "{}: {}", what, v);
            if status == StatusCode::OK {
                return Ok(());
            }
            prop_assert!(status.is_client_error(), "{}: {}", what, status);
            prop_assert!(
                v["__type"].as_str().is_some_and(|t| t.starts_with("com.amazonaws.sqs#")),
                "{}: {}", what, v
            );
            prop_assert!(v["message"].is_string(), "{}: {}", what, v);
            prop_assert!(query_error.is_some(), "{}: no x-amzn-query-error", what);
            // Rejected: the queue is as it was.
            prop_assert_eq!(depth(&s).await, before, "{}", what);
            Ok(())
        })?;
    }
}
