//! `SVMClassifier` and `SVMRegressor` (ai.onnx.ml), as libsvm/liblinear
//! models export them (scikit-learn's SVC, NuSVC, SVR, OneClassSVM...).
//!
//! Classifier (SVC mode): kernel values against every support vector, one
//! decision value per pair of classes (one-vs-one), the label by votes.
//! Without `prob_a`/`prob_b` the scores are the pairwise decision values
//! (two columns for two classes); with them, Platt-scaled pairwise
//! probabilities coupled into one probability per class (libsvm's
//! `multiclass_probability`). Linear mode (no support vectors): one
//! `x·w + rho[0]` per class. Where the spec is silent we follow onnxruntime.

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

use super::Built;
use super::post::{PostTransform, logistic, probit};

/// The kernel and its parameters (`kernel_params`: gamma, coef0, degree).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kernel {
    Linear,
    Poly { gamma: f32, coef0: f32, degree: f32 },
    Rbf { gamma: f32 },
    Sigmoid { gamma: f32, coef0: f32 },
}

impl Kernel {
    fn parse(node: &NodeProto) -> TractResult<Kernel> {
        let p: Vec<f32> = node.get_attr_opt_vec("kernel_params")?.unwrap_or_default();
        let at = |i: usize| p.get(i).copied().unwrap_or(0.0);
        let (gamma, coef0, degree) = (at(0), at(1), at(2));
        Ok(match node.get_attr_opt::<&str>("kernel_type")?.unwrap_or("LINEAR") {
            "LINEAR" => Kernel::Linear,
            "POLY" => Kernel::Poly { gamma, coef0, degree },
            "RBF" => Kernel::Rbf { gamma },
            "SIGMOID" => Kernel::Sigmoid { gamma, coef0 },
            other => bail!("unknown kernel_type {other:?}"),
        })
    }

