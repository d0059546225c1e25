//! What a model is fed. A model with one float32 `[N, n]` input (the fast
//! path) is fed float32 little-endian rows, whatever the body's format. Any
//! other model (several inputs, strings, integers) is fed [`TypedRows`]:
//! the checked Arrow columns of the request, one per input, turned into
//! tensors by the worker that scores them, for just the rows of its model
//! call. A string column thus stays in the body's buffers until a worker
//! needs it, so admission's charge for the body also bounds its decoded
//! size.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type};
use arrow_array::{Array, ArrayRef, OffsetSizeTrait};
use arrow_schema::DataType;
use tract_onnx::prelude::*;

/// Element type of a model input the server can feed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// float32.
    F32,
    /// float64.
    F64,
    /// int64.
    I64,
    /// int32.
    I32,
    /// bool.
    Bool,
    /// string.
    Str,
}

impl Kind {
    /// The kind of an ONNX `TensorProto.DataType`, if the server feeds it.
    pub fn from_onnx(elem_type: i32) -> Option<Kind> {
        // Numbers from onnx.proto's TensorProto.DataType.
        Some(match elem_type {
            1 => Kind::F32,
            6 => Kind::I32,
            7 => Kind::I64,
            8 => Kind::Str,
            9 => Kind::Bool,
            11 => Kind::F64,
            _ => return None,
        })
    }

    /// The name `/models` uses.
    pub fn name(self) -> &'static str {
        match self {
            Kind::F32 => "float32",
            Kind::F64 => "float64",
            Kind::I64 => "int64",
            Kind::I32 => "int32",
            Kind::Bool => "bool",
            Kind::Str => "string",
        }
    }

    /// tract's datum type.
    pub fn datum(self) -> DatumType {
        match self {
            Kind::F32 => DatumType::F32,
            Kind::F64 => DatumType::F64,
            Kind::I64 => DatumType::I64,
            Kind::I32 => DatumType::I32,
            Kind::Bool => DatumType::Bool,
            Kind::Str => DatumType::String,
        }
    }

    /// Whether an Arrow column of `data_type` values feeds this kind
    /// (float64 into float32 is narrowed, and checked for range when the
    /// body is decoded; integers are widened, never narrowed).
    pub fn accepts(self, data_type: &DataType) -> bool {
        use DataType as D;
        match self {
            Kind::F32 | Kind::F64 => matches!(data_type, D::Float32 | D::Float64),
            Kind::I64 => matches!(data_type, D::Int64 | D::Int32 | D::Int16 | D::Int8),
            Kind::I32 => matches!(data_type, D::Int32 | D::Int16 | D::Int8),
            Kind::Bool => matches!(data_type, D::Boolean),
            Kind::Str => match data_type {
                D::Utf8 | D::LargeUtf8 => true,
                D::Dictionary(key, value) => {
                    key.is_dictionary_key_type() && matches!(**value, D::Utf8 | D::LargeUtf8)
                }
                _ => false,
            },
        }
    }
}

/// One model input as the server feeds it: `[N]` (rank 1) or `[N, width]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Feed {
    /// ONNX input name.
    pub name: String,
    /// Element type.
    pub kind: Kind,
    /// Values per row.
    pub width: usize,
    /// 1 for `[N]`, 2 for `[N, width]`.
    pub rank: usize,
}

impl Feed {
    /// The tensor shape for `rows` rows.
    pub fn shape(&self, rows: usize) -> TVec<usize> {
        if self.rank == 1 { tvec![rows] } else { tvec![rows, self.width] }
    }
}

/// `Some(n)` when `feeds` are one float32 `[N, n]` matrix: the model is fed
/// float32 rows (binary, JSON or Arrow bodies), not by name.
pub fn matrix_width(feeds: &[Feed]) -> Option<usize> {
    match feeds {
        [Feed { kind: Kind::F32, rank: 2, width, .. }] => Some(*width),
        _ => None,
    }
}

/// A request's rows for a model fed by name: per input, its Arrow column
/// (one array per record batch), already checked against the input (type,
/// width, nulls, range), so turning it into tensors cannot fail on data.
#[derive(Debug)]
pub struct TypedRows {
    /// Per input, in the model's order: one array per record batch.
    columns: Vec<Vec<ArrayRef>>,
    rows: usize,
    /// What the rows take beyond the body once expanded for the model.
    decoded: usize,
}

