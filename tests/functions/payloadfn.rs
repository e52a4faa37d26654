//! A handler binary for the large-payload end-to-end test
//! (`tests/payloads.rs`): a step returns `result_bytes` bytes, the handler
//! sleeps (so the next invocation replays that result from the journal),
//! and the output carries the result and the size of the input's `pad`.

use durafn::prelude::*;
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Debug, Deserialize)]
struct Input {
    result_bytes: usize,
    #[serde(default)]
    pad: String,
}

async fn workflow(ctx: DurableContext, input: Input) -> Result<Value, DurableError> {
    let n = input.result_bytes;
    let produced: String = ctx
        .step("produce", |_| async move {
            Ok::<_, DurableError>("p".repeat(n))
        })
        .await?;
    ctx.sleep("settle", Duration::from_secs(1)).await?;
    let len = produced.len();
    let measured: usize = ctx
        .step("measure", |_| async move { Ok::<_, DurableError>(len) })
        .await?;
    Ok(json!({
        "result": produced,
        "measured": measured,
        "pad_len": input.pad.len(),
    }))
}

#[tokio::main]
async fn main() -> Result<(), durafn::Error> {
    durafn::run(durafn::handler(workflow)).await
}
