//! `step_vs_ddb_put`: what one durable step costs on the DynamoDB store, as a
//! multiple of one raw conditional `PutItem` (DESIGN.md §8: ≤ 1.2), both on
//! DynamoDB Local.
//!
//! DynamoDB Local is the one named by `DURAFN_DYNAMODB_ENDPOINT`, else one
//! started for the run (`scripts/dynamodb-local.sh`) and stopped after it.
//! Both sides use one fresh, uniquely named table, created by the store
//! (with its indexes) and deleted at the end.
//!
//! Floor: `n` sequential `PutItem`s through `aws-sdk-dynamodb` directly, each
//! with `attribute_not_exists(pk)`, of an item as large as one of the
//! store's operation items, with the same client settings as the store's.
//! Figure: one execution of `n` sequential steps in one invocation through
//! the real SDK (`TestRuntime::with_store` on the DynamoDB store), from
//! `start` to the end of its one invocation (`run_once`: claim, steps,
//! finish), divided by `n`. The two take turns over several
//! rounds after a warm-up round (DynamoDB Local is a JVM: it speeds up as it
//! warms); the figure is the ratio of the medians. The store is wrapped in a
//! timing pass-through, which splits each step run into its store calls
//! (checkpoints, claim, finish, reads) on `info` lines.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::AttributeValue;
use durafn::ExecutionStatus;
use durafn::testing::TestRuntime;
use durafn_runtime::model::ExecutionId;
use durafn_runtime::store::Store;
use durafn_runtime::store::dynamodb::DynamoUrl;

use crate::Scale;
use crate::ddb_local::DynamoLocal;
use crate::measure::{Result, median, micros, millis, spread, warn_if_noisy};
use crate::report::{Figure, Report};
use crate::timed_store::{Tally, TimedStore};
use crate::workflows::{BodyCount, expected_output, sequential_steps};

/// The metric.
const STEP_VS_PUT: &str = "step_vs_ddb_put";

/// The metrics this group reports.
pub(crate) const METRICS: &[&str] = &[STEP_VS_PUT];

/// DESIGN.md §8: a step costs at most 1.2 raw conditional `PutItem`s.
const TARGET: f64 = 1.2;

struct Sizes {
    warmup_rounds: usize,
    rounds: usize,
    steps: u64,
}

impl Sizes {
    fn of(scale: Scale) -> Self {
        match scale {
            Scale::Full => Sizes {
                warmup_rounds: 3,
                rounds: 9,
                steps: 200,
            },
            Scale::Quick => Sizes {
                warmup_rounds: 1,
                rounds: 2,
                steps: 10,
            },
        }
    }
}

/// Measures and reports [`METRICS`].
pub(crate) async fn run(scale: Scale, report: &mut Report) {
    let sizes = Sizes::of(scale);
    let ddb = match tokio::task::spawn_blocking(DynamoLocal::find_or_start).await {
        Ok(Ok(ddb)) => ddb,
        Ok(Err(e)) => return report.error(STEP_VS_PUT, &e.to_string()),
        Err(e) => return report.error(STEP_VS_PUT, &format!("cannot start DynamoDB Local: {e}")),
    };
    match ddb.started_pid() {
        Some(pid) => report.note(
            STEP_VS_PUT,
            &format!(
                "started DynamoDB Local for this run: pid={pid} endpoint={}",
                ddb.endpoint
            ),
        ),
        None => report.note(STEP_VS_PUT, &format!("endpoint={}", ddb.endpoint)),
    }
    let table = format!("durafn-bench-{}", uuid::Uuid::new_v4().simple());
    let measured = measure(&ddb.endpoint, &table, &sizes, report).await;
    match measured {
        Ok(ratio) => report.figure(Figure {
            metric: STEP_VS_PUT,
            value: ratio,
            unit: "ratio",
            target: TARGET,
        }),
        Err(e) => report.error(STEP_VS_PUT, &e.to_string()),
    }
    let mut ddb = ddb;
    let _ = tokio::task::spawn_blocking(move || ddb.stop()).await;
}

