//! Arrow IPC stream bodies (`application/vnd.apache.arrow.stream`): what
//! Spark already holds, sent as it is.
//!
//! The columns are matched to the model's inputs by these rules
//! (`/models/{name}` states them to clients: score-protocol's
//! `InputDoc::arrow_layouts` and `InputDoc::typed_layout`):
//! - a model fed one float32 `[N, n]` matrix takes one `fixed_size_list` of
//!   size `n`, or one `list`/`large_list` whose every row holds `n` values,
//!   of float32 or float64 (the rows); otherwise `n` float32 or float64
//!   columns, one a feature: by name where the model names its features
//!   (ONNX metadata `feature_names`), in any order, else by position
//!   ([`rows`]);
//! - any other model (several inputs, strings, integers) takes one column
//!   per input, named after it, of the input's type or one converted
//!   without loss (int32 → int64, utf8/large_utf8/dictionary<utf8> →
//!   string), a list of n values for an input of n a row ([`typed`]).
//!
//! float64 is converted to float32 (a value outside float32's range is a
//! 400, as in JSON). Anything else (another width, another type, a null)
//! is a 400 that names the column and what was expected; a stream that is
//! not Arrow IPC, is cut short, or uses compression is a 400 or 415 that
//! says so. The stream may hold any number of record batches (zero rows:
//! a schema alone). Decoding never copies a body's buffers when they are
//! aligned (arrow's `StreamDecoder` over the received `Bytes`); the rows
//! are written once, row-major, as the binary path's float32 body.

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Float64Type};
use std::sync::Arc;

use arrow_array::{
    Array, ArrayRef, FixedSizeListArray, Float32Array, Int64Array, OffsetSizeTrait, RecordBatch,
    StringArray,
};
use arrow_buffer::Buffer;
use arrow_ipc::reader::StreamDecoder;
use arrow_ipc::writer::StreamWriter;
use arrow_schema::{ArrowError, DataType, Field, Schema};
use bytes::Bytes;
use score_protocol::codec;
use score_protocol::models::OutputDoc;

use crate::error::ApiError;
pub use scan::{BATCH_OVERHEAD, Scanned, decoded_bound};
use scan::{guarded, quoted, some_names, stream_error};

mod scan;
use score_engine::Model;
use score_engine::input::{Feed, Kind, TypedRows};

/// Decodes an Arrow IPC stream into float32 little-endian rows of
/// `columns` values (a model fed one float32 matrix, whose features may
/// have `names`) and returns them with the row count.
pub fn rows(
    body: Bytes,
    columns: usize,
    names: Option<&[String]>,
) -> Result<(Bytes, usize), ApiError> {
    rows_of(Scanned::new(body)?, columns, names)
}

/// [`rows`] of a scanned body. The layout is checked on the schema,
/// before any batch is decoded; the batches are then decoded and written
/// one at a time.
pub fn rows_of(
    scanned: Scanned,
    columns: usize,
    names: Option<&[String]>,
) -> Result<(Bytes, usize), ApiError> {
    guarded(|| {
        let layout = Layout::of(&scanned.scan.schema, columns, names)?;
        let mut out: Vec<u8> = Vec::new();
        let mut rows = 0usize;
        read_stream(scanned.body, |batch| {
            layout.append(&batch, columns, rows, &mut out)?;
            rows += batch.num_rows();
            Ok(())
        })?;
        Ok((Bytes::from(out), rows))
    })
}

/// Decodes an Arrow IPC stream for a model fed by name: one column per
/// input, named after it (see [`match_columns`] for the rules), every
/// value checked so that the workers' conversion to tensors cannot fail.
pub fn typed(body: Bytes, model: &Model) -> Result<TypedRows, ApiError> {
    typed_of(Scanned::new(body)?, model)
}

