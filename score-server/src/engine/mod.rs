//! The engines that run a model's graph, behind one seam: `tract` (pure
//! Rust with our ai.onnx.ml operators; always built, needs nothing at run
//! time) and `onnxruntime` (its shared library loaded at run time through
//! the `ort` crate, only when a model asks for it: [`onnxruntime`]).
//!
//! A [`Plan`] is what a model shares between workers; each worker spawns
//! its own [`State`] from it (a tract state, or an onnxruntime session with
//! one intra-op thread: the pool owns the parallelism). Both take and give
//! tract tensors, so splitting, merging, output conversion and the error
//! kinds stay the pool's, whatever the engine.
//!
//! Which engine serves a model is chosen per model ([`EngineChoice`]);
//! `auto` runs both on sample rows, checks that they agree and keeps the
//! faster ([`select`]).

pub mod embed;
pub mod onnxruntime;
mod select;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use tract_onnx::prelude::*;

pub use select::{Agreement, Choice, Timing, compare, select};

/// An engine that runs ONNX graphs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EngineKind {
    /// tract, with score-server's own ai.onnx.ml operators.
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

/// A loaded model as one engine runs it, shared by the workers.
#[derive(Clone)]
pub enum Plan {
    /// tract's optimized plan.
    Tract(Arc<TypedRunnableModel>),
    /// The model's bytes and input names, for onnxruntime sessions.
    OnnxRuntime(Arc<onnxruntime::OrtPlan>),
    /// A text encoder behind its tokenizer and pooling (the encoder on
    /// one of the two engines).
    Embedding(Arc<embed::EmbeddingPlan>),
}

impl Plan {
    /// Which engine this plan runs on.
    pub fn kind(&self) -> EngineKind {
        match self {
            Plan::Tract(_) => EngineKind::Tract,
            Plan::OnnxRuntime(_) => EngineKind::OnnxRuntime,
            Plan::Embedding(plan) => plan.encoder_kind(),
        }
    }

    /// A worker's own state for running the model.
    pub fn spawn(&self) -> TractResult<State> {
        Ok(match self {
            Plan::Tract(plan) => State::Tract(Box::new(plan.spawn()?)),
            Plan::OnnxRuntime(plan) => State::OnnxRuntime(Box::new(plan.session()?)),
            Plan::Embedding(plan) => State::Embedding(Box::new(plan.spawn()?)),
        })
    }
}

/// One worker's means of running a model.
pub enum State {
    /// A tract state.
    Tract(Box<TypedSimpleState>),
    /// An onnxruntime session.
    OnnxRuntime(Box<onnxruntime::OrtState>),
    /// An embedding model's encoder state.
    Embedding(Box<embed::EmbedState>),
}

impl State {
    /// Runs the model on `inputs` (one tensor per model input, in order)
    /// and returns one tensor per model output, in order.
    pub fn run(&mut self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        match self {
            State::Tract(state) => state.run(inputs),
            State::OnnxRuntime(state) => state.run(inputs),
            State::Embedding(state) => state.run(inputs),
        }
    }
}
