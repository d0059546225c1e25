//! `LinearClassifier` and `LinearRegressor` (ai.onnx.ml), our own in place
//! of tract's (whose classifier ran at 0.1× onnxruntime and fails on
//! string labels).
//!
//! The models are a handful of dot products per row (one per class or
//! target), so each is a plain loop over a contiguous coefficient row that
//! the compiler vectorizes; a general matrix product buys nothing at these
//! shapes. Semantics follow onnxruntime where the spec is silent (the
//! two-column layout of a one-model binary classifier, post-transforms).
//! String class labels come out as the class index (int64); the names are
//! in the model metadata (`GET /models/{name}`).

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

use super::Built;
use super::post::{PostTransform, exp, logistic, probit};

/// Coefficients, one row of `features` per model (class or target).
#[derive(Debug, Clone, PartialEq)]
struct Weights {
    coefficients: Vec<f32>,
    intercepts: Vec<f32>,
    features: usize,
}

impl Weights {
    fn parse(node: &NodeProto, models: usize) -> TractResult<Weights> {
        let coefficients: Vec<f32> = node.get_attr_opt_vec("coefficients")?.unwrap_or_default();
        ensure!(
            models > 0 && !coefficients.is_empty() && coefficients.len().is_multiple_of(models),
            "{} coefficients for {models} model(s)",
            coefficients.len()
        );
        let intercepts: Vec<f32> =
            node.get_attr_opt_vec("intercepts")?.unwrap_or_else(|| vec![0.0; models]);
        ensure!(
            intercepts.len() == models,
            "{} intercepts for {models} model(s)",
            intercepts.len()
        );
        let features = coefficients.len() / models;
        Ok(Weights { coefficients, intercepts, features })
    }

    /// `rows × models` raw scores.
    fn scores(&self, input: &Tensor) -> TractResult<(usize, Vec<f32>)> {
        let input = input.cast_to::<f32>()?;
        let view = input.to_plain_array_view::<f32>()?;
        ensure!(view.ndim() == 2, "linear model input must be 2-D, got shape {:?}", view.shape());
        let (rows, width) = (view.shape()[0], view.shape()[1]);
        ensure!(
            width == self.features,
            "the model has {} coefficients per class or target, the input {width} columns",
            self.features
        );
        let x = view.as_slice().context("linear model input is not contiguous")?;
        let models = self.intercepts.len();
        let mut out = vec![0f32; rows * models];
        if width == 0 {
            return Ok((rows, out));
        }
        for (row, scores) in x.chunks_exact(width).zip(out.chunks_exact_mut(models)) {
            for ((s, w), b) in
                scores.iter_mut().zip(self.coefficients.chunks_exact(width)).zip(&self.intercepts)
            {
                *s = dot(row, w) + b;
            }
        }
        Ok((rows, out))
    }
}

/// A dot product in eight independent lanes (vectorizes).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ac.remainder().iter().zip(bc.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ac.zip(bc) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `LinearClassifier`: int64 labels and float scores.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Classifier {
    weights: Weights,
    post: PostTransform,
    /// `classlabels_ints`, or 0..n for string labels.
    labels: Vec<i64>,
}

impl Eq for Classifier {}

/// Parses a `LinearClassifier` node.
pub(crate) fn classifier(_ctx: &ParsingContext, node: &NodeProto) -> Built {
    let labels = super::class_labels(node, "classlabels_ints")?;
    let models = match node.get_attr_opt_vec::<f32>("intercepts")? {
        Some(i) => i.len(),
        None if labels.len() == 2 => 1,
        None => labels.len(),
    };
    ensure!(
        models == labels.len() || (models == 1 && labels.len() == 2),
        "{models} model(s) for {} class labels",
        labels.len()
    );
    let weights = Weights::parse(node, models)?;
    Ok((expand(Classifier { weights, post: super::post_transform(node)?, labels }), vec![]))
}

impl Classifier {
    fn n_classes(&self) -> usize {
        self.labels.len()
    }
}

impl Op for Classifier {
    fn name(&self) -> StaticName {
        "LinearClassifier".into()
    }

    op_as_typed_op!();
}

impl EvalOp for Classifier {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (rows, raw) = self.weights.scores(&inputs[0])?;
        let k = self.n_classes();
        let models = self.weights.intercepts.len();
        let mut labels = Vec::with_capacity(rows);
        let mut out = vec![0f32; rows * k];
        for (s, o) in raw.chunks_exact(models).zip(out.chunks_exact_mut(k)) {
            if models == 1 {
                // One model, two classes: onnxruntime's second column.
                let v = s[0];
                labels.push(self.labels[(v > 0.0) as usize]);
                let p = match self.post {
                    PostTransform::Logistic => logistic(v),
                    PostTransform::Probit => probit(v),
                    _ => v,
                };
                o.copy_from_slice(&[1.0 - p, p]);
            } else {
                let mut best = 0;
                for j in 1..models {
                    if s[j] > s[best] {
                        best = j;
                    }
                }
                labels.push(self.labels[best]);
                o.copy_from_slice(s);
                if self.post == PostTransform::Softmax {
                    // Shift by the row's max here, exponentiate below.
                    let max = s[best];
                    o.iter_mut().for_each(|v| *v -= max);
                } else {
                    self.post.apply(o);
                }
            }
        }
        if models > 1 && self.post == PostTransform::Softmax {
            // One pass over the whole block (vectorizes), then normalize.
            out.iter_mut().for_each(|v| *v = exp(*v));
            for row in out.chunks_exact_mut(k) {
                let sum: f32 = row.iter().sum();
                row.iter_mut().for_each(|v| *v /= sum);
            }
        }
        Ok(tvec!(
            Tensor::from_shape(&[rows], &labels)?.into_tvalue(),
            Tensor::from_shape(&[rows, k], &out)?.into_tvalue()
        ))
    }
}