/// [`typed`] of a scanned body.
pub fn typed_of(scanned: Scanned, model: &Model) -> Result<TypedRows, ApiError> {
    guarded(|| {
        let Scanned { body, scan } = scanned;
        let matched = match_columns(&scan.schema, model)?;
        let mut columns: Vec<Vec<ArrayRef>> = vec![Vec::new(); model.feeds.len()];
        let mut first_row = 0;
        let mut decoded = 0usize;
        read_stream(body, |batch| {
            for ((feed, &ix), column) in model.feeds.iter().zip(&matched).zip(&mut columns) {
                let array = batch.column(ix);
                let name = scan.schema.field(ix).name();
                decoded = decoded.saturating_add(check_typed(array, feed, name, first_row)?);
                column.push(array.clone());
            }
            first_row += batch.num_rows();
            Ok(())
        })?;
        Ok(TypedRows::new(columns, decoded))
    })
}

/// Checks a record batch another decoder built (the Open Inference
/// Protocol's tensors, one column per input) against a model fed by name,
/// by the rules an Arrow body's columns follow.
pub fn typed_batch(batch: &RecordBatch, model: &Model) -> Result<TypedRows, ApiError> {
    let schema = batch.schema();
    let matched = match_columns(&schema, model)?;
    let mut columns = Vec::with_capacity(matched.len());
    let mut decoded = 0usize;
    for (feed, &ix) in model.feeds.iter().zip(&matched) {
        let array = batch.column(ix);
        decoded = decoded.saturating_add(check_typed(array, feed, schema.field(ix).name(), 0)?);
        columns.push(vec![array.clone()]);
    }
    Ok(TypedRows::new(columns, decoded))
}

/// Decodes the stream's record batches one at a time (zero-copy views of
/// the body where its buffers are aligned), handing each to `each`. The
/// body has passed [`scan`].
fn read_stream(
    body: Bytes,
    mut each: impl FnMut(RecordBatch) -> Result<(), ApiError>,
) -> Result<(), ApiError> {
    let mut buffer = Buffer::from(body);
    let mut decoder = StreamDecoder::new();
    while !buffer.is_empty() {
        let Some(batch) = decoder.decode(&mut buffer).map_err(stream_error)? else { break };
        each(batch)?;
    }
    decoder
        .finish()
        .map_err(|_| ApiError::BadShape("the Arrow stream is cut short inside a message".into()))
}

/// For each model input, the index of the body's column that feeds it: the
/// column named after the input (exactly), of a type [`Kind::accepts`];
/// for an input of n > 1 values a row, a list, large_list or
/// fixed_size_list of n such values. A column no input is named after is
/// refused too: it is more likely a misnamed input than data to ignore.
fn match_columns(schema: &Schema, model: &Model) -> Result<Vec<usize>, ApiError> {
    let takes = || format!("model {} takes {}", model.name, model.input_list());
    let mut matched = Vec::with_capacity(model.feeds.len());
    for feed in &model.feeds {
        let (ix, field) = find_column(schema, &feed.name, takes)?;
        let wanted = || {
            score_protocol::models::InputDoc::typed_layout(&feed.name, feed.kind.name(), feed.width)
        };
        let values = match field.data_type() {
            DataType::FixedSizeList(item, size) if *size as usize == feed.width => item.data_type(),
            DataType::List(item) | DataType::LargeList(item) => item.data_type(),
            scalar if feed.width == 1 => scalar,
            other => {
                return Err(ApiError::BadShape(format!(
                    "column {:?} is {other}; input {} takes {}",
                    feed.name,
                    feed.name,
                    wanted()
                )));
            }
        };
        if !feed.kind.accepts(values) {
            return Err(ApiError::BadShape(format!(
                "column {:?} holds {values} values; input {} takes {}",
                feed.name,
                feed.name,
                wanted()
            )));
        }
        matched.push(ix);
    }
    if let Some(extra) =
        schema.fields().iter().find(|f| !model.feeds.iter().any(|feed| feed.name == *f.name()))
    {
        return Err(ApiError::BadShape(format!(
            "column {} is not an input of the model; {}",
            quoted(extra.name()),
            takes()
        )));
    }
    Ok(matched)
}

