//! Local SQS queues for the template's `SQS` events (being written).

use axum::Router;

use crate::server::Platform;

/// Starts the template's queues; returns their routes (the SQS JSON protocol).
pub fn start(_platform: &Platform) -> anyhow::Result<Router> {
    Ok(Router::new())
}
