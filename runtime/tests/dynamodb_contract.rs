//! The store contract suite, and DynamoDB-specific tests, against DynamoDB Local.
//!
//! Needs `DURAFN_DYNAMODB_ENDPOINT` (scripts/test-all.sh starts DynamoDB Local and
//! sets it; by hand: `eval "$(scripts/dynamodb-local.sh start)"`). Without it
//! every test that needs the database fails with a message saying so: they
//! never pass or skip silently. Each fixture gets a fresh table.

// Test code: panicking on an unexpected answer is how a case fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::{
    BehaviorVersion, Credentials, Intercept, Region, RuntimeComponents,
};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeDeserializationInterceptorContextMut, BeforeTransmitInterceptorContextMut,
    BeforeTransmitInterceptorContextRef,
};
use aws_smithy_runtime_api::http::{Response as HttpResponse, StatusCode};
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use durafn_runtime::StoreError;
use durafn_runtime::clock::ManualClock;
use durafn_runtime::dispatch::{
    Dispatcher, DispatcherConfig, InvocationSummary, InvokeError, Invoker, ResumeRequest,
};
use durafn_runtime::model::{
    ExecutionId, ExecutionStatus, MAX_PAYLOAD_BYTES, NewExecution, OpKind, OpStatus, Operation,
    Timestamp,
};
use durafn_runtime::store::contract::Fixture;
use durafn_runtime::store::dynamodb::{DynamoStore, RetryPolicy};
use durafn_runtime::store::{ListFilter, OpWrite, Outcome, SentEvent, Store, Transition};
use serde_json::{Value, json};

fn endpoint() -> String {
    match std::env::var("DURAFN_DYNAMODB_ENDPOINT") {
        Ok(v) if !v.is_empty() => v,
        _ => {
            let where_ = if std::env::var_os("CI").is_some() {
                " (in CI)"
            } else {
                ""
            };
            panic!(
                "DURAFN_DYNAMODB_ENDPOINT is not set{where_}: the DynamoDB store tests need DynamoDB \
                 Local. Run scripts/test-all.sh, or start it with \
                 `eval \"$(scripts/dynamodb-local.sh start)\"` and run the tests again."
            )
        }
    }
}

/// SDK config for DynamoDB Local: fixed region and static alphanumeric keys.
fn config() -> aws_sdk_dynamodb::config::Builder {
    aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("x", "x", None, None, "test"))
        .retry_config(RetryConfig::disabled())
}

fn raw_client() -> Client {
    Client::from_conf(config().build())
}

fn fresh_table() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "durafn-t{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Deletes its table when the test ends (on a thread of its own: Drop is sync).
struct TableGuard(String);

impl Drop for TableGuard {
    fn drop(&mut self) {
        let table = self.0.clone();
        let deleter = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                let _ = raw_client().delete_table().table_name(table).send().await;
            });
        });
        let _ = deleter.join();
    }
}

/// A store on a fresh table, created before the test starts.
async fn store_with(client: Client, policy: RetryPolicy) -> (Arc<DynamoStore>, TableGuard) {
    let table = fresh_table();
    let guard = TableGuard(table.clone());
    let store = DynamoStore::from_client(client, &table).with_retry_policy(policy);
    assert!(
        store.create_table_if_missing().await.expect("create table"),
        "fresh table {table}"
    );
    (Arc::new(store), guard)
}

async fn fixture() -> Fixture {
    let (store, guard) = store_with(raw_client(), RetryPolicy::default()).await;
    Fixture::new(store, guard)
}

durafn_runtime::store_contract_tests!(fixture);

/// Fails a share of requests with DynamoDB's throttling and 5xx errors. A failed
/// request never takes effect: its target is swapped for a harmless ListTables
/// before it is sent, and the answer is replaced by the error response.
#[derive(Debug)]
struct Throttler {
    per_mille: u64,
    seq: AtomicU64,
    injected: Arc<AtomicU64>,
}

#[derive(Debug, Clone)]
struct Injected(Option<(u16, &'static str)>);

impl Storable for Injected {
    type Storer = StoreReplace<Self>;
}

const FAULTS: [(u16, &str); 5] = [
    (400, "ThrottlingException"),
    (400, "ProvisionedThroughputExceededException"),
    (400, "RequestLimitExceeded"),
    (500, "InternalServerError"),
    (503, "ServiceUnavailable"),
];

impl Throttler {
    fn new(per_mille: u64) -> (Self, Arc<AtomicU64>) {
        let injected = Arc::new(AtomicU64::new(0));
        let t = Throttler {
            per_mille,
            seq: AtomicU64::new(1),
            injected: injected.clone(),
        };
        (t, injected)
    }

    fn roll(&self) -> Option<(u16, &'static str)> {
        let mut z = self.seq.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        if z % 1000 >= self.per_mille {
            return None;
        }
        self.injected.fetch_add(1, Ordering::Relaxed);
        Some(FAULTS[(z / 1000 % FAULTS.len() as u64) as usize])
    }
}

impl Intercept for Throttler {
    fn name(&self) -> &'static str {
        "Throttler"
    }

    fn modify_before_transmit(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        inject(context, cfg, self.roll());
        Ok(())
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        answer_injected(context, cfg)
    }
}

/// Swaps a request about to be sent for a harmless ListTables, so that it
/// never takes effect, and remembers which error to answer with.
fn inject(
    context: &mut BeforeTransmitInterceptorContextMut<'_>,
    cfg: &mut ConfigBag,
    fault: Option<(u16, &'static str)>,
) {
    if fault.is_some() {
        let req = context.request_mut();
        req.headers_mut()
            .insert("x-amz-target", "DynamoDB_20120810.ListTables");
        req.headers_mut().insert("content-length", "2");
        *req.body_mut() = SdkBody::from("{}");
    }
    cfg.interceptor_state().store_put(Injected(fault));
}

/// Replaces the answer of a request [`inject`] swapped by its error.
fn answer_injected(
    context: &mut BeforeDeserializationInterceptorContextMut<'_>,
    cfg: &mut ConfigBag,
) -> Result<(), BoxError> {
    if let Some(Injected(Some((status, code)))) = cfg.load::<Injected>().cloned() {
        let body = format!(
            r#"{{"__type":"com.amazonaws.dynamodb.v20120810#{code}","message":"injected by the test"}}"#
        );
        let mut resp = HttpResponse::new(StatusCode::try_from(status)?, SdkBody::from(body));
        resp.headers_mut()
            .insert("content-type", "application/x-amz-json-1.0");
        *context.response_mut() = resp;
    }
    Ok(())
}

/// Fails every `UpdateItem` with a 500 while switched on.
#[derive(Debug, Clone, Default)]
struct FailUpdates(Arc<AtomicBool>);

impl Intercept for FailUpdates {
    fn name(&self) -> &'static str {
        "FailUpdates"
    }

    fn modify_before_transmit(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let update = context
            .request()
            .headers()
            .get("x-amz-target")
            .is_some_and(|t| t.ends_with(".UpdateItem"));
        let fault =
            (update && self.0.load(Ordering::SeqCst)).then_some((500, "InternalServerError"));
        inject(context, cfg, fault);
        Ok(())
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        answer_injected(context, cfg)
    }
}

/// Counts requests sent, per operation (PutItem, GetItem, ...).
#[derive(Debug, Default)]
struct Counter(std::sync::Mutex<std::collections::HashMap<String, u64>>);

#[derive(Debug, Clone)]
struct CounterHandle(Arc<Counter>);

impl CounterHandle {
    fn get(&self, op: &str) -> u64 {
        self.0
            .0
            .lock()
            .map(|m| m.get(op).copied().unwrap_or(0))
            .unwrap_or(0)
    }
}

impl Intercept for CounterHandle {
    fn name(&self) -> &'static str {
        "Counter"
    }
    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let target = context
            .request()
            .headers()
            .get("x-amz-target")
            .unwrap_or("");
        let op = target.rsplit('.').next().unwrap_or(target).to_string();
        // Queries of the due index are also counted on their own.
        let on_due = context
            .request()
            .body()
            .bytes()
            .is_some_and(|b| String::from_utf8_lossy(b).contains(r#""IndexName":"due""#));
        if let Ok(mut m) = self.0.0.lock() {
            if on_due {
                *m.entry(format!("{op} due")).or_default() += 1;
            }
            *m.entry(op).or_default() += 1;
        }
        Ok(())
    }
}

/// The whole contract suite with 20% of requests throttled or failing with 5xx:
/// the store's own retries must make every case behave as on a healthy table.
mod through_throttling {
    use super::*;

    async fn fixture() -> Fixture {
        let (throttler, _) = Throttler::new(200);
        let client = Client::from_conf(config().interceptor(throttler).build());
        let fast = RetryPolicy {
            max_attempts: 12,
            base_delay: Duration::from_millis(2),
            max_delay: Duration::from_millis(50),
        };
        let (store, guard) = store_with(client, fast).await;
        Fixture::new(store, guard)
    }

    durafn_runtime::store_contract_tests!(fixture);
}

/// In 2093: DynamoDB Local's TTL deletes items whose expiry has passed on the
/// real clock, so the expiries these tests set must lie in the real future.
const T0: Timestamp = Timestamp(3_900_000_000_000);

fn xid(name: &str) -> ExecutionId {
    ExecutionId::new(name).expect("valid id")
}

fn new_exec(name: &str, input: Value) -> NewExecution {
    NewExecution {
        id: xid(name),
        function: "order".into(),
        version: "1".into(),
        input,
        now: T0,
    }
}

fn op(op_id: &str, rev: u64, result: Value) -> Operation {
    Operation {
        id: op_id.into(),
        kind: OpKind::Step,
        name: format!("step-{op_id}"),
        status: OpStatus::Succeeded,
        attempt: 1,
        result: Some(result),
        error: None,
        started_at: T0,
        ended_at: Some(T0),
        wake_at: None,
        rev,
    }
}

/// Every item of an execution's partition, raw.
async fn raw_items(
    table: &str,
    id: &str,
) -> Vec<std::collections::HashMap<String, AttributeValue>> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let out = raw_client()
            .query()
            .table_name(table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", AttributeValue::S(format!("x#{id}")))
            .consistent_read(true)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .expect("raw query");
        items.extend(out.items.unwrap_or_default());
        match out.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => return items,
        }
    }
}

