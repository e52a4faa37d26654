//! The `Invoker` trait: how a dispatcher runs a function.

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;

use super::ResumeRequest;
use crate::model::Timestamp;

/// Why an invocation did not produce an answer.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum InvokeError {
    /// No function of that name is deployed.
    #[error("unknown function {0:?}")]
    UnknownFunction(String),
    /// The function answered with an error (e.g. the store failed in it).
    #[error("the function returned an error: {0}")]
    FunctionError(String),
    /// The function's process died, hung past its timeout, or could not start.
    #[error("the invocation failed: {0}")]
    Failed(String),
}

/// What the dispatcher learns from an invocation's answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct InvocationSummary {
    /// The execution's status after the invocation (`SUSPENDED`, `SUCCEEDED`,
    /// `SUPERSEDED`, ...).
    #[serde(default)]
    pub status: String,
    /// When a suspended execution wants to run again.
    #[serde(default)]
    pub wake_at: Option<Timestamp>,
}

impl InvocationSummary {
    /// Reads the summary from a function's JSON answer (unknown shapes give
    /// an empty summary: the due index still knows everything that matters).
    pub fn from_response(v: &Value) -> Self {
        serde_json::from_value(v.clone()).unwrap_or_default()
    }
}

/// Runs one invocation of a function and waits for it to end: in process,
/// through the emulator's process pool, or through AWS Lambda.
#[async_trait]
pub trait Invoker: Send + Sync + 'static {
    /// Invokes `function` with a resume request.
    async fn invoke(
        &self,
        function: &str,
        request: &ResumeRequest,
    ) -> Result<InvocationSummary, InvokeError>;
}
