//! Feature rows out of Arrow record batches: several numeric columns (one
//! per feature) or one list column holding each row's features. Shared by
//! the CLI's Parquet reader and every binding.
//!
//! The common Spark layout, a `list<float>` column whose rows all have the
//! model's width and no nulls, is passed on without a copy (a slice of the
//! Arrow values buffer); anything else is copied once into row-major floats.
//! A row that cannot be scored (a null, a list of the wrong length) is
//! reported by index with a sentence, never replaced by a value.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Float64Type, Int32Type, Int64Type};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_buffer::ScalarBuffer;
use arrow_schema::{DataType, Schema};
use score_protocol::features::{
    Column, ColumnKind, FeatureColumns, FeatureRuleError, find_features,
};

/// How the features sit in a batch.
#[derive(Clone, Debug)]
enum Layout {
    /// One numeric column per feature, in model order (batch column indices).
    Columns(Vec<usize>),
    /// One list column holding each row's features.
    List(usize),
}

/// Why features cannot be taken from a schema or a batch.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FeatureError {
    /// No column, or not the right ones, by the rules every front end
    /// shares (score-protocol's `features`), in its words.
    #[error(transparent)]
    Rule(#[from] FeatureRuleError),
    /// The selected features do not have the model's width.
    #[error("{found} features selected, the model takes {expected}")]
    Width {
        /// Features selected.
        found: usize,
        /// The model's input width.
        expected: usize,
    },
}

/// Where to find the features in batches of one schema, and how many.
#[derive(Clone, Debug)]
pub struct Features {
    layout: Layout,
    names: Vec<String>,
    width: Option<usize>,
}

/// Row-major float32 features of whole rows: borrowed from Arrow when
/// possible, otherwise copied.
#[derive(Clone, Debug)]
pub enum FeatureBlock {
    /// A slice of an Arrow float32 buffer (no copy).
    Shared(ScalarBuffer<f32>),
    /// Rows assembled here.
    Owned(Vec<f32>),
}

impl AsRef<[f32]> for FeatureBlock {
    fn as_ref(&self) -> &[f32] {
        match self {
            FeatureBlock::Shared(b) => b,
            FeatureBlock::Owned(v) => v,
        }
    }
}

/// The features of one record batch.
#[derive(Debug)]
pub struct Extracted {
    /// The good rows' features, row-major, in batch order.
    pub block: FeatureBlock,
    /// Rows that cannot be scored: (row index in the batch, why). Their
    /// features are not in `block`.
    pub bad: Vec<(usize, String)>,
}

impl Extracted {
    /// The first bad row as an error naming its position in the input
    /// (`first_row` = index of the batch's first row).
    pub fn first_error(&self, first_row: u64) -> Option<String> {
        first_error(&self.bad, first_row)
    }
}

/// The first of a batch's bad rows, (row in the batch, why), as an error
/// naming its position in the input (`first_row`: the batch's first row).
pub fn first_error(bad: &[(usize, String)], first_row: u64) -> Option<String> {
    bad.first().map(|(r, why)| format!("row {}: {why}", first_row + *r as u64))
}

impl Features {
    /// Finds the features in `schema`. `names`: one list column, or several
    /// numeric columns in the model's order; by default the only list
    /// column, or else every floating-point column. `width`: the model's
    /// input width when known (checked here); a variable-length list column
    /// otherwise takes its width from its first row.
    pub fn resolve(
        schema: &Schema,
        names: Option<&[String]>,
        width: Option<usize>,
    ) -> Result<Features, FeatureError> {
        // The choice is score-protocol's, shared with the JVM binding.
        let types: Vec<String> =
            schema.fields().iter().map(|f| f.data_type().to_string()).collect();
        let columns: Vec<Column<'_>> = schema
            .fields()
            .iter()
            .zip(&types)
            .map(|(f, t)| Column { name: f.name(), kind: kind(f.data_type()), type_name: t })
            .collect();
        let (layout, found) = match find_features(&columns, names, false)? {
            // A fixed-size list says its width; another learns it from its
            // first row.
            FeatureColumns::Text(ix) => {
                let field = schema.field(ix);
                return Err(FeatureRuleError::NotNumeric {
                    column: field.name().clone(),
                    found: field.data_type().to_string(),
                }
                .into());
            }
            FeatureColumns::List(ix) => {
                let fixed = match schema.field(ix).data_type() {
                    DataType::FixedSizeList(_, n) => Some(*n as usize),
                    _ => None,
                };
                (Layout::List(ix), fixed)
            }
            FeatureColumns::Columns(indices) => {
                let n = indices.len();
                (Layout::Columns(indices), Some(n))
            }
        };
        let names: Vec<String> = match &layout {
            Layout::List(ix) => vec![schema.field(*ix).name().clone()],
            Layout::Columns(indices) => {
                indices.iter().map(|&i| schema.field(i).name().clone()).collect()
            }
        };
        if let (Some(found), Some(n)) = (found, width)
            && found != n
        {
            return Err(FeatureError::Width { found, expected: n });
        }
        Ok(Features { layout, names, width: found.or(width) })
    }

