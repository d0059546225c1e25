//! Loading an ONNX model into an optimized tract plan, and what we know of it.
//!
//! A servable model has inputs of shape `[batch]` or `[batch, n]` (float32,
//! float64, int64, int32, bool or string; the common case is one float32
//! `[batch, n]` matrix, the fast path) and any number of numeric outputs
//! whose first dimension is the batch. The batch dimension is made symbolic
//! before optimisation (skl2onnx exports leave it unset), so one plan serves
//! every request size.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use score_protocol::models::{FEATURE_NAMES_KEY, InputDoc, OutputDoc};

use crate::engine::{EngineChoice, EngineKind, Plan};
use crate::input::{Feed, Kind, Values};
use sha2::{Digest, Sha256};
use tract_onnx::pb;
use tract_onnx::pb::tensor_shape_proto::dimension::Value as DimValue;
use tract_onnx::pb::type_proto::Value as TypeValue;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::DimLike;

/// The model the server serves when started with no `--model`: a binary
/// logistic regression over 100 features (see `models/generate.py`).
pub const DEMO_MODEL: &[u8] = include_bytes!("../../models/logreg.onnx");

/// Name under which the bundled demo model is served.
pub const DEMO_MODEL_NAME: &str = "demo";

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

/// Where a model's bytes come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelSource {
    /// A file on disk.
    Path(PathBuf),
    /// The demo model compiled into the binary.
    Bundled,
}

impl fmt::Display for ModelSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelSource::Path(p) => write!(f, "{}", p.display()),
            ModelSource::Bundled => f.write_str("<bundled demo model>"),
        }
    }
}

/// A model to load: its serving name and where it comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelSpec {
    /// Name used in `/models/{name}`.
    pub name: String,
    /// Where the ONNX bytes come from.
    pub source: ModelSource,
    /// Which engine runs it (`--engine`).
    pub engine: EngineChoice,
    /// An embedding model's pooling when its directory does not say
    /// (`--pooling`).
    pub pooling: Option<crate::engine::embed::Pooling>,
}

/// What loading needs to know for engines other than tract.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// onnxruntime's shared library (`--onnxruntime`); else looked for.
    pub onnxruntime: Option<PathBuf>,
    /// Most rows in one model call (`--max-batch-rows`): the largest size
    /// `auto` times.
    pub max_batch_rows: usize,
    /// Most padded tokens in one encoder call of an embedding model
    /// (`--max-batch-tokens`).
    pub max_batch_tokens: usize,
    /// Time `auto` may spend timing the two engines, per model.
    pub probe_budget: std::time::Duration,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            onnxruntime: None,
            max_batch_rows: 4096,
            max_batch_tokens: crate::engine::embed::MAX_BATCH_TOKENS,
            probe_budget: std::time::Duration::from_millis(600),
        }
    }
}

impl EngineOptions {
    /// The batch sizes `auto` times: small merged requests (16 rows) and
    /// the chunk a large request is split into (1,024 rows, or less under
    /// a lower `--max-batch-rows`).
    pub fn probe_rows(&self) -> Vec<usize> {
        let big = 1024.min(self.max_batch_rows).max(1);
        let small = 16.min(big);
        if small == big { vec![big] } else { vec![small, big] }
    }
}

impl ModelSpec {
    /// Parses `NAME=PATH` or `PATH` (the name is then the file stem).
    pub fn parse(arg: &str) -> Result<Self, String> {
        let (name, path) = match arg.split_once('=') {
            Some((name, path)) => (name.to_string(), PathBuf::from(path)),
            None => {
                let path = PathBuf::from(arg);
                let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
                (stem.to_string(), path)
            }
        };
        let valid = !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid {
            return Err(format!(
                "model name {name:?} must be non-empty and use only letters, digits, '-', '_' or '.'"
            ));
        }
        if path.as_os_str().is_empty() {
            return Err(format!("model {name}: empty path"));
        }
        Ok(ModelSpec {
            name,
            source: ModelSource::Path(path),
            engine: EngineChoice::Default,
            pooling: None,
        })
    }