impl TypedRows {
    /// Rows made of `columns` (per input, one array per batch, all inputs
    /// with the same row count per batch) that take `decoded` bytes beyond
    /// the body once expanded ([`expanded_bytes`] of every column, and
    /// whatever holding them costs).
    pub fn new(columns: Vec<Vec<ArrayRef>>, decoded: usize) -> TypedRows {
        let rows = columns.first().map_or(0, |c| c.iter().map(|a| a.len()).sum());
        TypedRows { columns, rows, decoded }
    }

    /// Row count.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Bytes the rows take beyond the body once expanded for the model:
    /// what admission charges for decoding.
    pub fn decoded_bytes(&self) -> usize {
        self.decoded
    }

    /// The first row of string input `input` whose text is longer than
    /// `bytes`, and its length: lets a text the model could only cut be
    /// refused before it is tokenized.
    pub fn first_longer_than(&self, input: usize, bytes: usize) -> Option<(usize, usize)> {
        self.text_lengths(input).into_iter().enumerate().find(|&(_, len)| len > bytes)
    }

    /// The byte length of every row's text of string input `input` (0 for
    /// a row of another kind).
    pub fn text_lengths(&self, input: usize) -> Vec<usize> {
        let mut out = Vec::with_capacity(self.rows);
        for array in self.columns.get(input).into_iter().flatten() {
            let lengths = |strings: &dyn Fn(usize) -> usize, keys: Option<Vec<usize>>| match keys {
                None => (0..array.len()).map(strings).collect::<Vec<_>>(),
                Some(keys) => keys.into_iter().map(strings).collect(),
            };
            out.extend(match array.data_type() {
                DataType::Utf8 => {
                    let a = array.as_string::<i32>();
                    lengths(&|i| a.value_length(i) as usize, None)
                }
                DataType::LargeUtf8 => {
                    let a = array.as_string::<i64>();
                    lengths(&|i| a.value_length(i) as usize, None)
                }
                DataType::Dictionary(..) => {
                    let dictionary = array.as_any_dictionary();
                    let keys = Some(dictionary.normalized_keys());
                    let words = dictionary.values();
                    match words.data_type() {
                        DataType::LargeUtf8 => {
                            let w = words.as_string::<i64>();
                            lengths(&|k| w.value_length(k) as usize, keys)
                        }
                        _ => {
                            let w = words.as_string::<i32>();
                            lengths(&|k| w.value_length(k) as usize, keys)
                        }
                    }
                }
                _ => vec![0; array.len()],
            });
        }
        out
    }

    /// Appends rows `start..start + len` of every input to `out` (one
    /// [`Values`] per input, as made by [`Values::for_feeds`]).
    pub fn append(&self, feeds: &[Feed], start: usize, len: usize, out: &mut [Values]) {
        for ((column, feed), out) in self.columns.iter().zip(feeds).zip(out.iter_mut()) {
            let mut at = 0;
            for array in column {
                let (lo, hi) = (start.max(at), (start + len).min(at + array.len()));
                if lo < hi {
                    let values = row_values(array, lo - at, hi - lo, feed.width);
                    out.push(&values);
                }
                at += array.len();
                if at >= start + len {
                    break;
                }
            }
        }
    }
}

/// The scalar values of rows `offset..offset + len` of `array`: the array
/// itself for one value a row, else its lists' values (`width` a row: the
/// decoder checked it).
pub fn row_values(array: &ArrayRef, offset: usize, len: usize, width: usize) -> ArrayRef {
    match array.data_type() {
        DataType::FixedSizeList(..) => {
            let list = array.as_fixed_size_list();
            list.values().slice(list.value_offset_at(offset), len * width)
        }
        DataType::List(_) => list_values(array.as_list::<i32>(), offset, len),
        DataType::LargeList(_) => list_values(array.as_list::<i64>(), offset, len),
        _ => array.slice(offset, len),
    }
}

fn list_values<O: OffsetSizeTrait>(
    list: &arrow_array::GenericListArray<O>,
    offset: usize,
    len: usize,
) -> ArrayRef {
    let offsets = list.value_offsets();
    let (start, end) = (offsets[offset].as_usize(), offsets[offset + len].as_usize());
    list.values().slice(start, end - start)
}

