//! `cost_per_1000_wf10_usd`: what 1,000 ten-step workflows cost at AWS
//! prices (`durafn_runtime::cost::prices`), from the cost the emulator
//! reports for the sequential `wf10` runs of the emulator group: each
//! execution's store calls (counted where the store sends them), Lambda
//! requests and GB-s at the function's memory, summed from its invocation
//! records by `GET /v1/executions/{id}`. The figure is the mean over up to
//! [`SAMPLE`] of them, times 1,000; the info line splits it.

use durafn_emulator::client::ApiClient;

use crate::dev_server::expect_status;
use crate::measure::Result;
use crate::report::{Figure, Report};

/// The figure.
pub(crate) const COST: &str = "cost_per_1000_wf10_usd";

/// How many finished workflows are described.
const SAMPLE: usize = 50;

/// docs/deploy-aws.md's reckoning for 1,000 ten-step workflows (≈ $1.57
/// per 100,000), as the bar to stay under.
const TARGET: f64 = 0.0157;

/// Describes the newest finished `function` executions and reports the cost.
pub(crate) async fn report_cost(client: &ApiClient, function: &str, report: &mut Report) {
    match measure(client, function).await {
        Ok((per_1000, fields)) => {
            report.info(COST, &fields);
            report.figure(Figure {
                metric: COST,
                value: per_1000,
                unit: "usd",
                target: TARGET,
            });
        }
        Err(e) => report.error(COST, &e.to_string()),
    }
}

async fn measure(client: &ApiClient, function: &str) -> Result<(f64, Vec<(&'static str, f64)>)> {
    let path = format!("/v1/executions?function={function}&status=SUCCEEDED&limit={SAMPLE}");
    let list = expect_status(
        "listing wf10",
        client.call("GET", &path, None).await?,
        &[200],
    )?;
    let ids: Vec<String> = list["executions"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e["id"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    if ids.is_empty() {
        return Err("no finished wf10 workflows to describe".into());
    }
    let mut sums = [0.0f64; 8];
    for id in &ids {
        let path = format!("/v1/executions/{id}");
        let v = expect_status(
            "describing wf10",
            client.call("GET", &path, None).await?,
            &[200],
        )?;
        let c = &v["cost"];
        let f = |v: &serde_json::Value| v.as_f64().unwrap_or(0.0);
        let parts = [
            f(&c["estimate_usd"]["total_usd"]),
            f(&c["estimate_usd"]["dynamodb_writes_usd"])
                + f(&c["estimate_usd"]["dynamodb_reads_usd"]),
            f(&c["estimate_usd"]["lambda_requests_usd"])
                + f(&c["estimate_usd"]["lambda_duration_usd"]),
            f(&c["store"]["writes"]),
            f(&c["store"]["write_units"]),
            f(&c["store"]["reads"]),
            f(&c["store"]["read_units"]),
            f(&c["invocations"]),
        ];
        for (s, p) in sums.iter_mut().zip(parts) {
            *s += p;
        }
    }
    let n = ids.len() as f64;
    let [total, ddb, lambda, writes, wru, reads, rru, invocations] = sums.map(|s| s / n);
    Ok((
        total * 1000.0,
        vec![
            ("workflows_described", n),
            ("dynamodb_usd_per_1000", ddb * 1000.0),
            ("lambda_usd_per_1000", lambda * 1000.0),
            ("writes_per_wf", writes),
            ("wru_per_wf", wru),
            ("reads_per_wf", reads),
            ("rru_per_wf", rru),
            ("invocations_per_wf", invocations),
        ],
    ))
}
