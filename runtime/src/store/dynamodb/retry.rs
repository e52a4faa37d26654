//! Error classification and retries for DynamoDB calls.
//!
//! The SDK's own retries are turned off (see `url.rs`): every call goes through
//! [`call`], which retries throttling and transient failures with exponential
//! backoff and full jitter, up to [`RetryPolicy::max_attempts`], then surfaces
//! them as [`StoreError::Transient`]. A failed condition check is never retried:
//! it is an answer, returned as [`Failure::Condition`] for the caller to resolve
//! (usually by reading the current item).

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::http::Response as HttpResponse;
use aws_smithy_types::error::display::DisplayErrorContext;

use crate::error::StoreError;

/// How the DynamoDB backend retries throttling and transient errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per call, the first included (at least 1).
    pub max_attempts: u32,
    /// The backoff cap of the first retry; it doubles with every retry.
    pub base_delay: Duration,
    /// The largest backoff cap.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// 10 attempts, 25 ms doubling up to 2 s, full jitter (at most ~8 s in all).
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(25),
            max_delay: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// The sleep before retry number `retry` (1-based): uniform in `[0, cap)` with
    /// `cap = min(max_delay, base_delay * 2^(retry-1))` ("full jitter").
    pub fn backoff(&self, retry: u32) -> Duration {
        let cap = self
            .base_delay
            .saturating_mul(1u32 << retry.saturating_sub(1).min(20))
            .min(self.max_delay);
        cap.mul_f64(jitter())
    }
}

/// Why a call did not succeed.
#[derive(Debug)]
pub(super) enum Failure {
    /// `ConditionalCheckFailedException`: the item is not in the expected state.
    Condition,
    /// A service error that retrying will not fix, with its error code (e.g.
    /// `ResourceNotFoundException`), already mapped to a store error.
    Service {
        /// The DynamoDB error code.
        code: String,
        /// The mapped error.
        error: StoreError,
    },
    /// Anything else, already mapped (transient after the retries ran out).
    Store(StoreError),
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Store(e)
    }
}

impl Failure {
    /// The store error, treating a failed condition as a backend error (for
    /// calls that carry no condition).
    pub(super) fn into_store(self, what: &str) -> StoreError {
        match self {
            Failure::Condition => {
                StoreError::Backend(format!("{what}: unexpected conditional check failure"))
            }
            Failure::Service { error, .. } | Failure::Store(error) => error,
        }
    }
}

/// How one failed attempt is treated.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Class {
    /// A condition expression was false.
    Condition,
    /// Worth another attempt: throttling, 5xx, timeouts, connection failures.
    Transient(String),
    /// A service error that will not get better by retrying, with its code.
    Service(String, String),
    /// Any other failure that will not get better by retrying.
    Fatal(String),
}

/// Error codes DynamoDB (and Alternator) use for throttling and server-side
/// hiccups; all are safe to retry with backoff.
const TRANSIENT_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "Throttling",
    "RequestLimitExceeded",
    "LimitExceededException",
    "InternalServerError",
    "InternalFailure",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "TransactionConflictException",
];

/// Sorts a failed SDK call into condition / transient / fatal.
pub(super) fn classify<E>(err: &SdkError<E, HttpResponse>) -> Class
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match err {
        SdkError::ServiceError(ctx) => {
            let code = ctx.err().code().unwrap_or("");
            let status = ctx.raw().status().as_u16();
            let msg = ctx.err().message().unwrap_or("");
            let text = format!("{code} (HTTP {status}): {msg}");
            if code == "ConditionalCheckFailedException" {
                Class::Condition
            } else if TRANSIENT_CODES.contains(&code) || status >= 500 || status == 429 {
                Class::Transient(text)
            } else {
                Class::Service(code.to_string(), text)
            }
        }
        SdkError::TimeoutError(_) => {
            Class::Transient(format!("timeout: {}", DisplayErrorContext(err)))
        }
        SdkError::DispatchFailure(_) => Class::Transient(format!(
            "request not delivered: {}",
            DisplayErrorContext(err)
        )),
        SdkError::ResponseError(_) => {
            Class::Transient(format!("bad response: {}", DisplayErrorContext(err)))
        }
        _ => Class::Fatal(DisplayErrorContext(err).to_string()),
    }
}

