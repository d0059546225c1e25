//! ai.onnx.ml operators tract-onnx lacks, registered into its ONNX loader:
//! `Scaler`, `Binarizer`, `Imputer` (float) and
//! `ZipMap`. Each is an expansion into tract's own typed ops, so tract
//! optimizes them with the rest of the graph.
//!
//! ZipMap turns a probability tensor into a list of {class: probability}
//! maps, which has no place in a float32 matrix: the server treats it as the
//! identity on the probability tensor, so a default scikit-learn export
//! serves its probabilities (columns in class order) under the ZipMap's
//! output name. Semantics follow the ONNX-ML operator specs.

use tract_onnx::model::{OnnxOpRegister, ParsingContext};
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::change_axes::wire_with_rank_broadcast;
use tract_onnx::tract_core::ops::logic::{Iff, comp_eq, comp_gt};
use tract_onnx::tract_core::ops::math::{is_nan, mul, sub};
use tract_onnx::tract_hir::internal::*;

#[cfg(test)]
mod conformance;
mod label;
mod linear;
mod onehot;
mod post;
mod svm;
mod tree;

/// Adds our operators to `reg`, replacing tract's tree ensembles and linear
/// models.
pub fn register(reg: &mut OnnxOpRegister) {
    reg.insert("TreeEnsembleClassifier", tree::classifier);
    reg.insert("TreeEnsembleRegressor", tree::regressor);
    reg.insert("LinearClassifier", linear::classifier);
    reg.insert("LinearRegressor", linear::regressor);
    reg.insert("Normalizer", linear::normalizer);
    reg.insert("OneHotEncoder", onehot::onehot);
    reg.insert("LabelEncoder", label::label_encoder);
    reg.insert("ArrayFeatureExtractor", array_feature_extractor);
    reg.insert("FeatureVectorizer", feature_vectorizer);
    reg.insert("SVMClassifier", svm::classifier);
    reg.insert("SVMRegressor", svm::regressor);
    reg.insert("Scaler", scaler);
    reg.insert("Binarizer", binarizer);
    reg.insert("Imputer", imputer);
    reg.insert("ZipMap", zipmap);
}

type Built = TractResult<(Box<dyn InferenceOp>, Vec<String>)>;

/// `Y = (X - offset) * scale`; offset and scale of length 1 or C.
#[derive(Debug, Clone, PartialEq)]
struct Scaler {
    offset: Vec<f32>,
    scale: Vec<f32>,
}

fn scaler(_ctx: &ParsingContext, node: &NodeProto) -> Built {
    let offset: Vec<f32> = node.get_attr_opt_vec("offset")?.unwrap_or_else(|| vec![0.0]);
    let scale: Vec<f32> = node.get_attr_opt_vec("scale")?.unwrap_or_else(|| vec![1.0]);
    Ok((expand(Scaler { offset, scale }), vec![]))
}

/// `Y = X > threshold ? 1 : 0`, in X's type.
#[derive(Debug, Clone, PartialEq)]
struct Binarizer {
    threshold: f32,
}

fn binarizer(_ctx: &ParsingContext, node: &NodeProto) -> Built {
    let threshold = node.get_attr_opt("threshold")?.unwrap_or(0.0f32);
    Ok((expand(Binarizer { threshold }), vec![]))
}

/// Replaces `replaced_value_float` (NaN by default in exports) with the
/// per-column (or single) `imputed_value_floats`.
#[derive(Debug, Clone, PartialEq)]
struct Imputer {
    imputed: Vec<f32>,
    replaced: f32,
}

fn imputer(_ctx: &ParsingContext, node: &NodeProto) -> Built {
    let imputed: Vec<f32> = node.get_attr_opt_vec("imputed_value_floats")?.unwrap_or_default();
    ensure!(
        !imputed.is_empty(),
        "Imputer without imputed_value_floats (integer imputation is not supported)"
    );
    let replaced = node.get_attr_opt("replaced_value_float")?.unwrap_or(0.0f32);
    Ok((expand(Imputer { imputed, replaced }), vec![]))
}

