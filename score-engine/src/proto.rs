//! Reading an ONNX file's declarations: the inputs and how they are fed,
//! the features' names, the classes behind a label output, the operators
//! no engine implements.

use score_protocol::models::{FEATURE_NAMES_KEY, InputDoc};
use tract_onnx::pb;
use tract_onnx::pb::tensor_shape_proto::dimension::Value as DimValue;
use tract_onnx::pb::type_proto::Value as TypeValue;
use tract_onnx::prelude::*;

use crate::input::{Feed, Kind};

/// Reads `[batch]` or `[batch, n]` and the element type from the ONNX input
/// declaration: the batch symbol's name (the model's own `dim_param`, or
/// `N`) and how the input is fed.
pub(crate) fn input_dims(input: &pb::ValueInfoProto) -> Result<(String, Feed), String> {
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
pub(crate) fn input_docs(
    feeds: &[Feed],
    batch: &str,
    feature_names: Option<Vec<String>>,
) -> Vec<InputDoc> {
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
pub(crate) fn feature_names(
    proto: &pb::ModelProto,
    feeds: &[Feed],
) -> Result<Option<Vec<String>>, String> {
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
pub(crate) fn string_classes(graph: &pb::GraphProto, name: &str) -> Option<Vec<String>> {
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
pub(crate) fn unimplemented_ops(model: &InferenceModel, graph: &pb::GraphProto) -> Vec<String> {
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

pub(crate) fn dtype_name(dt: DatumType) -> String {
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
