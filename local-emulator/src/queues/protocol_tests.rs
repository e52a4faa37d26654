//! Unit tests of the SQS JSON protocol (its handler, no socket).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::queues::queue::QueueConfig;
use durafn_runtime::clock::SystemClock;

pub(super) fn state(_token: Option<&str>) -> SqsState {
    SqsState {
        queues: Arc::new(Queues::new(
            vec![QueueConfig {
                name: "jobs".into(),
                visibility_timeout: Duration::from_secs(30),
                redrive: None,
            }],
            0,
        )),
        clock: Arc::new(SystemClock),
    }
}

fn headers(action: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        "x-amz-target",
        HeaderValue::from_str(&format!("AmazonSQS.{action}")).unwrap(),
    );
    h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:9000"));
    h
}

async fn call(s: &SqsState, action: &str, body: Value) -> Result<Value, SqsError> {
    dispatch(s, &headers(action), body.to_string().as_bytes()).await
}

#[tokio::test]
async fn send_receive_delete_round_trip() {
    let s = state(None);
    let url = call(&s, "GetQueueUrl", json!({"QueueName": "jobs"}))
        .await
        .unwrap()["QueueUrl"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(url, "http://127.0.0.1:9000/000000000000/jobs");
    let sent = call(
        &s,
        "SendMessage",
        json!({"QueueUrl": url, "MessageBody": "abc",
               "MessageAttributes": {"k": {"DataType": "String", "StringValue": "v"}}}),
    )
    .await
    .unwrap();
    assert_eq!(sent["MD5OfMessageBody"], "900150983cd24fb0d6963f7d28e17f72");
    assert!(sent["MD5OfMessageAttributes"].is_string());
    let got = call(
        &s,
        "ReceiveMessage",
        json!({"QueueUrl": url, "MaxNumberOfMessages": 10,
               "MessageSystemAttributeNames": ["ApproximateReceiveCount"],
               "MessageAttributeNames": ["All"]}),
    )
    .await
    .unwrap();
    let m = &got["Messages"][0];
    assert_eq!(m["MessageId"], sent["MessageId"]);
    assert_eq!(m["Body"], "abc");
    assert_eq!(m["Attributes"], json!({"ApproximateReceiveCount": "1"}));
    assert_eq!(m["MessageAttributes"]["k"]["StringValue"], "v");
    assert_eq!(m["MD5OfMessageAttributes"], sent["MD5OfMessageAttributes"]);
    let handle = m["ReceiptHandle"].clone();
    call(
        &s,
        "DeleteMessage",
        json!({"QueueUrl": url, "ReceiptHandle": handle}),
    )
    .await
    .unwrap();
    let attrs = call(
        &s,
        "GetQueueAttributes",
        json!({"QueueUrl": url, "AttributeNames": ["All"]}),
    )
    .await
    .unwrap();
    assert_eq!(attrs["Attributes"]["ApproximateNumberOfMessages"], "0");
    assert_eq!(
        attrs["Attributes"]["QueueArn"],
        "arn:aws:sqs:us-east-1:000000000000:jobs"
    );
    let list = call(&s, "ListQueues", json!({})).await.unwrap();
    assert_eq!(list["QueueUrls"], json!([url]));
}

#[tokio::test]
async fn batches_report_each_entry() {
    let s = state(None);
    let url = "http://x/000000000000/jobs";
    let out = call(
        &s,
        "SendMessageBatch",
        json!({"QueueUrl": url, "Entries": [
            {"Id": "a", "MessageBody": "1"},
            {"Id": "b", "MessageBody": ""},
        ]}),
    )
    .await
    .unwrap();
    assert_eq!(out["Successful"][0]["Id"], "a");
    assert_eq!(out["Failed"][0]["Id"], "b");
    let dup = call(
        &s,
        "SendMessageBatch",
        json!({"QueueUrl": url, "Entries": [
            {"Id": "a", "MessageBody": "1"}, {"Id": "a", "MessageBody": "2"}]}),
    )
    .await
    .unwrap_err();
    assert_eq!(dup.code, "AWS.SimpleQueueService.BatchEntryIdsNotDistinct");
    let empty = call(
        &s,
        "SendMessageBatch",
        json!({"QueueUrl": url, "Entries": []}),
    )
    .await
    .unwrap_err();
    assert_eq!(empty.shape, "EmptyBatchRequest");
}

#[tokio::test]
async fn errors_have_the_sqs_shape() {
    let s = state(None);
    let e = call(
        &s,
        "SendMessage",
        json!({"QueueUrl": "http://x/000000000000/nope", "MessageBody": "1"}),
    )
    .await
    .unwrap_err();
    let resp = e.into_response();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        resp.headers()["x-amzn-query-error"],
        "AWS.SimpleQueueService.NonExistentQueue;Sender"
    );
    let body = axum::body::to_bytes(resp.into_body(), 10_000)
        .await
        .unwrap();
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["__type"], "com.amazonaws.sqs#QueueDoesNotExist");
    assert!(body["message"].as_str().unwrap().contains("nope"));

    let e = call(&s, "TagQueue", json!({})).await.unwrap_err();
    assert_eq!(e.shape, "UnsupportedOperation");
    let e = call(&s, "SendMessage", json!({})).await.unwrap_err();
    assert_eq!(e.shape, "MissingParameter");
}

