//! `score-server`: an HTTP server that scores float32 matrices with ONNX
//! models, built for batch jobs that stream billions of rows.
//!
//! A client `PUT`s `m × n` little-endian float32 rows to `/score` and gets
//! `m × k` float32 scores back. Models run on tract in a pool of OS worker
//! threads ([`pool`]), never on the async runtime; admission ([`admission`])
//! bounds the work accepted at once and answers 429 at once beyond it.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use score_server::{Config, run, server::shutdown_signal};
//! let config = Config::default(); // the bundled demo model
//! let listener = tokio::net::TcpListener::bind(config.listen).await?;
//! run(config, listener, shutdown_signal()).await?;
//! # Ok(()) }
//! ```
//!
//! The wire protocol is specified in the repository's `docs/protocol.md`.

pub mod admission;
pub mod auth;
pub mod config;
pub mod error;
pub mod health;
pub mod http;
pub mod metrics;
pub mod pool;
pub mod reload;
pub mod server;
pub mod state;

use std::future::Future;
use std::sync::Arc;

pub use config::{Args, Config, LogFormat};
pub use http::app;
pub use state::{AppState, StartError};
use tokio::net::TcpListener;

/// Why `run` stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Start-up failed (a model did not load).
    #[error(transparent)]
    Start(#[from] StartError),
    /// The listener failed.
    #[error("serving failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Loads the models, starts the workers and serves on `listener` until
/// `shutdown` resolves, then drains and returns.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    let state = load(config).await?;
    server::serve(state, listener, shutdown).await?;
    Ok(())
}

/// Loads the models and starts the workers off the async threads.
pub async fn load(config: Config) -> Result<Arc<AppState>, StartError> {
    tokio::task::spawn_blocking(move || AppState::new(config))
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}
