//! The HTTP layer's error type, and the one place that maps errors to the
//! protocol's error kinds (and so to status codes: see
//! [`score_protocol::ErrorKind::status`]).
//!
//! Every error answers JSON `{"error": "<sentence>", "kind": "<snake_case>"}`.
//! 4xx sentences tell the caller what to fix; 5xx bodies stay generic and
//! the detail goes to the log.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use score_protocol::{ErrorBody, ErrorKind, retry_after};

use crate::pool::ComputeError;

/// How each client asks for an over-long text to be cut, for the
/// sentences that refuse one: the person reading it may be in any of them.
const CUT: &str = "score-client --truncate, Python Scorer(truncate=True), Java \
                   .truncate(true), \"truncate\": true in JSON, ?truncate=true on the scoring \
                   routes";

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
    #[error(
        "the rows have {sent} values each (X-Score-Columns: {sent}), but model {model} takes \
         {expected} a row: send its {expected} features (GET /models/{model} lists them)"
    )]
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
    /// The body could not be read: the connection broke or its framing is
    /// invalid. Not the caller's data: its transport.
    #[error("the request body could not be read: {0}")]
    BodyRead(String),
    /// No valid bearer token.
    #[error("this server needs a token: send Authorization: Bearer <token>")]
    Unauthorized,
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
    /// The body arrived slower than the minimum rate.
    #[error(
        "the request body arrived slower than {min_rate} bytes/s (after {grace:?}); send it at \
         network speed"
    )]
    BodyTooSlow {
        /// The minimum rate, bytes per second.
        min_rate: usize,
        /// Time allowed before the rate counts.
        grace: Duration,
    },
    /// The body exceeds the limit.
    #[error("request body over the limit of {limit} bytes; send fewer rows per request")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// A text has more tokens than the embedding model takes, and the
    /// request did not ask for it to be cut.
    #[error(
        "text {row} is longer than the model's limit of {limit} tokens; ask for it to be cut \
         there ({cut}), or embedded whole in windows (the same option named chunk: --chunk, \
         chunk=True, .chunk(true), \"chunk\": true, ?chunk=true)",
        cut = CUT
    )]
    TextTooLong {
        /// Index of the first such text in the request.
        row: usize,
        /// The model's limit.
        limit: usize,
    },
    /// A text is longer in bytes than any text within the model's token
    /// limit can be: refused before it is tokenized.
    #[error(
        "text {row} is {bytes} bytes, more than the {most} bytes a text within the model's \
         limit of {limit} tokens may have; ask for it to be cut there ({cut})",
        cut = CUT
    )]
    TextTooManyBytes {
        /// Index of the first such text in the request.
        row: usize,
        /// Its length in bytes.
        bytes: usize,
        /// Most bytes a text may have.
        most: usize,
        /// The model's token limit.
        limit: usize,
    },
    /// What the request would cost once decoded and answered exceeds a
    /// limit it can never fit under (the sentence names the limit and what
    /// would fit).
    #[error("{0}")]
    TooCostly(String),
    /// The request is pinned to a model version this server does not serve.
    #[error(
        "model {model} is at version {serving} here, not {asked} as the request asks \
         (X-Model-Version): this replica was reloaded or runs another build; send the request \
         to a replica serving {asked}, or start a new job to score with {serving}"
    )]
    VersionMismatch {
        /// Model name.
        model: String,
        /// The version served.
        serving: String,
        /// The version asked for.
        asked: String,
    },
    /// Neither binary, JSON nor Arrow.
    #[error(
        "unsupported Content-Type {0:?}: send application/octet-stream (float32 little-endian rows), application/json or application/vnd.apache.arrow.stream"
    )]
    UnsupportedMediaType(String),
    /// A body of a known media type in an encoding the server does not
    /// decode (a compressed Arrow stream), or of a media type that cannot
    /// carry the model's inputs (binary or JSON for a model fed by name).
    #[error("{0}")]
    UnsupportedEncoding(String),
    /// Admission is full.
    #[error("server overloaded, retry after {}s", retry_after::format(*retry_after))]
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

