//! Durafn's platform core: the data model, the stores, dispatch and triggers.
//!
//! Handler authors use the `durafn` crate; this one is for the SDK, the
//! emulator and anyone building another runtime on the same table.
//!
//! - [`model`]: executions, operations, statuses, payload limits.
//! - [`store`]: the [`Store`](store::Store) trait and its backends.
//! - [`clock`]: injected time.
//! - [`dispatch`]: the dispatcher and the resume request it sends to a function.
//! - [`trigger`]: callbacks (tokens, completion).
//! - [`cost`]: store usage per execution and the AWS price table.

pub mod clock;
pub mod cost;
pub mod dispatch;
mod error;
pub mod model;
pub mod store;
pub mod trigger;

pub use error::{Result, StoreError};
