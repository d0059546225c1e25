//! Why a model could not be loaded, and the panic message helper that
//! turns an engine's panic into a sentence.

use std::path::PathBuf;

use tract_onnx::prelude::TractError;

/// Why a model could not be loaded. Every variant names the model.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("model {name}: cannot read {path}: {source}")]
    Read {
        /// Model name.
        name: String,
        /// Path that failed.
        path: PathBuf,
        /// Underlying I/O error.
        source: std::io::Error,
    },
    /// The file is not an ONNX model (its protobuf does not decode).
    #[error("model {name}: {from} is not an ONNX file ({detail})")]
    NotOnnx {
        /// Model name.
        name: String,
        /// Where the bytes came from.
        from: String,
        /// What the decoder said.
        detail: String,
    },
    /// The model uses operators tract does not implement.
    #[error(
        "model {name}: unsupported ONNX operator(s): {}; the server cannot run this model",
        ops.join(", ")
    )]
    UnsupportedOperators {
        /// Model name.
        name: String,
        /// Operator types (with domain where not the default one).
        ops: Vec<String>,
    },
    /// The model's inputs or outputs are not of a shape the server can serve.
    #[error("model {name}: {reason}")]
    Unservable {
        /// Model name.
        name: String,
        /// What is wrong, in a sentence.
        reason: String,
    },
    /// tract failed to parse, type, optimise or run the model.
    #[error("model {name}: {stage} failed: {source:#}")]
    Tract {
        /// Model name.
        name: String,
        /// Which step failed.
        stage: &'static str,
        /// tract's error chain.
        source: TractError,
    },
}

impl LoadError {
    /// The error without the model's name in front (every variant's
    /// message starts `model NAME: `): to quote it inside another sentence
    /// about the same model.
    pub fn reason(&self) -> String {
        let text = self.to_string();
        let name = match self {
            LoadError::Read { name, .. }
            | LoadError::NotOnnx { name, .. }
            | LoadError::UnsupportedOperators { name, .. }
            | LoadError::Unservable { name, .. }
            | LoadError::Tract { name, .. } => name,
        };
        text.strip_prefix(&format!("model {name}: ")).map(str::to_string).unwrap_or(text)
    }
}

/// The text of a panic's payload. Takes the payload itself (`&*boxed`):
/// a `&Box<dyn Any>` would coerce to a `dyn Any` holding the box, and the
/// message would be lost.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}
