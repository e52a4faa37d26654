//! The runtime's error type.

use thiserror::Error;

/// A `Result` with [`StoreError`] as its default error.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// What can go wrong talking to a store.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The named execution does not exist.
    #[error("execution {0:?} not found")]
    NotFound(String),
    /// An execution with this name exists with a different input or function.
    #[error("execution {id:?} already exists with a different {what}; start it under another name")]
    Conflict {
        /// The execution id.
        id: String,
        /// What differs (`input` or `function`).
        what: &'static str,
    },
    /// A payload is larger than any record may carry.
    #[error(
        "{what} is {size} bytes, over the {limit}-byte limit; {}",
        crate::model::payload_limit_hint(*.limit)
    )]
    PayloadTooLarge {
        /// What the payload is (e.g. `step "charge" result`).
        what: String,
        /// Its serialized size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A request that can never succeed (bad id, bad URL, ...).
    #[error("{0}")]
    Invalid(String),
    /// A failure that may go away if retried (throttling, timeouts, 5xx, busy database).
    #[error("transient store error: {0}")]
    Transient(String),
    /// Any other backend failure.
    #[error("store error: {0}")]
    Backend(String),
}

impl StoreError {
    /// True for errors worth retrying with backoff.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Transient(_))
    }
}
