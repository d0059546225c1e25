//! The tract engine: pure Rust, with our own ai.onnx.ml operators
//! ([`crate::ml`]); always built, needs nothing at run time.

use std::sync::Arc;

use score_protocol::models::OutputDoc;
use tract_onnx::pb;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::DimLike;

use crate::error::LoadError;
use crate::input::Feed;
use crate::proto::{dtype_name, string_classes, unimplemented_ops};
use crate::seam::{Engine, EngineKind, Plan, Runner, State};

/// tract's optimized plan of a model, shared by the workers.
pub struct TractPlan(Arc<TypedRunnableModel>);

impl Engine for TractPlan {
    fn kind(&self) -> EngineKind {
        EngineKind::Tract
    }

    fn spawn(&self) -> TractResult<State> {
        Ok(Box::new(TractState(self.0.spawn()?)))
    }
}

/// A worker's tract state.
struct TractState(TypedSimpleState);

impl Runner for TractState {
    fn run(&mut self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        self.0.run(inputs)
    }
}

/// A parser for ONNX files that knows our ai.onnx.ml operators.
pub fn onnx() -> tract_onnx::model::Onnx {
    let mut onnx = tract_onnx::onnx();
    crate::ml::register(&mut onnx.op_register);
    onnx
}

/// Loads the model in tract: types the inputs (a symbolic batch),
/// optimises, and describes the outputs from the typed facts.
pub fn load(
    name: &str,
    onnx: &tract_onnx::model::Onnx,
    proto: &pb::ModelProto,
    graph: &pb::GraphProto,
    feeds: &[Feed],
    batch_name: &str,
) -> Result<(Plan, Vec<OutputDoc>), LoadError> {
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
    Ok((Arc::new(TractPlan(plan)), outputs))
}
