//! The entry point on `lambda_runtime`: the same binary runs on AWS Lambda and
//! under the local emulator.
//!
//! An invocation payload is either
//! - a **resume request** from a dispatcher, `{"durafn_resume": {"execution_id": "…", "epoch": 3}}`:
//!   the dispatcher has claimed the execution; this invocation continues it;
//! - an explicit **start**, `{"durafn_start": {"name": "optional-id", "input": …}}`;
//! - anything else: a **direct invoke**, whose whole payload is the input and
//!   whose Lambda request id is the execution id (so Lambda's own retries of
//!   the same request start nothing twice).
//!
//! Configuration comes from the environment: `DURAFN_STORE` (store URL,
//! default `sqlite://.durafn/durafn.db`), `DURAFN_MAX_STEPS_PER_INVOCATION`,
//! and the variables Lambda sets (`AWS_LAMBDA_FUNCTION_NAME`,
//! `AWS_LAMBDA_FUNCTION_VERSION`).

use std::sync::Arc;

use durafn_runtime::clock::{Clock, SystemClock};
use durafn_runtime::dispatch::{LEASE_GRACE, RESUME_KEY, ResumeRequest, START_KEY};
use durafn_runtime::model::{ExecutionId, ExecutionStatus, NewExecution, Timestamp};
use durafn_runtime::store::{RetryingStore, Store};
use lambda_runtime::LambdaEvent;
use serde_json::Value;

use crate::error::Error;
use crate::handler::Handler;
use crate::invocation::{InvocationConfig, InvocationReport, run_invocation};

/// The store URL used when `DURAFN_STORE` is not set.
pub const DEFAULT_STORE_URL: &str = "sqlite://.durafn/durafn.db";

/// What an invocation payload asks for.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Request {
    Resume(ResumeRequest),
    Start { name: String, input: Value },
}

/// Reads an invocation payload (pure; `request_id` names direct invokes).
pub(crate) fn parse_request(payload: Value, request_id: &str) -> Result<Request, Error> {
    if let Some(resume) = payload.get(RESUME_KEY) {
        let r: ResumeRequest = serde_json::from_value(resume.clone()).map_err(|e| {
            Error::Invalid(format!(
                "bad {RESUME_KEY} request (expected {{\"execution_id\": \"…\", \"epoch\": N}}): {e}"
            ))
        })?;
        return Ok(Request::Resume(r));
    }
    if let Some(start) = payload.get(START_KEY) {
        let name = match start.get("name") {
            None | Some(Value::Null) => request_id.to_string(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => {
                return Err(Error::Invalid(format!(
                    "{START_KEY}.name must be a string, got {other}"
                )));
            }
        };
        let input = start.get("input").cloned().unwrap_or(Value::Null);
        return Ok(Request::Start { name, input });
    }
    Ok(Request::Start {
        name: request_id.to_string(),
        input: payload,
    })
}

struct LambdaRuntime {
    handler: Handler,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    function: String,
    version: String,
    max_steps: Option<u32>,
}

/// Runs `handler` on `lambda_runtime` until the runtime stops.
pub async fn run(handler: Handler) -> Result<(), Error> {
    let url = std::env::var("DURAFN_STORE").unwrap_or_else(|_| DEFAULT_STORE_URL.to_string());
    let store: Arc<dyn Store> = Arc::new(RetryingStore::new(durafn_runtime::store::open(&url)?));
    let max_steps = match std::env::var("DURAFN_MAX_STEPS_PER_INVOCATION") {
        Ok(v) => Some(v.parse::<u32>().map_err(|e| {
            Error::Invalid(format!("DURAFN_MAX_STEPS_PER_INVOCATION={v:?} is not a number: {e}"))
        })?),
        Err(_) => None,
    };
    let rt = Arc::new(LambdaRuntime {
        handler,
        store,
        clock: Arc::new(SystemClock),
        function: std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "function".into()),
        version: std::env::var("AWS_LAMBDA_FUNCTION_VERSION").unwrap_or_else(|_| "$LATEST".into()),
        max_steps,
    });
    let service = lambda_runtime::service_fn(move |event: LambdaEvent<Value>| {
        let rt = rt.clone();
        async move {
            let report = rt.handle(event).await.map_err(|e| {
                tracing::error!(error = %e, "invocation failed");
                lambda_runtime::Error::from(e.to_string())
            })?;
            serde_json::to_value(report).map_err(lambda_runtime::Error::from)
        }
    });
    lambda_runtime::run(service)
        .await
        .map_err(|e| Error::Lambda(e.to_string()))
}

