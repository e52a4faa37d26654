//! Benchmark handler `resume-probe`: waits for the event `go`, then records
//! in a step the wall-clock time (µs since the Unix epoch) at which it was
//! running again. The benchmark notes when it sent the event; the difference
//! is the resume latency.

use std::time::{SystemTime, UNIX_EPOCH};

use durafn::prelude::*;
use serde_json::{Value, json};

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

async fn workflow(ctx: DurableContext, _input: Value) -> Result<Value, DurableError> {
    let _event: Value = ctx.wait_for_event("go").await?;
    let resumed_at_us: u64 = ctx
        .step("resumed", |_| async { Ok::<_, DurableError>(now_us()) })
        .await?;
    Ok(json!({ "resumed_at_us": resumed_at_us }))
}

#[tokio::main]
async fn main() -> Result<(), durafn::Error> {
    durafn::run(durafn::handler(workflow)).await
}
