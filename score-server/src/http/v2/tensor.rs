//! The Open Inference Protocol's tensors over HTTP: the request's JSON
//! (inputs with `name`, `shape`, `datatype` and `data`, or with the binary
//! tensor data extension their bytes after the JSON), decoded into what the
//! model is fed; and the answer's outputs, written as JSON `data` or as
//! bytes after the JSON. Binary data is row-major and little-endian; a
//! BYTES element is a 4-byte little-endian length and the bytes.

use std::sync::Arc;

use arrow_array::{
    ArrayRef, BooleanArray, FixedSizeListArray, Float32Array, Float64Array, Int32Array, Int64Array,
    RecordBatch,
};
use arrow_schema::{Field, Schema};
use bytes::Bytes;
use score_engine::Model;
use score_engine::input::Kind;
use score_protocol::codec;
use score_protocol::models::OutputDoc;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::values::{FromLe, Sink, Texts, json_values};
use crate::error::ApiError;
use crate::pool::Input;

/// The header that says how many bytes of the body are JSON, the tensors'
/// bytes following (in a request and in an answer).
pub const HEADER_LENGTH: &str = "inference-header-content-length";

/// A tensor's element type, as the protocol names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Datatype {
    /// `BOOL`: one byte an element in binary.
    Bool,
    /// `INT32`.
    Int32,
    /// `INT64`.
    Int64,
    /// `FP32`.
    Fp32,
    /// `FP64`.
    Fp64,
    /// `BYTES`: texts (UTF-8 for the models served here).
    Bytes,
}

impl Datatype {
    /// The datatype called `name`, or a sentence naming those taken.
    pub fn parse(name: &str, input: &str) -> Result<Datatype, ApiError> {
        Ok(match name {
            "BOOL" => Datatype::Bool,
            "INT32" => Datatype::Int32,
            "INT64" => Datatype::Int64,
            "FP32" => Datatype::Fp32,
            "FP64" => Datatype::Fp64,
            "BYTES" => Datatype::Bytes,
            other => {
                return Err(ApiError::BadShape(format!(
                    "input {input:?} has datatype {other:?}; this server takes FP32, FP64, \
                     INT64, INT32, BOOL and BYTES"
                )));
            }
        })
    }

    /// The protocol's name.
    pub fn name(self) -> &'static str {
        match self {
            Datatype::Bool => "BOOL",
            Datatype::Int32 => "INT32",
            Datatype::Int64 => "INT64",
            Datatype::Fp32 => "FP32",
            Datatype::Fp64 => "FP64",
            Datatype::Bytes => "BYTES",
        }
    }

    /// Triton's model configuration name (`TYPE_FP32`).
    pub fn config_name(self) -> &'static str {
        match self {
            Datatype::Bool => "TYPE_BOOL",
            Datatype::Int32 => "TYPE_INT32",
            Datatype::Int64 => "TYPE_INT64",
            Datatype::Fp32 => "TYPE_FP32",
            Datatype::Fp64 => "TYPE_FP64",
            Datatype::Bytes => "TYPE_STRING",
        }
    }

    /// The datatype a model input of `kind` is sent as.
    pub fn of_kind(kind: Kind) -> Datatype {
        match kind {
            Kind::F32 => Datatype::Fp32,
            Kind::F64 => Datatype::Fp64,
            Kind::I64 => Datatype::Int64,
            Kind::I32 => Datatype::Int32,
            Kind::Bool => Datatype::Bool,
            Kind::Str => Datatype::Bytes,
        }
    }

    /// The datatype an output is answered in: class names as BYTES,
    /// integers (labels) as INT64, booleans as BOOL, every other number
    /// as FP32 (what the workers give).
    pub fn of_output(output: &OutputDoc) -> Datatype {
        if output.classes.is_some() {
            Datatype::Bytes
        } else if output.dtype.starts_with("int") || output.dtype.starts_with("uint") {
            Datatype::Int64
        } else if output.dtype == "bool" {
            Datatype::Bool
        } else {
            Datatype::Fp32
        }
    }

    /// Bytes an element takes in binary (BYTES: at least its length).
    fn size(self) -> usize {
        match self {
            Datatype::Bool => 1,
            Datatype::Int32 | Datatype::Fp32 | Datatype::Bytes => 4,
            Datatype::Int64 | Datatype::Fp64 => 8,
        }
    }
}

