//! The telemetry tests' handler binary: `otel-parent` invokes `otel-child`
//! (the function name the emulator gives the process picks the workflow).
//! Each step logs one line through `ctx.logger()` and one `tracing` event.

use durafn::prelude::*;
use serde_json::{Value, json};

async fn parent(ctx: DurableContext, input: Value) -> Result<Value, DurableError> {
    ctx.logger().info("parent starting");
    let prepared: String = ctx
        .step("prepare", |s| async move {
            tracing::info!("preparing in attempt {}", s.attempt());
            Ok::<_, DurableError>(format!("prepared-{}", s.execution_id()))
        })
        .await?;
    let child: Value = ctx
        .invoke("child", "otel-child", json!({ "from": prepared }))
        .await?;
    let done: String = ctx
        .step("finish", |_| async {
            tracing::info!("finishing");
            Ok::<_, DurableError>("finished".to_string())
        })
        .await?;
    ctx.logger().info("parent done");
    Ok(json!({ "input": input, "child": child, "done": done }))
}

async fn child(ctx: DurableContext, input: Value) -> Result<Value, DurableError> {
    let worked: String = ctx
        .step("work", |_| async {
            tracing::info!("working");
            Ok::<_, DurableError>("worked".to_string())
        })
        .await?;
    Ok(json!({ "input": input, "worked": worked }))
}

/// Four steps, each separated by a 1 s sleep: the three invocations after
/// the first replay the journal; each step logs one line, and so does the
/// code around them (which runs again on every replay).
async fn logger(ctx: DurableContext, _input: Value) -> Result<Value, DurableError> {
    tracing::info!(replaying = ctx.is_replaying(), "handler entered");
    for n in 1..=4 {
        let line = format!("step {n} ran");
        ctx.step(&format!("step-{n}"), |_| async move {
            tracing::info!("{line}");
            Ok::<_, DurableError>(n)
        })
        .await?;
        ctx.logger().info(format!("after step {n}"));
        if n < 4 {
            ctx.sleep(&format!("pause-{n}"), Duration::from_secs(1))
                .await?;
        }
    }
    Ok(json!("logged"))
}

#[tokio::main]
async fn main() -> Result<(), durafn::Error> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match std::env::var("AWS_LAMBDA_FUNCTION_NAME").as_deref() {
        Ok("otel-child") => durafn::run(durafn::handler(child)).await,
        Ok("otel-logger") => durafn::run(durafn::handler(logger)).await,
        _ => durafn::run(durafn::handler(parent)).await,
    }
}