/// The body's column named `name` (exactly), or a 400 that says so,
/// points out a column whose name differs only in case, and ends with
/// what the model `takes`.
fn find_column<'s>(
    schema: &'s Schema,
    name: &str,
    takes: impl Fn() -> String,
) -> Result<(usize, &'s Field), ApiError> {
    schema.column_with_name(name).ok_or_else(|| {
        let near = schema.fields().iter().find(|f| f.name().eq_ignore_ascii_case(name));
        let hint = near.map(|f| format!(" (column {} differs in case)", quoted(f.name())));
        ApiError::BadShape(format!(
            "the Arrow body has no column named {name:?}{}; {}",
            hint.unwrap_or_default(),
            takes()
        ))
    })
}

/// Checks one batch's column for a typed input: no nulls (at any level), n
/// values in every row of a list, float64 within float32's range for a
/// float32 input, dictionary keys that point into the dictionary. Returns
/// what the column's values take once the workers expand them into a
/// model's tensors ([`score_engine::input::expanded_bytes`]): a dictionary column
/// of a few bytes a row may point every row at one long word.
fn check_typed(
    array: &ArrayRef,
    feed: &Feed,
    name: &str,
    first_row: usize,
) -> Result<usize, ApiError> {
    let width = feed.width;
    let values = checked_values(array, name, first_row, width)?;
    if feed.kind == Kind::F32 && values.data_type() == &DataType::Float64 {
        narrowed(&values, name, first_row, width)?;
    }
    if let DataType::Dictionary(..) = values.data_type() {
        let dictionary = values.as_any_dictionary();
        let words = dictionary.values();
        let keys = dictionary.normalized_keys();
        for (i, &key) in keys.iter().enumerate() {
            if key >= words.len() || words.is_null(key) {
                return Err(ApiError::BadShape(format!(
                    "row {} of column {}: dictionary key {key} is {} (the dictionary holds {} \
                     values)",
                    first_row + i / width.max(1),
                    quoted(name),
                    if key >= words.len() { "out of range" } else { "a null" },
                    words.len()
                )));
            }
        }
    }
    Ok(score_engine::input::expanded_bytes(&values))
}

/// The values of a column's rows, no null among them (nor among the
/// rows), every row of a list holding `width` (a scalar column: itself):
/// what both the matrix and the by-name paths read.
fn checked_values(
    array: &ArrayRef,
    name: &str,
    first_row: usize,
    width: usize,
) -> Result<ArrayRef, ApiError> {
    check_nulls(array, name, first_row, 1)?;
    match array.data_type() {
        DataType::List(_) => check_widths(array.as_list::<i32>(), name, first_row, width)?,
        DataType::LargeList(_) => check_widths(array.as_list::<i64>(), name, first_row, width)?,
        _ => {}
    }
    let values = score_engine::input::row_values(array, 0, array.len(), width);
    check_nulls(&values, name, first_row, width)?;
    Ok(values)
}

/// Refuses a row of a variable-size list column that does not hold
/// `width` values.
fn check_widths<O: OffsetSizeTrait>(
    list: &arrow_array::GenericListArray<O>,
    name: &str,
    first_row: usize,
    width: usize,
) -> Result<(), ApiError> {
    for (row, pair) in list.value_offsets().windows(2).enumerate() {
        let len = (pair[1] - pair[0]).as_usize();
        if len != width {
            return Err(ApiError::BadShape(format!(
                "row {} of column {name:?} has {len} values; the model takes {width}",
                first_row + row
            )));
        }
    }
    Ok(())
}

/// How a body's columns make the rows.
#[derive(Debug)]
enum Layout {
    /// One list column, each row one value list.
    List,
    /// `n` numeric columns, one feature each: for each feature in the
    /// model's order, the index of its column in the body.
    Columns(Vec<usize>),
}

