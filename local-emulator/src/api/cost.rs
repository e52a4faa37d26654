//! The `cost` field of `GET /v1/executions/{id}`: what the execution's
//! invocations sent to the store, summed from their history records
//! (`durafn_runtime::cost`), with the AWS price estimate and the price table
//! it used. See `docs/cost.md`.

use durafn_runtime::cost::{self, ExecutionCost, prices};
use durafn_runtime::model::HistoryEntry;
use serde_json::{Value, json};

/// The cost of an execution with these history records, as shown.
pub fn body(entries: &[HistoryEntry]) -> Value {
    render(&cost::of_history(entries))
}

fn render(c: &ExecutionCost) -> Value {
    json!({
        "store": c.store,
        "invocations": c.invocations,
        "invocations_uncounted": c.invocations_uncounted,
        "lambda_gb_seconds": c.gb_seconds,
        "estimate_usd": c.estimate,
        "prices": {
            "as_of": prices::AS_OF,
            "region": prices::REGION,
            "dynamodb_wru_per_million_usd": prices::DYNAMODB_WRU_PER_MILLION,
            "dynamodb_rru_per_million_usd": prices::DYNAMODB_RRU_PER_MILLION,
            "lambda_requests_per_million_usd": prices::LAMBDA_REQUESTS_PER_MILLION,
            "lambda_gb_second_usd": prices::LAMBDA_GB_SECOND,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use durafn_runtime::cost::StoreUsage;
    use durafn_runtime::model::{InvocationOutcome, InvocationRecord, Timestamp};

    fn inv(epoch: u64, usage: Option<StoreUsage>) -> HistoryEntry {
        HistoryEntry::Invocation(InvocationRecord {
            epoch,
            started_at: Timestamp(1_000),
            ended_at: usage.map(|_| Timestamp(1_500)),
            outcome: usage.map(|_| InvocationOutcome::Suspended),
            status: None,
            wake_at: None,
            deadline: None,
            process: None,
            error: None,
            expires_at: None,
            usage,
            memory_mb: Some(2048),
        })
    }

    #[test]
    fn invocations_are_summed_and_the_unrecorded_counted_apart() {
        let u = StoreUsage {
            reads: 1,
            writes: 3,
            read_bytes: 100,
            write_bytes: 900,
            read_units: 1,
            write_units: 3,
        };
        // Epoch 1 is no longer kept; epoch 3 crashed.
        let v = body(&[inv(2, Some(u)), inv(3, None), inv(4, Some(u))]);
        assert_eq!(v["store"]["writes"], 6);
        assert_eq!(v["store"]["write_units"], 6);
        assert_eq!(v["invocations"], 2);
        assert_eq!(v["invocations_uncounted"], 2);
        // 2 × 0.5 s × 2 GB
        assert_eq!(v["lambda_gb_seconds"], 2.0);
        let total = v["estimate_usd"]["total_usd"].as_f64().unwrap_or_default();
        let expect = 6.0 * 0.625e-6 + 2.0 * 0.125e-6 + 2.0 * 0.2e-6 + 2.0 * 0.000_013_333_4;
        assert!((total - expect).abs() < 1e-12, "{total} vs {expect}");
        assert_eq!(v["prices"]["region"], "us-east-1");
    }
}
