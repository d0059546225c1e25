//! The error body every failed request gets:
//! `{"error": "<human sentence>", "kind": "<snake_case>"}`, and the one
//! table from kind to HTTP status.

use serde::{Deserialize, Serialize};

/// What went wrong, as the `kind` field names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// 400: the body is not whole rows, or a JSON row has the wrong width.
    BadShape,
    /// 400: the JSON body does not parse.
    MalformedJson,
    /// 400: `X-Score-Columns` disagrees with the model.
    ColumnMismatch,
    /// 400: a header or query parameter is not understood.
    BadParameter,
    /// 400: the body could not be read (the connection broke, or its
    /// framing is invalid).
    BodyRead,
    /// 401: no valid bearer token (`WWW-Authenticate: Bearer` says how).
    Unauthorized,
    /// 404: no such model.
    UnknownModel,
    /// 404: no such output, or one that is not numeric.
    UnknownOutput,
    /// 404: no such route.
    NotFound,
    /// 405: wrong method on a route.
    MethodNotAllowed,
    /// 408: the body did not arrive in time.
    BodyTimeout,
    /// 409: the request asks for a model version (`X-Model-Version`) other
    /// than the one the server serves.
    VersionMismatch,
    /// 413: the body is over the limit.
    PayloadTooLarge,
    /// 415: neither binary nor JSON.
    UnsupportedMediaType,
    /// 429: admission is full; `Retry-After` says when to come back.
    Overloaded,
    /// 503: the server is shutting down; send to another replica.
    Draining,
    /// 503: a proxy in front has no replica that can take the request.
    NoReplica,
    /// 504: the deadline passed before the work started.
    DeadlineExceeded,
    /// 500: a failure of the server's; the detail is in its log.
    Internal,
    /// A kind this version does not know (a newer server).
    #[serde(other)]
    Other,
}

impl ErrorKind {
    /// Every kind a server sends (all but [`ErrorKind::Other`]).
    pub const ALL: [ErrorKind; 19] = [
        ErrorKind::BadShape,
        ErrorKind::MalformedJson,
        ErrorKind::ColumnMismatch,
        ErrorKind::BadParameter,
        ErrorKind::BodyRead,
        ErrorKind::Unauthorized,
        ErrorKind::UnknownModel,
        ErrorKind::UnknownOutput,
        ErrorKind::NotFound,
        ErrorKind::MethodNotAllowed,
        ErrorKind::BodyTimeout,
        ErrorKind::VersionMismatch,
        ErrorKind::PayloadTooLarge,
        ErrorKind::UnsupportedMediaType,
        ErrorKind::Overloaded,
        ErrorKind::Draining,
        ErrorKind::NoReplica,
        ErrorKind::DeadlineExceeded,
        ErrorKind::Internal,
    ];

    /// The HTTP status that answers this kind.
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::BadShape
            | ErrorKind::MalformedJson
            | ErrorKind::ColumnMismatch
            | ErrorKind::BadParameter
            | ErrorKind::BodyRead => 400,
            ErrorKind::Unauthorized => 401,
            ErrorKind::UnknownModel | ErrorKind::UnknownOutput | ErrorKind::NotFound => 404,
            ErrorKind::MethodNotAllowed => 405,
            ErrorKind::BodyTimeout => 408,
            ErrorKind::VersionMismatch => 409,
            ErrorKind::PayloadTooLarge => 413,
            ErrorKind::UnsupportedMediaType => 415,
            ErrorKind::Overloaded => 429,
            ErrorKind::Draining | ErrorKind::NoReplica => 503,
            ErrorKind::DeadlineExceeded => 504,
            ErrorKind::Internal | ErrorKind::Other => 500,
        }
    }

    /// The snake_case name, as in the body.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::BadShape => "bad_shape",
            ErrorKind::MalformedJson => "malformed_json",
            ErrorKind::ColumnMismatch => "column_mismatch",
            ErrorKind::BadParameter => "bad_parameter",
            ErrorKind::BodyRead => "body_read",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::UnknownModel => "unknown_model",
            ErrorKind::UnknownOutput => "unknown_output",
            ErrorKind::NotFound => "not_found",
            ErrorKind::MethodNotAllowed => "method_not_allowed",
            ErrorKind::BodyTimeout => "body_timeout",
            ErrorKind::VersionMismatch => "version_mismatch",
            ErrorKind::PayloadTooLarge => "payload_too_large",
            ErrorKind::UnsupportedMediaType => "unsupported_media_type",
            ErrorKind::Overloaded => "overloaded",
            ErrorKind::Draining => "draining",
            ErrorKind::NoReplica => "no_replica",
            ErrorKind::DeadlineExceeded => "deadline_exceeded",
            ErrorKind::Internal => "internal",
            ErrorKind::Other => "other",
        }
    }
}

/// The JSON body of an error answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// A sentence for people: what to fix (4xx) or that the server failed (5xx).
    pub error: String,
    /// What went wrong, for programs.
    pub kind: ErrorKind,
}

impl ErrorBody {
    /// Reads an error body; `None` when `bytes` is not one (a proxy's HTML
    /// page, say).
    pub fn parse(bytes: &[u8]) -> Option<ErrorBody> {
        serde_json::from_slice(bytes).ok()
    }

    /// The sentence to show for an error answer: the body's `error` when it
    /// is a protocol error body, else the start of the body as text (at most
    /// `max_chars`), else `None` for an empty body.
    pub fn message_of(bytes: &[u8], max_chars: usize) -> Option<String> {
        if let Some(body) = ErrorBody::parse(bytes) {
            return Some(body.error);
        }
        let text: String = String::from_utf8_lossy(bytes).chars().take(max_chars).collect();
        let text = text.trim();
        (!text.is_empty()).then(|| text.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_serde() {
        for kind in ErrorKind::ALL.into_iter().chain([ErrorKind::Other]) {
            let json = serde_json::to_string(&kind).expect("serialize");
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
            let back: ErrorKind = serde_json::from_str(&json).expect("parse");
            assert_eq!(back, kind);
        }
    }

    /// docs/protocol.md's error table has a row for every kind, under its
    /// status: a new kind cannot go undocumented.
    #[test]
    fn the_docs_error_table_lists_every_kind() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/protocol.md");
        let doc = std::fs::read_to_string(path).expect("docs/protocol.md");
        for kind in ErrorKind::ALL.into_iter().chain([ErrorKind::Other]) {
            let (row, name) = (format!("| {} | ", kind.status()), format!("`{}`", kind.as_str()));
            assert!(
                doc.lines().any(|l| l.starts_with(&row) && l.contains(&name)),
                "{path} has no row for {name} under {}",
                kind.status()
            );
        }
    }

    #[test]
    fn bodies_parse_and_unknown_kinds_are_other() {
        let b = ErrorBody::parse(br#"{"error":"x","kind":"overloaded"}"#).expect("body");
        assert_eq!((b.kind, b.kind.status()), (ErrorKind::Overloaded, 429));
        let b = ErrorBody::parse(br#"{"error":"x","kind":"from_the_future"}"#).expect("body");
        assert_eq!(b.kind, ErrorKind::Other);
        assert_eq!(ErrorBody::parse(b"<html>502</html>"), None);
        assert_eq!(ErrorBody::message_of(b"<html>502</html>", 6).as_deref(), Some("<html>"));
        assert_eq!(ErrorBody::message_of(b"", 6), None);
    }
}