    /// K(x, v), plus `c` for the linear kernel.
    fn eval(self, x: &[f32], v: &[f32], c: f32) -> f32 {
        match self {
            Kernel::Linear => dot(x, v) + c,
            Kernel::Poly { gamma, coef0, degree } => {
                let b = gamma * dot(x, v) + coef0;
                match degree {
                    2.0 => b * b,
                    3.0 => b * b * b,
                    d => b.powf(d),
                }
            }
            Kernel::Rbf { gamma } => {
                let d: f32 = x.iter().zip(v).map(|(a, b)| (a - b) * (a - b)).sum();
                (-gamma * d).exp()
            }
            Kernel::Sigmoid { gamma, coef0 } => (gamma * dot(x, v) + coef0).tanh(),
        }
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn input_rows(input: &Tensor, features: usize) -> TractResult<(usize, Vec<f32>)> {
    let input = input.cast_to::<f32>()?;
    let view = input.to_plain_array_view::<f32>()?;
    ensure!(view.ndim() == 2, "SVM input must be 2-D, got shape {:?}", view.shape());
    ensure!(
        view.shape()[1] == features,
        "the model's vectors have {features} features, the input {} columns",
        view.shape()[1]
    );
    Ok((view.shape()[0], view.iter().copied().collect()))
}

/// `SVMClassifier`: int64 labels and float scores.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Classifier {
    kernel: Kernel,
    /// SVC mode: support vectors by class; linear mode: one row per class.
    vectors: Vec<f32>,
    /// Support vectors per class (empty in linear mode).
    per_class: Vec<usize>,
    /// Index of each class's first support vector.
    starts: Vec<usize>,
    coefficients: Vec<f32>,
    rho: Vec<f32>,
    prob_a: Vec<f32>,
    prob_b: Vec<f32>,
    features: usize,
    post: PostTransform,
    /// `classlabels_ints`, or 0..n for string labels.
    labels: Vec<i64>,
    all_weights_positive: bool,
}

impl Eq for Classifier {}

/// Parses an `SVMClassifier` node.
pub(crate) fn classifier(_ctx: &ParsingContext, node: &NodeProto) -> Built {
    let labels = super::class_labels(node, "classlabels_ints")?;
    let k = labels.len();
    let per_class: Vec<usize> = node
        .get_attr_opt_vec::<i64>("vectors_per_class")?
        .unwrap_or_default()
        .into_iter()
        .map(|v| usize::try_from(v).context("negative vectors_per_class"))
        .collect::<TractResult<_>>()?;
    let coefficients: Vec<f32> = node.get_attr_opt_vec("coefficients")?.unwrap_or_default();
    let rho: Vec<f32> = node.get_attr_opt_vec("rho")?.unwrap_or_default();
    let prob_a: Vec<f32> = node.get_attr_opt_vec("prob_a")?.unwrap_or_default();
    let prob_b: Vec<f32> = node.get_attr_opt_vec("prob_b")?.unwrap_or_default();
    ensure!(!coefficients.is_empty(), "SVMClassifier without coefficients");
    ensure!(prob_a.len() == prob_b.len(), "prob_a and prob_b differ in length");
    let n_vectors: usize = per_class.iter().sum();
    let pairs = k * (k - 1) / 2;
    let (vectors, features, kernel) = if n_vectors > 0 {
        ensure!(
            per_class.len() == k,
            "vectors_per_class has {} entries for {k} classes",
            per_class.len()
        );
        let vectors: Vec<f32> = node.get_attr_opt_vec("support_vectors")?.unwrap_or_default();
        ensure!(
            !vectors.is_empty() && vectors.len().is_multiple_of(n_vectors),
            "{} support vector values for {n_vectors} vectors",
            vectors.len()
        );
        ensure!(
            coefficients.len() >= (k - 1) * n_vectors,
            "{} coefficients, expected (classes - 1) × vectors = {}",
            coefficients.len(),
            (k - 1) * n_vectors
        );
        ensure!(rho.len() >= pairs, "{} rho values for {pairs} class pairs", rho.len());
        ensure!(
            prob_a.is_empty() || prob_a.len() >= pairs,
            "{} prob_a values for {pairs} pairs",
            prob_a.len()
        );
        let features = vectors.len() / n_vectors;
        (vectors, features, Kernel::parse(node)?)
    } else {
        ensure!(
            coefficients.len().is_multiple_of(k),
            "{} coefficients for {k} classes",
            coefficients.len()
        );
        ensure!(!rho.is_empty(), "SVMClassifier without rho");
        (coefficients.clone(), coefficients.len() / k, Kernel::Linear)
    };
    let op = Classifier {
        kernel,
        vectors,
        starts: per_class
            .iter()
            .scan(0, |at, n| {
                let start = *at;
                *at += n;
                Some(start)
            })
            .collect(),
        per_class,
        all_weights_positive: coefficients.iter().all(|c| *c >= 0.0),
        coefficients,
        rho,
        prob_a,
        prob_b,
        features,
        post: super::post_transform(node)?,
        labels,
    };
    Ok((expand(op), vec![]))
}

impl Classifier {
    /// Columns of the score output.
    fn n_scores(&self) -> usize {
        let k = self.labels.len();
        if self.per_class.is_empty() || !self.prob_a.is_empty() {
            k
        } else if k > 2 {
            k * (k - 1) / 2
        } else {
            2
        }
    }

