//! The media-sync workflow as a function binary: runs on AWS Lambda (behind
//! an SQS event source) or under `durafn dev`.

#[tokio::main]
async fn main() -> Result<(), durafn::Error> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .without_time()
        .init();
    durafn::run(durafn::handler(media_sync_example::workflow)).await
}
