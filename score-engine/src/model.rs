//! The loader: an ONNX file or a sentence-transformers directory into a
//! [`Model`] with the engine that serves it, chosen per model (tract,
//! onnxruntime, or `auto`: both, checked against each other, the faster
//! kept).
//!
//! A servable model has inputs of shape `[batch]` or `[batch, n]` (float32,
//! float64, int64, int32, bool or string; the common case is one float32
//! `[batch, n]` matrix, the fast path) and any number of numeric outputs
//! whose first dimension is the batch. The batch dimension is made symbolic
//! before optimisation (skl2onnx exports leave it unset), so one plan serves
//! every request size.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use score_protocol::models::{InputDoc, OutputDoc};
use tract_onnx::pb;
use tract_onnx::prelude::*;

use crate::embed::{EmbeddingConfig, EmbeddingPlan, OUTPUTS, TextEngine};
use crate::error::{LoadError, panic_message};
use crate::input::{Feed, Kind, Values};
use crate::proto::{feature_names, input_dims, input_docs, is_servable_dtype};
use crate::seam::{EngineChoice, EngineKind, Plan};
use crate::spec::{DEMO_MODEL, EngineOptions, ModelSource, ModelSpec, content_version};

/// A loaded, optimized model ready to be run by the worker pool.
pub struct Model {
    /// Serving name.
    pub name: String,
    /// Content hash of the ONNX bytes (first 16 hex digits of SHA-256).
    pub version: String,
    /// Where it was loaded from.
    pub source: ModelSource,
    /// Every input, in the model's order, as `/models` describes them.
    pub inputs: Vec<InputDoc>,
    /// Every input, as the workers feed them.
    pub feeds: Vec<Feed>,
    /// Every output, in the model's order.
    pub outputs: Vec<OutputDoc>,
    /// Index of the output served when the request names none: the first
    /// floating-point output (for a classifier, the probabilities).
    pub default_output: usize,
    /// The engine's plan; each worker spawns its own state from it.
    pub plan: Plan,
    /// Why this engine runs the model, in a sentence (`/models`, the log).
    pub engine_reason: String,
    /// When this version was loaded.
    pub loaded_at: std::time::SystemTime,
    /// For an embedding model, what its directory says around the encoder
    /// (pooling, prompts, Matryoshka support).
    pub text: Option<EmbeddingConfig>,
}

impl fmt::Debug for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Model")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("inputs", &self.inputs)
            .field("outputs", &self.outputs)
            .finish_non_exhaustive()
    }
}

impl Model {
    /// Reads and loads a model in tract (the default engine).
    pub fn load(spec: &ModelSpec) -> Result<Model, LoadError> {
        Self::load_with(spec, &EngineOptions::default())
    }

    /// Reads and loads a model in the engine its spec asks for.
    pub fn load_with(spec: &ModelSpec, options: &EngineOptions) -> Result<Model, LoadError> {
        if let ModelSource::Path(dir) = &spec.source
            && dir.is_dir()
        {
            return Self::load_embedding(spec, dir, options);
        }
        let bytes =
            match &spec.source {
                ModelSource::Bundled => DEMO_MODEL.to_vec(),
                ModelSource::Path(path) => std::fs::read(path).map_err(|source| {
                    LoadError::Read { name: spec.name.clone(), path: path.clone(), source }
                })?,
            };
        Self::from_bytes_with(&spec.name, spec.source.clone(), &bytes, spec.engine, options)
    }

    /// Loads a model from ONNX bytes in tract.
    pub fn from_bytes(name: &str, source: ModelSource, bytes: &[u8]) -> Result<Model, LoadError> {
        Self::from_bytes_with(name, source, bytes, EngineChoice::Default, &EngineOptions::default())
    }