    /// The bundled demo model.
    pub fn demo() -> Self {
        ModelSpec {
            name: DEMO_MODEL_NAME.to_string(),
            source: ModelSource::Bundled,
            engine: EngineChoice::Default,
            pooling: None,
        }
    }
}

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
                    crate::pool::panic_message(&*panic)
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
        let mut onnx = tract_onnx::onnx();
        crate::ml::register(&mut onnx.op_register);
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
            _ => Some(load_tract(name, &onnx, &proto, graph, &feeds, &batch_name)),
        };
        let ort = match choice {
            EngineChoice::Fixed(EngineKind::OnnxRuntime) => {
                Some(load_onnxruntime(name, bytes, graph, &feeds, &batch_name, options))
            }
            EngineChoice::Auto => {
                match crate::engine::onnxruntime::init(options.onnxruntime.as_deref()) {
                    Ok(_) => {
                        Some(load_onnxruntime(name, bytes, graph, &feeds, &batch_name, options))
                    }
                    Err(why) => {
                        tracing::warn!(model = name, reason = %why,
                            "engine auto: onnxruntime is not available, tract only");
                        None
                    }
                }
            }
            _ => None,
        };
        let (plan, outputs, engine_reason) = match (tract, ort) {
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
                let choice = crate::engine::select(
                    &t.1,
                    &feeds,
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
        };
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
        };
        model.smoke_test()?;
        Ok(model)
    }

    /// Loads a sentence-transformers export directory (`model.onnx`,
    /// `tokenizer.json`, optionally `1_Pooling/config.json`, `modules.json`,
    /// `sentence_bert_config.json`) as a model with one string input,
    /// `text`, and the outputs of [`crate::engine::embed::OUTPUTS`]. The
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
        crate::engine::onnxruntime::init(options.onnxruntime.as_deref()).map_err(unservable)?;
        let (encoder, declared) = crate::engine::onnxruntime::OrtPlan::new(&bytes)
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
        let plan = crate::engine::embed::EmbeddingPlan::load(
            dir,
            Plan::OnnxRuntime(Arc::new(encoder)),
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
            outputs: crate::engine::embed::OUTPUTS
                .iter()
                .map(|&output| match output {
                    "embedding" | "pooled" => float(output, vec!["N".into(), dim.to_string()], dim),
                    _ => float(output, vec!["N".into()], 1),
                })
                .collect(),
            default_output: 0,
            plan: Plan::Embedding(Arc::new(plan)),
            engine_reason: format!(
                "embedding model: encoder on onnxruntime; {:?} pooling{}, at most {} tokens a \
                 text, encoder calls of at most {} padded tokens",
                config.pooling,
                if config.normalize { ", L2-normalised" } else { "" },
                config.max_tokens,
                options.max_batch_tokens,
            ),
            loaded_at: std::time::SystemTime::now(),
        };
        model.smoke_test()?;
        Ok(model)
    }

    /// Whether this is an embedding model (text in, vectors out).
    pub fn is_embedding(&self) -> bool {
        matches!(self.plan, Plan::Embedding(_))
    }

    /// The embedding model's token limit, if it is one.
    pub fn max_tokens(&self) -> Option<usize> {
        match &self.plan {
            Plan::Embedding(plan) => Some(plan.config().max_tokens),
            _ => None,
        }
    }

    /// For an embedding model, its token limit and the token budget of one
    /// worker call (`--max-batch-tokens` times
    /// [`crate::engine::embed::CALL_BATCHES`]): the pool cuts requests into
    /// calls by an upper bound on their tokens, not by rows.
    pub fn token_budget(&self) -> Option<(usize, usize)> {
        match &self.plan {
            Plan::Embedding(plan) => Some((
                plan.config().max_tokens,
                plan.max_batch_tokens().saturating_mul(crate::engine::embed::CALL_BATCHES),
            )),
            _ => None,
        }
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

/// What loading in one engine gives: the plan and the outputs' docs.
type Loaded = (Plan, Vec<OutputDoc>);

/// Loads the model in tract: types the inputs (a symbolic batch),
/// optimises, and describes the outputs from the typed facts.
fn load_tract(
    name: &str,
    onnx: &tract_onnx::model::Onnx,
    proto: &pb::ModelProto,
    graph: &pb::GraphProto,
    feeds: &[Feed],
    batch_name: &str,
) -> Result<Loaded, LoadError> {
    let tract_err = |stage| {
        let name = name.to_string();
        move |source| LoadError::Tract { name, stage, source }
    };
    let unservable = |reason: String| LoadError::Unservable { name: name.to_string(), reason };
    let mut model = onnx.model_for_proto_model(proto).map_err(tract_err("parsing"))?;
    let unsupported = unimplemented_ops(&model, graph);
    if !unsupported.is_empty() {
        return Err(LoadError::UnsupportedOperators { name: name.to_string(), ops: unsupported });
    }
    let batch = model.symbols.sym(batch_name);
    for (ix, feed) in feeds.iter().enumerate() {
        let shape: TVec<TDim> = if feed.rank == 1 {
            tvec![batch.to_dim()]
        } else {
            tvec![batch.to_dim(), feed.width.to_dim()]
        };
        model
            .set_input_fact(ix, InferenceFact::dt_shape(feed.kind.datum(), shape))
            .map_err(tract_err("setting the input shapes"))?;
    }
    let typed = model.into_optimized().map_err(tract_err("optimizing"))?;

    let mut outputs = Vec::with_capacity(typed.outputs.len());
    for (ix, outlet) in typed.outputs.iter().enumerate() {
        let fact = typed.outlet_fact(*outlet).map_err(tract_err("typing outputs"))?;
        let out_name = graph
            .output
            .get(ix)
            .map(|o| o.name.clone())
            .or_else(|| typed.outlet_label(*outlet).map(str::to_string))
            .unwrap_or_else(|| format!("output_{ix}"));
        let dims: Vec<TDim> = fact.shape.iter().cloned().collect();
        let columns = dims
            .iter()
            .skip(1)
            .map(|d| d.to_usize().ok())
            .product::<Option<usize>>()
            .ok_or_else(|| {
                unservable(format!(
                    "output {out_name} has shape {dims:?}: only the first (batch) dimension may vary"
                ))
            })?;
        let classes = string_classes(graph, &out_name);
        outputs.push(OutputDoc {
            name: out_name,
            dtype: dtype_name(fact.datum_type),
            shape: dims.iter().map(|d| d.to_string()).collect(),
            columns: columns.max(1),
            classes,
        });
    }
    let plan = typed.into_runnable().map_err(tract_err("planning"))?;
    Ok((Plan::Tract(plan), outputs))
}

/// Loads the model in onnxruntime (opening the library first) and
/// describes the outputs from the session's own declarations.
fn load_onnxruntime(
    name: &str,
    bytes: &[u8],
    graph: &pb::GraphProto,
    feeds: &[Feed],
    batch_name: &str,
    options: &EngineOptions,
) -> Result<Loaded, LoadError> {
    let unservable = |reason: String| LoadError::Unservable { name: name.to_string(), reason };
    crate::engine::onnxruntime::init(options.onnxruntime.as_deref()).map_err(unservable)?;
    let unzipped = without_zipmap(graph, bytes);
    let bytes = unzipped.as_deref().unwrap_or(bytes);
    let (mut plan, declared) = crate::engine::onnxruntime::OrtPlan::new(bytes)
        .map_err(|e| unservable(format!("onnxruntime cannot load it: {e}")))?;
    let mut outputs = Vec::with_capacity(declared.len());
    for (ix, output) in declared.into_iter().enumerate() {
        let mut shape: Vec<String> = output
            .shape
            .iter()
            .enumerate()
            .map(|(i, d)| match d {
                Some(n) => n.to_string(),
                None if i == 0 => batch_name.to_string(),
                None => "?".to_string(),
            })
            .collect();
        if shape.is_empty() {
            shape.push(batch_name.to_string());
        }
        let declared = output.shape.iter().skip(1).copied().product::<Option<usize>>();
        let columns = match (declared, output.tensor) {
            (Some(c), _) => c,
            // Not a tensor (ZipMap's sequence of maps): listed, never served.
            (None, false) => 1,
            // Not declared: learnt from a run on two rows (below).
            (None, true) => 0,
        };
        let classes = string_classes(graph, &output.name);
        let mut dtype = output.dtype;
        if let (Some(classes), "string") = (&classes, dtype.as_str()) {
            // Served as the class index, as tract's operators give it.
            plan.label_as_index(ix, classes);
            dtype = "int64".into();
        }
        outputs.push(OutputDoc { name: output.name, dtype, shape, columns, classes });
    }
    let plan = Plan::OnnxRuntime(Arc::new(plan));
    if outputs.iter().any(|o| o.columns == 0) {
        // Some output's width is not declared: run two rows of zeros and
        // read it from what comes out.
        let ran = Values::into_inputs(Values::zeros(feeds, 2), feeds, 2)
            .and_then(|inputs| plan.spawn()?.run(inputs))
            .map_err(|e| unservable(format!("onnxruntime test run failed: {e:#}")))?;
        for (output, value) in outputs.iter_mut().zip(ran.iter()) {
            if output.columns == 0 {
                if value.shape().first() != Some(&2) {
                    return Err(unservable(format!(
                        "output {} has shape {:?} for 2 input rows: its first dimension is not \
                         the batch",
                        output.name,
                        value.shape()
                    )));
                }
                output.columns = value.shape()[1..].iter().product::<usize>().max(1);
                output.shape = std::iter::once(batch_name.to_string())
                    .chain(value.shape()[1..].iter().map(usize::to_string))
                    .collect();
            }
        }
    }
    Ok((plan, outputs))
}

/// The model with each `ZipMap` that makes a graph output replaced by an
/// `Identity` of its probability tensor (`None`: the model has none).
/// tract's ZipMap does the same (`crate::ml`): the output keeps its name
/// and serves the probabilities, columns in class order, where
/// onnxruntime would give a sequence of maps no client can use.
fn without_zipmap(graph: &pb::GraphProto, bytes: &[u8]) -> Option<Vec<u8>> {
    use prost::Message;
    let outputs: Vec<&str> = graph.output.iter().map(|o| o.name.as_str()).collect();
    let zipmaps = graph
        .node
        .iter()
        .any(|n| n.op_type == "ZipMap" && n.output.iter().any(|o| outputs.contains(&o.as_str())));
    if !zipmaps {
        return None;
    }
    let mut proto = pb::ModelProto::decode(bytes).ok()?;
    let graph = proto.graph.as_mut()?;
    // (output name, class count)
    let mut replaced: Vec<(String, usize)> = Vec::new();
    for node in &mut graph.node {
        if node.op_type == "ZipMap" && node.output.iter().any(|o| outputs.contains(&o.as_str())) {
            let classes =
                node.attribute.iter().map(|a| a.ints.len().max(a.strings.len())).max().unwrap_or(0);
            node.op_type = "Identity".into();
            node.domain = String::new();
            node.attribute.clear();
            replaced.extend(node.output.iter().map(|o| (o.clone(), classes)));
        }
    }
    for output in &mut graph.output {
        let Some((_, classes)) = replaced.iter().find(|(name, _)| *name == output.name) else {
            continue;
        };
        let dim = |value| pb::tensor_shape_proto::Dimension { denotation: String::new(), value };
        // A float tensor [N, classes].
        output.r#type = Some(pb::TypeProto {
            denotation: String::new(),
            value: Some(TypeValue::TensorType(pb::type_proto::Tensor {
                elem_type: 1,
                shape: Some(pb::TensorShapeProto {
                    dim: vec![
                        dim(Some(DimValue::DimParam("N".into()))),
                        dim(Some(DimValue::DimValue(*classes as i64))),
                    ],
                }),
            })),
        });
    }
    Some(proto.encode_to_vec())
}

