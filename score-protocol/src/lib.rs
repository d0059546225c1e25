//! `score-protocol`: the score-server wire protocol (v1), with no I/O and no
//! async runtime, so that the server, the client, the load generator and
//! every binding agree on it at compile time.
//!
//! - [`headers`]: request and response header names.
//! - [`media`]: the media types of bodies and how a `Content-Type` maps to one.
//! - [`codec`]: float32 little-endian row-major bodies, encoded and decoded.
//! - [`error`]: the JSON error body `{"error", "kind"}`, its kinds and their
//!   HTTP statuses.
//! - [`models`]: the `GET /models` and `GET /models/{name}` documents and the
//!   JSON scoring answer.
//! - [`retry_after`]: reading `Retry-After`.
//!
//! ```
//! use score_protocol::{codec, error::{ErrorBody, ErrorKind}};
//!
//! let body = codec::encode(&[1.0, 2.5, -3.0]);
//! assert_eq!(codec::decode(&body).unwrap(), vec![1.0, 2.5, -3.0]);
//!
//! let e = ErrorBody::parse(br#"{"error":"too big","kind":"payload_too_large"}"#).unwrap();
//! assert_eq!(e.kind, ErrorKind::PayloadTooLarge);
//! assert_eq!(e.kind.status(), 413);
//! ```

pub mod codec;
pub mod error;
pub mod features;
pub mod headers;
pub mod media;
pub mod models;
pub mod retry_after;

pub use error::{ErrorBody, ErrorKind};
pub use models::{InputDoc, ModelDoc, ModelList, OutputDoc};
