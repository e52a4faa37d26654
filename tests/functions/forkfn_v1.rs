//! `forkfn`, first version: the old code of the replay-check and reset tests
//! (its pair is `forkfn_v2.rs`). Input `{"mode": M}`:
//! - `wait`: charge, then wait for event `go`;
//! - `legacy`: charge, step `legacy`, then wait for event `go`;
//! - `fail`: charge, then step `reserve`, which has a bug here: it fails for good;
//! - `event`: charge, wait for event `go`, then the same `reserve`.

use std::time::{SystemTime, UNIX_EPOCH};

use durafn::prelude::*;
use serde_json::{Value, json};

/// A value no second run of a step body gives: a re-run charge shows.
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
    let mut go = Value::Null;
    match mode.as_str() {
        "legacy" => {
            ctx.step("legacy", |_| async { Ok::<_, DurableError>(()) })
                .await?;
            let _: Value = ctx.wait_for_event("go").await?;
        }
        "fail" | "event" => {
            if mode == "event" {
                go = ctx.wait_for_event("go").await?;
            }
            let _: Value = ctx
                .step("reserve", |_| async {
                    Err::<Value, _>(DurableError::terminal(DurableError::new(
                        "BugInV1",
                        "reserve divides by zero",
                    )))
                })
                .await?;
        }
        _ => {
            let _: Value = ctx.wait_for_event("go").await?;
        }
    }
    Ok(json!({ "version": 1, "charged": charged, "go": go }))
}

#[tokio::main]
async fn main() -> Result<(), durafn::Error> {
    durafn::run(durafn::handler(workflow)).await
}