#[tokio::test]
async fn a_missing_required_member_is_named() {
    let s = state(None);
    let e = call(&s, "ReceiveMessage", json!({})).await.unwrap_err();
    assert_eq!((e.shape, e.code), ("MissingParameter", "MissingParameter"));
    assert!(e.message.contains("QueueUrl"), "{}", e.message);
    // A null member is an absent one.
    let e = call(
        &s,
        "SendMessage",
        json!({"QueueUrl": "http://x/000000000000/jobs", "MessageBody": null}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.shape, "MissingParameter");
    assert!(e.message.contains("MessageBody"), "{}", e.message);
    let e = call(
        &s,
        "ChangeMessageVisibility",
        json!({"QueueUrl": "http://x/000000000000/jobs", "ReceiptHandle": "h"}),
    )
    .await
    .unwrap_err();
    assert!(e.message.contains("VisibilityTimeout"), "{}", e.message);
    let e = call(
        &s,
        "DeleteMessageBatch",
        json!({"QueueUrl": "http://x/000000000000/jobs"}),
    )
    .await
    .unwrap_err();
    assert!(e.message.contains("Entries"), "{}", e.message);
    // In a batch, an entry missing a member fails alone, and says which.
    let out = call(
        &s,
        "SendMessageBatch",
        json!({"QueueUrl": "http://x/000000000000/jobs", "Entries": [
            {"Id": "a", "MessageBody": "1"}, {"Id": "b"}]}),
    )
    .await
    .unwrap();
    assert_eq!(out["Successful"][0]["Id"], "a");
    assert_eq!(out["Failed"][0]["Id"], "b");
    assert_eq!(out["Failed"][0]["Code"], "MissingParameter");
    assert_eq!(out["Failed"][0]["SenderFault"], true);
    assert!(
        out["Failed"][0]["Message"]
            .as_str()
            .unwrap()
            .contains("MessageBody")
    );
}

#[tokio::test]
async fn a_wrong_typed_member_is_an_invalid_parameter_naming_it() {
    let s = state(None);
    let url = "http://x/000000000000/jobs";
    let cases = [
        ("GetQueueUrl", json!({"QueueName": 7}), "QueueName"),
        (
            "SendMessage",
            json!({"QueueUrl": url, "MessageBody": "x", "DelaySeconds": "5"}),
            "DelaySeconds",
        ),
        (
            "ReceiveMessage",
            json!({"QueueUrl": url, "MaxNumberOfMessages": 1.5}),
            "MaxNumberOfMessages",
        ),
        (
            "ReceiveMessage",
            json!({"QueueUrl": url, "MessageAttributeNames": ["All", 3]}),
            "MessageAttributeNames",
        ),
        (
            "SendMessageBatch",
            json!({"QueueUrl": url, "Entries": {"Id": "a"}}),
            "Entries",
        ),
        (
            "SendMessage",
            json!({"QueueUrl": url, "MessageBody": "x",
            "MessageAttributes": {"k": {"DataType": "String", "StringValue": 5}}}),
            "MessageAttributes.k.StringValue",
        ),
    ];
    for (action, body, member) in cases {
        let e = call(&s, action, body).await.unwrap_err();
        assert_eq!(e.shape, "InvalidParameterValue", "{action}: {e:?}");
        assert!(e.message.contains(member), "{action}: {}", e.message);
        let resp = e.into_response();
        assert_eq!(
            resp.headers()["x-amzn-query-error"],
            "InvalidParameterValue;Sender"
        );
    }
    // Range checks still apply to well-typed members.
    for (body, member) in [
        (
            json!({"QueueUrl": url, "MaxNumberOfMessages": 11}),
            "MaxNumberOfMessages",
        ),
        (
            json!({"QueueUrl": url, "MaxNumberOfMessages": 0}),
            "MaxNumberOfMessages",
        ),
        (
            json!({"QueueUrl": url, "WaitTimeSeconds": 21}),
            "WaitTimeSeconds",
        ),
        (
            json!({"QueueUrl": url, "VisibilityTimeout": -1}),
            "VisibilityTimeout",
        ),
        (
            json!({"QueueUrl": url, "VisibilityTimeout": 43_201}),
            "VisibilityTimeout",
        ),
    ] {
        let e = call(&s, "ReceiveMessage", body).await.unwrap_err();
        assert_eq!(e.shape, "InvalidParameterValue");
        assert!(e.message.contains(member), "{}", e.message);
    }
    for delay in [-1, 901] {
        let e = call(
            &s,
            "SendMessage",
            json!({"QueueUrl": url, "MessageBody": "x", "DelaySeconds": delay}),
        )
        .await
        .unwrap_err();
        assert_eq!(e.shape, "InvalidParameterValue");
        assert!(e.message.contains("DelaySeconds"), "{}", e.message);
    }
    let many: Vec<Value> = (0..11)
        .map(|i| json!({"Id": format!("m{i}"), "MessageBody": "x"}))
        .collect();
    let e = call(
        &s,
        "SendMessageBatch",
        json!({"QueueUrl": url, "Entries": many}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.shape, "TooManyEntriesInBatchRequest");
    let e = call(
        &s,
        "DeleteMessageBatch",
        json!({"QueueUrl": url, "Entries": [{"Id": "bad id!", "ReceiptHandle": "h"}]}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.shape, "InvalidBatchEntryId");
}

#[tokio::test]
async fn an_unknown_action_and_a_malformed_body_are_refused_clearly() {
    let s = state(None);
    let e = call(
        &s,
        "DeleteQueue",
        json!({"QueueUrl": "http://x/000000000000/jobs"}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.shape, "UnsupportedOperation");
    assert_eq!(e.code, "AWS.SimpleQueueService.UnsupportedOperation");
    assert!(e.message.contains("DeleteQueue"), "{}", e.message);
    let e = dispatch(&s, &HeaderMap::new(), b"{}").await.unwrap_err();
    assert_eq!(e.shape, "UnsupportedOperation");
    assert!(e.message.contains("X-Amz-Target"), "{}", e.message);
    for body in [&b"{\"QueueUrl\": "[..], b"[1, 2]", b"\"jobs\""] {
        let e = dispatch(&s, &headers("GetQueueUrl"), body)
            .await
            .unwrap_err();
        assert_eq!(e.shape, "SerializationException");
        assert!(e.message.contains("not a JSON object"), "{}", e.message);
    }
    // An empty body is an empty request.
    let list = dispatch(&s, &headers("ListQueues"), b"").await.unwrap();
    assert_eq!(list["QueueUrls"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn long_polls_return_as_soon_as_a_message_arrives() {
    let s = state(None);
    let url = "http://x/000000000000/jobs";
    let sender = {
        let s = s.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            call(
                &s,
                "SendMessage",
                json!({"QueueUrl": url, "MessageBody": "late"}),
            )
            .await
            .unwrap();
        })
    };
    let started = Instant::now();
    let got = call(
        &s,
        "ReceiveMessage",
        json!({"QueueUrl": url, "WaitTimeSeconds": 10}),
    )
    .await
    .unwrap();
    assert_eq!(got["Messages"][0]["Body"], "late");
    assert!(started.elapsed() < Duration::from_secs(5));
    sender.await.unwrap();
}

#[test]
fn attribute_name_patterns() {
    let w = |p: &[&str], n: &str| wanted(&p.iter().map(|s| s.to_string()).collect::<Vec<_>>(), n);
    assert!(w(&["All"], "x"));
    assert!(w(&["a.*"], "a.b"));
    assert!(!w(&["a.*"], "ab"));
    assert!(w(&["durafn-name"], "durafn-name"));
    assert!(!w(&[], "x"));
}