/// An inference request's JSON.
#[derive(Deserialize)]
pub struct InferRequest<'a> {
    /// Echoed in the answer.
    #[serde(default)]
    pub id: Option<String>,
    /// Request parameters; those not known here are ignored, as the
    /// protocol's parameters are open.
    #[serde(default)]
    pub parameters: RequestParameters,
    /// The input tensors.
    #[serde(borrow)]
    pub inputs: Vec<InputTensor<'a>>,
    /// The outputs asked for; every output when absent.
    #[serde(default)]
    pub outputs: Option<Vec<RequestedOutput>>,
}

/// The request parameters read here.
#[derive(Default, Deserialize)]
pub struct RequestParameters {
    /// Every output not saying otherwise is answered in binary.
    #[serde(default)]
    pub binary_data_output: Option<bool>,
    /// The request's timeout in microseconds (Triton's unit): work not
    /// started by then is dropped with a 504.
    #[serde(default)]
    pub timeout: Option<u64>,
    /// For an embedding model: cut a text over the model's limit there
    /// instead of refusing the request (413).
    #[serde(default)]
    pub truncate: Option<bool>,
    /// For an embedding model: embed a text over the model's limit whole,
    /// in windows pooled into one vector.
    #[serde(default)]
    pub chunk: Option<bool>,
    /// Tokens each window shares with the one before (with `chunk`).
    #[serde(default)]
    pub chunk_overlap: Option<usize>,
    /// For an embedding model: the prompt put before every text.
    #[serde(default)]
    pub prompt_name: Option<String>,
}

/// One input tensor of a request.
#[derive(Deserialize)]
pub struct InputTensor<'a> {
    /// The model input it feeds.
    pub name: String,
    /// Its shape: the batch first.
    pub shape: Vec<i64>,
    /// Its element type.
    pub datatype: String,
    /// `binary_data_size` when its data follows the JSON.
    #[serde(default)]
    pub parameters: TensorParameters,
    /// The values in JSON, flat or nested (row-major).
    #[serde(borrow, default)]
    pub data: Option<&'a RawValue>,
}

/// The tensor parameters read here.
#[derive(Default, Deserialize)]
pub struct TensorParameters {
    /// Bytes of this tensor's data after the JSON.
    #[serde(default)]
    pub binary_data_size: Option<u64>,
}

/// An output asked for.
#[derive(Deserialize)]
pub struct RequestedOutput {
    /// The output's name.
    pub name: String,
    /// `binary_data`, and Triton's `classification`, which is refused.
    #[serde(default)]
    pub parameters: OutputParameters,
}

/// The output parameters read here.
#[derive(Default, Deserialize)]
pub struct OutputParameters {
    /// Answer this output in binary (true) or JSON (false).
    #[serde(default)]
    pub binary_data: Option<bool>,
    /// Triton's classification extension: not supported.
    #[serde(default)]
    pub classification: Option<u64>,
}

/// Splits a body into its JSON and the binary data after it, as
/// `Inference-Header-Content-Length` says (the whole body is JSON without
/// it).
pub fn split(body: &Bytes, header_length: Option<usize>) -> Result<(Bytes, Bytes), ApiError> {
    match header_length {
        None => Ok((body.clone(), Bytes::new())),
        Some(n) if n <= body.len() => Ok((body.slice(..n), body.slice(n..))),
        Some(n) => Err(ApiError::BadShape(format!(
            "{HEADER_LENGTH} is {n} but the body has {} bytes",
            body.len()
        ))),
    }
}

/// Parses the request's JSON.
pub fn parse(json: &[u8]) -> Result<InferRequest<'_>, ApiError> {
    serde_json::from_slice(json).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => {
            ApiError::BadShape(format!("the inference request is not valid: {e}"))
        }
        _ => ApiError::MalformedJson(e.to_string()),
    })
}

