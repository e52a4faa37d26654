//! `forkfn`, second version (see `forkfn_v1.rs`):
//! - `wait`: a new step `audit` before the wait, guarded by `ctx.patched`, so
//!   executions already past that point keep replaying;
//! - `legacy`: step `legacy` renamed `legacy-v2`, unguarded: executions
//!   waiting in it would block;
//! - `fail`, `event`: `reserve`'s bug fixed.

use std::time::{SystemTime, UNIX_EPOCH};

use durafn::prelude::*;
use serde_json::{Value, json};

fn stamp(what: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{what}-{}-{nanos}", std::process::id())
}

async fn workflow(ctx: DurableContext, input: Value) -> Result<Value, DurableError> {
    let mode = input["mode"].as_str().unwrap_or("wait").to_string();
    let charged: String = ctx
        .step("charge", |_| async {
            Ok::<_, DurableError>(stamp("charge"))
        })
        .await?;
    let mut reserved = Value::Null;
    let mut go = Value::Null;
    match mode.as_str() {
        "legacy" => {
            ctx.step("legacy-v2", |_| async { Ok::<_, DurableError>(()) })
                .await?;
            let _: Value = ctx.wait_for_event("go").await?;
        }
        "fail" | "event" => {
            if mode == "event" {
                go = ctx.wait_for_event("go").await?;
            }
            reserved = ctx
                .step("reserve", |_| async {
                    Ok::<_, DurableError>(json!(stamp("reserve")))
                })
                .await?;
        }
        _ => {
            if ctx.patched("audit").await? {
                ctx.step("audit", |_| async { Ok::<_, DurableError>(()) })
                    .await?;
            }
            let _: Value = ctx.wait_for_event("go").await?;
        }
    }
    Ok(json!({ "version": 2, "charged": charged, "reserved": reserved, "go": go }))
}

#[tokio::main]
async fn main() -> Result<(), durafn::Error> {
    durafn::run(durafn::handler(workflow)).await
}
