//! The `durafn` command: the local emulator (`durafn dev`) and the
//! self-hosted server (`durafn server`).
//!
//! - [`template`]: reads `template.yaml` (AWS SAM): functions, events, table.
//! - [`lambda_api`]: the Lambda Runtime API and Invoke API, and the handler
//!   processes behind them.
//! - [`api`]: the REST API for executions.
//! - [`http_routes`]: the template's HttpApi routes, invoking functions with API Gateway events.
//! - [`ui`]: the visibility UI.
//! - [`server`]: assembles store, dispatcher and APIs on one listener.
//! - [`cli`]: the command line.
//! - [`replay_check`]: `durafn export` and `durafn replay-check`.
//! - [`scaffold`]: `durafn new`, a new project from templates.

// Exported: what the `durafn` binary (`cli`), the AWS control function
// (`api`, `ui`), the end-to-end tests and the router tests use. The rest is
// private to the crate.

// Handlers answer early with a full `Response` as their error; that is axum's idiom.
#![allow(clippy::result_large_err)]

pub mod api;
pub mod auth;
mod cargo_build;
pub mod cli;
pub mod client;
mod http_routes;
pub mod lambda_api;
mod logs;
mod metrics;
mod output;
mod payloads;
pub mod platform;
pub mod queues;
mod replay_check;
pub mod routes;
mod scaffold;
pub mod schedules;
pub mod server;
pub mod store_api;
pub mod template;
pub mod ui;