/// A request's inputs, checked: rows, and per tensor its datatype, its
/// values per row and where its values are.
pub struct Checked<'r, 'a> {
    /// Rows: the first dimension of every input.
    pub rows: usize,
    tensors: Vec<(&'r InputTensor<'a>, Datatype, usize, Source)>,
}

/// Where an input's values are.
enum Source {
    /// In the JSON.
    Json,
    /// This slice of the binary data.
    Binary(Bytes),
}

/// Checks the request's inputs: known datatypes, shapes of the batch and
/// then the values of a row (whatever their rank), one row count, data in
/// JSON or in binary of the size the shape takes, and the binary data
/// wholly spent.
pub fn check<'r, 'a>(
    request: &'r InferRequest<'a>,
    binary: &Bytes,
    model: &Model,
) -> Result<Checked<'r, 'a>, ApiError> {
    // Before any per-input work: a request of many inputs costs nothing
    // to refuse.
    if request.inputs.len() > model.feeds.len() {
        return Err(ApiError::BadShape(format!(
            "the request sends {} inputs; model {} takes {}",
            request.inputs.len(),
            model.name,
            model.feeds.len()
        )));
    }
    let mut rows = None;
    let mut at = 0usize;
    let mut tensors = Vec::with_capacity(request.inputs.len());
    for (i, tensor) in request.inputs.iter().enumerate() {
        let name = &tensor.name;
        if request.inputs[..i].iter().any(|t| t.name == *name) {
            return Err(ApiError::BadShape(format!("input {name:?} is sent twice")));
        }
        let datatype = Datatype::parse(&tensor.datatype, name)?;
        let bad_shape = || {
            ApiError::BadShape(format!(
                "input {name:?} has shape {:?}; give the rows first, then the values of a row \
                 (e.g. [rows, columns])",
                tensor.shape
            ))
        };
        let dims: Vec<usize> = tensor
            .shape
            .iter()
            .map(|&d| usize::try_from(d).map_err(|_| bad_shape()))
            .collect::<Result<_, _>>()?;
        let (&n, rest) = dims.split_first().ok_or_else(bad_shape)?;
        let width = rest.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or_else(bad_shape)?;
        let elements = n.checked_mul(width).ok_or_else(bad_shape)?;
        match rows {
            None => rows = Some(n),
            Some(r) if r != n => {
                return Err(ApiError::BadShape(format!(
                    "input {name:?} has {n} rows but the inputs before it have {r}"
                )));
            }
            Some(_) => {}
        }
        let source = match (tensor.parameters.binary_data_size, tensor.data) {
            (Some(_), Some(_)) => {
                return Err(ApiError::BadShape(format!(
                    "input {name:?} has both data and binary_data_size; send one"
                )));
            }
            (None, None) => {
                return Err(ApiError::BadShape(format!(
                    "input {name:?} has no data (nor binary_data_size)"
                )));
            }
            (None, Some(_)) => Source::Json,
            (Some(size), None) => {
                let size = usize::try_from(size).unwrap_or(usize::MAX);
                let end = at.checked_add(size).filter(|&end| end <= binary.len());
                let Some(end) = end else {
                    return Err(ApiError::BadShape(format!(
                        "input {name:?} has binary_data_size {size}, past the {} bytes of \
                         binary data after the JSON",
                        binary.len() - at
                    )));
                };
                let fixed = datatype != Datatype::Bytes;
                if fixed && elements.checked_mul(datatype.size()) != Some(size) {
                    return Err(ApiError::BadShape(format!(
                        "input {name:?} has shape {:?} of {}, {} bytes, but binary_data_size \
                         {size}",
                        tensor.shape,
                        datatype.name(),
                        elements.saturating_mul(datatype.size())
                    )));
                }
                let slice = binary.slice(at..end);
                at = end;
                Source::Binary(slice)
            }
        };
        tensors.push((tensor, datatype, width, source));
    }
    if at != binary.len() {
        return Err(ApiError::BadShape(format!(
            "{} bytes of binary data after the JSON belong to no input (binary_data_size)",
            binary.len() - at
        )));
    }
    Ok(Checked { rows: rows.unwrap_or(0), tensors })
}

