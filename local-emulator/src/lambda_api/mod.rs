//! The Lambda APIs the emulator serves, and the processes behind them.
//!
//! - [`host`]: one function's invocation queue and handler processes.
//! - `runtime_api`: the Runtime API the processes poll (`lambda_runtime` talks to it).
//! - `invoke_api`: the Invoke API (`aws-sdk-lambda` clients talk to it).
//! - [`ProcessInvoker`]: the dispatcher's way into all of it.

pub mod host;
pub mod invoke_api;
mod runtime_api;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use axum::Router;
use bytes::Bytes;
use durafn_runtime::dispatch::{
    InvocationSummary, InvokeError, Invoker, RESUME_KEY, ResumeRequest,
};

use crate::auth::Guard;
use crate::routes::Limits;

pub use host::{FunctionHost, FunctionSpec, InvokeFailure};
pub use runtime_api::function_arn;

/// Every function's host, by function name.
pub type Hosts = Arc<HashMap<String, Arc<FunctionHost>>>;

/// The Runtime API and Invoke API routes.
///
/// With a token (`durafn server`), the Invoke API needs it like the REST API
/// (see [`crate::auth`]; an `aws-sdk-lambda` client passes it as its access
/// key id); the Runtime API is always limited to the emulator's own
/// processes by a secret in each process's base path.
pub fn router(hosts: Hosts, guard: &Guard, limits: &Limits) -> Router {
    runtime_api::routes()
        .merge(invoke_api::routes(guard, limits))
        .with_state(hosts)
}

/// Invokes functions through their handler processes.
pub struct ProcessInvoker {
    hosts: Hosts,
}

impl ProcessInvoker {
    /// An invoker over `hosts`.
    pub fn new(hosts: Hosts) -> Self {
        ProcessInvoker { hosts }
    }
}

#[async_trait]
impl Invoker for ProcessInvoker {
    async fn invoke(
        &self,
        function: &str,
        request: &ResumeRequest,
    ) -> Result<InvocationSummary, InvokeError> {
        let host = self
            .hosts
            .get(function)
            .ok_or_else(|| InvokeError::UnknownFunction(function.to_string()))?;
        // `{RESUME_KEY: request}`, written straight from the request.
        let mut envelope = std::collections::BTreeMap::new();
        envelope.insert(RESUME_KEY, request);
        let payload =
            serde_json::to_vec(&envelope).map_err(|e| InvokeError::Failed(e.to_string()))?;
        match host.invoke(Bytes::from(payload)).await {
            Ok(answer) => {
                let v: serde_json::Value = serde_json::from_slice(&answer).unwrap_or_default();
                Ok(InvocationSummary::from_response(&v))
            }
            Err(InvokeFailure::FunctionError {
                error_type,
                message,
            }) => Err(InvokeError::FunctionError(format!(
                "{error_type}: {message}"
            ))),
            Err(other) => Err(InvokeError::Failed(other.to_string())),
        }
    }
}