impl TypedOp for Classifier {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let n = inputs[0].shape[0].clone();
        Ok(tvec!(i64::fact([n.clone()]), f32::fact([n, self.n_classes().to_dim()])))
    }

    as_op!();
}

impl Expansion for Classifier {
    fn name(&self) -> StaticName {
        "LinearClassifier".into()
    }

    fn nboutputs(&self) -> TractResult<usize> {
        Ok(2)
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        super::classifier_rules(s, inputs, outputs, self.n_classes())
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        model.wire_node(prefix, self.clone(), inputs)
    }
}

/// `LinearRegressor`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Regressor {
    weights: Weights,
    post: PostTransform,
}

impl Eq for Regressor {}

/// Parses a `LinearRegressor` node.
pub(crate) fn regressor(_ctx: &ParsingContext, node: &NodeProto) -> Built {
    let targets: i64 = node.get_attr_opt("targets")?.unwrap_or(1);
    ensure!(targets >= 1, "targets is {targets}");
    let weights = Weights::parse(node, targets as usize)?;
    Ok((expand(Regressor { weights, post: super::post_transform(node)? }), vec![]))
}

impl Op for Regressor {
    fn name(&self) -> StaticName {
        "LinearRegressor".into()
    }

    op_as_typed_op!();
}

impl EvalOp for Regressor {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (rows, mut out) = self.weights.scores(&inputs[0])?;
        let k = self.weights.intercepts.len();
        if k == 1 {
            // One target: only PROBIT applies (as in onnxruntime).
            if self.post == PostTransform::Probit {
                out.iter_mut().for_each(|v| *v = probit(*v));
            }
        } else {
            out.chunks_exact_mut(k).for_each(|row| self.post.apply(row));
        }
        Ok(tvec!(Tensor::from_shape(&[rows, k], &out)?.into_tvalue()))
    }
}

impl TypedOp for Regressor {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(f32::fact([inputs[0].shape[0].clone(), self.weights.intercepts.len().to_dim()])))
    }

    as_op!();
}

impl Expansion for Regressor {
    fn name(&self) -> StaticName {
        "LinearRegressor".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        super::regressor_rules(s, inputs, outputs, self.weights.intercepts.len())
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        model.wire_node(prefix, self.clone(), inputs)
    }
}

#[cfg(test)]
mod tests {
    use crate::ml::conformance::check_all;

    #[test]
    fn classifiers_match_onnxruntime_in_every_variant() {
        check_all("linear-clf");
    }

    #[test]
    fn regressors_match_onnxruntime_in_every_variant() {
        check_all("linear-reg");
    }

    #[test]
    fn dot_products_cover_the_tail() {
        let a: Vec<f32> = (0..19).map(|i| i as f32).collect();
        let b = vec![2.0; 19];
        assert_eq!(super::dot(&a, &b), 2.0 * (0..19).sum::<i32>() as f32);
    }
}

/// `Normalizer` (ai.onnx.ml): each row divided by its largest value (MAX),
/// the sum of its absolute values (L1) or its Euclidean norm (L2). Ours
/// rather than tract's expansion, which cost more than the linear model it
/// follows in scikit-learn's LogisticRegression export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Normalizer {
    Max,
    L1,
    L2,
}

/// Parses a `Normalizer` node.
pub(crate) fn normalizer(_ctx: &ParsingContext, node: &NodeProto) -> Built {
    let op = match node.get_attr_opt::<&str>("norm")?.unwrap_or("MAX") {
        "MAX" => Normalizer::Max,
        "L1" => Normalizer::L1,
        "L2" => Normalizer::L2,
        other => bail!("unknown norm {other:?}"),
    };
    Ok((expand(op), vec![]))
}

impl Op for Normalizer {
    fn name(&self) -> StaticName {
        "Normalizer".into()
    }

    op_as_typed_op!();
}

impl EvalOp for Normalizer {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = inputs[0].cast_to::<f32>()?;
        let shape: TVec<usize> = input.shape().into();
        let width = shape.last().copied().unwrap_or(1).max(1);
        let mut out: Vec<f32> = input.to_plain_array_view::<f32>()?.iter().copied().collect();
        for row in out.chunks_exact_mut(width) {
            let d = match self {
                Normalizer::Max => row.iter().copied().fold(f32::MIN, f32::max),
                Normalizer::L1 => row.iter().map(|v| v.abs()).sum(),
                Normalizer::L2 => row.iter().map(|v| v * v).sum::<f32>().sqrt(),
            };
            // A zero denominator leaves the row as it is (onnxruntime).
            if d != 0.0 {
                row.iter_mut().for_each(|v| *v /= d);
            }
        }
        Ok(tvec!(Tensor::from_shape(&shape, &out)?.into_tvalue()))
    }
}

impl TypedOp for Normalizer {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(f32::fact(inputs[0].shape.clone())))
    }

    as_op!();
}

impl Expansion for Normalizer {
    fn name(&self) -> StaticName {
        "Normalizer".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        check_output_arity(outputs, 1)?;
        s.equals(&outputs[0].datum_type, DatumType::F32)?;
        s.equals(&inputs[0].shape, &outputs[0].shape)?;
        Ok(())
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        model.wire_node(prefix, *self, inputs)
    }
}

#[cfg(test)]
mod normalizer_tests {
    use crate::ml::conformance::check_all;

    #[test]
    fn normalizers_match_onnxruntime() {
        check_all("normalizer");
    }
}