    /// Features per row, once known (a variable-length list column learns it
    /// from its first row).
    pub fn width(&self) -> Option<usize> {
        self.width
    }

    /// The feature column names, in model order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The features of `batch` (a batch of the schema given to `resolve`).
    pub fn extract(&mut self, batch: &RecordBatch) -> Result<Extracted, FeatureError> {
        match self.layout.clone() {
            Layout::Columns(indices) => self.extract_columns(batch, &indices),
            Layout::List(ix) => self.extract_list(batch.column(ix)),
        }
    }

    fn extract_columns(
        &self,
        batch: &RecordBatch,
        indices: &[usize],
    ) -> Result<Extracted, FeatureError> {
        let rows = batch.num_rows();
        let n = indices.len();
        let mut bad = Vec::new();
        let columns: Vec<&ArrayRef> = indices.iter().map(|&i| batch.column(i)).collect();
        for (c, column) in columns.iter().enumerate() {
            if column.null_count() > 0 {
                for r in (0..rows).filter(|&r| column.is_null(r)) {
                    bad.push((r, format!("column {:?} is null", self.names[c])));
                }
            }
        }
        bad.sort_by_key(|(r, _)| *r);
        bad.dedup_by_key(|(r, _)| *r);
        let mut out = vec![0f32; rows * n];
        for (c, column) in columns.iter().enumerate() {
            scatter(column, &self.names[c], &mut out, c, n)?;
        }
        Ok(Extracted { block: FeatureBlock::Owned(drop_rows(out, n, &bad)), bad })
    }

    fn extract_list(&mut self, column: &ArrayRef) -> Result<Extracted, FeatureError> {
        let rows = column.len();
        let name = &self.names[0];
        let (values, offsets): (ArrayRef, Vec<usize>) = match column.data_type() {
            DataType::List(_) => {
                let l = column.as_list::<i32>();
                (l.values().clone(), l.value_offsets().iter().map(|o| *o as usize).collect())
            }
            DataType::LargeList(_) => {
                let l = column.as_list::<i64>();
                (l.values().clone(), l.value_offsets().iter().map(|o| *o as usize).collect())
            }
            DataType::FixedSizeList(_, size) => {
                let l = column.as_fixed_size_list();
                let size = *size as usize;
                let start = l.offset() * size;
                (l.values().clone(), (0..=rows).map(|r| start + r * size).collect())
            }
            other => {
                return Err(FeatureRuleError::NotNumeric {
                    column: name.clone(),
                    found: other.to_string(),
                }
                .into());
            }
        };
        let mut bad = Vec::new();
        for r in 0..rows {
            let (a, b) = (offsets[r], offsets[r + 1]);
            if column.is_null(r) {
                bad.push((r, format!("column {name:?} is null")));
                continue;
            }
            let n = *self.width.get_or_insert(b - a);
            if b - a != n {
                bad.push((r, format!("{name:?} has {} values, the model takes {n}", b - a)));
            } else if values.null_count() > 0 && (a..b).any(|i| values.is_null(i)) {
                bad.push((r, format!("{name:?} holds a null")));
            }
        }
        let n = self.width.unwrap_or(0);
        // The usual case: every row whole and float32, back to back.
        if bad.is_empty()
            && let Some(f) = values.as_primitive_opt::<Float32Type>()
        {
            let start = offsets[0];
            return Ok(Extracted {
                block: FeatureBlock::Shared(f.values().slice(start, rows * n)),
                bad,
            });
        }
        let mut out = Vec::with_capacity((rows - bad.len()) * n);
        let mut skip = bad.iter().map(|(r, _)| *r).peekable();
        let flat = as_f32(&values, name)?;
        for r in 0..rows {
            if skip.next_if_eq(&r).is_some() {
                continue;
            }
            out.extend_from_slice(&flat[offsets[r]..offsets[r + 1]]);
        }
        Ok(Extracted { block: FeatureBlock::Owned(out), bad })
    }
}