/// Reads `[batch]` or `[batch, n]` and the element type from the ONNX input
/// declaration: the batch symbol's name (the model's own `dim_param`, or
/// `N`) and how the input is fed.
fn input_dims(input: &pb::ValueInfoProto) -> Result<(String, Feed), String> {
    let Some(TypeValue::TensorType(tensor)) = input.r#type.as_ref().and_then(|t| t.value.as_ref())
    else {
        return Err(format!("input {} is not a tensor", input.name));
    };
    let kind = Kind::from_onnx(tensor.elem_type).ok_or_else(|| {
        format!(
            "input {} has ONNX element type {}; the server feeds float32, float64, int64, \
             int32, bool and string inputs",
            input.name, tensor.elem_type
        )
    })?;
    let dims = tensor.shape.as_ref().map(|s| s.dim.as_slice()).unwrap_or_default();
    let (batch, width) = match dims {
        [batch] => (batch, None),
        [batch, width] => (batch, Some(width)),
        _ => {
            return Err(format!(
                "input {} has rank {}, the server feeds [batch] columns and [batch, features] \
                 matrices",
                input.name,
                dims.len()
            ));
        }
    };
    let batch_name = match &batch.value {
        Some(DimValue::DimParam(p)) if !p.is_empty() => p.clone(),
        _ => "N".to_string(),
    };
    let width = match width.map(|w| &w.value) {
        None => 1,
        Some(Some(DimValue::DimValue(n))) if *n > 0 => *n as usize,
        Some(other) => {
            return Err(format!(
                "input {} must have a fixed number of features, found {other:?}",
                input.name
            ));
        }
    };
    let rank = if dims.len() == 1 { 1 } else { 2 };
    Ok((batch_name, Feed { name: input.name.clone(), kind, width, rank }))
}