impl LambdaRuntime {
    async fn handle(&self, event: LambdaEvent<Value>) -> Result<InvocationReport, Error> {
        let (payload, lctx) = event.into_parts();
        let deadline = Timestamp(i64::try_from(lctx.deadline).unwrap_or(i64::MAX));
        let mut config = InvocationConfig::default();
        config.deadline = Some(deadline);
        config.max_steps_per_invocation = self.max_steps;
        let claimed = match parse_request(payload, &lctx.request_id)? {
            Request::Resume(r) => {
                let current = self.store.get_execution(&r.execution_id).await?.ok_or_else(|| {
                    Error::Invalid(format!("execution {} does not exist", r.execution_id))
                })?;
                if current.epoch != r.epoch || current.status != ExecutionStatus::Running {
                    return Ok(status_report(&r.execution_id, "SUPERSEDED", None));
                }
                current
            }
            Request::Start { name, input } => {
                let now = self.clock.now();
                let id = ExecutionId::new(name)?;
                self.store
                    .create_execution(&NewExecution {
                        id: id.clone(),
                        function: self.function.clone(),
                        version: self.version.clone(),
                        input,
                        now,
                    })
                    .await?;
                let lease = deadline.plus(LEASE_GRACE);
                match self.store.claim(&id, now, lease).await? {
                    Some(c) => c,
                    None => {
                        // Already started by an earlier request: report where it is.
                        let e = self.store.get_execution(&id).await?;
                        let status = e.as_ref().map_or("PENDING", |e| e.status.as_str());
                        return Ok(status_report(&id, status, e.and_then(|e| e.output)));
                    }
                }
            }
        };
        run_invocation(&self.handler, self.store.clone(), self.clock.clone(), config, &claimed).await
    }
}

fn status_report(id: &ExecutionId, status: &str, output: Option<Value>) -> InvocationReport {
    InvocationReport {
        execution_id: id.clone(),
        status: status.to_string(),
        output,
        error: None,
        wake_at: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn resume_requests_are_recognised() {
        let r = parse_request(json!({"durafn_resume": {"execution_id": "x-1", "epoch": 3}}), "req").unwrap();
        let Request::Resume(r) = r else { panic!("{r:?}") };
        assert_eq!((r.execution_id.as_str(), r.epoch), ("x-1", 3));
    }

    #[test]
    fn bad_resume_requests_say_what_is_expected() {
        let err = parse_request(json!({"durafn_resume": {"epoch": 3}}), "req").unwrap_err().to_string();
        assert!(err.contains("execution_id"), "{err}");
    }

    #[test]
    fn direct_invokes_start_under_the_request_id() {
        let input = json!({"order_id": "o-1", "amount_cents": 1999});
        let r = parse_request(input.clone(), "req-42").unwrap();
        assert_eq!(r, Request::Start { name: "req-42".into(), input });
    }

    #[test]
    fn explicit_starts_may_name_the_execution() {
        let r = parse_request(json!({"durafn_start": {"name": "o-1", "input": [1]}}), "req").unwrap();
        assert_eq!(r, Request::Start { name: "o-1".into(), input: json!([1]) });
        let r = parse_request(json!({"durafn_start": {"input": 2}}), "req-7").unwrap();
        assert_eq!(r, Request::Start { name: "req-7".into(), input: json!(2) });
        assert!(parse_request(json!({"durafn_start": {"name": 5}}), "r").is_err());
    }
}
