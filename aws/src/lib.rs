//! Durafn's own functions on AWS Lambda.
//!
//! On AWS nothing runs all the time, so the two parts of the platform that do
//! under `durafn dev` become Lambda functions of the stack (`template.yaml`):
//!
//! - [`dispatcher`]: `durafn-dispatcher`, fed by the SQS wake queue and a
//!   one-minute sweep; claims due executions and invokes their function
//!   asynchronously with [`LambdaInvoker`].
//! - [`control`]: `durafn-control`, the REST API and UI of `durafn dev` (the
//!   same router) behind an HttpApi, authenticated with a bearer token.
//!
//! Handlers tell the dispatcher what became due through the wake queue: the
//! SDK wraps its store in a [`WakingStore`](durafn_runtime::store::WakingStore)
//! when `DURAFN_WAKE_QUEUE_URL` is set, and so does the control function.
//! `durafn dev --aws` runs both functions as handler processes to test this
//! path without AWS.

pub mod control;
pub mod dispatcher;
mod env;
mod invoker;

pub use env::{open_store, settings_from_env};
pub use invoker::{LambdaInvoker, qualifier};