impl ApiError {
    /// The protocol's kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ApiError::BadShape(_) => ErrorKind::BadShape,
            ApiError::MalformedJson(_) => ErrorKind::MalformedJson,
            ApiError::ColumnMismatch { .. } => ErrorKind::ColumnMismatch,
            ApiError::BadParameter(_) => ErrorKind::BadParameter,
            ApiError::BodyRead(_) => ErrorKind::BodyRead,
            ApiError::Unauthorized => ErrorKind::Unauthorized,
            ApiError::UnknownModel { .. } => ErrorKind::UnknownModel,
            ApiError::UnknownOutput { .. } => ErrorKind::UnknownOutput,
            ApiError::NotFound(_) => ErrorKind::NotFound,
            ApiError::MethodNotAllowed => ErrorKind::MethodNotAllowed,
            ApiError::BodyTimeout(_) | ApiError::BodyTooSlow { .. } => ErrorKind::BodyTimeout,
            ApiError::PayloadTooLarge { .. }
            | ApiError::TextTooLong { .. }
            | ApiError::TextTooManyBytes { .. }
            | ApiError::TooCostly(_) => ErrorKind::PayloadTooLarge,
            ApiError::VersionMismatch { .. } => ErrorKind::VersionMismatch,
            ApiError::UnsupportedMediaType(_) | ApiError::UnsupportedEncoding(_) => {
                ErrorKind::UnsupportedMediaType
            }
            ApiError::Overloaded { .. } => ErrorKind::Overloaded,
            ApiError::Draining => ErrorKind::Draining,
            ApiError::DeadlineExceeded => ErrorKind::DeadlineExceeded,
            ApiError::Internal(_) => ErrorKind::Internal,
        }
    }

    /// Status code and the `kind` of the JSON body.
    pub fn status_and_kind(&self) -> (StatusCode, &'static str) {
        let kind = self.kind();
        let status = StatusCode::from_u16(kind.status())
            .expect("the protocol's statuses are valid; this is a bug");
        (status, kind.as_str())
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

/// Longest error sentence sent: sentences quote what the caller sent
/// (column names, model names), which may be megabytes.
const MAX_SENTENCE: usize = 1024;

/// `sentence`, cut at [`MAX_SENTENCE`] bytes (on a character boundary).
fn capped(mut sentence: String) -> String {
    if sentence.len() > MAX_SENTENCE {
        let mut cut = MAX_SENTENCE;
        while !sentence.is_char_boundary(cut) {
            cut -= 1;
        }
        sentence.truncate(cut);
        sentence.push_str(" [cut]");
    }
    sentence
}

impl ApiError {
    /// The status, the sentence sent (a 5xx's detail goes to the log
    /// instead) and the headers that go with them.
    fn parts(&self) -> (StatusCode, String, HeaderMap) {
        let (status, _) = self.status_and_kind();
        let error = match self {
            ApiError::Internal(detail) => {
                tracing::error!(%detail, "request failed");
                "internal error; see the server log".to_string()
            }
            _ => capped(self.to_string()),
        };
        let mut headers = HeaderMap::new();
        let retry_after = match self {
            ApiError::Overloaded { retry_after } => Some(retry_after::format(*retry_after)),
            ApiError::Draining => Some(1),
            _ => None,
        };
        if let Some(secs) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let ApiError::VersionMismatch { serving, .. } = self
            && let Ok(value) = HeaderValue::from_str(serving)
        {
            // The version served, as on a 200: the client need not parse
            // the sentence.
            headers.insert(score_protocol::headers::MODEL_VERSION, value);
        }
        if matches!(self, ApiError::Unauthorized) {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"score-server\""),
            );
        }
        (status, error, headers)
    }

    /// The answer in OpenAI's error shape, `{"error": {"message", "type",
    /// "param", "code"}}` (`code` is the kind): what the OpenAI SDKs read
    /// the sentence from.
    pub fn into_openai_response(self) -> Response {
        let (status, message, headers) = self.parts();
        let kind = if status.is_client_error() { "invalid_request_error" } else { "server_error" };
        let body = serde_json::json!({"error": {
            "message": message, "type": kind, "param": null, "code": self.kind().as_str(),
        }});
        (status, headers, Json(body)).into_response()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, error, headers) = self.parts();
        (status, headers, Json(ErrorBody { error, kind: self.kind() })).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_sentences_are_cut_on_a_character_boundary() {
        let short = capped("short".into());
        assert_eq!(short, "short");
        let long = capped("я".repeat(MAX_SENTENCE));
        assert!(long.len() <= MAX_SENTENCE + " [cut]".len(), "{}", long.len());
        assert!(long.ends_with(" [cut]"));
    }
}
