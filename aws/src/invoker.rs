//! [`LambdaInvoker`]: invokes durable functions on AWS Lambda asynchronously.

use async_trait::async_trait;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use durafn_runtime::dispatch::{
    InvocationSummary, InvokeError, Invoker, RESUME_KEY, ResumeRequest,
};
use serde_json::json;

/// Invokes a function with `InvocationType=Event`, qualified by the version
/// the execution is pinned to, and returns as soon as Lambda has queued the
/// invocation (`202`). The dispatcher learns nothing more from the answer:
/// the invocation reports what becomes due through the wake queue, and a
/// crashed one is a lease that expires.
pub struct LambdaInvoker {
    client: aws_sdk_lambda::Client,
}

impl LambdaInvoker {
    /// An invoker using `client`.
    pub fn new(client: aws_sdk_lambda::Client) -> Self {
        LambdaInvoker { client }
    }

    /// An invoker with a Lambda client from the environment (region,
    /// credentials, `AWS_ENDPOINT_URL_LAMBDA`).
    pub async fn from_env() -> Self {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .load()
            .await;
        LambdaInvoker::new(aws_sdk_lambda::Client::new(&config))
    }
}

/// The qualifier to invoke: the pinned version, unless it is empty.
pub fn qualifier(request: &ResumeRequest) -> Option<String> {
    request.version.clone().filter(|v| !v.is_empty())
}

#[async_trait]
impl Invoker for LambdaInvoker {
    async fn invoke(
        &self,
        function: &str,
        request: &ResumeRequest,
    ) -> Result<InvocationSummary, InvokeError> {
        let qualifier = qualifier(request);
        let payload = json!({ RESUME_KEY: request }).to_string();
        let sent = self
            .client
            .invoke()
            .function_name(function)
            .set_qualifier(qualifier.clone())
            .invocation_type(InvocationType::Event)
            .payload(Blob::new(payload.into_bytes()))
            .send()
            .await;
        match sent {
            Ok(out) if out.status_code == 202 => Ok(InvocationSummary::default()),
            Ok(out) => Err(InvokeError::Failed(format!(
                "Lambda answered {} to an asynchronous invoke of {function}",
                out.status_code
            ))),
            Err(e) => {
                let not_found = e
                    .as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception());
                if not_found {
                    let what = match &qualifier {
                        Some(q) => format!("{function} (version {q})"),
                        None => function.to_string(),
                    };
                    Err(InvokeError::UnknownFunction(what))
                } else {
                    Err(InvokeError::Failed(
                        aws_sdk_lambda::error::DisplayErrorContext(&e).to_string(),
                    ))
                }
            }
        }
    }
}
