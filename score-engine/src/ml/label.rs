//! `LabelEncoder` (ai.onnx.ml): maps each value of a tensor through a
//! table, the same shape out. Opset 2 and later: `keys_{floats,int64s,
//! strings}` to `values_{floats,int64s,strings}` (every pair of types), a
//! key not in the table giving `default_{float,int64,string}` (-0.0, -1,
//! "_Unused" unless set). Opset 1: `classes_strings`, strings to their
//! index or indices to their string, with `default_int64` /
//! `default_string` (strings to indices only). A NaN key matches a NaN, as
//! in onnxruntime.
//! (skl2onnx writes it for `OrdinalEncoder` and `LabelEncoder`.)

use std::collections::HashMap;

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

use super::Built;

/// The keys, each to its position in the value list: strings looked up
/// without a copy, floats by their bits (NaNs as one, -0.0 as 0.0).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Index {
    Floats(HashMap<u32, usize>),
    Ints(HashMap<i64, usize>),
    Strings(HashMap<String, usize>),
}

fn float_key(f: f32) -> u32 {
    // -0.0 and 0.0 compare equal as floats: one key for both.
    if f.is_nan() {
        f32::NAN.to_bits()
    } else if f == 0.0 {
        0
    } else {
        f.to_bits()
    }
}

impl Index {
    fn datum(&self) -> DatumType {
        match self {
            Index::Floats(_) => DatumType::F32,
            Index::Ints(_) => DatumType::I64,
            Index::Strings(_) => DatumType::String,
        }
    }

    fn len(&self) -> usize {
        match self {
            Index::Floats(k) => k.len(),
            Index::Ints(k) => k.len(),
            Index::Strings(k) => k.len(),
        }
    }

    /// Each value's position in the table, `None` for a key not in it.
    fn positions(&self, input: &Tensor) -> TractResult<Vec<Option<usize>>> {
        Ok(match self {
            Index::Strings(index) => {
                let keys = input.to_plain_array_view::<String>()?;
                keys.iter().map(|k| index.get(k.as_str()).copied()).collect()
            }
            Index::Ints(index) => {
                let keys = input.cast_to::<i64>()?;
                let keys = keys.to_plain_array_view::<i64>()?;
                keys.iter().map(|k| index.get(k).copied()).collect()
            }
            Index::Floats(index) => {
                let keys = input.cast_to::<f32>()?;
                let keys = keys.to_plain_array_view::<f32>()?;
                keys.iter().map(|k| index.get(&float_key(*k)).copied()).collect()
            }
        })
    }
}

fn index<K: std::hash::Hash + Eq>(keys: impl IntoIterator<Item = K>) -> HashMap<K, usize> {
    // The first of duplicate keys wins, as in onnxruntime's map.
    let mut index = HashMap::new();
    for (i, k) in keys.into_iter().enumerate() {
        index.entry(k).or_insert(i);
    }
    index
}

/// The values by position, and the default for a key not in the table.
#[derive(Debug, Clone, PartialEq)]
enum Table {
    Floats(Vec<f32>, f32),
    Ints(Vec<i64>, i64),
    Strings(Vec<String>, String),
}

/// The encoder: its keys and its values.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LabelEncoder {
    index: Index,
    table: Table,
}

// Tables with a NaN value compare unequal to themselves, which only makes
// tract keep two equal encoders apart.
impl Eq for LabelEncoder {}

impl std::hash::Hash for LabelEncoder {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // The maps are not hashed (HashMap is not Hash); the types and size
        // tell encoders apart well enough for tract's op hashing.
        self.index.datum().hash(state);
        self.output_type().hash(state);
        self.index.len().hash(state);
    }
}

