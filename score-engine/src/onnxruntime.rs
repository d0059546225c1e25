//! onnxruntime through the `ort` crate with `load-dynamic`: nothing is
//! linked or downloaded at build time; the shared library is opened the
//! first time a model asks for this engine ([`init`]), from the first of
//! `--onnxruntime PATH`, `ORT_DYLIB_PATH`, the `onnxruntime` package of the
//! active Python environment (`VIRTUAL_ENV`, or `python3`'s own
//! site-packages), or a system install (`/usr/lib`, `/usr/local/lib`).
//!
//! Each worker gets its own session ([`OrtPlan::session`]) with one
//! intra-op thread and no inter-op pool: the worker pool owns the
//! parallelism, as with tract. Sessions take tract tensors in and give
//! tract tensors back, so the pool does not know which engine ran.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::tensor::TensorElementType;
use ort::value::{DynValue, TensorRef, ValueType};
use score_protocol::models::OutputDoc;
use tract_onnx::pb;
use tract_onnx::pb::tensor_shape_proto::dimension::Value as DimValue;
use tract_onnx::pb::type_proto::Value as TypeValue;
use tract_onnx::prelude::*;

use crate::error::LoadError;
use crate::input::{Feed, Values};
use crate::proto::string_classes;
use crate::seam::{Engine, EngineKind, Plan, Runner, State};

/// What loading the library gave, once per process.
static LIBRARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// Where the library was found, if [`init`] succeeded.
pub fn loaded_library() -> Option<&'static Path> {
    LIBRARY.get()?.as_ref().ok().map(PathBuf::as_path)
}

/// Opens onnxruntime's shared library (once per process; later calls
/// return the first outcome) from `flag` or the places the module
/// documentation lists. `Err` says where it looked or why the library
/// found could not be used.
pub fn init(flag: Option<&Path>) -> Result<&'static Path, String> {
    LIBRARY
        .get_or_init(|| {
            let path = find_library(flag)?;
            let shown = path.display().to_string();
            // ort panics on a library it cannot open or whose API is too
            // old: caught, the message becomes the error.
            let committed = std::panic::catch_unwind(|| {
                ort::init_from(path.to_string_lossy()).with_name("score-server").commit()
            });
            match committed {
                Ok(Ok(_)) => {
                    // Opening a session's environment is lazy: ask for the
                    // version now so a wrong library fails here.
                    let version = std::panic::catch_unwind(ort::info)
                        .map_err(|p| crate::error::panic_message(&*p))?;
                    tracing::info!(library = %shown, build = version, "onnxruntime loaded");
                    Ok(path)
                }
                Ok(Err(e)) => Err(format!("onnxruntime at {shown} could not start: {e}")),
                Err(panic) => Err(format!(
                    "onnxruntime at {shown} could not be loaded: {}",
                    crate::error::panic_message(&*panic)
                )),
            }
        })
        .as_ref()
        .map(PathBuf::as_path)
        .map_err(Clone::clone)
}

/// The library to open: the first that exists of `flag`, `ORT_DYLIB_PATH`,
/// the Python environment's onnxruntime package, the system's.
fn find_library(flag: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(path) = flag {
        return existing(path, "--onnxruntime");
    }
    if let Some(path) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        return existing(Path::new(&path), "ORT_DYLIB_PATH");
    }
    let mut looked = Vec::new();
    let mut prefixes: Vec<PathBuf> = Vec::new();
    if let Some(venv) = std::env::var_os("VIRTUAL_ENV") {
        prefixes.push(PathBuf::from(venv));
    }
    prefixes.extend(["/usr/local", "/usr"].map(PathBuf::from));
    for prefix in &prefixes {
        for lib in ["lib", "lib64"] {
            let Ok(entries) = std::fs::read_dir(prefix.join(lib)) else { continue };
            for entry in entries.flatten() {
                let name = entry.file_name();
                if !name.to_string_lossy().starts_with("python3") {
                    continue;
                }
                for packages in ["site-packages", "dist-packages"] {
                    let capi = entry.path().join(packages).join("onnxruntime/capi");
                    looked.push(capi.display().to_string());
                    if let Some(found) = library_in(&capi) {
                        return Ok(found);
                    }
                }
            }
        }
    }
    for dir in ["/usr/local/lib", "/usr/lib", "/usr/lib/x86_64-linux-gnu"] {
        looked.push(dir.to_string());
        if let Some(found) = library_in(Path::new(dir)) {
            return Ok(found);
        }
    }
    Err(format!(
        "no onnxruntime library found: give --onnxruntime PATH (libonnxruntime.so, e.g. from the \
         onnxruntime PyPI wheel: scripts/onnxruntime.sh fetches it) or set ORT_DYLIB_PATH; \
         looked in {}",
        looked.join(", ")
    ))
}

