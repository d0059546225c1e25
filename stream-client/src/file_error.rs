//! Why a file cannot be read or written: the error both the plain formats
//! (`files`) and Parquet (`parquet_io`) give.

use std::path::{Path, PathBuf};

use crate::arrow::FeatureError;

/// Why a file cannot be read or written. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The operating system refused. (Its error is part of the sentence,
    /// not a cause beneath it: a chain would print it twice.)
    #[error("{}: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        error: std::io::Error,
    },
    /// The contents are not what the format needs.
    #[error("{}: {detail}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, in a sentence.
        detail: String,
    },
    /// The feature columns cannot be used.
    #[error("{}: {error}", path.display())]
    Features {
        /// The file.
        path: PathBuf,
        /// Why.
        error: FeatureError,
    },
}

impl FileError {
    pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FileError + '_ {
        move |error| FileError::Io { path: path.to_path_buf(), error }
    }

    pub(crate) fn invalid(path: &Path, detail: impl std::fmt::Display) -> FileError {
        FileError::Invalid { path: path.to_path_buf(), detail: detail.to_string() }
    }
}