/// Sets up the table and clients, measures, and deletes the table.
async fn measure(endpoint: &str, table: &str, sizes: &Sizes, report: &mut Report) -> Result<f64> {
    let url = format!("dynamodb://{table}?endpoint={endpoint}&region=us-east-1");
    let config = DynamoUrl::parse(&url)?
        .config_builder()
        .ok_or("the store URL has no endpoint")?
        .build();
    let client = Client::from_conf(config);
    let store = durafn_runtime::store::open_async(&url)
        .await
        .map_err(|e| format!("cannot open the DynamoDB store at {endpoint}: {e}"))?;
    let store = Arc::new(TimedStore::new(store));
    let result = rounds(&client, table, store, sizes, report).await;
    if let Err(e) = client.delete_table().table_name(table).send().await {
        report.note(
            STEP_VS_PUT,
            &format!(
                "could not delete the table {table}: {}",
                DisplayErrorContext(e)
            ),
        );
    }
    result
}

/// What one round times, `n` times over.
#[derive(Debug, Clone, Copy)]
enum Side {
    /// The floor: a raw conditional `PutItem`.
    Put,
    /// A durable step through the SDK: the figure.
    Step,
}

/// Per-round numbers, per step or per put, in µs. A step run splits into
/// its checkpoints, the finish (one meta update; the expiry sweep runs in a
/// later due-index scan), the rest of its store
/// calls (start, claim, reads) and the time outside the store (the SDK).
#[derive(Debug, Default)]
struct Samples {
    put_us: Vec<f64>,
    step_us: Vec<f64>,
    checkpoint_us: Vec<f64>,
    finish_us: Vec<f64>,
    setup_us: Vec<f64>,
    sdk_us: Vec<f64>,
    ratio: Vec<f64>,
    checkpoint_ratio: Vec<f64>,
    ratio_without_finish: Vec<f64>,
}

