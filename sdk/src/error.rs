//! Errors: [`DurableError`] for handlers and steps, [`Error`] for the runtime.

use std::fmt;

use durafn_runtime::StoreError;
use durafn_runtime::model::ErrorObject;

use crate::replay::NonDeterministic;

/// The error type of handlers and step bodies.
///
/// Any `std::error::Error` converts into it with `?` and is **retryable**;
/// wrap an error in [`DurableError::terminal`] to stop retries. A step that
/// fails for good returns [`DurableError::StepFailed`], recorded in the journal
/// and raised again identically on every replay.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum DurableError {
    /// An error from user code.
    User {
        /// What failed.
        error: ErrorObject,
        /// True if retrying cannot help.
        terminal: bool,
    },
    /// A step failed for good (retries exhausted, or a terminal error).
    StepFailed {
        /// The operation id.
        op_id: String,
        /// The step's name.
        name: String,
        /// How many attempts ran.
        attempts: u32,
        /// The last attempt's error.
        error: ErrorObject,
    },
    /// A callback, event or invoked execution did not arrive in time.
    Timeout {
        /// The operation id.
        op_id: String,
        /// The operation's name.
        name: String,
    },
    /// A callback with a heartbeat timeout went that long without a heartbeat
    /// (or a completion): distinct from [`DurableError::Timeout`], its overall
    /// timeout.
    HeartbeatTimeout {
        /// The operation id.
        op_id: String,
        /// The callback's name.
        name: String,
    },
    /// A callback was completed with a failure.
    CallbackFailed {
        /// The operation id.
        op_id: String,
        /// The callback's name.
        name: String,
        /// The error it was failed with.
        error: ErrorObject,
    },
    /// A child context (or an invoked execution) failed.
    ChildFailed {
        /// The operation id.
        op_id: String,
        /// The child's name.
        name: String,
        /// Its error.
        error: ErrorObject,
    },
    /// The handler asked to continue as a new execution with this input.
    #[doc(hidden)]
    ContinueAsNew(serde_json::Value),
    /// A value could not be (de)serialized, or is too large to record.
    Payload(String),
    /// The handler changed the order of its operations (the execution is BLOCKED).
    NonDeterministic(NonDeterministic),
    /// A durable operation was called with arguments it cannot accept.
    Invalid(String),
}

impl DurableError {
    /// A retryable error with a message.
    pub fn msg(message: impl Into<String>) -> Self {
        DurableError::User {
            error: ErrorObject::new("Error", message),
            terminal: false,
        }
    }

    /// A retryable error with a type name and a message.
    pub fn new(error_type: impl Into<String>, message: impl Into<String>) -> Self {
        DurableError::User {
            error: ErrorObject::new(error_type, message),
            terminal: false,
        }
    }

    /// Marks an error terminal: a step returning it is not retried.
    pub fn terminal(e: impl Into<DurableError>) -> Self {
        match e.into() {
            DurableError::User { error, .. } => DurableError::User {
                error,
                terminal: true,
            },
            other => other,
        }
    }

    /// True if retrying cannot help.
    pub fn is_terminal(&self) -> bool {
        match self {
            DurableError::User { terminal, .. } => *terminal,
            DurableError::StepFailed { .. }
            | DurableError::Timeout { .. }
            | DurableError::HeartbeatTimeout { .. }
            | DurableError::CallbackFailed { .. }
            | DurableError::ChildFailed { .. }
            | DurableError::ContinueAsNew(_)
            | DurableError::Payload(_)
            | DurableError::NonDeterministic(_)
            | DurableError::Invalid(_) => true,
        }
    }