impl Layout {
    fn of(schema: &Schema, columns: usize, names: Option<&[String]>) -> Result<Layout, ApiError> {
        let fields = schema.fields();
        if let [field] = &fields[..] {
            match field.data_type() {
                DataType::FixedSizeList(values, size) => {
                    check_float(field, values.data_type())?;
                    if *size as usize != columns {
                        return Err(ApiError::BadShape(format!(
                            "column {:?} is a fixed_size_list of {size} values; the model takes \
                             {columns}",
                            field.name()
                        )));
                    }
                    return Ok(Layout::List);
                }
                DataType::List(values) | DataType::LargeList(values) => {
                    check_float(field, values.data_type())?;
                    return Ok(Layout::List);
                }
                _ => {}
            }
        }
        if let Some(names) = names {
            return Layout::by_name(schema, names);
        }
        if fields.len() != columns {
            return Err(ApiError::BadShape(format!(
                "the Arrow body has {} column{} ({}); the model takes one list column of \
                 {columns} numbers or {columns} float columns",
                fields.len(),
                if fields.len() == 1 { "" } else { "s" },
                some_names(fields.iter().map(|f| f.name().as_str()))
            )));
        }
        for field in fields {
            check_float(field, field.data_type())?;
        }
        Ok(Layout::Columns((0..columns).collect()))
    }

    /// Separate columns named after the model's features, in any order.
    /// A column that names no feature is refused, as for inputs fed by
    /// name ([`match_columns`]).
    fn by_name(schema: &Schema, names: &[String]) -> Result<Layout, ApiError> {
        let takes = || {
            format!(
                "the model takes one list column of {} numbers or one float column per feature, \
                 named {}",
                names.len(),
                names.join(", ")
            )
        };
        let mut order = Vec::with_capacity(names.len());
        for name in names {
            let (ix, field) = find_column(schema, name, takes)?;
            check_float(field, field.data_type())?;
            order.push(ix);
        }
        if let Some(extra) = schema.fields().iter().find(|f| !names.contains(f.name())) {
            return Err(ApiError::BadShape(format!(
                "column {} is not one of the model's features; {}",
                quoted(extra.name()),
                takes()
            )));
        }
        Ok(Layout::Columns(order))
    }

    fn append(
        &self,
        batch: &RecordBatch,
        columns: usize,
        first_row: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), ApiError> {
        let schema = batch.schema();
        let names = schema.fields().iter().map(|f| f.name().as_str());
        for (array, name) in batch.columns().iter().zip(names) {
            check_nulls(array, name, first_row, 1)?;
        }
        match self {
            Layout::List => {
                let (array, name) = (batch.column(0), schema.field(0).name());
                let values = checked_values(array, name, first_row, columns)?;
                push_values(&values, name, first_row, columns, out)
            }
            Layout::Columns(order) => {
                // Each column as a float32 slice (float64 ones converted
                // first), in the model's feature order, then the rows
                // written in order: sequential writes, and a sequential
                // read of every column.
                let mut converted: Vec<Option<Vec<f32>>> = Vec::new();
                for (array, field) in batch.columns().iter().zip(schema.fields()) {
                    converted.push(match array.data_type() {
                        DataType::Float64 => Some(narrowed(array, field.name(), first_row, 1)?),
                        _ => None,
                    });
                }
                let slices: Vec<&[f32]> = order
                    .iter()
                    .map(|&ix| match &converted[ix] {
                        Some(values) => &values[..],
                        None => &batch.column(ix).as_primitive::<Float32Type>().values()[..],
                    })
                    .collect();
                out.reserve(batch.num_rows() * columns * 4);
                for row in 0..batch.num_rows() {
                    for column in &slices {
                        out.extend_from_slice(&column[row].to_le_bytes());
                    }
                }
                Ok(())
            }
        }
    }
}

/// A value type the float input takes.
fn check_float(field: &Field, values: &DataType) -> Result<(), ApiError> {
    match values {
        DataType::Float32 | DataType::Float64 => Ok(()),
        other => Err(ApiError::BadShape(format!(
            "column {:?} holds {other} values; the model takes float32 (float64 is converted)",
            field.name()
        ))),
    }
}

/// Refuses a null, naming its row (`per_row` values a row).
fn check_nulls(
    array: &ArrayRef,
    name: &str,
    first_row: usize,
    per_row: usize,
) -> Result<(), ApiError> {
    if array.null_count() == 0 {
        return Ok(());
    }
    let at = (0..array.len()).find(|&i| array.is_null(i)).unwrap_or(0);
    Err(ApiError::BadShape(format!(
        "row {} of column {name:?} is null; the model takes no missing values",
        first_row + at / per_row.max(1)
    )))
}