/// Values of one input for one model call, in its element type.
#[derive(Debug)]
pub enum Values {
    /// float32.
    F32(Vec<f32>),
    /// float64.
    F64(Vec<f64>),
    /// int64.
    I64(Vec<i64>),
    /// int32.
    I32(Vec<i32>),
    /// bool.
    Bool(Vec<bool>),
    /// string.
    Str(Vec<String>),
}

impl Values {
    /// Empty values for each input, room for `rows` rows.
    pub fn for_feeds(feeds: &[Feed], rows: usize) -> Vec<Values> {
        feeds
            .iter()
            .map(|feed| {
                let n = rows * feed.width;
                match feed.kind {
                    Kind::F32 => Values::F32(Vec::with_capacity(n)),
                    Kind::F64 => Values::F64(Vec::with_capacity(n)),
                    Kind::I64 => Values::I64(Vec::with_capacity(n)),
                    Kind::I32 => Values::I32(Vec::with_capacity(n)),
                    Kind::Bool => Values::Bool(Vec::with_capacity(n)),
                    Kind::Str => Values::Str(Vec::with_capacity(n)),
                }
            })
            .collect()
    }

    /// Zeros (empty strings) for `rows` rows of each input: the start-up
    /// test run.
    pub fn zeros(feeds: &[Feed], rows: usize) -> Vec<Values> {
        let mut values = Values::for_feeds(feeds, rows);
        for (v, feed) in values.iter_mut().zip(feeds) {
            let n = rows * feed.width;
            match v {
                Values::F32(v) => v.resize(n, 0.0),
                Values::F64(v) => v.resize(n, 0.0),
                Values::I64(v) => v.resize(n, 0),
                Values::I32(v) => v.resize(n, 0),
                Values::Bool(v) => v.resize(n, false),
                Values::Str(v) => v.resize(n, String::new()),
            }
        }
        values
    }

    /// Deterministic sample rows for each input (the `auto` engine check):
    /// numbers spread over [-3, 3) (integers over 0..8), booleans mixed,
    /// strings from a few words including an empty one and non-ASCII ones.
    pub fn samples(feeds: &[Feed], rows: usize, seed: u64) -> Vec<Values> {
        const WORDS: [&str; 6] = ["", "a", "b", "Moscow", "Москва", "東京"];
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut values = Values::for_feeds(feeds, rows);
        for (v, feed) in values.iter_mut().zip(feeds) {
            for _ in 0..rows * feed.width {
                let u = next();
                match v {
                    Values::F32(v) => v.push((u * 6.0 - 3.0) as f32),
                    Values::F64(v) => v.push(u * 6.0 - 3.0),
                    Values::I64(v) => v.push((u * 8.0) as i64),
                    Values::I32(v) => v.push((u * 8.0) as i32),
                    Values::Bool(v) => v.push(u < 0.5),
                    Values::Str(v) => v.push(WORDS[(u * WORDS.len() as f64) as usize].into()),
                }
            }
        }
        values
    }

    /// The model inputs for `rows` rows of each feed's values (as
    /// [`Values::for_feeds`] orders them), as an engine takes them.
    pub fn into_inputs(
        values: Vec<Values>,
        feeds: &[Feed],
        rows: usize,
    ) -> TractResult<TVec<TValue>> {
        values
            .into_iter()
            .zip(feeds)
            .map(|(v, feed)| Ok(v.into_tensor(&feed.shape(rows))?.into()))
            .collect()
    }