    /// The error as it is recorded in the journal.
    pub fn to_error_object(&self) -> ErrorObject {
        match self {
            DurableError::User { error, .. } => error.clone(),
            DurableError::StepFailed {
                name,
                attempts,
                error,
                op_id,
            } => ErrorObject {
                error_type: error.error_type.clone(),
                message: format!(
                    "step {name:?} failed after {attempts} attempt{}: {}",
                    if *attempts == 1 { "" } else { "s" },
                    error.message
                ),
                data: Some(serde_json::json!({ "op_id": op_id, "step": name, "cause": error })),
            },
            DurableError::Timeout { op_id, name } => ErrorObject {
                error_type: "Timeout".into(),
                message: format!("{name:?} timed out"),
                data: Some(serde_json::json!({ "op_id": op_id })),
            },
            DurableError::HeartbeatTimeout { op_id, name } => ErrorObject {
                error_type: "HeartbeatTimeout".into(),
                message: format!("callback {name:?} timed out waiting for a heartbeat"),
                data: Some(serde_json::json!({ "op_id": op_id })),
            },
            DurableError::CallbackFailed { op_id, name, error } => ErrorObject {
                error_type: error.error_type.clone(),
                message: format!("callback {name:?} was failed: {}", error.message),
                data: Some(serde_json::json!({ "op_id": op_id, "cause": error })),
            },
            DurableError::ChildFailed { op_id, name, error } => ErrorObject {
                error_type: error.error_type.clone(),
                message: format!("{name:?} failed: {}", error.message),
                data: Some(serde_json::json!({ "op_id": op_id, "cause": error })),
            },
            DurableError::ContinueAsNew(_) => {
                ErrorObject::new("ContinueAsNew", "the execution continued as a new one")
            }
            DurableError::Payload(m) => ErrorObject::new("PayloadError", m.clone()),
            DurableError::NonDeterministic(nd) => ErrorObject {
                error_type: "NonDeterministic".into(),
                message: nd.to_string(),
                data: Some(nd.details()),
            },
            DurableError::Invalid(m) => ErrorObject::new("InvalidArgument", m.clone()),
        }
    }
}

impl fmt::Display for DurableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let obj = self.to_error_object();
        write!(f, "{}: {}", obj.error_type, obj.message)
    }
}

/// The short name of an error type: `my_crate::PaymentError` → `PaymentError`.
fn short_type_name<E>() -> String {
    let full = std::any::type_name::<E>();
    let base = full.split('<').next().unwrap_or(full);
    base.rsplit("::").next().unwrap_or(base).to_string()
}

impl<E> From<E> for DurableError
where
    E: std::error::Error + Send + Sync + 'static,
{
    fn from(e: E) -> Self {
        let mut message = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        DurableError::User {
            error: ErrorObject::new(short_type_name::<E>(), message),
            terminal: false,
        }
    }
}

/// Errors of the runtime around handlers: stores, the Lambda runtime, configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The store failed (after retries).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The Lambda runtime failed.
    #[error("lambda runtime: {0}")]
    Lambda(String),
    /// Bad configuration or request.
    #[error("{0}")]
    Invalid(String),
    /// The execution is not in the state the caller expected.
    #[error("{0}")]
    State(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("card declined")]
    struct PaymentDeclined;

    #[test]
    fn std_errors_convert_retryable_with_their_type_name() {
        let e: DurableError = PaymentDeclined.into();
        assert!(!e.is_terminal());
        assert_eq!(
            e.to_error_object(),
            ErrorObject::new("PaymentDeclined", "card declined")
        );
    }

    #[test]
    fn terminal_stops_retries() {
        let e = DurableError::terminal(PaymentDeclined);
        assert!(e.is_terminal());
        assert!(DurableError::terminal(DurableError::msg("x")).is_terminal());
        assert!(!DurableError::msg("x").is_terminal());
    }

    #[test]
    fn step_failures_say_which_step_and_how_often() {
        let e = DurableError::StepFailed {
            op_id: "1".into(),
            name: "charge".into(),
            attempts: 3,
            error: ErrorObject::new("PaymentDeclined", "card declined"),
        };
        let obj = e.to_error_object();
        assert_eq!(obj.error_type, "PaymentDeclined");
        assert_eq!(
            obj.message,
            "step \"charge\" failed after 3 attempts: card declined"
        );
    }
}