impl Checked<'_, '_> {
    /// An upper bound on the bytes decoding allocates: every value of a
    /// JSON tensor or of a binary one other than float32 copied, plus the
    /// float32 copy a matrix model is fed.
    pub fn decode_bound(&self) -> usize {
        self.tensors
            .iter()
            .map(|(tensor, datatype, width, source)| {
                let elements = self.rows.saturating_mul(*width);
                match source {
                    Source::Binary(_) if *datatype == Datatype::Fp32 => 0,
                    Source::Binary(bytes) => bytes.len().saturating_add(elements * 4),
                    Source::Json => {
                        // A JSON value takes at least a byte and a comma.
                        let len = tensor.data.map_or(0, |d| d.get().len());
                        let most = elements.min(len / 2 + 1);
                        len.saturating_add(most.saturating_mul(datatype.size() + 4))
                    }
                }
            })
            .sum()
    }

    /// The rows as `model` is fed them: a matrix model's float32 rows (a
    /// binary FP32 tensor as it came, other numbers converted), else one
    /// Arrow column per input checked by the Arrow bodies' rules.
    pub fn into_input(self, model: &Model) -> Result<Input, ApiError> {
        let takes = || {
            let inputs: Vec<String> = model
                .feeds
                .iter()
                .map(|f| {
                    let shape =
                        if f.rank == 1 { "[-1]".to_string() } else { format!("[-1, {}]", f.width) };
                    format!("{} ({} {shape})", f.name, Datatype::of_kind(f.kind).name())
                })
                .collect();
            format!("model {} takes {}", model.name, inputs.join(", "))
        };
        for feed in &model.feeds {
            if !self.tensors.iter().any(|(t, ..)| t.name == feed.name) {
                return Err(ApiError::BadShape(format!(
                    "the request has no input {:?}; {}",
                    feed.name,
                    takes()
                )));
            }
        }
        if let Some((extra, ..)) =
            self.tensors.iter().find(|(t, ..)| !model.feeds.iter().any(|f| f.name == t.name))
        {
            return Err(ApiError::BadShape(format!(
                "input {:?} is not an input of the model; {}",
                extra.name,
                takes()
            )));
        }
        let rows = self.rows;
        if let Some(columns) = model.matrix() {
            let (tensor, datatype, width, source) = &self.tensors[0];
            if *width != columns {
                return Err(ApiError::BadShape(format!(
                    "input {:?} has shape {:?}: {width} values a row; {}",
                    tensor.name,
                    tensor.shape,
                    takes()
                )));
            }
            let bytes = match (datatype, source) {
                (Datatype::Fp32, Source::Binary(bytes)) => bytes.clone(),
                _ => {
                    let floats = floats(tensor, *datatype, source, rows * width)?;
                    Bytes::from(codec::encode(&floats))
                }
            };
            return Ok(Input::Matrix(bytes));
        }
        let mut fields = Vec::with_capacity(self.tensors.len());
        let mut columns = Vec::with_capacity(self.tensors.len());
        for (tensor, datatype, width, source) in &self.tensors {
            let values = array(tensor, *datatype, source, rows * width)?;
            let column: ArrayRef = if *width == 1 {
                values
            } else {
                let item = Arc::new(Field::new("item", values.data_type().clone(), false));
                let size = i32::try_from(*width).map_err(|_| {
                    ApiError::BadShape(format!("input {:?}: too many values a row", tensor.name))
                })?;
                Arc::new(
                    FixedSizeListArray::try_new(item, size, values, None)
                        .map_err(|e| ApiError::Internal(e.to_string()))?,
                )
            };
            fields.push(Field::new(tensor.name.as_str(), column.data_type().clone(), false));
            columns.push(column);
        }
        let options = arrow_array::RecordBatchOptions::new().with_row_count(Some(rows));
        let batch =
            RecordBatch::try_new_with_options(Arc::new(Schema::new(fields)), columns, &options)
                .map_err(|e| ApiError::Internal(e.to_string()))?;
        let typed = crate::http::arrow::typed_batch(&batch, model)?;
        let bytes = self
            .tensors
            .iter()
            .map(|(t, _, _, s)| match s {
                Source::Binary(b) => b.len(),
                Source::Json => t.data.map_or(0, |d| d.get().len()),
            })
            .sum();
        Ok(Input::Typed { rows: Arc::new(typed), bytes })
    }
}