fn item_size(item: &std::collections::HashMap<String, AttributeValue>) -> usize {
    item.iter()
        .map(|(k, v)| {
            k.len()
                + match v {
                    AttributeValue::S(s) | AttributeValue::N(s) => s.len(),
                    AttributeValue::B(b) => b.as_ref().len(),
                    _ => 8,
                }
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_calls_are_retried_and_counted() {
    let (throttler, injected) = Throttler::new(200);
    let client = Client::from_conf(config().interceptor(throttler).build());
    let fast = RetryPolicy {
        max_attempts: 12,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(20),
    };
    let (store, _guard) = store_with(client, fast).await;
    for i in 0..30 {
        let x = xid(&format!("thr-{i}"));
        store
            .create_execution(&new_exec(x.as_str(), json!(i)))
            .await
            .expect("create");
        let c = store
            .claim(&x, T0, Timestamp(T0.0 + 1000))
            .await
            .expect("claim")
            .expect("claimable");
        assert_eq!(
            store
                .put_operation(&x, &op("1", 1, json!(i)))
                .await
                .expect("op"),
            OpWrite::Written
        );
        let out = Outcome {
            status: ExecutionStatus::Succeeded,
            output: Some(json!(i)),
            error: None,
            expires_at: None,
        };
        assert_eq!(
            store.finish(&x, c.epoch, &out, T0).await.expect("finish"),
            Transition::Done
        );
        let j = store.load_journal(&x).await.expect("load").expect("exists");
        assert_eq!(
            (j.execution.output, j.operations.len()),
            (Some(json!(i)), 1)
        );
    }
    let n = injected.load(Ordering::Relaxed);
    assert!(
        n >= 10,
        "about 20% of ~150 requests should have been failed, got {n}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_errors_surface_after_the_last_attempt() {
    let (throttler, injected) = Throttler::new(1000);
    let throttled = Client::from_conf(config().interceptor(throttler).build());
    let (healthy, _guard) = store_with(raw_client(), RetryPolicy::default()).await;
    let policy = RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
    };
    let store = DynamoStore::from_client(throttled, healthy.table())
        .with_retry_policy(policy)
        .without_table_creation();
    let err = store
        .create_execution(&new_exec("tr-1", json!(1)))
        .await
        .expect_err("always throttled");
    assert!(matches!(err, StoreError::Transient(_)), "{err:?}");
    assert!(err.to_string().contains("3 attempts"), "{err}");
    assert_eq!(injected.load(Ordering::Relaxed), 3);
    assert!(
        healthy
            .get_execution(&xid("tr-1"))
            .await
            .expect("get")
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_errors_are_backend_errors_with_the_cause() {
    let store = DynamoStore::from_client(raw_client(), fresh_table()).without_table_creation();
    let err = store
        .get_execution(&xid("nope"))
        .await
        .expect_err("no such table");
    assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("ResourceNotFoundException") && msg.contains("table"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn condition_failures_are_answers_not_retries() {
    let counter = CounterHandle(Arc::default());
    let client = Client::from_conf(config().interceptor(counter.clone()).build());
    let (store, _guard) = store_with(client, RetryPolicy::default()).await;
    let x = xid("cc-1");
    store
        .create_execution(&new_exec("cc-1", json!(1)))
        .await
        .expect("create");
    let first = op("1", 1, json!("A"));
    store.put_operation(&x, &first).await.expect("first");
    let before = counter.get("PutItem");
    let answer = store
        .put_operation(&x, &op("1", 1, json!("B")))
        .await
        .expect("second");
    assert_eq!(answer, OpWrite::Conflict(first));
    assert_eq!(
        counter.get("PutItem") - before,
        1,
        "one conditional put, no retry"
    );
    assert!(
        !store.wake(&xid("ghost"), T0).await.expect("wake"),
        "waking nothing is false"
    );
    assert!(
        raw_items(store.table(), "ghost").await.is_empty(),
        "wake creates no phantom item"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payloads_from_400kb_to_4mb_are_chunked_and_round_trip() {
    let (store, _guard) = store_with(raw_client(), RetryPolicy::default()).await;
    let x = xid("ch-1");
    let input = json!({ "blob": "i".repeat(400_000) });
    store
        .create_execution(&new_exec("ch-1", input.clone()))
        .await
        .expect("create");
    let sizes = [400_000usize, 1_000_000, 2_500_000, MAX_PAYLOAD_BYTES - 2];
    for (i, size) in sizes.iter().enumerate() {
        let result = json!("r".repeat(*size));
        let rec = op(&(i + 1).to_string(), 1, result);
        assert_eq!(
            store.put_operation(&x, &rec).await.expect("put"),
            OpWrite::Written
        );
    }
    let over = json!("r".repeat(MAX_PAYLOAD_BYTES - 1));
    let err = store
        .put_operation(&x, &op("9", 1, over))
        .await
        .expect_err("over the limit");
    assert!(matches!(err, StoreError::PayloadTooLarge { .. }), "{err:?}");

    let j = store.load_journal(&x).await.expect("load").expect("exists");
    assert_eq!(j.execution.input, input);
    for (i, size) in sizes.iter().enumerate() {
        assert_eq!(
            j.operations[i].result,
            Some(json!("r".repeat(*size))),
            "op {}",
            i + 1
        );
    }
    // A conflicting writer gets the stored, chunked record back whole.
    match store
        .put_operation(&x, &op("3", 1, json!("small")))
        .await
        .expect("conflict")
    {
        OpWrite::Conflict(cur) => assert_eq!(cur.result, Some(json!("r".repeat(2_500_000)))),
        other => panic!("expected a conflict, got {other:?}"),
    }
    // Failed with a big error, output absent.
    let c = store
        .claim(&x, T0, Timestamp(T0.0 + 10))
        .await
        .expect("claim")
        .expect("claimable");
    let mut error = durafn_runtime::model::ErrorObject::new("Big", "m".repeat(600_000));
    error.data = Some(json!({"d": "d".repeat(600_000)}));
    let failed = Outcome {
        status: ExecutionStatus::Failed,
        output: None,
        error: Some(error.clone()),
        expires_at: None,
    };
    assert_eq!(
        store
            .finish(&x, c.epoch, &failed, T0)
            .await
            .expect("finish"),
        Transition::Done
    );
    assert_eq!(
        store
            .get_execution(&x)
            .await
            .expect("get")
            .expect("exists")
            .error,
        Some(error)
    );

    let raw = raw_items(store.table(), "ch-1").await;
    let biggest = raw.iter().map(item_size).max().unwrap_or(0);
    assert!(
        biggest < 400_000,
        "every item stays under 400 KB, biggest {biggest}"
    );
    let chunks = raw
        .iter()
        .filter(|it| it["sk"].as_s().is_ok_and(|s| s.starts_with("chunk#")))
        .count();
    assert!(
        chunks >= 1 + 3 + 8 + 12 + 4,
        "payloads were split ({chunks} chunk items)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_of_revisions_and_racing_writers_never_mix() {
    let (store, _guard) = store_with(raw_client(), RetryPolicy::default()).await;
    let x = xid("ch-2");
    store
        .create_execution(&new_exec("ch-2", json!(0)))
        .await
        .expect("create");
    let v1 = json!("a".repeat(900_000));
    let v2 = json!("b".repeat(900_000));
    store
        .put_operation(&x, &op("1", 1, v1.clone()))
        .await
        .expect("rev 1");
    store
        .put_operation(&x, &op("1", 2, v2.clone()))
        .await
        .expect("rev 2");
    let j = store.load_journal(&x).await.expect("load").expect("exists");
    assert_eq!(
        (j.operations[0].rev, j.operations[0].result.clone()),
        (2, Some(v2))
    );
    let chunks = raw_items(store.table(), "ch-2")
        .await
        .into_iter()
        .filter(|it| it["sk"].as_s().is_ok_and(|s| s.starts_with("chunk#")))
        .count();
    assert_eq!(
        chunks, 6,
        "revision 2's chunks sit beside revision 1's, not over them"
    );

    let mut tasks = Vec::new();
    for w in 0..6 {
        let store = store.clone();
        let x = x.clone();
        tasks.push(tokio::spawn(async move {
            let mine = op(
                "2",
                1,
                json!({ "writer": w, "blob": format!("{w}").repeat(500_000) }),
            );
            let answer = store.put_operation(&x, &mine).await.expect("put");
            (mine, answer)
        }));
    }
    let mut winners = Vec::new();
    let mut adopted = Vec::new();
    for t in tasks {
        match t.await.expect("task") {
            (mine, OpWrite::Written) => winners.push(mine),
            (_, OpWrite::Conflict(theirs)) => adopted.push(theirs),
        }
    }
    assert_eq!(winners.len(), 1);
    assert!(adopted.iter().all(|a| *a == winners[0]));
    let j = store.load_journal(&x).await.expect("load").expect("exists");
    assert_eq!(j.operations[1], winners[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_creation_is_idempotent_and_complete() {
    let table = fresh_table();
    let _guard = TableGuard(table.clone());
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let table = table.clone();
        tasks.push(tokio::spawn(async move {
            DynamoStore::from_client(raw_client(), table)
                .create_table_if_missing()
                .await
                .expect("create")
        }));
    }
    let mut created = 0;
    for t in tasks {
        created += u32::from(t.await.expect("task"));
    }
    assert_eq!(
        created, 1,
        "exactly one concurrent caller creates the table"
    );
    let again = DynamoStore::from_client(raw_client(), table.as_str());
    assert!(!again.create_table_if_missing().await.expect("again"));

    let desc = raw_client()
        .describe_table()
        .table_name(&table)
        .send()
        .await
        .expect("describe");
    let desc = desc.table.expect("table");
    let mut gsis: Vec<_> = desc
        .global_secondary_indexes()
        .iter()
        .filter_map(|g| g.index_name.clone())
        .collect();
    gsis.sort();
    assert_eq!(gsis, vec!["due", "list", "recent"]);
    let billing = desc.billing_mode_summary.and_then(|b| b.billing_mode);
    assert_eq!(
        billing,
        Some(aws_sdk_dynamodb::types::BillingMode::PayPerRequest)
    );
    let ttl = raw_client()
        .describe_time_to_live()
        .table_name(&table)
        .send()
        .await
        .expect("ttl");
    let ttl = ttl.time_to_live_description.expect("ttl description");
    assert_eq!(ttl.attribute_name.as_deref(), Some("expires_at"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_with_another_layout_is_a_clear_error() {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    let table = fresh_table();
    let _guard = TableGuard(table.clone());
    let def = |n: &str| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .expect("def")
    };
    let key = |n: &str, k| {
        KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(k)
            .build()
            .expect("key")
    };
    raw_client()
        .create_table()
        .table_name(&table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(def("pk"))
        .attribute_definitions(def("sk"))
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .send()
        .await
        .expect("create plain table");
    let err = DynamoStore::from_client(raw_client(), table.as_str())
        .create_table_if_missing()
        .await
        .expect_err("no GSIs");
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
    assert!(err.to_string().contains("no GSI \"due\""), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn due_attributes_move_together_and_finished_items_expire() {
    let (store, _guard) = store_with(raw_client(), RetryPolicy::default()).await;
    let x = xid("dd-1");
    store
        .create_execution(&new_exec("dd-1", json!(1)))
        .await
        .expect("create");
    let meta = |items: &[std::collections::HashMap<String, AttributeValue>]| {
        items
            .iter()
            .find(|it| it["sk"].as_s().is_ok_and(|s| s == "meta"))
            .cloned()
            .expect("meta")
    };
    let m = meta(&raw_items(store.table(), "dd-1").await);
    assert_eq!(
        m["due_shard"].as_s().ok(),
        Some(&format!("s{:02}", x.due_shard()))
    );
    assert_eq!(m["due_at"].as_n().ok(), Some(&T0.0.to_string()));
    let c = store
        .claim(&x, T0, Timestamp(T0.0 + 500))
        .await
        .expect("claim")
        .expect("claimable");
    store
        .put_operation(&x, &op("1", 1, json!("x".repeat(500_000))))
        .await
        .expect("op");
    store
        .put_operation(&x, &op("2", 1, json!(2)))
        .await
        .expect("op");
    let expires = Timestamp(FAR_EXPIRY.0 + 123);
    let out = Outcome {
        status: ExecutionStatus::Succeeded,
        output: Some(json!(1)),
        error: None,
        expires_at: Some(expires),
    };
    assert_eq!(
        store.finish(&x, c.epoch, &out, T0).await.expect("finish"),
        Transition::Done
    );
    // The finish marked the expiry sweep; the next scan of the shard does it.
    assert!(is_sweep_entry(&meta(
        &raw_items(store.table(), "dd-1").await
    )));
    assert!(scan_and_sweep(&store, &x, T0).await.is_empty());
    let items = raw_items(store.table(), "dd-1").await;
    let m = meta(&items);
    assert!(
        !m.contains_key("due_shard") && !m.contains_key("due_at") && !m.contains_key("sweep"),
        "{m:?}"
    );
    let ttl = (expires.0 / 1000 + 1).to_string();
    for it in &items {
        assert_eq!(
            it.get("expires_at").and_then(|v| v.as_n().ok()),
            Some(&ttl),
            "{:?}",
            it["sk"]
        );
    }
    assert_eq!(
        store
            .get_execution(&x)
            .await
            .expect("get")
            .expect("exists")
            .expires_at,
        Some(expires)
    );
    assert_eq!(
        store
            .purge_expired(Timestamp(i64::MAX / 2))
            .await
            .expect("purge"),
        0,
        "native TTL"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_urls_open_and_create_their_table() {
    let ep = endpoint();
    let table = fresh_table();
    let _guard = TableGuard(table.clone());
    let url = format!("dynamodb://{table}?endpoint={ep}&region=us-east-1");
    let lazy = durafn_runtime::store::open(&url).expect("open is sync");
    assert_eq!(lazy.backend(), "dynamodb");
    let created = lazy
        .create_execution(&new_exec("u-1", json!(1)))
        .await
        .expect("first use creates the table");
    assert_eq!(created.execution().status, ExecutionStatus::Pending);
    let eager = durafn_runtime::store::open_async(&url)
        .await
        .expect("open_async connects");
    assert!(
        eager
            .get_execution(&xid("u-1"))
            .await
            .expect("get")
            .is_some()
    );

    let other = fresh_table();
    let _guard2 = TableGuard(other.clone());
    let store = DynamoStore::connect(&format!("dynamodb://{other}?endpoint={ep}"))
        .await
        .expect("connect");
    assert!(
        !store
            .create_table_if_missing()
            .await
            .expect("exists already")
    );
}

#[test]
fn bad_store_urls_are_clear_errors() {
    let msg = |url: &str| match durafn_runtime::store::open(url) {
        Ok(_) => panic!("{url} should not open"),
        Err(e) => {
            assert!(matches!(e, StoreError::Invalid(_)), "{e:?}");
            e.to_string()
        }
    };
    let err = msg("postgres://x");
    assert!(
        err.contains("sqlite://PATH") && err.contains("dynamodb://TABLE"),
        "{err}"
    );
    assert!(msg("dynamodb://").contains("table name is missing"));
    assert!(msg("dynamodb://tbl?endpoint=localhost:8000").contains("http://"));
    assert!(msg("dynamodb://tbl?endpoint=http://x&color=red").contains("unknown parameter"));
    assert!(msg("dynamodb://bad/name").contains("not valid"));
}

/// Every page of a listing, following the cursor, checking the page sizes.
async fn all_pages(store: &DynamoStore, filter: ListFilter) -> Vec<String> {
    let mut seen = Vec::new();
    let mut cursor = filter.cursor.clone();
    loop {
        let page = store
            .list_executions(&ListFilter {
                cursor: cursor.clone(),
                ..filter.clone()
            })
            .await
            .expect("list");
        let n = page.executions.len();
        seen.extend(page.executions.into_iter().map(|e| e.id.to_string()));
        match page.next_cursor {
            Some(c) => {
                assert_eq!(n, filter.limit, "only the last page is short");
                cursor = Some(c);
            }
            None => return seen,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_merges_buckets_exactly_with_ties_and_filters() {
    let counter = CounterHandle(Arc::default());
    let client = Client::from_conf(config().interceptor(counter.clone()).build());
    let (store, _guard) = store_with(client, RetryPolicy::default()).await;
    let functions = ["order", "approval", "media-sync"];
    // (created_at, id, function, running)
    let mut all = Vec::new();
    for i in 0..60i64 {
        let name = format!("t-{i:02}");
        let mut n = new_exec(&name, json!(i));
        n.now = Timestamp(T0.0 + i % 4); // many executions share a millisecond
        n.function = functions[(i % 3) as usize].into();
        store.create_execution(&n).await.expect("create");
        let running = i % 5 == 0;
        if running {
            store
                .claim(&n.id, n.now, Timestamp(T0.0 + 60_000))
                .await
                .expect("claim")
                .expect("claimable");
        }
        all.push((n.now, name, n.function, running));
    }
    all.sort_by(|a, b| (b.0, &b.1).cmp(&(a.0, &a.1)));
    type Created = (Timestamp, String, String, bool);
    let expect = |keep: &dyn Fn(&Created) -> bool| -> Vec<String> {
        all.iter()
            .filter(|e| keep(e))
            .map(|e| e.1.clone())
            .collect()
    };

    let everything = ListFilter {
        limit: 7,
        ..Default::default()
    };
    assert_eq!(all_pages(&store, everything).await, expect(&|_| true));
    let approval = ListFilter {
        function: Some("approval".into()),
        limit: 4,
        ..Default::default()
    };
    assert_eq!(
        all_pages(&store, approval).await,
        expect(&|e| e.2 == "approval")
    );
    let running = ListFilter {
        status: Some(ExecutionStatus::Running),
        limit: 3,
        ..Default::default()
    };
    assert_eq!(all_pages(&store, running).await, expect(&|e| e.3));
    let window = ListFilter {
        created_after: Some(Timestamp(T0.0 + 1)),
        created_before: Some(Timestamp(T0.0 + 3)),
        id_contains: Some("1".into()),
        limit: 5,
        ..Default::default()
    };
    assert_eq!(
        all_pages(&store, window).await,
        expect(&|e| (T0.0 + 1..T0.0 + 3).contains(&e.0.0) && e.1.contains('1'))
    );
    let pending_orders = ListFilter {
        function: Some("order".into()),
        status: Some(ExecutionStatus::Pending),
        limit: 1000,
        ..Default::default()
    };
    assert_eq!(
        all_pages(&store, pending_orders).await,
        expect(&|e| e.2 == "order" && !e.3)
    );
    // A cursor is a position, not tied to the page size it came from.
    let first = store
        .list_executions(&ListFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("list");
    let rest = all_pages(
        &store,
        ListFilter {
            limit: 50,
            cursor: first.next_cursor.clone(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(rest, expect(&|_| true)[10..].to_vec());
    // The default page is 100, so 60 executions fit in one.
    let page = store
        .list_executions(&ListFilter::default())
        .await
        .expect("list");
    assert_eq!(
        (page.executions.len(), page.next_cursor),
        (60, None),
        "one page"
    );
    let newest = &page.executions[0];
    assert_eq!((newest.id.as_str(), &newest.input), ("t-59", &json!(59)));
    assert_eq!(counter.get("Scan"), 0, "listing never scans");
    assert!(counter.get("BatchGetItem") > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_index_that_does_not_project_status_is_a_clear_error() {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
        Projection, ProjectionType, ScalarAttributeType,
    };
    let table = fresh_table();
    let _guard = TableGuard(table.clone());
    let def = |n: &str, t: ScalarAttributeType| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(t)
            .build()
            .expect("def")
    };
    let key = |n: &str, k| {
        KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(k)
            .build()
            .expect("key")
    };
    let gsi = |name: &str, hash: &str, range: &str, status: bool| {
        let projection = if status {
            Projection::builder()
                .projection_type(ProjectionType::Include)
                .non_key_attributes("status")
        } else {
            Projection::builder().projection_type(ProjectionType::KeysOnly)
        };
        GlobalSecondaryIndex::builder()
            .index_name(name)
            .key_schema(key(hash, KeyType::Hash))
            .key_schema(key(range, KeyType::Range))
            .projection(projection.build())
            .build()
            .expect("gsi")
    };
    let mut req = raw_client()
        .create_table()
        .table_name(&table)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .global_secondary_indexes(gsi("due", "due_shard", "due_at", false))
        .global_secondary_indexes(gsi("list", "fn_bucket", "list_key", true))
        .global_secondary_indexes(gsi("recent", "list_bucket", "list_key", false));
    for (n, t) in [
        ("pk", ScalarAttributeType::S),
        ("sk", ScalarAttributeType::S),
        ("due_shard", ScalarAttributeType::S),
        ("due_at", ScalarAttributeType::N),
        ("fn_bucket", ScalarAttributeType::S),
        ("list_bucket", ScalarAttributeType::S),
        ("list_key", ScalarAttributeType::S),
    ] {
        req = req.attribute_definitions(def(n, t));
    }
    req.send()
        .await
        .expect("create a table with a keys-only recent index");
    let err = DynamoStore::from_client(raw_client(), table.as_str())
        .create_table_if_missing()
        .await
        .expect_err("recent does not project status");
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
    assert!(
        err.to_string()
            .contains("GSI \"recent\" does not project \"status\""),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_executions_leave_the_due_index_and_expire_whole() {
    let (store, _guard) = store_with(raw_client(), RetryPolicy::default()).await;
    let x = xid("cx-1");
    store
        .create_execution(&new_exec("cx-1", json!({"big": "i".repeat(300_000)})))
        .await
        .expect("create");
    let c = store
        .claim(&x, T0, Timestamp(T0.0 + 30_000))
        .await
        .expect("claim")
        .expect("claimable");
    store
        .put_operation(&x, &op("1", 1, json!("x".repeat(500_000))))
        .await
        .expect("op");
    let at = Timestamp(T0.0 + 5);
    let cancelled = store.cancel(&x, at).await.expect("cancel").expect("exists");
    assert_eq!(cancelled.status, ExecutionStatus::Cancelled);
    assert_eq!(cancelled.input, json!({"big": "i".repeat(300_000)}));
    assert_eq!(cancelled.due_at, None);
    let expires = cancelled.expires_at.expect("expires");
    let ttl = ((expires.0 + 999) / 1000).to_string();
    assert!(scan_and_sweep(&store, &x, at).await.is_empty());
    let items = raw_items(store.table(), "cx-1").await;
    for it in &items {
        assert_eq!(
            it.get("expires_at").and_then(|v| v.as_n().ok()),
            Some(&ttl),
            "{:?}",
            it["sk"]
        );
        assert!(!it.contains_key("due_at") && !it.contains_key("due_shard"));
    }
    // The invocation still running writes one more operation, then finds
    // itself stale: what it wrote expires with the rest.
    store
        .put_operation(&x, &op("2", 1, json!(2)))
        .await
        .expect("late op");
    let out = Outcome {
        status: ExecutionStatus::Succeeded,
        output: Some(json!(1)),
        error: None,
        expires_at: None,
    };
    assert_eq!(
        store.finish(&x, c.epoch, &out, at).await.expect("finish"),
        Transition::Stale
    );
    // The stale end marked the sweep again.
    assert!(scan_and_sweep(&store, &x, at).await.is_empty());
    let items = raw_items(store.table(), "cx-1").await;
    assert!(items.len() > 3);
    assert!(
        items
            .iter()
            .all(|it| it.get("expires_at").and_then(|v| v.as_n().ok()) == Some(&ttl))
    );
    // Cancelling again changes nothing.
    let again = store
        .cancel(&x, Timestamp(T0.0 + 9))
        .await
        .expect("cancel")
        .expect("exists");
    assert_eq!(again, cancelled);
    let none = store.cancel(&xid("cx-none"), at).await.expect("cancel");
    assert!(none.is_none());
    assert!(
        raw_items(store.table(), "cx-none").await.is_empty(),
        "cancelling nothing creates nothing"
    );
}

/// The TTL attribute of every item of a partition, by sort key.
async fn expiries(table: &str, id: &str) -> Vec<(String, Option<String>)> {
    raw_items(table, id)
        .await
        .into_iter()
        .map(|it| {
            let sk = it["sk"].as_s().cloned().unwrap_or_default();
            let ttl = it.get("expires_at").and_then(|v| v.as_n().ok()).cloned();
            (sk, ttl)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_event_payloads_are_chunked_and_expire_with_the_execution() {
    let (store, _guard) = store_with(raw_client(), RetryPolicy::default()).await;
    let x = xid("evb-1");
    store
        .create_execution(&new_exec("evb-1", json!(1)))
        .await
        .expect("create");
    let c = store
        .claim(&x, T0, Timestamp(T0.0 + 500))
        .await
        .expect("claim")
        .expect("claimable");
    assert_eq!(
        store
            .suspend(&x, c.epoch, 0, None, T0)
            .await
            .expect("suspend"),
        Transition::Done
    );
    let big = json!({ "doc": "e".repeat(1_000_000) });
    let sent = store
        .send_event(&x, "upload", &big, Timestamp(T0.0 + 1))
        .await
        .expect("send big");
    let SentEvent::Delivered(first) = sent else {
        panic!("not delivered: {sent:?}")
    };
    let near_limit = json!("n".repeat(MAX_PAYLOAD_BYTES - 2));
    store
        .send_event(&x, "upload", &near_limit, Timestamp(T0.0 + 1))
        .await
        .expect("send near the limit");
    store
        .send_event(&x, "small", &json!(3), Timestamp(T0.0 + 1))
        .await
        .expect("send small");
    let woken = store.get_execution(&x).await.expect("get").expect("exists");
    assert_eq!(
        (woken.wakeups, woken.due_at),
        (3, Some(Timestamp(T0.0 + 1)))
    );

    let j = store.load_journal(&x).await.expect("load").expect("exists");
    let got: Vec<_> = j
        .events
        .iter()
        .map(|e| (e.name.as_str(), &e.payload))
        .collect();
    assert_eq!(
        got,
        vec![
            ("upload", &big),
            ("upload", &near_limit),
            ("small", &json!(3))
        ],
        "same millisecond, still in sending order"
    );
    assert_eq!(j.events[0], first);

    let raw = raw_items(store.table(), "evb-1").await;
    let biggest = raw.iter().map(item_size).max().unwrap_or(0);
    assert!(
        biggest < 400_000,
        "every item stays under 400 KB, biggest {biggest}"
    );
    let count = |prefix: &str| {
        raw.iter()
            .filter(|it| it["sk"].as_s().is_ok_and(|s| s.starts_with(prefix)))
            .count()
    };
    assert_eq!(count("ev#"), 3);
    assert!(count("chunk#") >= 3 + 12, "{} chunk items", count("chunk#"));

    // Finishing puts the expiry on the events and their chunks too.
    let c = store
        .claim(&x, Timestamp(T0.0 + 2), Timestamp(T0.0 + 500))
        .await
        .expect("claim")
        .expect("claimable");
    let expires = FAR_EXPIRY;
    let out = Outcome {
        status: ExecutionStatus::Succeeded,
        output: Some(json!("ok")),
        error: None,
        expires_at: Some(expires),
    };
    assert_eq!(
        store.finish(&x, c.epoch, &out, T0).await.expect("finish"),
        Transition::Done
    );
    scan_and_sweep(&store, &x, T0).await;
    let ttl = (expires.0 / 1000).to_string();
    for (sk, seen) in expiries(store.table(), "evb-1").await {
        assert_eq!(seen.as_ref(), Some(&ttl), "{sk}");
    }
    assert_eq!(
        store
            .send_event(&x, "late", &json!(1), Timestamp(T0.0 + 3))
            .await
            .expect("send late"),
        SentEvent::Ended(ExecutionStatus::Succeeded)
    );
    assert_eq!(raw_items(store.table(), "evb-1").await.len(), raw.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_removes_the_expiry_from_every_item() {
    let (store, _guard) = store_with(raw_client(), RetryPolicy::default()).await;
    let x = xid("rsx-1");
    let input = json!({ "big": "i".repeat(300_000) });
    store
        .create_execution(&new_exec("rsx-1", input.clone()))
        .await
        .expect("create");
    let c = store
        .claim(&x, T0, Timestamp(T0.0 + 500))
        .await
        .expect("claim")
        .expect("claimable");
    let ops = [op("1", 1, json!("x".repeat(500_000))), op("2", 1, json!(2))];
    for o in &ops {
        store.put_operation(&x, o).await.expect("op");
    }
    store
        .send_event(&x, "go", &json!({"n": 1}), T0)
        .await
        .expect("event");
    let expires = FAR_EXPIRY;
    let mut error = durafn_runtime::model::ErrorObject::new("Big", "m".repeat(400_000));
    error.data = Some(json!({"why": "boom"}));
    let failed = Outcome {
        status: ExecutionStatus::Failed,
        output: None,
        error: Some(error),
        expires_at: Some(expires),
    };
    assert_eq!(
        store
            .finish(&x, c.epoch, &failed, T0)
            .await
            .expect("finish"),
        Transition::Done
    );
    scan_and_sweep(&store, &x, T0).await;
    let before = expiries(store.table(), "rsx-1").await;
    assert!(before.len() > 5, "{before:?}");
    assert!(before.iter().all(|(_, ttl)| ttl.is_some()), "{before:?}");

    let at = Timestamp(T0.0 + 7);
    let resumed = store.resume(&x, at).await.expect("resume").expect("exists");
    assert_eq!(resumed.status, ExecutionStatus::Suspended);
    assert_eq!(
        (
            resumed.due_at,
            resumed.error.clone(),
            resumed.ended_at,
            resumed.expires_at
        ),
        (Some(at), None, None, None)
    );
    let items = raw_items(store.table(), "rsx-1").await;
    assert_eq!(items.len(), before.len(), "resume deletes nothing");
    for it in &items {
        assert!(!it.contains_key("expires_at"), "{:?} keeps a TTL", it["sk"]);
    }
    let meta = items
        .iter()
        .find(|it| it["sk"].as_s().is_ok_and(|s| s == "meta"))
        .expect("meta");
    for gone in ["expires_at_ms", "error", "error_chunks", "ended_at"] {
        assert!(!meta.contains_key(gone), "meta keeps {gone}");
    }
    assert_eq!(
        meta["due_shard"].as_s().ok(),
        Some(&format!("s{:02}", x.due_shard()))
    );
    let j = store.load_journal(&x).await.expect("load").expect("exists");
    assert_eq!(j.execution.input, input);
    assert_eq!(j.operations, ops.to_vec());
    assert_eq!(j.events.len(), 1);
    let due = store
        .due(x.due_shard(), at, 100)
        .await
        .expect("due")
        .into_iter()
        .any(|d| d.id == x);
    assert!(due, "a resumed execution is due again");

    // A resume whose cleanup failed half-way is finished by the next call.
    raw_client()
        .update_item()
        .table_name(store.table())
        .key("pk", AttributeValue::S("x#rsx-1".into()))
        .key("sk", AttributeValue::S("op#2".into()))
        .update_expression("SET expires_at = :t")
        .expression_attribute_values(":t", AttributeValue::N("123".into()))
        .send()
        .await
        .expect("raw update");
    let again = store
        .resume(&x, Timestamp(T0.0 + 8))
        .await
        .expect("resume")
        .expect("exists");
    assert_eq!(again, resumed, "a suspended execution is left alone");
    assert!(
        expiries(store.table(), "rsx-1")
            .await
            .iter()
            .all(|(_, ttl)| ttl.is_none())
    );

    // It can end again, and then expires whole again.
    let c = store
        .claim(&x, at, Timestamp(T0.0 + 500))
        .await
        .expect("claim")
        .expect("claimable");
    assert_eq!(c.epoch, 2);
    let expires = Timestamp(FAR_EXPIRY.0 + 86_400_000);
    let out = Outcome {
        status: ExecutionStatus::Succeeded,
        output: Some(json!(1)),
        error: None,
        expires_at: Some(expires),
    };
    assert_eq!(
        store.finish(&x, c.epoch, &out, at).await.expect("finish"),
        Transition::Done
    );
    scan_and_sweep(&store, &x, at).await;
    let ttl = (expires.0 / 1000).to_string();
    for (sk, seen) in expiries(store.table(), "rsx-1").await {
        assert_eq!(seen.as_ref(), Some(&ttl), "{sk}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeds_are_kept_on_the_meta_item_and_never_indexed() {
    let (store, _guard) = store_with(raw_client(), RetryPolicy::default()).await;
    let x = xid("sdx-1");
    let created = store
        .create_execution(&new_exec("sdx-1", json!(1)))
        .await
        .expect("create");
    let seed = created.execution().seed.clone();
    assert_eq!(seed.len(), 32);
    let again = store
        .create_execution(&new_exec("sdx-1", json!(1)))
        .await
        .expect("create again");
    assert_eq!(
        again.execution().seed,
        seed,
        "an idempotent create keeps it"
    );
    let meta = raw_items(store.table(), "sdx-1")
        .await
        .into_iter()
        .find(|it| it["sk"].as_s().is_ok_and(|s| s == "meta"))
        .expect("meta");
    assert_eq!(meta["seed"].as_s().ok(), Some(&seed));
    let listed = store
        .list_executions(&ListFilter::default())
        .await
        .expect("list");
    assert_eq!(listed.executions[0].seed, seed);
    let cancelled = store.cancel(&x, T0).await.expect("cancel").expect("exists");
    assert_eq!(cancelled.seed, seed);
    for index in ["due", "list", "recent"] {
        let out = raw_client()
            .scan()
            .table_name(store.table())
            .index_name(index)
            .send()
            .await
            .expect("scan index");
        for it in out.items.unwrap_or_default() {
            assert!(!it.contains_key("seed"), "{index} projects the seed");
        }
    }
}

/// True when a raw meta item holds a pending expiry sweep: its entry in the
/// due index (below every real due time) and its token.
fn is_sweep_entry(meta: &std::collections::HashMap<String, AttributeValue>) -> bool {
    let due_at = meta
        .get("due_at")
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse::<i64>().ok());
    due_at.is_some_and(|d| d < -(1 << 61))
        && meta.contains_key("due_shard")
        && meta.contains_key("sweep")
}

/// One due-index scan of `x`'s shard at `now`, which starts the expiry sweeps
/// it meets, then waits for them. Returns what the scan returned.
async fn scan_and_sweep(store: &DynamoStore, x: &ExecutionId, now: Timestamp) -> Vec<ExecutionId> {
    let due = store.due(x.due_shard(), now, 100).await.expect("due");
    store.wait_for_sweeps().await;
    due.into_iter().map(|d| d.id).collect()
}

/// The raw meta item of an execution.
async fn raw_meta(table: &str, id: &str) -> std::collections::HashMap<String, AttributeValue> {
    raw_items(table, id)
        .await
        .into_iter()
        .find(|it| it["sk"].as_s().is_ok_and(|s| s == "meta"))
        .expect("meta")
}

/// Every entry of one shard of the due index, raw (sweep entries too): the
/// partition key and `due_at` of each.
async fn raw_due_index(table: &str, shard: u32) -> Vec<(String, i64)> {
    let out = raw_client()
        .query()
        .table_name(table)
        .index_name("due")
        .key_condition_expression("due_shard = :s")
        .expression_attribute_values(":s", AttributeValue::S(format!("s{shard:02}")))
        .send()
        .await
        .expect("raw due query");
    out.items
        .unwrap_or_default()
        .into_iter()
        .map(|it| {
            let pk = it["pk"].as_s().cloned().unwrap_or_default();
            let due_at = it["due_at"]
                .as_n()
                .ok()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            (pk, due_at)
        })
        .collect()
}

/// `n` execution ids named `<prefix><i>` in the due shard of `x`.
fn same_shard(x: &ExecutionId, prefix: &str, n: usize) -> Vec<ExecutionId> {
    (0..)
        .map(|i| xid(&format!("{prefix}{i}")))
        .filter(|y| y.due_shard() == x.due_shard())
        .take(n)
        .collect()
}

/// An expiry DynamoDB Local's TTL does not act on while a test runs (it
/// deletes items whose `expires_at` has passed, at any moment).
const FAR_EXPIRY: Timestamp = Timestamp(4_000_000_000_000);

/// Creates `x`, claims it, writes `ops` operations and ends it with `status`
/// at `now`, expiring at [`FAR_EXPIRY`]. Returns the expiry.
async fn run_and_end(
    store: &DynamoStore,
    x: &ExecutionId,
    ops: usize,
    status: ExecutionStatus,
    now: Timestamp,
) -> Timestamp {
    store
        .create_execution(&new_exec(x.as_str(), json!({"n": x.as_str()})))
        .await
        .expect("create");
    let c = store
        .claim(x, now, Timestamp(now.0 + 30_000))
        .await
        .expect("claim")
        .expect("claimable");
    for i in 1..=ops {
        store
            .put_operation(x, &op(&i.to_string(), 1, json!(i)))
            .await
            .expect("op");
    }
    let expires = FAR_EXPIRY;
    let failed = status == ExecutionStatus::Failed;
    let out = Outcome {
        status,
        output: (!failed).then(|| json!("done")),
        error: failed.then(|| durafn_runtime::model::ErrorObject::new("E", "boom")),
        expires_at: Some(expires),
    };
    assert_eq!(
        store.finish(x, c.epoch, &out, now).await.expect("finish"),
        Transition::Done
    );
    expires
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finish_only_marks_the_expiry_sweep_and_the_next_scan_does_it() {
    let counter = CounterHandle(Arc::default());
    let client = Client::from_conf(config().interceptor(counter.clone()).build());
    let (store, _guard) = store_with(client, RetryPolicy::default()).await;
    let x = xid("sw-1");
    store
        .create_execution(&new_exec("sw-1", json!(1)))
        .await
        .expect("create");
    let c = store
        .claim(&x, T0, Timestamp(T0.0 + 500))
        .await
        .expect("claim")
        .expect("claimable");
    for i in 1..=30 {
        let result = if i == 7 {
            json!("x".repeat(500_000))
        } else {
            json!(i)
        };
        store
            .put_operation(&x, &op(&i.to_string(), 1, result))
            .await
            .expect("op");
    }
    store
        .send_event(&x, "go", &json!(1), T0)
        .await
        .expect("event");
    let calls = ["UpdateItem", "PutItem", "Query", "GetItem"];
    let before: Vec<u64> = calls.iter().map(|c| counter.get(c)).collect();
    let expires = FAR_EXPIRY;
    let out = Outcome {
        status: ExecutionStatus::Succeeded,
        output: Some(json!("done")),
        error: None,
        expires_at: Some(expires),
    };
    assert_eq!(
        store.finish(&x, c.epoch, &out, T0).await.expect("finish"),
        Transition::Done
    );

    // (a) The finish is one conditional update of the meta item: it marks
    // the sweep and writes no expiry on any other item.
    let sent: Vec<u64> = calls
        .iter()
        .zip(&before)
        .map(|(c, b)| counter.get(c) - b)
        .collect();
    assert_eq!(sent, vec![1, 0, 0, 0], "{calls:?}");
    let ttl = (expires.0 / 1000).to_string();
    let items = raw_items(store.table(), "sw-1").await;
    assert!(items.len() > 32, "{} items", items.len());
    for it in &items {
        let sk = it["sk"].as_s().cloned().unwrap_or_default();
        if sk == "meta" {
            assert_eq!(it["expires_at"].as_n().ok(), Some(&ttl));
            assert!(is_sweep_entry(it), "{it:?}");
        } else {
            assert!(!it.contains_key("expires_at"), "{sk} has a TTL already");
        }
    }
    let pk = "x#sw-1".to_string();
    assert!(
        raw_due_index(store.table(), x.due_shard())
            .await
            .iter()
            .any(|(p, _)| *p == pk),
        "the pending sweep is an entry of the due index"
    );
    // Reading and listing never show it as a due time.
    let described = store.get_execution(&x).await.expect("get").expect("exists");
    assert_eq!(
        (described.status, described.due_at, described.expires_at),
        (ExecutionStatus::Succeeded, None, Some(expires))
    );
    let listed = store
        .list_executions(&ListFilter::default())
        .await
        .expect("list");
    assert_eq!(listed.executions, vec![described.clone()]);

    // (b) A scan returns nothing, and its sweep puts the expiry everywhere
    // and takes the execution out of the due index.
    assert!(scan_and_sweep(&store, &x, T0).await.is_empty());
    for (sk, seen) in expiries(store.table(), "sw-1").await {
        assert_eq!(seen.as_ref(), Some(&ttl), "{sk}");
    }
    let meta = raw_meta(store.table(), "sw-1").await;
    for gone in ["due_shard", "due_at", "sweep"] {
        assert!(!meta.contains_key(gone), "meta keeps {gone}");
    }
    assert!(
        raw_due_index(store.table(), x.due_shard())
            .await
            .iter()
            .all(|(p, _)| *p != pk)
    );
    assert_eq!(
        store.get_execution(&x).await.expect("get"),
        Some(described),
        "the sweep changes nothing a reader sees"
    );
    // Nothing is left to do: the next scan writes nothing.
    let updates = counter.get("UpdateItem");
    assert!(scan_and_sweep(&store, &x, T0).await.is_empty());
    assert_eq!(counter.get("UpdateItem"), updates);
}

/// Records the executions it is asked to invoke.
#[derive(Default)]
struct Recorder(std::sync::Mutex<Vec<ExecutionId>>);

impl Recorder {
    fn seen(&self) -> Vec<ExecutionId> {
        self.0.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

#[async_trait::async_trait]
impl Invoker for Recorder {
    async fn invoke(
        &self,
        _function: &str,
        request: &ResumeRequest,
    ) -> Result<InvocationSummary, InvokeError> {
        if let Ok(mut v) = self.0.lock() {
            v.push(request.execution_id.clone());
        }
        Ok(InvocationSummary {
            status: "SUCCEEDED".into(),
            wake_at: None,
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dispatcher_never_sees_a_finished_execution_as_due() {
    let (store, _guard) = store_with(raw_client(), RetryPolicy::default()).await;
    let x = xid("dsx-0");
    let y = same_shard(&x, "dsy-", 1).remove(0);
    let expires = run_and_end(&store, &x, 5, ExecutionStatus::Succeeded, T0).await;
    assert!(is_sweep_entry(&raw_meta(store.table(), "dsx-0").await));
    // Work in the same shard, due after the sweep entry.
    let mut pending = new_exec(y.as_str(), json!(2));
    pending.now = Timestamp(T0.0 + 1);
    store.create_execution(&pending).await.expect("create");

    let invoker = Arc::new(Recorder::default());
    let clock = Arc::new(ManualClock::new(Timestamp(T0.0 + 1_000)));
    let dispatcher = Dispatcher::new(
        store.clone() as Arc<dyn Store>,
        clock,
        invoker.clone(),
        DispatcherConfig::default(),
    );
    dispatcher.tick().await.expect("scan");
    dispatcher.idle().await;
    store.wait_for_sweeps().await;
    assert_eq!(invoker.seen(), vec![y.clone()], "only the pending one");
    // The scan swept the finished one.
    let ttl = (expires.0 / 1000).to_string();
    for (sk, seen) in expiries(store.table(), "dsx-0").await {
        assert_eq!(seen.as_ref(), Some(&ttl), "{sk}");
    }
    assert!(
        raw_due_index(store.table(), x.due_shard())
            .await
            .iter()
            .all(|(p, _)| p != "x#dsx-0")
    );
    dispatcher.tick().await.expect("scan");
    dispatcher.idle().await;
    assert_eq!(invoker.seen(), vec![y]);
    let e = store.get_execution(&x).await.expect("get").expect("exists");
    assert_eq!((e.status, e.epoch), (ExecutionStatus::Succeeded, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_sweep_stays_due_and_racing_sweeps_agree() {
    let (healthy, _guard) = store_with(raw_client(), RetryPolicy::default()).await;
    let switch = FailUpdates::default();
    let failing = DynamoStore::from_client(
        Client::from_conf(config().interceptor(switch.clone()).build()),
        healthy.table(),
    )
    .with_retry_policy(RetryPolicy {
        max_attempts: 2,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(2),
    });
    let x = xid("sf-1");
    let expires = run_and_end(&healthy, &x, 40, ExecutionStatus::Succeeded, T0).await;

    switch.0.store(true, Ordering::SeqCst);
    assert!(scan_and_sweep(&failing, &x, T0).await.is_empty());
    assert!(
        is_sweep_entry(&raw_meta(healthy.table(), "sf-1").await),
        "a failed sweep stays due"
    );
    let unswept = expiries(healthy.table(), "sf-1").await;
    assert!(
        unswept
            .iter()
            .any(|(sk, ttl)| sk != "meta" && ttl.is_none())
    );

    // Two processes scan at once: both may sweep it; same result.
    switch.0.store(false, Ordering::SeqCst);
    let (a, b) = tokio::join!(
        failing.due(x.due_shard(), T0, 10),
        healthy.due(x.due_shard(), T0, 10)
    );
    assert!(a.expect("due").is_empty() && b.expect("due").is_empty());
    tokio::join!(failing.wait_for_sweeps(), healthy.wait_for_sweeps());
    let ttl = (expires.0 / 1000).to_string();
    for (sk, seen) in expiries(healthy.table(), "sf-1").await {
        assert_eq!(seen.as_ref(), Some(&ttl), "{sk}");
    }
    let meta = raw_meta(healthy.table(), "sf-1").await;
    assert!(!meta.contains_key("due_at") && !meta.contains_key("sweep"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_before_the_sweep_cancels_it_and_stray_expiries_are_removed() {
    let (store, _guard) = store_with(raw_client(), RetryPolicy::default()).await;
    let x = xid("rsw-1");
    run_and_end(&store, &x, 3, ExecutionStatus::Failed, T0).await;
    assert!(is_sweep_entry(&raw_meta(store.table(), "rsw-1").await));
    let at = Timestamp(T0.0 + 1);
    let resumed = store.resume(&x, at).await.expect("resume").expect("exists");
    assert_eq!(
        (resumed.status, resumed.due_at, resumed.expires_at),
        (ExecutionStatus::Suspended, Some(at), None)
    );
    let meta = raw_meta(store.table(), "rsw-1").await;
    assert!(!meta.contains_key("sweep") && !meta.contains_key("expires_at"));
    assert_eq!(meta["due_at"].as_n().ok(), Some(&at.0.to_string()));
    // The scan finds it as work, and no sweep puts an expiry on its items.
    assert_eq!(scan_and_sweep(&store, &x, at).await, vec![x.clone()]);
    assert!(
        expiries(store.table(), "rsw-1")
            .await
            .iter()
            .all(|(_, ttl)| ttl.is_none())
    );

    // A sweep that raced the resume and died before undoing its writes left
    // an expiry on some items: the next journal load removes it.
    for sk in ["op#1", "op#3"] {
        raw_client()
            .update_item()
            .table_name(store.table())
            .key("pk", AttributeValue::S("x#rsw-1".into()))
            .key("sk", AttributeValue::S(sk.into()))
            .update_expression("SET expires_at = :t")
            .expression_attribute_values(":t", AttributeValue::N("123".into()))
            .send()
            .await
            .expect("raw update");
    }
    let j = store.load_journal(&x).await.expect("load").expect("exists");
    assert_eq!(j.operations.len(), 3);
    assert!(
        expiries(store.table(), "rsw-1")
            .await
            .iter()
            .all(|(_, ttl)| ttl.is_none())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_of_sweeps_never_hides_due_work() {
    let counter = CounterHandle(Arc::default());
    let client = Client::from_conf(config().interceptor(counter.clone()).build());
    let (store, _guard) = store_with(client, RetryPolicy::default()).await;
    let mut ids = same_shard(&xid("bk-0"), "bk-", 21);
    let work = ids.pop().expect("21 ids");
    for x in &ids {
        run_and_end(&store, x, 1, ExecutionStatus::Succeeded, T0).await;
    }
    store
        .create_execution(&new_exec(work.as_str(), json!(0)))
        .await
        .expect("create");
    let shard = work.due_shard();
    let now = Timestamp(T0.0 + 10);
    // Twenty sweep entries sort first; a scan for one item still finds the
    // work, and skips the sweeps past the first batch in one go.
    let queries = counter.get("Query due");
    let due = store.due(shard, now, 1).await.expect("due");
    assert_eq!(due.iter().map(|d| &d.id).collect::<Vec<_>>(), vec![&work]);
    assert_eq!(
        counter.get("Query due") - queries,
        2,
        "one page of sweeps, one of work"
    );
    store.wait_for_sweeps().await;
    // Each scan starts a bounded number of sweeps; a few scans clear the backlog.
    let work_pk = format!("x#{work}");
    for _ in 0..10 {
        if raw_due_index(store.table(), shard)
            .await
            .iter()
            .all(|(pk, _)| *pk == work_pk)
        {
            break;
        }
        assert_eq!(scan_and_sweep(&store, &work, now).await, vec![work.clone()]);
    }
    let left = raw_due_index(store.table(), shard).await;
    assert_eq!(left.len(), 1, "{left:?}");
    for x in &ids {
        for (sk, seen) in expiries(store.table(), x.as_str()).await {
            assert!(seen.is_some(), "{x} {sk}");
        }
    }
}