fn existing(path: &Path, from: &str) -> Result<PathBuf, String> {
    if path.is_file() {
        Ok(path.to_path_buf())
    } else {
        Err(format!("{from} names {}, which is not a file", path.display()))
    }
}

/// `libonnxruntime.so` or a versioned `libonnxruntime.so.1.x.y` in `dir`.
fn library_in(dir: &Path) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n == "libonnxruntime.so" || n.starts_with("libonnxruntime.so."))
        })
        .collect();
    found.sort();
    found.into_iter().next()
}

/// An output as an onnxruntime session declares it.
#[derive(Clone, Debug)]
pub struct DeclaredOutput {
    /// Its name.
    pub name: String,
    /// Element type, named as `/models` names them (`float32`, `int64`…);
    /// `sequence` or `map` for an output that is not a tensor.
    pub dtype: String,
    /// Dimensions, `None` where dynamic.
    pub shape: Vec<Option<usize>>,
    /// Whether it is a tensor.
    pub tensor: bool,
}

fn dtype_name(ty: TensorElementType) -> String {
    match ty {
        TensorElementType::Float32 => "float32",
        TensorElementType::Float64 => "float64",
        TensorElementType::Float16 => "float16",
        TensorElementType::Int64 => "int64",
        TensorElementType::Int32 => "int32",
        TensorElementType::Int16 => "int16",
        TensorElementType::Int8 => "int8",
        TensorElementType::Uint8 => "uint8",
        TensorElementType::Uint16 => "uint16",
        TensorElementType::Uint32 => "uint32",
        TensorElementType::Uint64 => "uint64",
        TensorElementType::Bool => "bool",
        TensorElementType::String => "string",
        _ => "opaque",
    }
    .to_string()
}

/// A model for onnxruntime: its bytes (each worker's session is built from
/// them) and its input names in order.
pub struct OrtPlan {
    bytes: Arc<[u8]>,
    inputs: Vec<String>,
    /// Per output: for a classifier's string label output, each class
    /// name's index (the label is served as that index, as tract's
    /// operators give it, with the names in `/models`).
    classes: Vec<Option<Arc<HashMap<String, i64>>>>,
}

impl OrtPlan {
    /// Checks that onnxruntime loads the model (one session, built and
    /// dropped) and keeps what the workers need; gives the outputs as the
    /// session declares them. `Err` is onnxruntime's own message (it names
    /// a missing operator).
    pub fn new(bytes: &[u8]) -> Result<(OrtPlan, Vec<DeclaredOutput>), String> {
        let session = build(bytes).map_err(|e| e.to_string())?;
        let inputs = session.inputs.iter().map(|i| i.name.clone()).collect();
        let outputs: Vec<DeclaredOutput> = session
            .outputs
            .iter()
            .map(|o| match &o.output_type {
                ValueType::Tensor { ty, shape, .. } => DeclaredOutput {
                    name: o.name.clone(),
                    dtype: dtype_name(*ty),
                    shape: shape.iter().map(|&d| usize::try_from(d).ok()).collect(),
                    tensor: true,
                },
                ValueType::Map { .. } => DeclaredOutput {
                    name: o.name.clone(),
                    dtype: "map".into(),
                    shape: vec![],
                    tensor: false,
                },
                _ => DeclaredOutput {
                    name: o.name.clone(),
                    dtype: "sequence".into(),
                    shape: vec![None],
                    tensor: false,
                },
            })
            .collect();
        let classes = vec![None; outputs.len()];
        Ok((OrtPlan { bytes: bytes.into(), inputs, classes }, outputs))
    }

