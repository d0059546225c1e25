//! The HTTP layer's error type, and the one place that maps errors to status
//! codes.
//!
//! Every error answers JSON `{"error": "<sentence>", "kind": "<snake_case>"}`.
//! 4xx sentences tell the caller what to fix; 5xx bodies stay generic and
//! the detail goes to the log.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::pool::ComputeError;

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not a whole number of rows, a JSON row has the wrong
    /// width, or similar.
    #[error("{0}")]
    BadShape(String),
    /// The JSON body does not parse.
    #[error("malformed JSON body: {0}")]
    MalformedJson(String),
    /// `X-Score-Columns` disagrees with the model.
    #[error("X-Score-Columns is {sent} but model {model} takes {expected} columns")]
    ColumnMismatch {
        /// Model name.
        model: String,
        /// What the client said.
        sent: usize,
        /// What the model takes.
        expected: usize,
    },
    /// A header or query parameter does not parse.
    #[error("{0}")]
    BadParameter(String),
    /// No such model.
    #[error("no model named {name:?}; loaded models: {available}")]
    UnknownModel {
        /// Requested name.
        name: String,
        /// Comma-separated names.
        available: String,
    },
    /// No such output, or one that is not numeric.
    #[error("model {model} has no numeric output named {output:?}; outputs: {available}")]
    UnknownOutput {
        /// Model name.
        model: String,
        /// Requested output.
        output: String,
        /// Comma-separated names.
        available: String,
    },
    /// No such route.
    #[error("no route for {0}")]
    NotFound(String),
    /// Wrong method on a route.
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    /// The body took too long to arrive.
    #[error("the request body did not arrive within {0:?}")]
    BodyTimeout(Duration),
    /// The body exceeds the limit.
    #[error("request body over the limit of {limit} bytes; send fewer rows per request")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// Neither binary nor JSON.
    #[error(
        "unsupported Content-Type {0:?}: send application/octet-stream (float32 little-endian rows) or application/json"
    )]
    UnsupportedMediaType(String),
    /// Admission is full.
    #[error("server overloaded, retry after {}s", retry_after.as_secs())]
    Overloaded {
        /// Suggested wait.
        retry_after: Duration,
    },
    /// Draining before exit.
    #[error("server is shutting down; send to another replica")]
    Draining,
    /// The deadline passed while queued.
    #[error("the deadline passed before the work could start")]
    DeadlineExceeded,
    /// A failure of ours; the detail is logged, not sent.
    #[error("internal error: {0}")]
    Internal(String),
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: String,
    kind: &'a str,
}

impl ApiError {
    /// Status code and the `kind` of the JSON body.
    pub fn status_and_kind(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadShape(_) => (StatusCode::BAD_REQUEST, "bad_shape"),
            ApiError::MalformedJson(_) => (StatusCode::BAD_REQUEST, "malformed_json"),
            ApiError::ColumnMismatch { .. } => (StatusCode::BAD_REQUEST, "column_mismatch"),
            ApiError::BadParameter(_) => (StatusCode::BAD_REQUEST, "bad_parameter"),
            ApiError::UnknownModel { .. } => (StatusCode::NOT_FOUND, "unknown_model"),
            ApiError::UnknownOutput { .. } => (StatusCode::NOT_FOUND, "unknown_output"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::BodyTimeout(_) => (StatusCode::REQUEST_TIMEOUT, "body_timeout"),
            ApiError::PayloadTooLarge { .. } => {
                (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
            }
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::Overloaded { .. } => (StatusCode::TOO_MANY_REQUESTS, "overloaded"),
            ApiError::Draining => (StatusCode::SERVICE_UNAVAILABLE, "draining"),
            ApiError::DeadlineExceeded => (StatusCode::GATEWAY_TIMEOUT, "deadline_exceeded"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl From<ComputeError> for ApiError {
    fn from(e: ComputeError) -> Self {
        match e {
            // Unreachable while admission holds; still overload, not a bug
            // the client should see as 500.
            ComputeError::QueueFull => ApiError::Overloaded { retry_after: Duration::from_secs(1) },
            ComputeError::DeadlineExceeded => ApiError::DeadlineExceeded,
            ComputeError::Stopped => ApiError::Draining,
            e @ ComputeError::Model { .. } => ApiError::Internal(e.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, kind) = self.status_and_kind();
        let error = match &self {
            ApiError::Internal(detail) => {
                tracing::error!(%detail, "request failed");
                "internal error; see the server log".to_string()
            }
            _ => self.to_string(),
        };
        let retry_after = match &self {
            ApiError::Overloaded { retry_after } => Some(retry_after.as_secs().max(1)),
            ApiError::Draining => Some(1),
            _ => None,
        };
        let mut response = (status, Json(ErrorBody { error, kind })).into_response();
        if let Some(secs) = retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}