    /// One row: its label and scores.
    fn row(&self, x: &[f32], scratch: &mut Scratch, out: &mut [f32]) -> i64 {
        let k = self.labels.len();
        if self.per_class.is_empty() {
            // Linear mode: one score per class, label by the largest.
            for (c, o) in out.iter_mut().enumerate() {
                *o =
                    dot(x, &self.vectors[c * self.features..(c + 1) * self.features]) + self.rho[0];
            }
            let mut best = 0;
            for c in 1..k {
                if out[c] > out[best] {
                    best = c;
                }
            }
            let top = out[best];
            let label = if k == 2 {
                let positive = if self.all_weights_positive { top >= 0.5 } else { top > 0.0 };
                self.labels[if positive { 1 } else { best }]
            } else {
                self.labels[best]
            };
            self.post.apply(out);
            return label;
        }
        let Scratch { kernels, decisions, votes, pairwise } = scratch;
        let start = &self.starts;
        kernels.clear();
        kernels
            .extend(self.vectors.chunks_exact(self.features).map(|v| self.kernel.eval(x, v, 0.0)));
        let n_vectors = kernels.len();
        decisions.clear();
        votes.clear();
        votes.resize(k, 0);
        for i in 0..k - 1 {
            for j in i + 1..k {
                let mut sum = 0f64;
                let ci = &self.coefficients[(j - 1) * n_vectors + start[i]..][..self.per_class[i]];
                for (c, kv) in ci.iter().zip(&kernels[start[i]..]) {
                    sum += (*c * *kv) as f64;
                }
                let cj = &self.coefficients[i * n_vectors + start[j]..][..self.per_class[j]];
                for (c, kv) in cj.iter().zip(&kernels[start[j]..]) {
                    sum += (*c * *kv) as f64;
                }
                sum += self.rho[decisions.len()] as f64;
                decisions.push(sum as f32);
                votes[if sum > 0.0 { i } else { j }] += 1;
            }
        }
        // Most votes, the first class on a tie.
        let mut best = 0;
        for c in 1..k {
            if votes[c] > votes[best] {
                best = c;
            }
        }
        if !self.prob_a.is_empty() {
            pairwise.clear();
            pairwise.resize(k * k, 0.0);
            let mut index = 0;
            for i in 0..k - 1 {
                for j in i + 1..k {
                    let p =
                        1.0 - logistic(decisions[index] * self.prob_a[index] + self.prob_b[index]);
                    let p = p.clamp(1e-7, 1.0 - 1e-7);
                    pairwise[i * k + j] = p;
                    pairwise[j * k + i] = 1.0 - p;
                    index += 1;
                }
            }
            multiclass_probability(k, pairwise, out);
            self.post.apply(out);
        } else if k > 2 {
            out.copy_from_slice(decisions);
            self.post.apply(out);
        } else {
            let s = decisions[0];
            [out[0], out[1]] = match self.post {
                PostTransform::None => [-s, s],
                PostTransform::Logistic => [logistic(-s), logistic(s)],
                PostTransform::Probit => [probit(s), 0.0],
                _ => [1.0 - s, s],
            };
        }
        self.labels[best]
    }
}

/// Per-row buffers of the SVC path, reused across the rows of a call.
#[derive(Default)]
struct Scratch {
    kernels: Vec<f32>,
    decisions: Vec<f32>,
    votes: Vec<usize>,
    pairwise: Vec<f32>,
}

/// Couples pairwise probabilities `r[i][j]` (P(i | i or j)) into class
/// probabilities `p` (Wu, Lin and Weng 2004, method 2, as libsvm does).
fn multiclass_probability(k: usize, r: &[f32], p: &mut [f32]) {
    let mut q = vec![0f32; k * k];
    let mut qp = vec![0f32; k];
    let eps = 0.005 / k as f32;
    for i in 0..k {
        p[i] = 1.0 / k as f32;
        for j in 0..i {
            q[i * k + i] += r[j * k + i] * r[j * k + i];
            q[i * k + j] = q[j * k + i];
        }
        for j in i + 1..k {
            q[i * k + i] += r[j * k + i] * r[j * k + i];
            q[i * k + j] = -r[j * k + i] * r[i * k + j];
        }
    }
    for _ in 0..100 {
        let mut pqp = 0.0;
        for i in 0..k {
            qp[i] = (0..k).map(|j| q[i * k + j] * p[j]).sum();
            pqp += p[i] * qp[i];
        }
        let max_error = qp.iter().map(|v| (v - pqp).abs()).fold(0.0f32, f32::max);
        if max_error < eps {
            break;
        }
        for i in 0..k {
            let diff = (-qp[i] + pqp) / q[i * k + i];
            p[i] += diff;
            pqp = (pqp + diff * (diff * q[i * k + i] + 2.0 * qp[i])) / (1.0 + diff) / (1.0 + diff);
            for j in 0..k {
                qp[j] = (qp[j] + diff * q[i * k + j]) / (1.0 + diff);
                p[j] /= 1.0 + diff;
            }
        }
    }
}

impl Op for Classifier {
    fn name(&self) -> StaticName {
        "SVMClassifier".into()
    }

    op_as_typed_op!();
}

impl EvalOp for Classifier {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (rows, x) = input_rows(&inputs[0], self.features)?;
        let w = self.n_scores();
        let mut out = vec![0f32; rows * w];
        let mut scratch = Scratch::default();
        let labels: Vec<i64> = if self.features == 0 {
            vec![self.labels[0]; rows]
        } else {
            x.chunks_exact(self.features)
                .zip(out.chunks_exact_mut(w))
                .map(|(row, o)| self.row(row, &mut scratch, o))
                .collect()
        };
        Ok(tvec!(
            Tensor::from_shape(&[rows], &labels)?.into_tvalue(),
            Tensor::from_shape(&[rows, w], &out)?.into_tvalue()
        ))
    }
}

