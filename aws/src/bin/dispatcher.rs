//! `durafn-dispatcher`: the dispatcher as a Lambda function (see
//! `durafn_aws::dispatcher`). Environment: `DURAFN_STORE`,
//! `DURAFN_WAKE_QUEUE_URL` (required), `DURAFN_WAKE_DLQ_URL`,
//! `DURAFN_FUNCTION_TIMEOUT`, `DURAFN_SWEEP_AHEAD`, `DURAFN_BLOBS`.

// The SDK clients and the store make a deep future; its layout needs more room.
#![recursion_limit = "256"]

use std::sync::Arc;

use durafn_aws::dispatcher::DispatcherFunction;
use durafn_aws::{LambdaInvoker, open_store, settings_from_env};
use durafn_runtime::clock::SystemClock;
use durafn_runtime::dispatch::wake::{WakeQueue, sqs_client};
use durafn_runtime::store::OffloadingStore;
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .without_time()
        .init();
    let (store, queue) = open_store().await?;
    let Some(queue) = queue else {
        return Err("DURAFN_WAKE_QUEUE_URL is not set: the dispatcher needs its wake queue".into());
    };
    let dead_letters = match std::env::var("DURAFN_WAKE_DLQ_URL") {
        Ok(url) if !url.trim().is_empty() => Some(WakeQueue::new(sqs_client().await, url)),
        _ => None,
    };
    // `DURAFN_BLOBS`: the sweep also expires payload blobs (docs/payloads.md).
    let blobs = match std::env::var("DURAFN_BLOBS") {
        Ok(url) if !url.trim().is_empty() => Some(durafn_runtime::store::blob::open(url.trim())?),
        _ => None,
    };
    let mut function = DispatcherFunction::new(
        store.clone(),
        Arc::new(SystemClock),
        Arc::new(LambdaInvoker::from_env().await),
        queue,
        dead_letters,
        settings_from_env()?,
    );
    if let Some(blobs) = blobs {
        function = function.with_blob_gc(Arc::new(OffloadingStore::new(store, blobs)));
    }
    let function = Arc::new(function);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let function = function.clone();
        async move {
            function
                .handle(event.payload)
                .await
                .map_err(|e| lambda_runtime::Error::from(e.to_string()))
        }
    }))
    .await
}