    /// The model's input names, in its order.
    pub fn input_names(&self) -> &[String] {
        &self.inputs
    }

    /// Serves output `ix` (a string label) as the index of its value in
    /// `classes`.
    pub fn label_as_index(&mut self, ix: usize, classes: &[String]) {
        let index = classes.iter().enumerate().map(|(i, c)| (c.clone(), i as i64)).collect();
        self.classes[ix] = Some(Arc::new(index));
    }

    /// A worker's session: one intra-op thread, no inter-op pool, all graph
    /// optimisations.
    pub fn session(&self) -> TractResult<OrtState> {
        let session = build(&self.bytes).map_err(|e| anyhow::anyhow!("onnxruntime: {e}"))?;
        Ok(OrtState { session, inputs: self.inputs.clone(), classes: self.classes.clone() })
    }
}

fn build(bytes: &[u8]) -> ort::Result<Session> {
    Session::builder()?
        .with_optimization_level(GraphOptimizationLevel::Level3)?
        .with_intra_threads(1)?
        .with_inter_threads(1)?
        .with_parallel_execution(false)?
        .commit_from_memory(bytes)
}

impl Engine for OrtPlan {
    fn kind(&self) -> EngineKind {
        EngineKind::OnnxRuntime
    }

    fn spawn(&self) -> TractResult<State> {
        Ok(Box::new(self.session()?))
    }
}

impl Runner for OrtState {
    fn run(&mut self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        OrtState::run(self, inputs)
    }
}

/// One worker's onnxruntime session.
pub struct OrtState {
    session: Session,
    inputs: Vec<String>,
    classes: Vec<Option<Arc<HashMap<String, i64>>>>,
}

impl OrtState {
    /// Runs the session on tract tensors and gives tract tensors back.
    pub fn run(&mut self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        anyhow::ensure!(
            inputs.len() == self.inputs.len(),
            "{} inputs for a model of {}",
            inputs.len(),
            self.inputs.len()
        );
        let mut feed: Vec<(&str, ort::session::SessionInputValue<'_>)> =
            Vec::with_capacity(inputs.len());
        for (name, tensor) in self.inputs.iter().zip(inputs.iter()) {
            feed.push((name.as_str(), to_ort(tensor)?));
        }
        let outputs = self.session.run(feed).map_err(|e| anyhow::anyhow!("onnxruntime: {e}"))?;
        outputs
            .values()
            .zip(&self.classes)
            .map(|(value, classes)| match classes {
                Some(classes) => label_index(&value, classes).map(TValue::from),
                None => from_ort(&value).map(TValue::from),
            })
            .collect()
    }
}

/// A string label output as the index of each label among the classes.
fn label_index(value: &DynValue, classes: &HashMap<String, i64>) -> TractResult<Tensor> {
    let (shape, labels) =
        value.try_extract_strings().map_err(|e| anyhow::anyhow!("onnxruntime output: {e}"))?;
    let index = labels
        .iter()
        .map(|l| {
            classes.get(l).copied().ok_or_else(|| anyhow::anyhow!("label {l:?} is not a class"))
        })
        .collect::<TractResult<Vec<i64>>>()?;
    let dims: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
    Ok(tract_ndarray::ArrayD::from_shape_vec(dims, index)?.into_tensor())
}

/// A tensor's values, borrowed.
fn values<T: Datum>(tensor: &Tensor) -> TractResult<&[T]> {
    tensor.try_as_plain_ram()?.as_slice::<T>()
}

/// A tract tensor as an onnxruntime input: numbers borrowed, strings
/// copied (onnxruntime keeps its own).
fn to_ort(tensor: &Tensor) -> TractResult<ort::session::SessionInputValue<'_>> {
    let shape: Vec<i64> = tensor.shape().iter().map(|&d| d as i64).collect();
    let err = |e: ort::Error| anyhow::anyhow!("onnxruntime input: {e}");
    Ok(match tensor.datum_type() {
        DatumType::F32 => {
            TensorRef::from_array_view((shape, values::<f32>(tensor)?)).map_err(err)?.into()
        }
        DatumType::F64 => {
            TensorRef::from_array_view((shape, values::<f64>(tensor)?)).map_err(err)?.into()
        }
        DatumType::I64 => {
            TensorRef::from_array_view((shape, values::<i64>(tensor)?)).map_err(err)?.into()
        }
        DatumType::I32 => {
            TensorRef::from_array_view((shape, values::<i32>(tensor)?)).map_err(err)?.into()
        }
        DatumType::Bool => {
            TensorRef::from_array_view((shape, values::<bool>(tensor)?)).map_err(err)?.into()
        }
        DatumType::String => {
            ort::value::Tensor::from_string_array((shape, values::<String>(tensor)?))
                .map_err(err)?
                .into()
        }
        other => anyhow::bail!("onnxruntime input of type {other:?} is not supported"),
    })
}