/// Picks along the last axis: `[.., C]` and indices of shape `I` give
/// `[.., I]`, except that a scalar index keeps the axis (`[.., 1]`), as
/// onnxruntime does and scikit-learn's SVC export relies on (tract's own
/// drops it, which breaks the Concat after it).
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
struct ArrayFeatureExtractor;

fn array_feature_extractor(_ctx: &ParsingContext, _node: &NodeProto) -> Built {
    Ok((expand(ArrayFeatureExtractor), vec![]))
}

impl Expansion for ArrayFeatureExtractor {
    fn name(&self) -> StaticName {
        "ArrayFeatureExtractor".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 2)?;
        check_output_arity(outputs, 1)?;
        s.equals(&inputs[0].datum_type, &outputs[0].datum_type)?;
        s.given_2(&inputs[0].rank, &inputs[1].rank, move |s, data, indices| {
            s.equals(&outputs[0].rank, if indices == 0 { data } else { data - 1 + indices })
        })?;
        s.given_2(&inputs[0].shape, &inputs[1].shape, move |s, input, indices| {
            let mut shape: TVec<TDim> =
                input.iter().take(input.len().saturating_sub(1)).cloned().collect();
            if indices.is_empty() {
                shape.push(1.to_dim());
            } else {
                shape.extend(indices.iter().cloned());
            }
            s.equals(&outputs[0].shape, shape)
        })
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        let rank = model.outlet_fact(inputs[0])?.rank();
        ensure!(rank >= 1, "ArrayFeatureExtractor on a scalar");
        let mut indices = inputs[1];
        if model.outlet_fact(indices)?.rank() == 0 {
            indices = model.wire_node(format!("{prefix}.indices"), AxisOp::Add(0), &[indices])?[0]
        }
        model.wire_node(
            prefix,
            tract_onnx::tract_core::ops::array::Gather { axis: rank - 1, output_type: None },
            &[inputs[0], indices],
        )
    }
}

/// Concatenates its inputs' columns into one float row per example; input
/// `i` must have `inputdimensions[i]` columns (onnxruntime pads or cuts a
/// mismatch silently; we refuse it at load time).
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
struct FeatureVectorizer {
    dims: Vec<usize>,
}

fn feature_vectorizer(_ctx: &ParsingContext, node: &NodeProto) -> Built {
    let dims: Vec<i64> = node.get_attr_opt_vec("inputdimensions")?.unwrap_or_default();
    ensure!(
        dims.len() == node.input.len(),
        "FeatureVectorizer has {} inputs and {} inputdimensions",
        node.input.len(),
        dims.len()
    );
    let dims = dims
        .into_iter()
        .map(|d| usize::try_from(d).context("negative inputdimensions"))
        .collect::<TractResult<_>>()?;
    Ok((expand(FeatureVectorizer { dims }), vec![]))
}

impl Expansion for FeatureVectorizer {
    fn name(&self) -> StaticName {
        "FeatureVectorizer".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, self.dims.len())?;
        check_output_arity(outputs, 1)?;
        s.equals(&outputs[0].datum_type, DatumType::F32)?;
        s.equals(&outputs[0].rank, 2)?;
        s.equals(&outputs[0].shape[0], &inputs[0].shape[0])?;
        s.equals(&outputs[0].shape[1], self.dims.iter().sum::<usize>().to_dim())?;
        Ok(())
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        let mut parts = tvec![];
        for (i, (&input, &dim)) in inputs.iter().zip(&self.dims).enumerate() {
            let mut x = input;
            if model.outlet_fact(x)?.datum_type != f32::datum_type() {
                x = model.wire_node(
                    format!("{prefix}.{i}.to_f32"),
                    tract_onnx::tract_core::ops::cast::cast(f32::datum_type()),
                    &[x],
                )?[0];
            }
            let fact = model.outlet_fact(x)?;
            ensure!(
                fact.rank() == 2 && fact.shape[1] == dim.to_dim(),
                "FeatureVectorizer input {i} has shape {:?}, inputdimensions says {dim} columns",
                fact.shape
            );
            parts.push(x);
        }
        model.wire_node(prefix, tract_onnx::tract_core::ops::array::TypedConcat::new(1), &parts)
    }
}