impl TypedOp for Classifier {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let n = inputs[0].shape[0].clone();
        Ok(tvec!(i64::fact([n.clone()]), f32::fact([n, self.n_scores().to_dim()])))
    }

    as_op!();
}

impl Expansion for Classifier {
    fn name(&self) -> StaticName {
        "SVMClassifier".into()
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
        super::classifier_rules(s, inputs, outputs, self.n_scores())
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

/// `SVMRegressor`: `Σ coefficient_i K(x, v_i) + rho`, or `x·w + rho` with no
/// support vectors; `one_class` maps the score to ±1.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Regressor {
    kernel: Kernel,
    vectors: Vec<f32>,
    coefficients: Vec<f32>,
    rho: f32,
    features: usize,
    one_class: bool,
    post: PostTransform,
}

impl Eq for Regressor {}

/// Parses an `SVMRegressor` node.
pub(crate) fn regressor(_ctx: &ParsingContext, node: &NodeProto) -> Built {
    let n: i64 = node.get_attr_opt("n_supports")?.unwrap_or(0);
    let coefficients: Vec<f32> = node.get_attr_opt_vec("coefficients")?.unwrap_or_default();
    ensure!(!coefficients.is_empty(), "SVMRegressor without coefficients");
    let rho: Vec<f32> = node.get_attr_opt_vec("rho")?.unwrap_or_default();
    ensure!(!rho.is_empty(), "SVMRegressor without rho");
    let (vectors, features, kernel) = if n > 0 {
        let n = n as usize;
        let vectors: Vec<f32> = node.get_attr_opt_vec("support_vectors")?.unwrap_or_default();
        ensure!(
            !vectors.is_empty() && vectors.len().is_multiple_of(n) && coefficients.len() >= n,
            "{} support vector values and {} coefficients for {n} support vectors",
            vectors.len(),
            coefficients.len()
        );
        let features = vectors.len() / n;
        (vectors, features, Kernel::parse(node)?)
    } else {
        (vec![], coefficients.len(), Kernel::Linear)
    };
    let op = Regressor {
        kernel,
        vectors,
        features,
        coefficients,
        rho: rho[0],
        one_class: node.get_attr_opt::<i64>("one_class")?.unwrap_or(0) != 0,
        post: super::post_transform(node)?,
    };
    Ok((expand(op), vec![]))
}

impl Regressor {
    fn score(&self, x: &[f32]) -> f32 {
        let s = if self.vectors.is_empty() {
            dot(x, &self.coefficients) + self.rho
        } else {
            self.vectors
                .chunks_exact(self.features)
                .zip(&self.coefficients)
                .map(|(v, c)| c * self.kernel.eval(x, v, 0.0))
                .sum::<f32>()
                + self.rho
        };
        let s = if self.one_class { if s > 0.0 { 1.0 } else { -1.0 } } else { s };
        if self.post == PostTransform::Probit { probit(s) } else { s }
    }
}

impl Op for Regressor {
    fn name(&self) -> StaticName {
        "SVMRegressor".into()
    }

    op_as_typed_op!();
}

impl EvalOp for Regressor {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (rows, x) = input_rows(&inputs[0], self.features)?;
        let out: Vec<f32> = if self.features == 0 {
            vec![self.rho; rows]
        } else {
            x.chunks_exact(self.features).map(|row| self.score(row)).collect()
        };
        Ok(tvec!(Tensor::from_shape(&[rows, 1], &out)?.into_tvalue()))
    }
}

impl TypedOp for Regressor {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(f32::fact([inputs[0].shape[0].clone(), 1.to_dim()])))
    }

    as_op!();
}

impl Expansion for Regressor {
    fn name(&self) -> StaticName {
        "SVMRegressor".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        super::regressor_rules(s, inputs, outputs, 1)
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
        check_all("svm-clf");
    }

    #[test]
    fn regressors_match_onnxruntime_in_every_variant() {
        check_all("svm-reg");
    }

    #[test]
    fn coupled_probabilities_sum_to_one() {
        // Three classes, consistent pairwise probabilities.
        let r = [0.0, 0.8, 0.9, 0.2, 0.0, 0.7, 0.1, 0.3, 0.0];
        let mut p = [0.0; 3];
        super::multiclass_probability(3, &r, &mut p);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{p:?}");
        assert!(p[0] > p[1] && p[1] > p[2], "{p:?}");
    }
}