async fn rounds(
    client: &Client,
    table: &str,
    store: Arc<TimedStore>,
    sizes: &Sizes,
    report: &mut Report,
) -> Result<f64> {
    let n = sizes.steps;
    // Warm up both sides (connections, the JVM), and learn how large an
    // operation item is so the floor writes items of the same size.
    let mut item_bytes = None;
    let mut item_attributes = None;
    for _ in 0..sizes.warmup_rounds {
        let run = time_steps(&store, n).await?;
        let item = operation_item_size(client, table, &run.id).await?;
        item_bytes = item.map(|(bytes, _)| bytes);
        item_attributes = item.map(|(_, attributes)| attributes);
        time_puts(client, table, n, &filler(item_bytes))
            .await
            .map_err(|e| format!("the raw PutItem floor failed: {e}"))?;
    }
    let body = filler(item_bytes);
    report.info(
        STEP_VS_PUT,
        &[
            ("op_item_bytes", item_bytes.map_or(f64::NAN, |b| b as f64)),
            (
                "op_item_attributes",
                item_attributes.map_or(f64::NAN, |a| a as f64),
            ),
            ("floor_item_bytes", floor_item_bytes(&body) as f64),
            ("floor_item_attributes", 3.0),
        ],
    );
    let mut s = Samples::default();
    for round in 1..=sizes.rounds {
        let mut order = [Side::Put, Side::Step];
        if round % 2 == 0 {
            order.reverse();
        }
        let mut step = None;
        let mut put_us = 0.0;
        for side in order {
            match side {
                Side::Put => {
                    let t = time_puts(client, table, n, &body)
                        .await
                        .map_err(|e| format!("the raw PutItem floor failed: {e}"))?;
                    put_us = micros(t) / n as f64;
                }
                Side::Step => step = Some(time_steps(&store, n).await?),
            }
        }
        let step = step.ok_or("the step side did not run")?;
        let tally = |k: &str| step.tallies.get(k).copied().unwrap_or_default();
        let puts = tally("put_operation");
        let finish = tally("finish").total;
        let in_store: Duration = step.tallies.values().map(|t| t.total).sum();
        let per_step = |d: Duration| micros(d) / n as f64;
        let step_us = per_step(step.elapsed);
        let checkpoint_us = per_step(puts.total);
        let finish_us = per_step(finish);
        let setup_us = per_step(in_store.saturating_sub(puts.total + finish));
        let sdk_us = per_step(step.elapsed.saturating_sub(in_store));
        s.put_us.push(put_us);
        s.step_us.push(step_us);
        s.checkpoint_us.push(checkpoint_us);
        s.finish_us.push(finish_us);
        s.setup_us.push(setup_us);
        s.sdk_us.push(sdk_us);
        s.ratio.push(step_us / put_us);
        s.checkpoint_ratio.push(checkpoint_us / put_us);
        s.ratio_without_finish.push((step_us - finish_us) / put_us);
        report.info(
            STEP_VS_PUT,
            &[
                ("round", round as f64),
                ("n", n as f64),
                ("step_us", step_us),
                ("ddb_put_us", put_us),
                ("ratio", step_us / put_us),
                ("checkpoints", puts.calls as f64),
                ("checkpoint_us", checkpoint_us),
                ("finish_us", finish_us),
                ("setup_us", setup_us),
                ("sdk_us", sdk_us),
            ],
        );
        let calls: Vec<String> = step
            .tallies
            .iter()
            .map(|(k, t)| format!("{k}={}x/{:.3}ms", t.calls, millis(t.total)))
            .collect();
        report.note(
            STEP_VS_PUT,
            &format!("round={round} store_calls {}", calls.join(" ")),
        );
    }
    let m = |v: &[f64]| median(v).unwrap_or(f64::NAN);
    let (step, put) = (m(&s.step_us), m(&s.put_us));
    if !(step.is_finite() && put.is_finite()) {
        return Err("no rounds were run".into());
    }
    report.info(
        STEP_VS_PUT,
        &[
            ("median_step_us", step),
            ("median_ddb_put_us", put),
            ("median_paired_ratio", m(&s.ratio)),
            ("rounds", sizes.rounds as f64),
            ("floor_spread", spread(&s.put_us)),
        ],
    );
    // Where a step's time goes (medians over the rounds, µs per step), and
    // the ratio without the finish.
    report.info(
        STEP_VS_PUT,
        &[
            ("median_checkpoint_us", m(&s.checkpoint_us)),
            ("median_finish_us", m(&s.finish_us)),
            ("median_setup_us", m(&s.setup_us)),
            ("median_sdk_us", m(&s.sdk_us)),
            ("checkpoint_vs_put", m(&s.checkpoint_ratio)),
            ("ratio_without_finish", m(&s.ratio_without_finish)),
        ],
    );
    warn_if_noisy(report, STEP_VS_PUT, &s.put_us);
    Ok(step / put)
}

/// One timed execution.
struct StepRun {
    /// From `start` to the end of its invocation.
    elapsed: Duration,
    /// Its store calls.
    tallies: BTreeMap<&'static str, Tally>,
    /// The execution.
    id: ExecutionId,
}