/// A tensor's `elements` values as float32, for a matrix model: float64
/// narrowed (refused outside float32's range), integers converted (refused
/// past 2^24, where float32 stops holding every integer).
fn floats(
    tensor: &InputTensor<'_>,
    datatype: Datatype,
    source: &Source,
    elements: usize,
) -> Result<Vec<f32>, ApiError> {
    let name = &tensor.name;
    let exact = |v: f64| -> Result<f32, ApiError> {
        if v.abs() > f64::from(1u32 << 24) {
            return Err(ApiError::BadShape(format!(
                "input {name:?}: {v} is past 2^24, where float32 (the model's input) no longer \
                 holds every integer; send FP32"
            )));
        }
        Ok(v as f32)
    };
    let narrow = |v: f64| -> Result<f32, ApiError> {
        let f = v as f32;
        if f.is_infinite() && v.is_finite() {
            return Err(ApiError::BadShape(format!(
                "input {name:?}: {v:e} is outside the float32 range (±3.4e38)"
            )));
        }
        Ok(f)
    };
    match (datatype, source) {
        (Datatype::Fp32, Source::Json) => json_data::<Vec<f32>>(tensor, elements),
        (Datatype::Fp32, Source::Binary(b)) => Ok(codec::decode(b).unwrap_or_default()),
        (Datatype::Fp64, _) => {
            values::<Vec<f64>>(tensor, source, elements)?.into_iter().map(narrow).collect()
        }
        (Datatype::Int64, _) => values::<Vec<i64>>(tensor, source, elements)?
            .into_iter()
            .map(|v| exact(v as f64))
            .collect(),
        (Datatype::Int32, _) => values::<Vec<i32>>(tensor, source, elements)?
            .into_iter()
            .map(|v| exact(f64::from(v)))
            .collect(),
        (Datatype::Bool | Datatype::Bytes, _) => Err(ApiError::BadShape(format!(
            "input {name:?} is {}; the model takes float32 (FP32, or FP64, INT64, INT32 \
             converted)",
            datatype.name()
        ))),
    }
}

/// A tensor's values as an Arrow array of its own datatype.
fn array(
    tensor: &InputTensor<'_>,
    datatype: Datatype,
    source: &Source,
    elements: usize,
) -> Result<ArrayRef, ApiError> {
    Ok(match datatype {
        Datatype::Fp32 => {
            Arc::new(Float32Array::from(values::<Vec<f32>>(tensor, source, elements)?))
        }
        Datatype::Fp64 => {
            Arc::new(Float64Array::from(values::<Vec<f64>>(tensor, source, elements)?))
        }
        Datatype::Int64 => {
            Arc::new(Int64Array::from(values::<Vec<i64>>(tensor, source, elements)?))
        }
        Datatype::Int32 => {
            Arc::new(Int32Array::from(values::<Vec<i32>>(tensor, source, elements)?))
        }
        Datatype::Bool => {
            Arc::new(BooleanArray::from(values::<Vec<bool>>(tensor, source, elements)?))
        }
        Datatype::Bytes => {
            let mut texts = Texts::default();
            match source {
                Source::Json => texts = json_data::<Texts>(tensor, elements)?,
                Source::Binary(bytes) => {
                    let mut rest = &bytes[..];
                    while !rest.is_empty() {
                        let bad = || {
                            ApiError::BadShape(format!(
                                "input {:?}: the BYTES data is cut short (each element is a \
                                 4-byte little-endian length, then its bytes)",
                                tensor.name
                            ))
                        };
                        let (len, tail) = rest.split_first_chunk::<4>().ok_or_else(bad)?;
                        let len = u32::from_le_bytes(*len) as usize;
                        let (text, tail) = tail.split_at_checked(len).ok_or_else(bad)?;
                        let text = std::str::from_utf8(text).map_err(|_| {
                            ApiError::BadShape(format!(
                                "input {:?}: element {} is not UTF-8 text",
                                tensor.name, texts.count
                            ))
                        })?;
                        texts.text(text).map_err(|e| ApiError::BadShape(e.to_string()))?;
                        rest = tail;
                    }
                }
            }
            if texts.count != elements {
                return Err(count_error(tensor, texts.count, elements));
            }
            Arc::new(texts.builder.finish())
        }
    })
}