    /// Loads a model from ONNX bytes in the engine `choice` names. A file
    /// that makes the ONNX loader panic (found by `tests/fuzz.rs`: tract
    /// indexes some malformed graphs without checking) is an error like any
    /// other, never a crash.
    pub fn from_bytes_with(
        name: &str,
        source: ModelSource,
        bytes: &[u8],
        choice: EngineChoice,
        options: &EngineOptions,
    ) -> Result<Model, LoadError> {
        let from = source.to_string();
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            Self::from_bytes_unguarded(name, source, bytes, choice, options)
        }))
        .unwrap_or_else(|panic| {
            Err(LoadError::Unservable {
                name: name.to_string(),
                reason: format!(
                    "{from} is not a valid ONNX model (the loader failed: {})",
                    panic_message(&*panic)
                ),
            })
        })
    }

    fn from_bytes_unguarded(
        name: &str,
        source: ModelSource,
        bytes: &[u8],
        choice: EngineChoice,
        options: &EngineOptions,
    ) -> Result<Model, LoadError> {
        let unservable = |reason: String| LoadError::Unservable { name: name.to_string(), reason };
        let library = options.onnxruntime.as_deref();
        let onnx = crate::tract::onnx();
        let proto = onnx.proto_model_for_read(&mut &*bytes).map_err(|e| LoadError::NotOnnx {
            name: name.to_string(),
            from: source.to_string(),
            detail: format!("{e:#}"),
        })?;
        let graph =
            proto.graph.as_ref().ok_or_else(|| unservable("the file has no graph".into()))?;

        let initializers: Vec<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
        let inputs: Vec<&pb::ValueInfoProto> =
            graph.input.iter().filter(|i| !initializers.contains(&i.name.as_str())).collect();
        if inputs.is_empty() {
            return Err(unservable("the model has no input".into()));
        }
        let mut feeds = Vec::with_capacity(inputs.len());
        let mut batch_name = None;
        for input in &inputs {
            let (batch, feed) = input_dims(input).map_err(unservable)?;
            batch_name.get_or_insert(batch);
            feeds.push(feed);
        }
        let batch_name = batch_name.unwrap_or_else(|| "N".into());
        let feature_names = feature_names(&proto, &feeds).map_err(unservable)?;

        // The engines asked for, each loaded or refused with its reason.
        let tract = match choice {
            EngineChoice::Fixed(EngineKind::OnnxRuntime) => None,
            _ => Some(crate::tract::load(name, &onnx, &proto, graph, &feeds, &batch_name)),
        };
        let ort = match choice {
            EngineChoice::Fixed(EngineKind::OnnxRuntime) => {
                Some(crate::onnxruntime::load(name, bytes, graph, &feeds, &batch_name, library))
            }
            EngineChoice::Auto => match crate::onnxruntime::init(library) {
                Ok(_) => {
                    Some(crate::onnxruntime::load(name, bytes, graph, &feeds, &batch_name, library))
                }
                Err(why) => {
                    tracing::warn!(model = name, reason = %why,
                            "engine auto: onnxruntime is not available, tract only");
                    None
                }
            },
            _ => None,
        };
        let (plan, outputs, engine_reason) = settle(name, choice, options, &feeds, tract, ort)?;
        for output in &outputs {
            if !is_servable_dtype(&output.dtype) {
                // Kept in the metadata, refused with 404 when asked for.
                tracing::warn!(model = name, output = %output.name, dtype = %output.dtype,
                    "output is not numeric and cannot be served");
            }
        }
        let default_output = outputs
            .iter()
            .position(|o| matches!(o.dtype.as_str(), "float32" | "float64" | "float16"))
            .or_else(|| outputs.iter().position(|o| is_servable_dtype(&o.dtype)))
            .ok_or_else(|| unservable("the model has no numeric output".into()))?;

        let model = Model {
            name: name.to_string(),
            version: content_version(&[bytes]),
            source,
            inputs: input_docs(&feeds, &batch_name, feature_names),
            feeds,
            outputs,
            default_output,
            plan,
            engine_reason,
            loaded_at: std::time::SystemTime::now(),
            text: None,
        };
        model.smoke_test()?;
        Ok(model)
    }

    /// Loads a sentence-transformers export directory (`model.onnx`,
    /// `tokenizer.json`, optionally `1_Pooling/config.json`, `modules.json`,
    /// `sentence_bert_config.json`) as a model with one string input,
    /// `text`, and the outputs of [`OUTPUTS`]. The
    /// encoder runs on onnxruntime: tract runs such encoders at about a
    /// third of its speed (measured on the project's 2-core machines).
    fn load_embedding(
        spec: &ModelSpec,
        dir: &Path,
        options: &EngineOptions,
    ) -> Result<Model, LoadError> {
        let name = spec.name.as_str();
        let unservable = |reason: String| LoadError::Unservable { name: name.to_string(), reason };
        if spec.engine == EngineChoice::Fixed(EngineKind::Tract) {
            return Err(unservable(
                "an embedding model's encoder runs on onnxruntime; --engine tract is not \
                 supported for it"
                    .into(),
            ));
        }
        let read = |file: &str| {
            let path = dir.join(file);
            std::fs::read(&path).map_err(|source| LoadError::Read {
                name: name.to_string(),
                path: path.clone(),
                source,
            })
        };
        let bytes = read("model.onnx")?;
        let tokenizer = read("tokenizer.json")?;
        crate::onnxruntime::init(options.onnxruntime.as_deref()).map_err(unservable)?;
        let (encoder, declared) = crate::onnxruntime::OrtPlan::new(&bytes)
            .map_err(|e| unservable(format!("onnxruntime cannot load the encoder: {e}")))?;
        let dim = match declared.first().map(|o| &o.shape[..]) {
            Some([_, _, Some(dim)]) => *dim,
            other => {
                return Err(unservable(format!(
                    "the encoder's first output has shape {other:?}; expected [batch, \
                     sequence, hidden] (the last hidden state)"
                )));
            }
        };
        let inputs = encoder.input_names().to_vec();
        let plan = EmbeddingPlan::load(
            dir,
            Arc::new(encoder),
            inputs,
            dim,
            options.max_batch_tokens,
            spec.pooling,
        )
        .map_err(unservable)?;
        let config = plan.config().clone();
        let feeds = vec![Feed { name: "text".into(), kind: Kind::Str, width: 1, rank: 1 }];
        let float = |name: &str, shape: Vec<String>, columns| OutputDoc {
            name: name.into(),
            dtype: "float32".into(),
            shape,
            columns,
            classes: None,
        };
        let model = Model {
            name: name.to_string(),
            version: content_version(&[&bytes, &tokenizer]),
            source: spec.source.clone(),
            inputs: input_docs(&feeds, "N", None),
            feeds,
            outputs: OUTPUTS
                .iter()
                .map(|&output| match output {
                    "embedding" | "pooled" => float(output, vec!["N".into(), dim.to_string()], dim),
                    _ => float(output, vec!["N".into()], 1),
                })
                .collect(),
            default_output: 0,
            plan: Arc::new(TextEngine(Arc::new(plan))),
            engine_reason: format!(
                "embedding model: encoder on onnxruntime; {:?} pooling{}, at most {} tokens a \
                 text, encoder calls of at most {} padded tokens",
                config.pooling,
                if config.normalize { ", L2-normalised" } else { "" },
                config.max_tokens,
                options.max_batch_tokens,
            ),
            loaded_at: std::time::SystemTime::now(),
            text: Some(config),
        };
        model.smoke_test()?;
        Ok(model)
    }

    /// Whether this is an embedding model (text in, vectors out).
    pub fn is_embedding(&self) -> bool {
        self.plan.text().is_some()
    }

    /// The embedding model's token limit, if it is one.
    pub fn max_tokens(&self) -> Option<usize> {
        self.plan.text().map(|t| t.max_tokens)
    }

    /// For an embedding model, its token limit and the token budget of one
    /// worker call (`--max-batch-tokens` times
    /// [`crate::embed::CALL_BATCHES`]): the pool cuts requests into
    /// calls by an upper bound on their tokens, not by rows.
    pub fn token_budget(&self) -> Option<(usize, usize)> {
        self.plan.text().map(|t| (t.max_tokens, t.call_tokens))
    }

    /// The engine that runs this model.
    pub fn engine(&self) -> EngineKind {
        self.plan.kind()
    }

    /// `Some(n)` for a model fed one float32 `[N, n]` matrix: the input
    /// binary and JSON bodies carry (and Arrow bodies without names).
    /// `None` for a model fed by name ([`crate::input::TypedRows`]).
    pub fn matrix(&self) -> Option<usize> {
        crate::input::matrix_width(&self.feeds)
    }

    /// The names of the matrix input's features, where the model gives
    /// them: separate Arrow columns are then matched by name.
    pub fn feature_names(&self) -> Option<&[String]> {
        self.inputs.first()?.feature_names.as_deref()
    }

    /// The inputs in a phrase, for error messages: `age (float32), city
    /// (string)`.
    pub fn input_list(&self) -> String {
        let names: Vec<String> = self
            .feeds
            .iter()
            .map(|f| {
                let width = if f.width == 1 { String::new() } else { format!(" x {}", f.width) };
                format!("{} ({}{width})", f.name, f.kind.name())
            })
            .collect();
        names.join(", ")
    }

    /// Index of the output called `name`, if the server can serve it.
    pub fn output_index(&self, name: &str) -> Option<usize> {
        self.outputs.iter().position(|o| o.name == name && is_servable_dtype(&o.dtype))
    }

    /// Runs two rows of zeros through the plan so that a model that parses
    /// but cannot run fails at start-up, not on the first request.
    fn smoke_test(&self) -> Result<(), LoadError> {
        let test_err =
            |source| LoadError::Tract { name: self.name.clone(), stage: "test run", source };
        let inputs =
            Values::into_inputs(Values::zeros(&self.feeds, 2), &self.feeds, 2).map_err(test_err)?;
        let mut state = self.plan.spawn().map_err(|source| LoadError::Tract {
            name: self.name.clone(),
            stage: "test run",
            source,
        })?;
        let outs = state.run(inputs).map_err(|source| LoadError::Tract {
            name: self.name.clone(),
            stage: "test run",
            source,
        })?;
        for (info, out) in self.outputs.iter().zip(outs.iter()) {
            if is_servable_dtype(&info.dtype) && out.shape().first() != Some(&2) {
                return Err(LoadError::Unservable {
                    name: self.name.clone(),
                    reason: format!(
                        "output {} has shape {:?} for 2 input rows: its first dimension is not the batch",
                        info.name,
                        out.shape()
                    ),
                });
            }
        }
        Ok(())
    }
}