/// The `/models` description of the inputs: the float32 matrix of a model
/// fed one, else one Arrow column per input, by name.
fn input_docs(feeds: &[Feed], batch: &str, feature_names: Option<Vec<String>>) -> Vec<InputDoc> {
    let shape = |feed: &Feed| {
        let mut shape = vec![batch.to_string()];
        if feed.rank == 2 {
            shape.push(feed.width.to_string());
        }
        shape
    };
    match crate::input::matrix_width(feeds) {
        Some(width) => {
            vec![InputDoc::float32(feeds[0].name.clone(), shape(&feeds[0]), width, feature_names)]
        }
        None => feeds
            .iter()
            .map(|f| InputDoc::typed(f.name.clone(), f.kind.name(), shape(f), f.width))
            .collect(),
    }
}

/// The names of a float matrix input's features, from the model's
/// metadata entry [`FEATURE_NAMES_KEY`] (none: separate Arrow columns are
/// taken by position). One that cannot be used is an error rather than
/// ignored: names that do not fit the input would otherwise silently feed
/// features by position. For a model fed by name the entry says nothing
/// the inputs do not, and is ignored.
fn feature_names(proto: &pb::ModelProto, feeds: &[Feed]) -> Result<Option<Vec<String>>, String> {
    let Some(entry) = proto.metadata_props.iter().find(|e| e.key == FEATURE_NAMES_KEY) else {
        return Ok(None);
    };
    let Some(width) = crate::input::matrix_width(feeds) else {
        tracing::warn!(key = FEATURE_NAMES_KEY, "metadata ignored: the model is fed by name");
        return Ok(None);
    };
    let wrong = |why: String| format!("its metadata {FEATURE_NAMES_KEY:?} cannot be used: {why}");
    let names = InputDoc::parse_feature_names(&entry.value).map_err(wrong)?;
    if names.len() != width {
        return Err(wrong(format!(
            "it names {} features; input {} takes {width} values a row",
            names.len(),
            feeds[0].name
        )));
    }
    Ok(Some(names))
}