/// Parses a `LabelEncoder` node (opset 1 or 2+).
pub(crate) fn label_encoder(_ctx: &ParsingContext, node: &NodeProto) -> Built {
    ensure!(
        !node.attribute.iter().any(|a| a.name == "keys_tensor"),
        "LabelEncoder with keys_tensor (ai.onnx.ml opset 4) is not supported; export with \
         ai.onnx.ml opset 3 or lower"
    );
    if let Some(classes) = node.get_attr_opt_vec::<String>("classes_strings")? {
        return Ok((expand(opset1(node, classes)?), vec![]));
    }
    let float_keys: Option<Vec<f32>> = node.get_attr_opt_vec("keys_floats")?;
    let int_keys: Option<Vec<i64>> = node.get_attr_opt_vec("keys_int64s")?;
    let string_keys: Option<Vec<String>> = node.get_attr_opt_vec("keys_strings")?;
    let (index, n) = match (float_keys, int_keys, string_keys) {
        (Some(k), None, None) => (Index::Floats(index(k.iter().map(|f| float_key(*f)))), k.len()),
        (None, Some(k), None) => (Index::Ints(index(k.iter().copied())), k.len()),
        (None, None, Some(k)) => (Index::Strings(index(k.iter().cloned())), k.len()),
        _ => bail!("LabelEncoder needs exactly one of keys_floats, keys_int64s, keys_strings"),
    };
    let float_values: Option<Vec<f32>> = node.get_attr_opt_vec("values_floats")?;
    let int_values: Option<Vec<i64>> = node.get_attr_opt_vec("values_int64s")?;
    let string_values: Option<Vec<String>> = node.get_attr_opt_vec("values_strings")?;
    let check = |len: usize| {
        ensure!(len == n, "LabelEncoder with {n} keys and {len} values");
        Ok(())
    };
    let table = match (float_values, int_values, string_values) {
        (Some(v), None, None) => {
            check(v.len())?;
            Table::Floats(v, node.get_attr_opt::<f32>("default_float")?.unwrap_or(-0.0))
        }
        (None, Some(v), None) => {
            check(v.len())?;
            Table::Ints(v, node.get_attr_opt::<i64>("default_int64")?.unwrap_or(-1))
        }
        (None, None, Some(v)) => {
            check(v.len())?;
            let default = node.get_attr_opt::<String>("default_string")?;
            Table::Strings(v, default.unwrap_or_else(|| "_Unused".into()))
        }
        _ => {
            bail!("LabelEncoder needs exactly one of values_floats, values_int64s, values_strings")
        }
    };
    Ok((expand(LabelEncoder { index, table }), vec![]))
}

/// Opset 1: `classes_strings[i]` is the class of index `i`. onnxruntime
/// maps either way by the input's type; the server maps strings to indices
/// (what converters write it for) and refuses an integer input when the
/// model is typed.
fn opset1(node: &NodeProto, classes: Vec<String>) -> TractResult<LabelEncoder> {
    let default = node.get_attr_opt::<i64>("default_int64")?.unwrap_or(-1);
    let values = (0..classes.len() as i64).collect();
    Ok(LabelEncoder { index: Index::Strings(index(classes)), table: Table::Ints(values, default) })
}

impl LabelEncoder {
    fn output_type(&self) -> DatumType {
        match self.table {
            Table::Floats(..) => DatumType::F32,
            Table::Ints(..) => DatumType::I64,
            Table::Strings(..) => DatumType::String,
        }
    }
}

/// The values at `positions` (the default where a key was not found).
fn lookup<T: Datum>(
    positions: &[Option<usize>],
    values: &[T],
    default: &T,
    shape: &[usize],
) -> TractResult<Tensor> {
    let out: Vec<T> = positions.iter().map(|p| p.map_or(default, |i| &values[i]).clone()).collect();
    Ok(tract_ndarray::ArrayD::from_shape_vec(shape, out)?.into_tensor())
}

impl Op for LabelEncoder {
    fn name(&self) -> StaticName {
        "LabelEncoder".into()
    }

    op_as_typed_op!();
}

impl EvalOp for LabelEncoder {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = &inputs[0];
        let keys = self.index.datum();
        ensure!(
            (input.datum_type() == DatumType::String) == (keys == DatumType::String),
            "LabelEncoder with {keys:?} keys on a {:?} tensor",
            input.datum_type()
        );
        let positions = self.index.positions(input)?;
        let out = match &self.table {
            Table::Floats(v, d) => lookup(&positions, v, d, input.shape())?,
            Table::Ints(v, d) => lookup(&positions, v, d, input.shape())?,
            Table::Strings(v, d) => lookup(&positions, v, d, input.shape())?,
        };
        Ok(tvec!(out.into_tvalue()))
    }
}

impl TypedOp for LabelEncoder {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(self.output_type().fact(inputs[0].shape.clone())))
    }

    as_op!();
}

impl Expansion for LabelEncoder {
    fn name(&self) -> StaticName {
        "LabelEncoder".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        check_output_arity(outputs, 1)?;
        s.equals(&inputs[0].datum_type, self.index.datum())?;
        s.equals(&outputs[0].datum_type, self.output_type())?;
        s.equals(&outputs[0].shape, &inputs[0].shape)
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
    fn every_key_and_value_type_matches_onnxruntime() {
        check_all("label-encoder");
    }

    #[test]
    fn tracts_category_mapper_matches_onnxruntime() {
        check_all("category-mapper");
    }
}