/// What an Arrow column holds, for [`find_features`].
fn kind(dt: &DataType) -> ColumnKind {
    match dt {
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            if is_number(f.data_type()) { ColumnKind::NumberList } else { ColumnKind::OtherList }
        }
        DataType::Float32 | DataType::Float64 => ColumnKind::Float,
        d if is_number(d) => ColumnKind::Number,
        DataType::Utf8 | DataType::LargeUtf8 => ColumnKind::Text,
        _ => ColumnKind::Other,
    }
}

fn is_number(dt: &DataType) -> bool {
    matches!(dt, DataType::Float32 | DataType::Float64 | DataType::Int32 | DataType::Int64)
}

/// Writes column `c` of a numeric array into row-major `out` (stride `n`).
fn scatter(
    column: &ArrayRef,
    name: &str,
    out: &mut [f32],
    c: usize,
    n: usize,
) -> Result<(), FeatureError> {
    fn put<T: Copy>(values: &[T], out: &mut [f32], c: usize, n: usize, f: impl Fn(T) -> f32) {
        for (row, v) in out.chunks_exact_mut(n).zip(values) {
            row[c] = f(*v);
        }
    }
    match column.data_type() {
        DataType::Float32 => put(column.as_primitive::<Float32Type>().values(), out, c, n, |v| v),
        DataType::Float64 => {
            put(column.as_primitive::<Float64Type>().values(), out, c, n, |v| v as f32)
        }
        DataType::Int32 => {
            put(column.as_primitive::<Int32Type>().values(), out, c, n, |v| v as f32)
        }
        DataType::Int64 => {
            put(column.as_primitive::<Int64Type>().values(), out, c, n, |v| v as f32)
        }
        other => {
            return Err(FeatureRuleError::NotNumeric {
                column: name.to_string(),
                found: other.to_string(),
            }
            .into());
        }
    }
    Ok(())
}

/// A numeric array as float32 (a copy unless it already is float32).
fn as_f32(values: &ArrayRef, name: &str) -> Result<Arc<[f32]>, FeatureError> {
    let mut out = vec![0f32; values.len()];
    scatter(values, name, &mut out, 0, 1)?;
    Ok(out.into())
}

