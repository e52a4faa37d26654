//! # Durafn: durable functions in plain async Rust
//!
//! A workflow handler is an ordinary `async fn`. Every durable operation it
//! performs — a [`step`](DurableContext::step), a [`sleep`](DurableContext::sleep)
//! — is checkpointed. When the handler must wait (a timer, a retry backoff) or
//! its process crashes, the invocation ends; the execution is invoked again
//! later, the handler *replays* its journal — completed operations return
//! their recorded results without running again — and carries on.
//!
//! ```no_run
//! use durafn::prelude::*;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Order { order_id: String, amount_cents: u64 }
//!
//! async fn order(ctx: DurableContext, order: Order) -> Result<String, DurableError> {
//!     // Runs once; its result is recorded and returned on every replay.
//!     let charge: String = ctx
//!         .step("charge", |s| async move {
//!             Ok::<_, DurableError>(format!("ch-{}-{}", s.execution_id(), s.op_id()))
//!         })
//!         .await?;
//!     // No compute while waiting: the invocation suspends and is re-invoked.
//!     ctx.sleep("cool-off", Duration::from_secs(10)).await?;
//!     // Failures are retried with backoff, by suspending, never by sleeping.
//!     ctx.step("reserve", |_| async { Ok::<_, DurableError>(()) })
//!         .retry(RetryPolicy::exponential().max_attempts(5))
//!         .await?;
//!     Ok(charge)
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), durafn::Error> {
//!     durafn::run(durafn::handler(order)).await
//! }
//! ```
//!
//! ## Rules of replay
//! - Start operations in the same order on every run. Operation ids are
//!   assigned when an operation is *created* (`ctx.step(..)` is called), so
//!   creating several and awaiting them together (`futures::join!`) is fine;
//!   `tokio::select!` over durable futures is not supported.
//! - Do side effects inside steps. Code between operations runs again on every
//!   replay.
//! - If the order changes under a running execution, the next invocation fails
//!   with a `NonDeterministic` error naming the operation id, what the journal
//!   recorded and what the code did; the execution becomes `BLOCKED` (not lost)
//!   and can be resumed after a fixed deploy.
//!
//! ## Errors and retries
//! Any `std::error::Error` converts into [`DurableError`] with `?` and is
//! retried per the step's [`RetryPolicy`] (default: 3 attempts, exponential
//! backoff from 1 s, full jitter). [`DurableError::terminal`] stops retries.
//! A step that fails for good records its error, and every replay raises the
//! same [`DurableError::StepFailed`].
//!
//! ## Testing
//! With the `testing` feature, [`testing::TestRuntime`] runs executions in
//! process on a temporary SQLite store with a virtual clock; see its docs.

// `DurableError` carries the recorded error object by value: errors are the
// cold path, and boxing would only move the allocation.
#![allow(clippy::result_large_err)]

mod capture;
mod codec;
pub mod context;
mod error;
mod handler;
mod history;
pub mod invocation;
pub mod lambda;
pub mod replay;
pub mod replay_check;
pub mod retry;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;

pub use context::{
    BatchItem, BatchResult, Branch, Callback, Condition, DurableContext, EventWait, Invoke,
    ReplayLogger, Sleep, Step, StepContext, StepSemantics, WaitStrategy,
};
pub use durafn_runtime::model::{ErrorObject, ExecutionStatus, Timestamp};
pub use error::{DurableError, Error};
pub use handler::{Handler, handler};
pub use lambda::run;
pub use replay::batch::{Completion, CompletionReason};
pub use retry::RetryPolicy;

/// Everything a handler author needs.
pub mod prelude {
    pub use crate::{
        BatchItem, BatchResult, Branch, Completion, CompletionReason, Condition, DurableContext,
        DurableError, ErrorObject, Handler, RetryPolicy, StepContext, StepSemantics, Timestamp,
        WaitStrategy, handler,
    };
    pub use durafn_runtime::model::ExecutionStatus as Status;
    pub use std::time::Duration;
}
