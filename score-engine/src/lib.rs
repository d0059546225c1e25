//! `score-engine`: ONNX models loaded and run, below any transport.
//!
//! The loader ([`model`]) reads an ONNX file or a sentence-transformers
//! export directory and gives a [`Model`]: what `/models` describes (inputs,
//! outputs, version) and a [`Plan`] that each worker turns into its own
//! [`State`] to run batches on. Engines sit behind one seam ([`seam`]):
//! [`tract`] (pure Rust, with our ai.onnx.ml operators in [`ml`]),
//! [`onnxruntime`] (its shared library opened at run time) and the text
//! encoder [`embed`] (tokenizer, encoder, pooling). `auto` ([`select`]) runs
//! both ONNX engines on sample rows and keeps the faster of two that agree.
//!
//! Nothing here knows HTTP or an async runtime: the server maps
//! [`LoadError`] to its answers in one place, and runs [`State`]s on its own
//! worker threads.
//!
//! ```no_run
//! use score_engine::{Model, ModelSpec, input::Values};
//!
//! let model = Model::load(&ModelSpec::demo())?;
//! let rows = 4;
//! let inputs = Values::into_inputs(Values::zeros(&model.feeds, rows), &model.feeds, rows)?;
//! let outputs = model.plan.spawn()?.run(inputs)?;
//! assert_eq!(outputs[model.default_output].shape()[0], rows);
//! # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
//! ```

pub mod embed;
pub mod error;
pub mod input;
pub mod ml;
pub mod model;
pub mod onnxruntime;
pub mod proto;
pub mod seam;
pub mod select;
pub mod spec;
pub mod tract;

#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use error::LoadError;
pub use model::Model;
pub use seam::{Engine, EngineChoice, EngineKind, Plan, Runner, State, TextLimits};
pub use spec::{DEMO_MODEL_NAME, EngineOptions, ModelSource, ModelSpec};