/// The `classlabels_strings` of the classifier whose label output is the
/// graph output `name` (followed back through `Identity` nodes), if any.
fn string_classes(graph: &pb::GraphProto, name: &str) -> Option<Vec<String>> {
    let mut name = name.to_string();
    for _ in 0..graph.node.len() {
        let node = graph.node.iter().find(|n| n.output.contains(&name))?;
        if node.op_type == "Identity" {
            name = node.input.first()?.clone();
            continue;
        }
        if node.output.first() != Some(&name) {
            return None;
        }
        let attr = node.attribute.iter().find(|a| a.name == "classlabels_strings")?;
        return Some(
            attr.strings.iter().map(|s| String::from_utf8_lossy(s).into_owned()).collect(),
        );
    }
    None
}

/// Operators the loader left as `Unimplemented(..)` placeholders.
fn unimplemented_ops(model: &InferenceModel, graph: &pb::GraphProto) -> Vec<String> {
    let mut ops: Vec<String> = model
        .nodes()
        .iter()
        .filter_map(|node| {
            let op = node.op.name();
            let ty = op.strip_prefix("Unimplemented(")?.strip_suffix(')')?.to_string();
            let domain = graph
                .node
                .iter()
                .find(|n| n.op_type == ty)
                .map(|n| n.domain.clone())
                .unwrap_or_default();
            Some(if domain.is_empty() { ty } else { format!("{domain}.{ty}") })
        })
        .collect();
    ops.sort();
    ops.dedup();
    ops
}

