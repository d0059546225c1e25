//! The seam between the loader and the engines: what every engine is
//! ([`Engine`], [`Runner`]) and how one is named and chosen ([`EngineKind`],
//! [`EngineChoice`]).
//!
//! An [`Engine`] is what a model shares between workers; each worker spawns
//! its own [`Runner`] from it (a tract state, or an onnxruntime session with
//! one intra-op thread: the pool owns the parallelism). Every engine takes
//! and gives tract tensors, so splitting, merging, output conversion and the
//! error kinds stay the pool's, whatever the engine. An engine module
//! ([`crate::tract`], [`crate::onnxruntime`], [`crate::embed`]) depends on
//! this one and on nothing of the others; the loader ([`crate::model`]) is
//! the one place that knows them all.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use tract_onnx::prelude::*;

/// An engine that runs ONNX graphs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EngineKind {
    /// tract, with our own ai.onnx.ml operators ([`crate::ml`]).
    Tract,
    /// onnxruntime, loaded at run time.
    OnnxRuntime,
}

impl EngineKind {
    /// The name used in flags, `/models` and metrics.
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Tract => "tract",
            EngineKind::OnnxRuntime => "onnxruntime",
        }
    }
}

impl fmt::Display for EngineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a model's engine is chosen (`--engine`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EngineChoice {
    /// This engine only: a model it cannot load is an error.
    Fixed(EngineKind),
    /// Both engines: the faster of the two that agree on sample rows, or
    /// the one that can load the model.
    Auto,
    /// tract, the default: nothing to install.
    #[default]
    Default,
}

impl EngineChoice {
    /// The engine a model is loaded in first.
    pub fn first(self) -> EngineKind {
        match self {
            EngineChoice::Fixed(kind) => kind,
            EngineChoice::Auto | EngineChoice::Default => EngineKind::Tract,
        }
    }
}

impl fmt::Display for EngineChoice {
    /// As `--engine` takes it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineChoice::Fixed(kind) => f.write_str(kind.name()),
            EngineChoice::Auto => f.write_str("auto"),
            EngineChoice::Default => f.write_str("tract"),
        }
    }
}

impl FromStr for EngineChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "tract" => Ok(EngineChoice::Fixed(EngineKind::Tract)),
            "onnxruntime" | "ort" => Ok(EngineChoice::Fixed(EngineKind::OnnxRuntime)),
            "auto" => Ok(EngineChoice::Auto),
            other => Err(format!("unknown engine {other:?}: use tract, onnxruntime or auto")),
        }
    }
}

/// An engine that holds one loaded model, shared by the workers.
pub trait Engine: Send + Sync {
    /// Which engine this is.
    fn kind(&self) -> EngineKind;

    /// A worker's own means of running the model.
    fn spawn(&self) -> TractResult<State>;

    /// For a text encoder, its limits: the pool cuts requests by tokens.
    fn text(&self) -> Option<TextLimits> {
        None
    }
}

/// One worker's means of running a model.
pub trait Runner: Send {
    /// Runs the model on `inputs` (one tensor per model input, in order)
    /// and returns one tensor per model output, in order.
    fn run(&mut self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>>;

    /// [`Runner::run`] as a request's `options` ask; engines with nothing
    /// to choose ignore them.
    fn run_with(
        &mut self,
        inputs: TVec<TValue>,
        options: &RunOptions,
    ) -> TractResult<TVec<TValue>> {
        let _ = options;
        self.run(inputs)
    }
}

/// What a request chooses about how its rows are run. The pool merges
/// only requests whose options are equal into one call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunOptions {
    /// A text over the token limit keeps its end (TEI's
    /// `truncation_direction: Left`) instead of its start.
    pub keep_end: bool,
    /// A text over the token limit is embedded whole, in windows of the
    /// limit that overlap by this many tokens, pooled into one vector
    /// ([`crate::embed`]); `None`: it is cut or refused.
    pub chunk_overlap: Option<usize>,
    /// The prompt put before every text: an index into the model's
    /// prompts (`EmbeddingConfig::prompts`, in name order); `None`: none.
    pub prompt: Option<usize>,
}

/// A loaded model as one engine runs it, shared by the workers.
pub type Plan = Arc<dyn Engine>;

/// One worker's state for a [`Plan`].
pub type State = Box<dyn Runner>;

/// A text encoder's limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TextLimits {
    /// Most tokens of one text (longer ones are cut or refused).
    pub max_tokens: usize,
    /// The token budget of one worker call: the pool cuts requests into
    /// calls by an upper bound on their tokens, not by rows.
    pub call_tokens: usize,
}