/// Removes the rows listed in `bad` (sorted) from row-major `out`.
fn drop_rows(out: Vec<f32>, n: usize, bad: &[(usize, String)]) -> Vec<f32> {
    if bad.is_empty() {
        return out;
    }
    let mut skip = bad.iter().map(|(r, _)| *r).peekable();
    let mut kept = Vec::with_capacity(out.len() - bad.len() * n);
    for (r, row) in out.chunks_exact(n).enumerate() {
        if skip.next_if_eq(&r).is_none() {
            kept.extend_from_slice(row);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::builder::{FixedSizeListBuilder, Float32Builder, ListBuilder};
    use arrow_array::{Float32Array, Float64Array, Int64Array};
    use arrow_schema::Field;

    fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
        RecordBatch::try_from_iter(columns).unwrap()
    }

    #[test]
    fn columns_are_interleaved_into_rows_and_nulls_reported() {
        let a: ArrayRef = Arc::new(Float64Array::from(vec![Some(1.0), None, Some(3.0)]));
        let b: ArrayRef = Arc::new(Int64Array::from(vec![10, 20, 30]));
        let id: ArrayRef = Arc::new(Int64Array::from(vec![7, 8, 9]));
        let rb = batch(vec![("id", id), ("a", a), ("b", b)]);
        let names = ["a".to_string(), "b".to_string()];
        let mut f = Features::resolve(&rb.schema(), Some(&names), Some(2)).unwrap();
        let e = f.extract(&rb).unwrap();
        assert_eq!(e.block.as_ref(), &[1.0, 10.0, 3.0, 30.0]);
        assert_eq!(e.bad, vec![(1, "column \"a\" is null".to_string())]);
        assert_eq!(e.first_error(100).unwrap(), "row 101: column \"a\" is null");
        let err = Features::resolve(&rb.schema(), Some(&names), Some(3)).unwrap_err();
        assert_eq!(err.to_string(), "2 features selected, the model takes 3");
    }

    #[test]
    fn a_whole_float_list_column_is_not_copied() {
        let mut lb = ListBuilder::new(Float32Builder::new());
        for r in 0..4 {
            lb.values().append_slice(&[r as f32, r as f32 + 0.5]);
            lb.append(true);
        }
        let list: ArrayRef = Arc::new(lb.finish());
        let rb = batch(vec![("f", list.clone())]).slice(1, 2);
        let mut f = Features::resolve(&rb.schema(), None, None).unwrap();
        let e = f.extract(&rb).unwrap();
        assert_eq!(f.width(), Some(2));
        assert_eq!(e.block.as_ref(), &[1.0, 1.5, 2.0, 2.5]);
        let FeatureBlock::Shared(shared) = &e.block else { panic!("copied") };
        let values = list.as_list::<i32>().values().as_primitive::<Float32Type>().values();
        assert_eq!(shared.as_ptr(), values[2..].as_ptr());
    }

    #[test]
    fn bad_list_rows_are_reported_and_left_out() {
        let mut lb = ListBuilder::new(Float32Builder::new());
        lb.values().append_slice(&[1.0, 2.0]);
        lb.append(true);
        lb.values().append_slice(&[3.0]);
        lb.append(true);
        lb.append(false);
        lb.values().append_value(4.0);
        lb.values().append_null();
        lb.append(true);
        lb.values().append_slice(&[5.0, 6.0]);
        lb.append(true);
        let rb = batch(vec![("f", Arc::new(lb.finish()) as ArrayRef)]);
        let mut f = Features::resolve(&rb.schema(), None, None).unwrap();
        let e = f.extract(&rb).unwrap();
        assert_eq!(e.block.as_ref(), &[1.0, 2.0, 5.0, 6.0]);
        let rows: Vec<usize> = e.bad.iter().map(|(r, _)| *r).collect();
        assert_eq!(rows, vec![1, 2, 3]);
        assert_eq!(e.bad[0].1, "\"f\" has 1 values, the model takes 2");
    }

    #[test]
    fn fixed_size_lists_and_wrong_types() {
        let mut fb = FixedSizeListBuilder::new(Float32Builder::new(), 3);
        for r in 0..2 {
            fb.values().append_slice(&[r as f32; 3]);
            fb.append(true);
        }
        let rb = batch(vec![("v", Arc::new(fb.finish()) as ArrayRef)]);
        let err = Features::resolve(&rb.schema(), None, Some(4)).unwrap_err();
        assert_eq!(err, FeatureError::Width { found: 3, expected: 4 });
        let mut f = Features::resolve(&rb.schema(), None, Some(3)).unwrap();
        assert_eq!(f.extract(&rb).unwrap().block.as_ref(), &[0.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
        let s: ArrayRef = Arc::new(arrow_array::StringArray::from(vec!["x"]));
        let x: ArrayRef = Arc::new(Float32Array::from(vec![1.0]));
        let rb = batch(vec![("s", s), ("x", x)]);
        let names = ["x".to_string(), "s".to_string()];
        let err = Features::resolve(&rb.schema(), Some(&names), None).unwrap_err().to_string();
        assert!(err.starts_with("column \"s\" is Utf8, not a number"), "{err}");
        let schema = Schema::new(vec![Field::new("y", DataType::Utf8, true)]);
        assert!(Features::resolve(&schema, None, None).is_err());
        // Two list columns and nothing named: which one is meant is not
        // guessed (score-protocol's rule, shared with the JVM).
        let list = || DataType::List(Arc::new(Field::new("item", DataType::Float32, true)));
        let schema = Schema::new(vec![
            Field::new("a", list(), true),
            Field::new("b", list(), true),
            Field::new("x", DataType::Float32, true),
        ]);
        let err = Features::resolve(&schema, None, None).unwrap_err();
        assert_eq!(
            err,
            FeatureError::Rule(FeatureRuleError::Ambiguous { lists: vec!["a".into(), "b".into()] })
        );
        let named = ["b".to_string()];
        assert_eq!(Features::resolve(&schema, Some(&named), None).unwrap().names(), ["b"]);
    }
}