fn dtype_name(dt: DatumType) -> String {
    let name = match dt {
        DatumType::F16 => "float16",
        DatumType::F32 => "float32",
        DatumType::F64 => "float64",
        DatumType::I8 => "int8",
        DatumType::I16 => "int16",
        DatumType::I32 => "int32",
        // tract types integer label outputs as symbolic dims after a Cast;
        // in the ONNX file (and once converted) they are int64.
        DatumType::I64 | DatumType::TDim => "int64",
        DatumType::U8 => "uint8",
        DatumType::U16 => "uint16",
        DatumType::U32 => "uint32",
        DatumType::U64 => "uint64",
        DatumType::Bool => "bool",
        DatumType::String => "string",
        other => return format!("{other:?}").to_lowercase(),
    };
    name.to_string()
}

/// Whether an output of element type `dtype` can be served as float32.
pub fn is_servable_dtype(dtype: &str) -> bool {
    !matches!(dtype, "string" | "blob" | "opaque" | "sequence" | "map")
}

fn hex_prefix(digest: &[u8], bytes: usize) -> String {
    digest.iter().take(bytes).map(|b| format!("{b:02x}")).collect()
}

/// A model's version: the first 16 hex digits of the SHA-256 of its files'
/// bytes, in order (the ONNX file; for an embedding model, then its
/// tokenizer).
fn content_version(parts: &[&[u8]]) -> String {
    let mut digest = Sha256::new();
    for part in parts {
        digest.update(part);
    }
    hex_prefix(&digest.finalize(), 8)
}

/// The files a spec's version is hashed from, in order.
fn version_files(spec: &ModelSpec) -> Vec<PathBuf> {
    match &spec.source {
        ModelSource::Bundled => Vec::new(),
        ModelSource::Path(dir) if dir.is_dir() => {
            vec![dir.join("model.onnx"), dir.join("tokenizer.json")]
        }
        ModelSource::Path(path) => vec![path.clone()],
    }
}

impl ModelSpec {
    /// The version the files on disk would load as (what
    /// [`Model::version`] would be), without loading them: a reload skips a
    /// model whose files did not change.
    pub fn version_on_disk(&self) -> Result<String, LoadError> {
        if matches!(self.source, ModelSource::Bundled) {
            return Ok(content_version(&[DEMO_MODEL]));
        }
        let mut parts = Vec::new();
        for path in version_files(self) {
            let bytes = std::fs::read(&path).map_err(|source| LoadError::Read {
                name: self.name.clone(),
                path: path.clone(),
                source,
            })?;
            parts.push(bytes);
        }
        Ok(content_version(&parts.iter().map(Vec::as_slice).collect::<Vec<_>>()))
    }

    /// Size and modification time of each file the version is hashed
    /// from (`None` for one that cannot be read): cheap to poll, and it
    /// changes whenever a file is replaced or rewritten.
    pub fn fingerprint(&self) -> Vec<Option<(u64, std::time::SystemTime)>> {
        version_files(self)
            .iter()
            .map(|p| std::fs::metadata(p).ok().and_then(|m| Some((m.len(), m.modified().ok()?))))
            .collect()
    }
}

/// The path of a fixture model in the repository's `models/` folder; used by
/// tests and benches.
pub fn fixture_path(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models").join(file)
}

/// `linreg.onnx` (a fixture) with its intercept moved by `shift`: the same
/// inputs and outputs, other scores and so another version. For tests of
/// model reloads and version pinning.
pub fn linreg_shifted(shift: f32) -> Vec<u8> {
    use prost::Message;
    let bytes = std::fs::read(fixture_path("linreg.onnx")).expect("the linreg fixture");
    let mut proto = pb::ModelProto::decode(&bytes[..]).expect("the linreg fixture parses");
    let graph = proto.graph.as_mut().expect("a graph");
    let intercepts = graph
        .node
        .iter_mut()
        .flat_map(|n| n.attribute.iter_mut())
        .find(|a| a.name == "intercepts")
        .expect("linreg's LinearRegressor has intercepts");
    for v in &mut intercepts.floats {
        *v += shift;
    }
    proto.encode_to_vec()
}
