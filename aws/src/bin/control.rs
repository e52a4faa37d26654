//! `durafn-control`: the REST API and UI of `durafn dev` on Lambda, behind
//! an HttpApi (see `durafn_aws::control`). Environment: `DURAFN_STORE`,
//! `DURAFN_API_TOKEN` (required), `DURAFN_FUNCTIONS`, `DURAFN_WAKE_QUEUE_URL`,
//! `DURAFN_BLOBS`.

use durafn_aws::control::{functions_from, router, token_from};
use durafn_aws::open_store;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .without_time()
        .init();
    let token = token_from(std::env::var("DURAFN_API_TOKEN").ok())?;
    let functions = functions_from(std::env::var("DURAFN_FUNCTIONS").ok());
    let (store, _queue) = open_store().await?;
    // `DURAFN_BLOBS` (s3://BUCKET/PREFIX): large payloads offloaded and
    // resolved, as the handlers do (docs/payloads.md).
    let store = durafn_runtime::store::with_blobs_from_env(store)?;
    lambda_http::run(router(store, functions, token)).await
}
