//! The template's `Schedule` / `ScheduleV2` events (being written).

use axum::Router;

use crate::server::Platform;

/// Starts the scheduler; returns its routes (`/v1/schedules`).
pub fn start(_platform: &Platform) -> anyhow::Result<Router> {
    Ok(Router::new())
}