/// Identity on the probability tensor (see the module docs).
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
struct ZipMap;

fn zipmap(_ctx: &ParsingContext, _node: &NodeProto) -> Built {
    Ok((expand(ZipMap), vec![]))
}

/// Shared inference rules: one float input, one output of its shape.
fn same_shape_f32(
    s: &mut Solver<'_>,
    inputs: &[TensorProxy],
    outputs: &[TensorProxy],
) -> InferenceResult {
    check_input_arity(inputs, 1)?;
    check_output_arity(outputs, 1)?;
    s.equals(&outputs[0].datum_type, DatumType::F32)?;
    s.equals(&inputs[0].shape, &outputs[0].shape)?;
    Ok(())
}

/// The input as f32, and a rank-1 constant of `values` (length 1 or the
/// input's last dimension) to broadcast against it.
fn f32_input_and_const(
    prefix: &str,
    name: &str,
    model: &mut TypedModel,
    input: OutletId,
    values: &[f32],
) -> TractResult<(OutletId, OutletId)> {
    let mut x = input;
    if model.outlet_fact(x)?.datum_type != f32::datum_type() {
        x = model.wire_node(
            format!("{prefix}.to_f32"),
            tract_onnx::tract_core::ops::cast::cast(f32::datum_type()),
            &[x],
        )?[0];
    }
    let fact = model.outlet_fact(x)?.clone();
    if values.len() > 1
        && let Some(last) = fact.shape.last().and_then(|d| d.to_usize().ok())
    {
        ensure!(last == values.len(), "{name} has {} values for {last} columns", values.len());
    }
    let c = model.add_const(format!("{prefix}.{name}"), rctensor1(values))?;
    Ok((x, c))
}

impl Expansion for Scaler {
    fn name(&self) -> StaticName {
        "Scaler".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        same_shape_f32(s, inputs, outputs)
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        let (x, offset) = f32_input_and_const(prefix, "offset", model, inputs[0], &self.offset)?;
        let (_, scale) = f32_input_and_const(prefix, "scale", model, x, &self.scale)?;
        let centred =
            wire_with_rank_broadcast(format!("{prefix}.sub"), model, sub(), &[x, offset])?;
        wire_with_rank_broadcast(format!("{prefix}.mul"), model, mul(), &[centred[0], scale])
    }
}

impl Expansion for Binarizer {
    fn name(&self) -> StaticName {
        "Binarizer".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        same_shape_f32(s, inputs, outputs)
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        let (x, threshold) =
            f32_input_and_const(prefix, "threshold", model, inputs[0], &[self.threshold])?;
        let above = wire_with_rank_broadcast(
            format!("{prefix}.gt"),
            model,
            TypedBinOp(comp_gt(), None),
            &[x, threshold],
        )?;
        model.wire_node(
            format!("{prefix}.to_f32"),
            tract_onnx::tract_core::ops::cast::cast(f32::datum_type()),
            &above,
        )
    }
}