/// A numeric or boolean tensor's values, from its JSON or its bytes.
fn values<V: Sink + Default + FromLe>(
    tensor: &InputTensor<'_>,
    source: &Source,
    elements: usize,
) -> Result<V, ApiError> {
    match source {
        Source::Json => json_data(tensor, elements),
        Source::Binary(bytes) => Ok(V::from_le(bytes)),
    }
}

/// A tensor's JSON data, flat or nested, into `V`; exactly `elements`.
fn json_data<V: Sink + Default>(tensor: &InputTensor<'_>, elements: usize) -> Result<V, ApiError> {
    let raw = tensor.data.map_or("[]", RawValue::get);
    let sink: V = json_values(raw)
        .map_err(|e| ApiError::BadShape(format!("input {:?}: {e}", tensor.name)))?;
    if sink.count() != elements {
        return Err(count_error(tensor, sink.count(), elements));
    }
    Ok(sink)
}

fn count_error(tensor: &InputTensor<'_>, got: usize, elements: usize) -> ApiError {
    ApiError::BadShape(format!(
        "input {:?} has {got} values, but its shape {:?} takes {elements}",
        tensor.name, tensor.shape
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_data_is_split_by_the_header_length() {
        let body = Bytes::from_static(b"{}abcd");
        let (json, rest) = split(&body, Some(2)).expect("split");
        assert_eq!((&json[..], &rest[..]), (&b"{}"[..], &b"abcd"[..]));
        let err = split(&body, Some(7)).expect_err("past the body");
        assert_eq!(
            err.to_string(),
            "inference-header-content-length is 7 but the body has 6 bytes"
        );
    }

    fn model() -> Model {
        Model::load(&score_engine::ModelSpec::demo()).expect("the demo model loads")
    }

    #[test]
    fn shapes_and_sizes_are_checked_against_the_data() {
        let json = br#"{"inputs":[{"name":"x","shape":[2,3],"datatype":"FP32","parameters":{"binary_data_size":20}}]}"#;
        let request = parse(json).expect("parses");
        let err = check(&request, &Bytes::from(vec![0u8; 20]), &model()).err().expect("wrong size");
        assert!(err.to_string().contains("24 bytes, but binary_data_size 20"), "{err}");
        let json = br#"{"inputs":[{"name":"x","shape":[2,-1],"datatype":"FP32","data":[1]}]}"#;
        let request = parse(json).expect("parses");
        let err = check(&request, &Bytes::new(), &model()).err().expect("negative");
        assert!(err.to_string().contains("has shape [2, -1]"), "{err}");
        let json = br#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP16","data":[1]}]}"#;
        let request = parse(json).expect("parses");
        let err = check(&request, &Bytes::new(), &model()).err().expect("fp16");
        assert!(err.to_string().contains("datatype \"FP16\""), "{err}");
        let json = br#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}]}"#;
        let request = parse(json).expect("parses");
        let err = check(&request, &Bytes::from_static(b"xx"), &model()).err().expect("left over");
        assert!(err.to_string().starts_with("2 bytes of binary data"), "{err}");
    }
}
