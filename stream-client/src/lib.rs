//! `stream-client`: feed a fleet of score-servers from a batch job, with
//! bounded memory, in order, with retries.
//!
//! A Spark task (or any batch job) hands the client an iterator over its
//! partition. The client cuts the rows into request bodies (capped by rows
//! and bytes), keeps at most `in_flight` requests in flight, retries
//! transient failures (connect errors, timeouts, 429, 502, 503, 504) with
//! jittered backoff under a retry budget, spreads requests over several
//! servers, and yields the scores in input order. Memory stays near
//! `in_flight × batch` whatever the input's length, and the output ends only
//! once every row has a result, or with the error that stopped it.
//!
//! ```no_run
//! use stream_client::{Client, ClientConfig};
//!
//! # fn main() -> Result<(), stream_client::ScoreError> {
//! let mut config = ClientConfig::new(["http://127.0.0.1:8099"], 100);
//! config.in_flight = 8;
//! let client = Client::new(config)?;
//! let rows = (0..1_000_000).map(|i| vec![(i % 7) as f32; 100]);
//! for batch in client.score_rows(rows) {
//!     let batch = batch?; // an error ends the output: no row is skipped silently
//!     for scores in batch.rows() {
//!         let _probabilities: &[f32] = scores;
//!     }
//! }
//! println!("{:?}", client.stats());
//! # Ok(()) }
//! ```
//!
//! The blocking iterator must be driven from a plain thread (as Spark's task
//! threads and Python are); from async code use [`Client::score_stream`].
//!
//! Features: `arrow` (record batches in and out, [`arrow`]: what the
//! bindings use), `log` ([`log_to_stderr`]) and `files` (the default: `.f32`/`.npy`/Parquet files and
//! the `score-client` CLI). The wire protocol itself is `score-protocol`.

pub mod adaptive;
#[cfg(feature = "arrow")]
pub mod arrow;
mod batch;
mod client;
mod config;
mod endpoints;
mod error;
#[cfg(feature = "files")]
mod file_error;
#[cfg(feature = "files")]
pub mod files;
#[cfg(feature = "files")]
pub mod parquet_io;
mod policy;
pub mod retry;
mod runtime;
pub mod settings;
mod stats;
mod stream;
#[cfg(feature = "files")]
pub mod target;

pub use batch::{Batch, Batcher};
pub use client::{Client, Scored, fetch_input_columns, fetch_model, fetch_model_any};
pub use config::{ClientConfig, Token};
pub use error::ScoreError;
pub use stats::Stats;
pub use stream::{AsInput, Input, ScoreIter, Session, Turn};

/// Sends this library's log to stderr (a Spark executor's log) at the level
/// in the environment variable `var` (`tracing` filter syntax; `warn` when
/// unset), once per process; a later call, or a subscriber set already by
/// the host, leaves it as it is. For the bindings and the CLI.
#[cfg(feature = "log")]
pub fn log_to_stderr(var: &str) {
    use std::io::IsTerminal;
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_env(var)
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .try_init();
    });
}

/// The process's async runtime, on which the client's requests run (one per
/// process, created on first use and again after a fork). For work that
/// belongs beside the requests, such as a binary's signal handler.
pub fn runtime_handle() -> tokio::runtime::Handle {
    runtime::shared().handle
}