impl Expansion for Imputer {
    fn name(&self) -> StaticName {
        "Imputer".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        same_shape_f32(s, inputs, outputs)
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        let (x, imputed) = f32_input_and_const(prefix, "imputed", model, inputs[0], &self.imputed)?;
        let missing = if self.replaced.is_nan() {
            model.wire_node(format!("{prefix}.is_nan"), is_nan(), &[x])?[0]
        } else {
            let (_, replaced) =
                f32_input_and_const(prefix, "replaced", model, x, &[self.replaced])?;
            wire_with_rank_broadcast(
                format!("{prefix}.eq"),
                model,
                TypedBinOp(comp_eq(), None),
                &[x, replaced],
            )?[0]
        };
        wire_with_rank_broadcast(format!("{prefix}.where"), model, Iff, &[missing, imputed, x])
    }
}

impl Expansion for ZipMap {
    fn name(&self) -> StaticName {
        "ZipMap".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        same_shape_f32(s, inputs, outputs)
    }

    fn wire(
        &self,
        _prefix: &str,
        _model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        Ok(inputs.into())
    }
}

/// The `post_transform` attribute (NONE when absent).
fn post_transform(node: &NodeProto) -> TractResult<post::PostTransform> {
    post::PostTransform::parse(node.get_attr_opt::<&str>("post_transform")?.unwrap_or("NONE"))
}

/// A classifier's labels: the int64 list `ints` (its name differs between
/// operators), or for `classlabels_strings` the class indices 0..n (served
/// as such; the names are in the model metadata).
fn class_labels(node: &NodeProto, ints: &str) -> TractResult<Vec<i64>> {
    let labels = match (
        node.get_attr_opt_vec::<i64>(ints)?,
        node.get_attr_opt_vec::<String>("classlabels_strings")?,
    ) {
        (Some(ints), None) => ints,
        (None, Some(strings)) => (0..strings.len() as i64).collect(),
        _ => bail!("exactly one of {ints} and classlabels_strings must be set"),
    };
    ensure!(labels.len() >= 2, "{} class label(s): a classifier needs two or more", labels.len());
    Ok(labels)
}

/// Inference rules of a classifier: one input `[N, ..]`, int64 labels `[N]`
/// and float scores `[N, width]`.
fn classifier_rules<'r, 'p: 'r>(
    s: &mut Solver<'r>,
    inputs: &'p [TensorProxy],
    outputs: &'p [TensorProxy],
    width: usize,
) -> InferenceResult {
    check_input_arity(inputs, 1)?;
    check_output_arity(outputs, 2)?;
    s.equals(&outputs[0].datum_type, DatumType::I64)?;
    s.equals(&outputs[0].rank, 1)?;
    s.equals(&outputs[0].shape[0], &inputs[0].shape[0])?;
    scores_rule(s, &inputs[0], &outputs[1], width)
}

/// Inference rules of a regressor: one input `[N, ..]`, float `[N, width]`.
fn regressor_rules<'r, 'p: 'r>(
    s: &mut Solver<'r>,
    inputs: &'p [TensorProxy],
    outputs: &'p [TensorProxy],
    width: usize,
) -> InferenceResult {
    check_input_arity(inputs, 1)?;
    check_output_arity(outputs, 1)?;
    scores_rule(s, &inputs[0], &outputs[0], width)
}

fn scores_rule<'r, 'p: 'r>(
    s: &mut Solver<'r>,
    input: &'p TensorProxy,
    output: &'p TensorProxy,
    width: usize,
) -> InferenceResult {
    s.equals(&output.datum_type, DatumType::F32)?;
    s.equals(&output.rank, 2)?;
    s.equals(&output.shape[0], &input.shape[0])?;
    s.equals(&output.shape[1], width.to_dim())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::ml::conformance::check_all;

    #[test]
    fn scalers_match_onnxruntime() {
        check_all("scaler");
    }

    #[test]
    fn binarizers_match_onnxruntime() {
        check_all("binarizer");
    }

    #[test]
    fn imputers_match_onnxruntime() {
        check_all("imputer");
    }

    #[test]
    fn feature_vectorizers_match_onnxruntime() {
        check_all("vectorizer");
    }

    #[test]
    fn feature_extractors_match_onnxruntime() {
        check_all("afe");
    }
}