/// An onnxruntime output as a tract tensor (copied). An output that is not
/// a tensor (a sequence of maps: sklearn's ZipMap) becomes an empty string
/// tensor: such outputs are listed but never served (not numeric).
fn from_ort(value: &DynValue) -> TractResult<Tensor> {
    let ValueType::Tensor { ty, .. } = value.dtype() else {
        return Ok(Tensor::from(String::new()));
    };
    let err = |e: ort::Error| anyhow::anyhow!("onnxruntime output: {e}");
    fn tensor<T: ort::tensor::PrimitiveTensorElementType + Datum + Copy + std::fmt::Debug>(
        value: &DynValue,
    ) -> Result<Tensor, ort::Error> {
        let (shape, data) = value.try_extract_tensor::<T>()?;
        let dims: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
        Ok(Tensor::from_shape(&dims, data).expect("onnxruntime gives as many values as its shape"))
    }
    Ok(match ty {
        TensorElementType::Float32 => tensor::<f32>(value).map_err(err)?,
        TensorElementType::Float64 => tensor::<f64>(value).map_err(err)?,
        TensorElementType::Int64 => tensor::<i64>(value).map_err(err)?,
        TensorElementType::Int32 => tensor::<i32>(value).map_err(err)?,
        TensorElementType::Int8 => tensor::<i8>(value).map_err(err)?,
        TensorElementType::Uint8 => tensor::<u8>(value).map_err(err)?,
        TensorElementType::Bool => tensor::<bool>(value).map_err(err)?,
        TensorElementType::String => {
            let (shape, strings) = value.try_extract_strings().map_err(err)?;
            let dims: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
            tract_ndarray::ArrayD::from_shape_vec(dims, strings)?.into_tensor()
        }
        other => anyhow::bail!("onnxruntime output of type {other:?} is not supported"),
    })
}

/// Loads the model in onnxruntime (opening the library first) and
/// describes the outputs from the session's own declarations.
pub fn load(
    name: &str,
    bytes: &[u8],
    graph: &pb::GraphProto,
    feeds: &[Feed],
    batch_name: &str,
    library: Option<&Path>,
) -> Result<(Plan, Vec<OutputDoc>), LoadError> {
    let unservable = |reason: String| LoadError::Unservable { name: name.to_string(), reason };
    init(library).map_err(unservable)?;
    let unzipped = without_zipmap(graph, bytes);
    let bytes = unzipped.as_deref().unwrap_or(bytes);
    let (mut plan, declared) =
        OrtPlan::new(bytes).map_err(|e| unservable(format!("onnxruntime cannot load it: {e}")))?;
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
    let plan: Plan = Arc::new(plan);
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
/// tract's ZipMap does the same ([`crate::ml`]): the output keeps its name
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