    /// Appends a checked scalar array (see [`Kind::accepts`]).
    fn push(&mut self, array: &ArrayRef) {
        use DataType as D;
        macro_rules! widen {
            ($v:expr, $out:ty; $($dt:ident => $ty:ty),*) => {
                match array.data_type() {
                    $(D::$dt => $v.extend(
                        array.as_primitive::<$ty>().values().iter().map(|&x| <$out>::from(x))
                    ),)*
                    other => unreachable!("unchecked {other} column"),
                }
            };
        }
        match self {
            Values::F32(v) => match array.data_type() {
                D::Float32 => v.extend_from_slice(array.as_primitive::<Float32Type>().values()),
                // In range: checked when the body was decoded.
                _ => {
                    v.extend(array.as_primitive::<Float64Type>().values().iter().map(|&x| x as f32))
                }
            },
            Values::F64(v) => widen!(v, f64; Float64 => Float64Type, Float32 => Float32Type),
            Values::I64(v) => {
                widen!(v, i64; Int64 => Int64Type, Int32 => Int32Type, Int16 => Int16Type,
                Int8 => Int8Type)
            }
            Values::I32(v) => {
                widen!(v, i32; Int32 => Int32Type, Int16 => Int16Type, Int8 => Int8Type)
            }
            Values::Bool(v) => v.extend(array.as_boolean().values().iter()),
            Values::Str(v) => push_strings(array, v),
        }
    }

    /// The tensor of `shape` these values make.
    pub fn into_tensor(self, shape: &[usize]) -> TractResult<Tensor> {
        Ok(match self {
            Values::F32(v) => tract_ndarray::ArrayD::from_shape_vec(shape, v)?.into_tensor(),
            Values::F64(v) => tract_ndarray::ArrayD::from_shape_vec(shape, v)?.into_tensor(),
            Values::I64(v) => tract_ndarray::ArrayD::from_shape_vec(shape, v)?.into_tensor(),
            Values::I32(v) => tract_ndarray::ArrayD::from_shape_vec(shape, v)?.into_tensor(),
            Values::Bool(v) => tract_ndarray::ArrayD::from_shape_vec(shape, v)?.into_tensor(),
            Values::Str(v) => tract_ndarray::ArrayD::from_shape_vec(shape, v)?.into_tensor(),
        })
    }
}

/// Appends a utf8, large_utf8 or dictionary<utf8> array's strings. A
/// dictionary's words are read where its rows point, never all of them:
/// one dictionary of 100,000 words may be shared by thousands of one-row
/// batches.
fn push_strings(array: &ArrayRef, out: &mut Vec<String>) {
    match array.data_type() {
        DataType::Utf8 => out.extend(array.as_string::<i32>().iter().map(owned)),
        DataType::LargeUtf8 => out.extend(array.as_string::<i64>().iter().map(owned)),
        _ => {
            let dictionary = array.as_any_dictionary();
            let words = dictionary.values();
            // Keys were checked to be in range and non-null when decoded.
            let keys = dictionary.normalized_keys().into_iter();
            match words.data_type() {
                DataType::LargeUtf8 => {
                    let words = words.as_string::<i64>();
                    out.extend(keys.map(|k| words.value(k).to_string()));
                }
                _ => {
                    let words = words.as_string::<i32>();
                    out.extend(keys.map(|k| words.value(k).to_string()));
                }
            }
        }
    }
}

/// Bytes a column's scalar values take once the workers expand them into
/// [`Values`]: eight a number (the widest element), and for strings their
/// bytes and a `String` each, a dictionary's words counted once per row
/// that points at them. Linear in the rows.
pub fn expanded_bytes(values: &ArrayRef) -> usize {
    const STRING: usize = std::mem::size_of::<String>();
    let strings = |array: &ArrayRef| -> usize {
        let bytes = match array.data_type() {
            DataType::Utf8 => array.as_string::<i32>().values().len(),
            DataType::LargeUtf8 => array.as_string::<i64>().values().len(),
            _ => 0,
        };
        bytes + array.len() * STRING
    };
    match values.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 => strings(values),
        DataType::Dictionary(..) => {
            let dictionary = values.as_any_dictionary();
            let words = dictionary.values();
            let length = |k: usize| match words.data_type() {
                DataType::LargeUtf8 => words.as_string::<i64>().value_length(k) as usize,
                _ => words.as_string::<i32>().value_length(k) as usize,
            };
            dictionary
                .normalized_keys()
                .into_iter()
                .map(|k| if k < words.len() { length(k) + STRING } else { STRING })
                .fold(0usize, usize::saturating_add)
        }
        _ => values.len().saturating_mul(8),
    }
}

fn owned(s: Option<&str>) -> String {
    s.unwrap_or_default().to_string()
}

/// Shared typed rows, as a job holds them.
pub type SharedRows = Arc<TypedRows>;
