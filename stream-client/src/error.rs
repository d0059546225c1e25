//! The client's error type.

use std::time::Duration;

/// Why rows could not be scored. Every variant that concerns rows names the
/// first row it covers. By default the output ends after an error, so it
/// covers that row and every row after it; with
/// [`ClientConfig::keep_going`](crate::ClientConfig::keep_going) a failed
/// batch ([`ScoreError::batch`]) covers just its own rows and the output
/// goes on.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ScoreError {
    /// An input row of the wrong width.
    #[error("input row {row} has {len} values, the model takes {columns}")]
    BadRow {
        /// Index of the row in the input.
        row: u64,
        /// Its width.
        len: usize,
        /// The expected width.
        columns: usize,
    },
    /// The server refused the batch with a non-transient status.
    #[error("{url} refused rows {first_row}..{}: HTTP {status}: {message}", first_row + *rows as u64)]
    Rejected {
        /// Endpoint URL.
        url: String,
        /// HTTP status.
        status: u16,
        /// The server's error sentence.
        message: String,
        /// First row of the batch.
        first_row: u64,
        /// Rows in the batch.
        rows: usize,
    },
    /// Transient failures went on past the attempts or the retry budget.
    #[error("gave up on rows {first_row}..{} after {attempts} attempts: {last}", first_row + *rows as u64)]
    GaveUp {
        /// First row of the batch.
        first_row: u64,
        /// Rows in the batch.
        rows: usize,
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: String,
    },
    /// The server's answer does not match the request.
    #[error("bad answer from {url} for rows {first_row}..{}: {detail}", first_row + *rows as u64)]
    BadResponse {
        /// Endpoint URL.
        url: String,
        /// First row of the batch.
        first_row: u64,
        /// Rows in the batch.
        rows: usize,
        /// What does not match.
        detail: String,
    },
    /// No server answered with the model version the job is pinned to.
    #[error(
        "rows {first_row}..{}: no server answered with model version {pinned}, the one this job \
         is pinned to, in {attempts} attempts ({url} serves {served}); the model was replaced \
         under the job: rerun it to score every row with one version",
        first_row + *rows as u64
    )]
    WrongVersion {
        /// The job's version.
        pinned: String,
        /// The last endpoint tried.
        url: String,
        /// The version it serves.
        served: String,
        /// First row of the batch.
        first_row: u64,
        /// Rows in the batch.
        rows: usize,
        /// Attempts made.
        attempts: u32,
    },
    /// The overall deadline passed.
    #[error("the overall deadline of {0:?} passed")]
    Deadline(Duration),
    /// Invalid configuration.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The model's description (`/models`) could not be read: from which
    /// server, and why (every server's reason when several were asked).
    #[error("cannot read the model's description: {0}")]
    Describe(String),
    /// The task driving a request was cancelled (its runtime is shutting
    /// down).
    #[error("a request was cancelled: {0}")]
    Cancelled(String),
}

impl ScoreError {
    /// The rows of the one batch this error is about (first row, rows), for
    /// the errors that concern a single batch: refused, given up on, or
    /// answered wrongly. `None` for errors that end the whole output.
    pub fn batch(&self) -> Option<(u64, usize)> {
        match self {
            ScoreError::Rejected { first_row, rows, .. }
            | ScoreError::GaveUp { first_row, rows, .. }
            | ScoreError::BadResponse { first_row, rows, .. }
            | ScoreError::WrongVersion { first_row, rows, .. } => Some((*first_row, *rows)),
            _ => None,
        }
    }
}
