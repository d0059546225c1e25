//! `OneHotEncoder` (ai.onnx.ml) on integer (`cats_int64s`) or string
//! (`cats_strings`) categories: [.., C] in, [.., C, categories] float out.
//! A value outside the categories gives a row of zeros when `zeros` is 1
//! (the default, and what skl2onnx writes with `handle_unknown="ignore"`)
//! and an error otherwise, as in onnxruntime.

use std::collections::HashMap;

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

use super::Built;

/// The categories and their positions.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Categories {
    Ints(Vec<i64>, HashMap<i64, usize>),
    Strings(Vec<String>, HashMap<String, usize>),
}

impl Categories {
    fn len(&self) -> usize {
        match self {
            Categories::Ints(c, _) => c.len(),
            Categories::Strings(c, _) => c.len(),
        }
    }
}

/// The encoder: category value → position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OneHot {
    categories: Categories,
    zeros: bool,
}

/// Parses a `OneHotEncoder` node.
pub(crate) fn onehot(_ctx: &ParsingContext, node: &NodeProto) -> Built {
    let strings: Vec<String> = node.get_attr_opt_vec("cats_strings")?.unwrap_or_default();
    let ints: Vec<i64> = node.get_attr_opt_vec("cats_int64s")?.unwrap_or_default();
    let categories = match (ints.is_empty(), strings.is_empty()) {
        (false, true) => {
            let index = ints.iter().enumerate().map(|(i, c)| (*c, i)).collect();
            Categories::Ints(ints, index)
        }
        (true, false) => {
            let index = strings.iter().enumerate().map(|(i, c)| (c.clone(), i)).collect();
            Categories::Strings(strings, index)
        }
        _ => bail!("OneHotEncoder needs exactly one of cats_int64s and cats_strings"),
    };
    let zeros = node.get_attr_opt::<i64>("zeros")?.unwrap_or(1) != 0;
    Ok((expand(OneHot { categories, zeros }), vec![]))
}

impl std::hash::Hash for OneHot {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        match &self.categories {
            Categories::Ints(c, _) => c.hash(state),
            Categories::Strings(c, _) => c.hash(state),
        }
        self.zeros.hash(state);
    }
}

impl Op for OneHot {
    fn name(&self) -> StaticName {
        "OneHotEncoder".into()
    }

    op_as_typed_op!();
}

impl EvalOp for OneHot {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = &inputs[0];
        let k = self.categories.len();
        let mut out = vec![0f32; input.len() * k];
        let rows = out.chunks_exact_mut(k);
        match &self.categories {
            Categories::Ints(categories, index) => {
                // Floats are truncated to integers, as onnxruntime does.
                let values: Vec<i64> = if input.datum_type().is_float() {
                    let f = input.cast_to::<f64>()?;
                    f.to_plain_array_view::<f64>()?.iter().map(|v| *v as i64).collect()
                } else {
                    ensure!(
                        input.datum_type() != DatumType::String,
                        "OneHotEncoder with integer categories on strings"
                    );
                    let i = input.cast_to::<i64>()?;
                    i.to_plain_array_view::<i64>()?.iter().copied().collect()
                };
                for (v, row) in values.iter().zip(rows) {
                    set(row, index.get(v), self.zeros, || {
                        format!("{v} is not one of {categories:?}")
                    })?;
                }
            }
            Categories::Strings(categories, index) => {
                ensure!(
                    input.datum_type() == DatumType::String,
                    "OneHotEncoder with string categories on {:?}",
                    input.datum_type()
                );
                let values = input.to_plain_array_view::<String>()?;
                for (v, row) in values.iter().zip(rows) {
                    set(row, index.get(v), self.zeros, || {
                        format!("{v:?} is not one of {categories:?}")
                    })?;
                }
            }
        }
        let mut shape: TVec<usize> = input.shape().into();
        shape.push(k);
        Ok(tvec!(Tensor::from_shape(&shape, &out)?.into_tvalue()))
    }
}

/// Sets a row's category, or refuses an unknown one unless `zeros`.
fn set(
    row: &mut [f32],
    at: Option<&usize>,
    zeros: bool,
    unknown: impl FnOnce() -> String,
) -> TractResult<()> {
    match at {
        Some(&i) => row[i] = 1.0,
        None if zeros => {}
        None => bail!("OneHotEncoder: category {}", unknown()),
    }
    Ok(())
}

impl TypedOp for OneHot {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let mut shape: TVec<TDim> = inputs[0].shape.iter().cloned().collect();
        shape.push(self.categories.len().to_dim());
        Ok(tvec!(f32::fact(shape)))
    }

    as_op!();
}

impl Expansion for OneHot {
    fn name(&self) -> StaticName {
        "OneHotEncoder".into()
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
        s.equals(&outputs[0].rank, inputs[0].rank.bex() + 1)?;
        s.given(&inputs[0].rank, move |s, rank| {
            let rank = rank as usize;
            for d in 0..rank {
                s.equals(&outputs[0].shape[d], &inputs[0].shape[d])?;
            }
            s.equals(&outputs[0].shape[rank], self.categories.len().to_dim())
        })
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
    fn encodings_match_onnxruntime() {
        check_all("onehot");
    }
}
