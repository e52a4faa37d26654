//! Benchmark handler `wf10`: a durable workflow of ten sequential small
//! steps, run by `durafn dev` as a real handler process.
//!
//! Each step returns its position and the wall-clock time (µs since the Unix
//! epoch) its body ran. The output carries the sum of the positions (55, a
//! check) and the times of the first and last step bodies, so the benchmark
//! can split a workflow's end-to-end latency into "until the handler ran",
//! "the steps" and "after the last step".

use std::time::{SystemTime, UNIX_EPOCH};

use durafn::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// How many steps the workflow runs.
const STEPS: u64 = 10;

/// What each step returns.
#[derive(Debug, Serialize, Deserialize)]
struct Mark {
    seq: u64,
    at_us: u64,
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

async fn workflow(ctx: DurableContext, _input: Value) -> Result<Value, DurableError> {
    let mut sum = 0;
    let mut first_us = 0;
    let mut last_us = 0;
    for seq in 1..=STEPS {
        let mark: Mark = ctx
            .step("work", move |_| async move {
                Ok::<_, DurableError>(Mark {
                    seq,
                    at_us: now_us(),
                })
            })
            .await?;
        sum += mark.seq;
        if seq == 1 {
            first_us = mark.at_us;
        }
        last_us = mark.at_us;
    }
    Ok(json!({ "sum": sum, "first_us": first_us, "last_us": last_us }))
}

#[tokio::main]
async fn main() -> Result<(), durafn::Error> {
    durafn::run(durafn::handler(workflow)).await
}