/// Runs one execution of `n` sequential steps on the store.
async fn time_steps(store: &Arc<TimedStore>, n: u64) -> Result<StepRun> {
    let rt = TestRuntime::with_store(store.clone() as Arc<dyn Store>);
    let bodies = BodyCount::default();
    let handler = sequential_steps(bodies.clone());
    store.take();
    let started = Instant::now();
    let exec = rt.start(handler, n).await?;
    let invocation = exec.run_once().await?;
    let elapsed = started.elapsed();
    let tallies = store.take();
    invocation.ok_or("the execution was not due")?;
    let status = exec.status().await?;
    if status != ExecutionStatus::Succeeded {
        let why = exec
            .error()
            .await?
            .map(|e| e.to_string())
            .unwrap_or_default();
        return Err(format!("the workflow ended {status}, not SUCCEEDED: {why}").into());
    }
    let out: u64 = exec.result().await?;
    if out != expected_output(n) {
        return Err(format!(
            "the workflow returned {out}, expected {}",
            expected_output(n)
        )
        .into());
    }
    if bodies.get() != n {
        return Err(format!("{} step bodies ran, expected {n}", bodies.get()).into());
    }
    if exec.invocations() != 1 {
        return Err(format!(
            "the workflow took {} invocations, expected one",
            exec.invocations()
        )
        .into());
    }
    store.take();
    Ok(StepRun {
        elapsed,
        tallies,
        id: exec.id().clone(),
    })
}

/// `n` sequential conditional `PutItem`s of new items in one partition.
async fn time_puts(client: &Client, table: &str, n: u64, body: &str) -> Result<Duration> {
    let pk = format!("bench#{}", uuid::Uuid::new_v4().simple());
    let started = Instant::now();
    for i in 0..n {
        client
            .put_item()
            .table_name(table)
            .item("pk", AttributeValue::S(pk.clone()))
            .item("sk", AttributeValue::S(format!("put#{i:06}")))
            .item("body", AttributeValue::S(body.to_string()))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(|e| DisplayErrorContext(e).to_string())?;
    }
    Ok(started.elapsed())
}

/// The `body` of a floor item, sized so the item weighs `item_bytes`
/// (about 230 bytes when the operation item could not be read).
fn filler(item_bytes: Option<usize>) -> String {
    let overhead = floor_item_bytes("");
    "x".repeat(item_bytes.unwrap_or(230).saturating_sub(overhead).max(1))
}

/// The DynamoDB size of a floor item with `body`.
fn floor_item_bytes(body: &str) -> usize {
    // pk = "bench#" + 32 hex digits, sk = "put#NNNNNN".
    "pk".len() + 38 + "sk".len() + 10 + "body".len() + body.len()
}

/// The size (bytes, attributes) of the store's item for the first operation
/// of `id`, read back from the table (`None` if the store's item layout has
/// changed).
async fn operation_item_size(
    client: &Client,
    table: &str,
    id: &ExecutionId,
) -> Result<Option<(usize, usize)>> {
    let out = client
        .get_item()
        .table_name(table)
        .key("pk", AttributeValue::S(format!("x#{id}")))
        .key("sk", AttributeValue::S("op#1".into()))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| DisplayErrorContext(e).to_string())?;
    Ok(out.item.as_ref().map(|item| (item_bytes(item), item.len())))
}

/// An item's size as DynamoDB counts it (attribute names plus values;
/// numbers approximated).
fn item_bytes(item: &HashMap<String, AttributeValue>) -> usize {
    item.iter().map(|(k, v)| k.len() + value_bytes(v)).sum()
}

fn value_bytes(v: &AttributeValue) -> usize {
    match v {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => n.len().div_ceil(2) + 1,
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::M(m) => {
            3 + m
                .iter()
                .map(|(k, v)| k.len() + 1 + value_bytes(v))
                .sum::<usize>()
        }
        AttributeValue::L(l) => 3 + l.iter().map(|v| 1 + value_bytes(v)).sum::<usize>(),
        AttributeValue::Ss(v) => v.iter().map(String::len).sum(),
        AttributeValue::Ns(v) => v.iter().map(|n| n.len().div_ceil(2) + 1).sum(),
        AttributeValue::Bs(v) => v.iter().map(|b| b.as_ref().len()).sum(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_item_has_the_size_asked_for() {
        assert_eq!(floor_item_bytes(&filler(Some(300))), 300);
        assert_eq!(floor_item_bytes(&filler(None)), 230);
    }
}