/// Runs `f` until it succeeds, fails for good, or runs out of attempts.
/// `what` names the call in errors and logs (e.g. `PutItem op#3 on table t`).
pub(super) async fn call<T, E, F, Fut>(
    policy: &RetryPolicy,
    what: &str,
    mut f: F,
) -> Result<T, Failure>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
{
    let max = policy.max_attempts.max(1);
    let mut attempt = 1;
    loop {
        let err = match f().await {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        match classify(&err) {
            Class::Condition => return Err(Failure::Condition),
            Class::Service(code, msg) => {
                let error = if code == "ResourceNotFoundException" {
                    StoreError::Backend(format!(
                        "DynamoDB {what}: {msg} (does the table exist? the store creates it with \
                         create_table_if_missing or on first use)"
                    ))
                } else {
                    StoreError::Backend(format!("DynamoDB {what}: {msg}"))
                };
                return Err(Failure::Service { code, error });
            }
            Class::Fatal(msg) => {
                return Err(Failure::Store(StoreError::Backend(format!(
                    "DynamoDB {what}: {msg}"
                ))));
            }
            Class::Transient(msg) if attempt >= max => {
                return Err(Failure::Store(StoreError::Transient(format!(
                    "DynamoDB {what}: {msg} (gave up after {attempt} attempts)"
                ))));
            }
            Class::Transient(msg) => {
                let delay = policy.backoff(attempt);
                tracing::debug!(what, attempt, ?delay, error = %msg, "retrying DynamoDB call");
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
        }
    }
}

/// A fraction in `[0, 1)`: splitmix64 over a counter seeded from the clock. Good
/// enough to spread retries apart; not for anything secret.
fn jitter() -> f64 {
    static STATE: AtomicU64 = AtomicU64::new(0);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut z = STATE
        .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
        .wrapping_add(seed);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::error::ErrorMetadata;
    use aws_sdk_dynamodb::operation::put_item::PutItemError;
    use aws_smithy_runtime_api::client::result::ConnectorError;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;

    #[test]
    fn backoff_is_capped_and_jittered() {
        let p = RetryPolicy::default();
        for retry in 1..40 {
            let d = p.backoff(retry);
            assert!(d <= p.max_delay, "retry {retry}: {d:?}");
        }
        let first: Vec<_> = (0..200).map(|_| p.backoff(1)).collect();
        assert!(first.iter().all(|d| *d < p.base_delay));
        assert!(first.iter().any(|d| *d != first[0]), "jitter varies");
    }

    fn service(code: &str, status: u16) -> SdkError<PutItemError, HttpResponse> {
        let meta = ErrorMetadata::builder().code(code).message("m").build();
        let status = StatusCode::try_from(status).unwrap_or_else(|e| panic!("{e}"));
        SdkError::service_error(
            PutItemError::generic(meta),
            HttpResponse::new(status, SdkBody::empty()),
        )
    }

    #[test]
    fn throttling_and_server_errors_are_transient() {
        for code in [
            "ProvisionedThroughputExceededException",
            "ThrottlingException",
            "RequestLimitExceeded",
            "InternalServerError",
        ] {
            assert!(
                matches!(classify(&service(code, 400)), Class::Transient(_)),
                "{code}"
            );
        }
        assert!(matches!(
            classify(&service("Whatever", 503)),
            Class::Transient(_)
        ));
        let timeout: SdkError<PutItemError, HttpResponse> = SdkError::timeout_error("slow");
        assert!(matches!(classify(&timeout), Class::Transient(_)));
        let refused: SdkError<PutItemError, HttpResponse> =
            SdkError::dispatch_failure(ConnectorError::io("connection refused".into()));
        assert!(matches!(classify(&refused), Class::Transient(_)));
    }

    #[test]
    fn conditions_and_client_errors_are_not_retried() {
        assert_eq!(
            classify(&service("ConditionalCheckFailedException", 400)),
            Class::Condition
        );
        match classify(&service("ValidationException", 400)) {
            Class::Service(code, text) => {
                assert_eq!(code, "ValidationException");
                assert!(text.contains("HTTP 400"), "{text}");
            }
            other => panic!("{other:?}"),
        }
        let bad: SdkError<PutItemError, HttpResponse> = SdkError::construction_failure("no region");
        assert!(matches!(classify(&bad), Class::Fatal(_)));
    }

    #[tokio::test(start_paused = true)]
    async fn calls_retry_transient_errors_then_give_up() {
        let policy = RetryPolicy::default();
        let mut attempts = 0;
        let out: Result<(), Failure> = call(&policy, "PutItem x", || {
            attempts += 1;
            let n = attempts;
            async move {
                if n < 4 {
                    Err(service("ThrottlingException", 400))
                } else {
                    Ok(())
                }
            }
        })
        .await;
        assert!(out.is_ok());
        assert_eq!(attempts, 4);

        let mut attempts = 0;
        let out: Result<(), Failure> = call(&policy, "PutItem x", || {
            attempts += 1;
            async { Err(service("InternalServerError", 500)) }
        })
        .await;
        assert_eq!(attempts, policy.max_attempts);
        match out {
            Err(Failure::Store(StoreError::Transient(msg))) => {
                assert!(
                    msg.contains("PutItem x") && msg.contains("InternalServerError"),
                    "{msg}"
                );
            }
            other => panic!("{other:?}"),
        }

        let mut attempts = 0;
        let out: Result<(), Failure> = call(&policy, "PutItem x", || {
            attempts += 1;
            async { Err(service("ConditionalCheckFailedException", 400)) }
        })
        .await;
        assert!(matches!(out, Err(Failure::Condition)));
        assert_eq!(
            attempts, 1,
            "a failed condition is an answer, never retried"
        );
    }

    #[test]
    fn jitter_stays_in_range() {
        for _ in 0..10_000 {
            let j = jitter();
            assert!((0.0..1.0).contains(&j), "{j}");
        }
    }
}