/// Appends float32 or float64 values as float32 little-endian bytes; a
/// float64 outside float32's range is refused, naming its row (`per_row`
/// values a row).
fn push_values(
    values: &ArrayRef,
    name: &str,
    first_row: usize,
    per_row: usize,
    out: &mut Vec<u8>,
) -> Result<(), ApiError> {
    match values.data_type() {
        DataType::Float32 => {
            codec::encode_into(values.as_primitive::<Float32Type>().values(), out);
        }
        _ => codec::encode_into(&narrowed(values, name, first_row, per_row)?, out),
    }
    Ok(())
}

/// float64 values as float32, refusing one outside float32's range.
fn narrowed(
    values: &ArrayRef,
    name: &str,
    first_row: usize,
    per_row: usize,
) -> Result<Vec<f32>, ApiError> {
    let Some(values) = values.as_primitive_opt::<Float64Type>() else {
        return Err(ApiError::BadShape(format!(
            "column {name:?} holds {} values; the model takes float32",
            values.data_type()
        )));
    };
    values
        .values()
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let f = v as f32;
            if f.is_infinite() && v.is_finite() {
                return Err(ApiError::BadShape(format!(
                    "row {} of column {name:?}: {v:e} is outside the float32 range (±3.4e38)",
                    first_row + i / per_row.max(1)
                )));
            }
            Ok(f)
        })
        .collect()
}

/// An answer as an Arrow IPC stream (`Accept: application/vnd.apache.arrow.stream`):
/// one column per output, named after it, in the order asked: one value a
/// row when the output has one column, else a `fixed_size_list` of them.
/// Floats are float32; integer outputs (labels) int64; a label output whose
/// classes are strings gives the class names (utf8).
pub fn answer(outputs: &[(&OutputDoc, &[u8])], rows: usize) -> Result<Vec<u8>, ApiError> {
    let internal = |e: ArrowError| ApiError::Internal(e.to_string());
    let columns = outputs
        .iter()
        .map(|(output, scores)| Ok((output.name.as_str(), answer_column(output, scores)?)))
        .collect::<Result<Vec<_>, ApiError>>()?;
    debug_assert!(columns.iter().all(|(_, c)| c.len() == rows));
    let batch = RecordBatch::try_from_iter(columns).map_err(internal)?;
    let mut writer = StreamWriter::try_new(Vec::new(), &batch.schema()).map_err(internal)?;
    writer.write(&batch).map_err(internal)?;
    writer.into_inner().map_err(internal)
}

fn answer_column(output: &OutputDoc, scores: &[u8]) -> Result<ArrayRef, ApiError> {
    let floats = codec::decode(scores).map_err(|e| ApiError::Internal(e.to_string()))?;
    let k = output.columns.max(1);
    let values: ArrayRef = match (&output.classes, output.dtype.starts_with("int")) {
        (Some(classes), _) => {
            let names = floats
                .iter()
                .map(|&f| {
                    let name = (f >= 0.0 && f.fract() == 0.0).then(|| classes.get(f as usize));
                    name.flatten().map(String::as_str).ok_or_else(|| {
                        ApiError::Internal(format!(
                            "output {}: class index {f} outside its {} classes",
                            output.name,
                            classes.len()
                        ))
                    })
                })
                .collect::<Result<Vec<&str>, ApiError>>()?;
            Arc::new(StringArray::from(names))
        }
        (None, true) => Arc::new(Int64Array::from_iter_values(floats.iter().map(|&f| f as i64))),
        (None, false) => Arc::new(Float32Array::from(floats)),
    };
    if k == 1 {
        return Ok(values);
    }
    let item = Arc::new(Field::new("item", values.data_type().clone(), false));
    let list = FixedSizeListArray::try_new(item, k as i32, values, None)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Arc::new(list))
}
