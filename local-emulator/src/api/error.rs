//! API errors: JSON `{"error": {"code", "message"}}` with the right status.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use durafn_runtime::StoreError;
use serde_json::json;

/// An error answered by the REST API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable machine-readable code.
    pub code: &'static str,
    /// What went wrong and what to do about it.
    pub message: String,
}

impl ApiError {
    /// An error with a status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400 Bad Request.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 404 Not Found.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.code, "message": self.message } });
        (self.status, Json(body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match &e {
            StoreError::NotFound(_) => Self::not_found("ExecutionNotFound", e.to_string()),
            StoreError::Conflict { .. } => {
                Self::new(StatusCode::CONFLICT, "Conflict", e.to_string())
            }
            StoreError::PayloadTooLarge { .. } => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "PayloadTooLarge",
                e.to_string(),
            ),
            StoreError::Invalid(_) => Self::bad_request("InvalidRequest", e.to_string()),
            StoreError::Transient(_) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "StoreUnavailable",
                format!("{e}; retry the request"),
            ),
            _ => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "StoreError",
                e.to_string(),
            ),
        }
    }
}