/// What loading in one engine gave: its plan and the outputs' docs, or why
/// it could not load the model.
type Loaded = Result<(Plan, Vec<OutputDoc>), LoadError>;

/// The engine that serves a model, given what each engine asked for made
/// of it (`None`: not asked), and why, in a sentence. Under `auto` with
/// both loaded, they run sample rows and must agree ([`crate::select`]).
fn settle(
    name: &str,
    choice: EngineChoice,
    options: &EngineOptions,
    feeds: &[Feed],
    tract: Option<Loaded>,
    ort: Option<Loaded>,
) -> Result<(Plan, Vec<OutputDoc>, String), LoadError> {
    let unservable = |reason: String| LoadError::Unservable { name: name.to_string(), reason };
    Ok(match (tract, ort) {
        (Some(Ok(t)), None) => {
            let reason = match choice {
                EngineChoice::Auto => "auto: onnxruntime is not available".to_string(),
                EngineChoice::Default => "the default engine".to_string(),
                EngineChoice::Fixed(_) => "--engine tract".to_string(),
            };
            (t.0, t.1, reason)
        }
        (None, Some(Ok(o))) => (o.0, o.1, "--engine onnxruntime".to_string()),
        (Some(Err(e)), None) | (None, Some(Err(e))) => return Err(e),
        (Some(Ok(t)), Some(Ok(o))) => {
            let sizes = options.probe_rows();
            let choice = crate::select::select(
                &t.1,
                feeds,
                &t.0,
                &o.0,
                &sizes,
                options.probe_budget,
            )
            .map_err(|why| {
                unservable(format!(
                    "engine auto: tract and onnxruntime disagree, so neither is trusted: {why}"
                ))
            })?;
            let reason = choice.reason();
            tracing::info!(model = name, engine = %choice.engine, reason = %reason,
                "engine chosen");
            match choice.engine {
                EngineKind::Tract => (t.0, t.1, reason),
                EngineKind::OnnxRuntime => (o.0, o.1, reason),
            }
        }
        (Some(Err(te)), Some(Ok(o))) => {
            let te = te.reason();
            tracing::warn!(model = name, tract = %te,
                "engine auto: tract cannot load the model; onnxruntime serves it");
            (o.0, o.1, format!("auto: tract cannot load it ({te})"))
        }
        (Some(Ok(t)), Some(Err(oe))) => {
            let oe = oe.reason();
            tracing::warn!(model = name, onnxruntime = %oe,
                "engine auto: onnxruntime cannot load the model; tract serves it");
            (t.0, t.1, format!("auto: onnxruntime cannot load it ({oe})"))
        }
        (Some(Err(te)), Some(Err(oe))) => {
            return Err(unservable(format!(
                "neither engine can load it: tract: {}; onnxruntime: {}",
                te.reason(),
                oe.reason()
            )));
        }
        (None, None) => unreachable!("an engine is always asked for"),
    })
}
