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

/// A key, hashable: floats by their bits, NaNs as one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Float(u32),
    Int(i64),
    Str(String),
}

impl Key {
    fn float(f: f32) -> Key {
        // -0.0 and 0.0 compare equal as floats: one key for both.
        let f = if f.is_nan() {
            f32::NAN
        } else if f == 0.0 {
            0.0
        } else {
            f
        };
        Key::Float(f.to_bits())
    }
}

/// The table's values, and the default for a key not in it.
#[derive(Debug, Clone, PartialEq)]
enum Table {
    Floats(HashMap<Key, f32>, f32),
    Ints(HashMap<Key, i64>, i64),
    Strings(HashMap<Key, String>, String),
}

/// The encoder: the key type it takes and its table.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LabelEncoder {
    keys: DatumType,
    table: Table,
}

// Tables with a NaN value compare unequal to themselves, which only makes
// tract keep two equal encoders apart.
impl Eq for LabelEncoder {}

impl std::hash::Hash for LabelEncoder {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // Tables are not hashed (HashMap is not Hash); the type and size
        // tell encoders apart well enough for tract's op hashing.
        self.keys.hash(state);
        match &self.table {
            Table::Floats(t, _) => (0u8, t.len()).hash(state),
            Table::Ints(t, _) => (1u8, t.len()).hash(state),
            Table::Strings(t, _) => (2u8, t.len()).hash(state),
        }
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
    let (keys, dt): (Vec<Key>, DatumType) = match (float_keys, int_keys, string_keys) {
        (Some(k), None, None) => (k.into_iter().map(Key::float).collect(), DatumType::F32),
        (None, Some(k), None) => (k.into_iter().map(Key::Int).collect(), DatumType::I64),
        (None, None, Some(k)) => (k.into_iter().map(Key::Str).collect(), DatumType::String),
        _ => bail!("LabelEncoder needs exactly one of keys_floats, keys_int64s, keys_strings"),
    };
    let float_values: Option<Vec<f32>> = node.get_attr_opt_vec("values_floats")?;
    let int_values: Option<Vec<i64>> = node.get_attr_opt_vec("values_int64s")?;
    let string_values: Option<Vec<String>> = node.get_attr_opt_vec("values_strings")?;
    let n = keys.len();
    let check = |len: usize| {
        ensure!(len == n, "LabelEncoder with {n} keys and {len} values");
        Ok(())
    };
    let table = match (float_values, int_values, string_values) {
        (Some(v), None, None) => {
            check(v.len())?;
            let default = node.get_attr_opt::<f32>("default_float")?.unwrap_or(-0.0);
            Table::Floats(keys.into_iter().zip(v).collect(), default)
        }
        (None, Some(v), None) => {
            check(v.len())?;
            let default = node.get_attr_opt::<i64>("default_int64")?.unwrap_or(-1);
            Table::Ints(keys.into_iter().zip(v).collect(), default)
        }
        (None, None, Some(v)) => {
            check(v.len())?;
            let default = node.get_attr_opt::<String>("default_string")?;
            Table::Strings(
                keys.into_iter().zip(v).collect(),
                default.unwrap_or_else(|| "_Unused".into()),
            )
        }
        _ => {
            bail!("LabelEncoder needs exactly one of values_floats, values_int64s, values_strings")
        }
    };
    Ok((expand(LabelEncoder { keys: dt, table }), vec![]))
}

/// Opset 1: `classes_strings[i]` is the class of index `i`. onnxruntime
/// maps either way by the input's type; the server maps strings to indices
/// (what converters write it for) and refuses an integer input when the
/// model is typed.
fn opset1(node: &NodeProto, classes: Vec<String>) -> TractResult<LabelEncoder> {
    let default = node.get_attr_opt::<i64>("default_int64")?.unwrap_or(-1);
    let table = classes.into_iter().enumerate().map(|(i, c)| (Key::Str(c), i as i64)).collect();
    Ok(LabelEncoder { keys: DatumType::String, table: Table::Ints(table, default) })
}

impl LabelEncoder {
    fn output_type(&self) -> DatumType {
        match self.table {
            Table::Floats(..) => DatumType::F32,
            Table::Ints(..) => DatumType::I64,
            Table::Strings(..) => DatumType::String,
        }
    }

    fn map<T: Datum>(
        &self,
        input: &Tensor,
        table: &HashMap<Key, T>,
        default: &T,
    ) -> TractResult<Tensor> {
        let out: Vec<T> = match self.keys {
            DatumType::String => {
                let keys = input.to_plain_array_view::<String>()?;
                keys.iter()
                    .map(|k| table.get(&Key::Str(k.clone())).unwrap_or(default).clone())
                    .collect()
            }
            DatumType::I64 => {
                let keys = input.cast_to::<i64>()?;
                let keys = keys.to_plain_array_view::<i64>()?;
                keys.iter().map(|k| table.get(&Key::Int(*k)).unwrap_or(default).clone()).collect()
            }
            _ => {
                let keys = input.cast_to::<f32>()?;
                let keys = keys.to_plain_array_view::<f32>()?;
                keys.iter().map(|k| table.get(&Key::float(*k)).unwrap_or(default).clone()).collect()
            }
        };
        Ok(tract_ndarray::ArrayD::from_shape_vec(input.shape(), out)?.into_tensor())
    }
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
        ensure!(
            (input.datum_type() == DatumType::String) == (self.keys == DatumType::String),
            "LabelEncoder with {:?} keys on a {:?} tensor",
            self.keys,
            input.datum_type()
        );
        let out = match &self.table {
            Table::Floats(t, d) => self.map(input, t, d)?,
            Table::Ints(t, d) => self.map(input, t, d)?,
            Table::Strings(t, d) => self.map(input, t, d)?,
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
        s.equals(&inputs[0].datum_type, self.keys)?;
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
