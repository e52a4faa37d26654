//! The backup-verify workflow as a function binary: runs on AWS Lambda (from
//! its EventBridge schedule) or under `durafn dev` (from the local scheduler).

#[tokio::main]
async fn main() -> Result<(), durafn::Error> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .without_time()
        .init();
    durafn::run(durafn::handler(backup_verify_example::workflow)).await
}
