//! `OneHotEncoder` (ai.onnx.ml) on integer categories: [.., C] in,
//! [.., C, categories] float out. A value outside `cats_int64s` gives a row
//! of zeros when `zeros` is 1 (the default, and what skl2onnx writes with
//! `handle_unknown="ignore"`) and an error otherwise, as in onnxruntime.
//! String categories (`cats_strings`) are refused at load time: the server
//! feeds float32 matrices, so a string input cannot reach them.

use std::collections::HashMap;

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

use super::Built;

/// The encoder: category value → position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OneHot {
    categories: Vec<i64>,
    index: HashMap<i64, usize>,
    zeros: bool,
}

/// Parses a `OneHotEncoder` node.
pub(crate) fn onehot(_ctx: &ParsingContext, node: &NodeProto) -> Built {
    ensure!(
        node.get_attr_opt_vec::<String>("cats_strings")?.is_none(),
        "OneHotEncoder on string categories (cats_strings) is not supported: the server \
         feeds float32 features; encode the categories as integers before export"
    );
    let categories: Vec<i64> = node.get_attr_opt_vec("cats_int64s")?.unwrap_or_default();
    ensure!(!categories.is_empty(), "OneHotEncoder without cats_int64s");
    let index = categories.iter().enumerate().map(|(i, c)| (*c, i)).collect();
    let zeros = node.get_attr_opt::<i64>("zeros")?.unwrap_or(1) != 0;
    Ok((expand(OneHot { categories, index, zeros }), vec![]))
}

impl std::hash::Hash for OneHot {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.categories.hash(state);
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
        // Floats are truncated to integers, as onnxruntime does.
        let values: Vec<i64> = if input.datum_type().is_float() {
            let f = input.cast_to::<f64>()?;
            f.to_plain_array_view::<f64>()?.iter().map(|v| *v as i64).collect()
        } else {
            let i = input.cast_to::<i64>()?;
            i.to_plain_array_view::<i64>()?.iter().copied().collect()
        };
        let k = self.categories.len();
        let mut out = vec![0f32; values.len() * k];
        for (v, row) in values.iter().zip(out.chunks_exact_mut(k)) {
            match self.index.get(v) {
                Some(&i) => row[i] = 1.0,
                None if self.zeros => {}
                None => bail!("OneHotEncoder: category {v} is not one of {:?}", self.categories),
            }
        }
        let mut shape: TVec<usize> = input.shape().into();
        shape.push(k);
        Ok(tvec!(Tensor::from_shape(&shape, &out)?.into_tvalue()))
    }
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
