//! Parquet for the CLI: features as several numeric columns or as one
//! list / fixed-size-list column; scores written as one `score` column
//! (float32 when the model gives one value per row, a fixed-size list of
//! float32 otherwise). Read record batch by record batch, never whole.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Float64Type, Int32Type, Int64Type};
use arrow_array::{Array, ArrayRef, FixedSizeListArray, Float32Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

/// How the features sit in the file.
#[derive(Debug)]
enum Layout {
    /// One numeric column per feature, in this order (batch column indices).
    Columns(Vec<usize>),
    /// One list column holding each row's features.
    List(usize),
}

/// Reads rows of features from a Parquet file.
pub struct ParquetRows {
    reader: ParquetRecordBatchReader,
    layout: Layout,
    names: Vec<String>,
    columns: usize,
    rows: u64,
    next_row: u64,
}

impl ParquetRows {
    /// Opens `path`. `features`: the column names to use (several numeric
    /// columns, or one list column); by default the only list column, or
    /// else every floating-point column. `columns` (the model's width) is
    /// needed to check list lengths.
    pub fn open(
        path: &Path,
        features: Option<&[String]>,
        columns: Option<usize>,
        block_rows: usize,
    ) -> Result<ParquetRows, String> {
        let ctx = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
        let file = File::open(path).map_err(|e| ctx(&e))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| ctx(&e))?;
        let schema = builder.schema().clone();
        let rows = builder.metadata().file_metadata().num_rows().max(0) as u64;
        let chosen: Vec<usize> = match features {
            Some(names) => names
                .iter()
                .map(|n| schema.index_of(n).map_err(|_| ctx(&format!("no column named {n:?}"))))
                .collect::<Result<_, _>>()?,
            None => {
                let lists: Vec<usize> = (0..schema.fields().len())
                    .filter(|&i| is_list(schema.field(i).data_type()))
                    .collect();
                if lists.len() == 1 {
                    lists
                } else {
                    (0..schema.fields().len())
                        .filter(|&i| schema.field(i).data_type().is_floating())
                        .collect()
                }
            }
        };
        if chosen.is_empty() {
            return Err(ctx(&"no feature columns found; name them with --features"));
        }
        let names: Vec<String> = chosen.iter().map(|&i| schema.field(i).name().clone()).collect();
        let projection =
            parquet::arrow::ProjectionMask::roots(builder.parquet_schema(), chosen.clone());
        // The projected batch keeps the file's column order.
        let mut sorted = chosen.clone();
        sorted.sort_unstable();
        let position = |i: usize| sorted.iter().position(|&s| s == i).unwrap_or(0);
        let (layout, width) = if chosen.len() == 1 && is_list(schema.field(chosen[0]).data_type()) {
            let width = match (schema.field(chosen[0]).data_type(), columns) {
                (DataType::FixedSizeList(_, n), _) => *n as usize,
                (_, Some(n)) => n,
                _ => return Err(ctx(&"a list feature column needs --columns or a server to ask")),
            };
            (Layout::List(0), width)
        } else {
            for &i in &chosen {
                let dt = schema.field(i).data_type();
                if !matches!(
                    dt,
                    DataType::Float32 | DataType::Float64 | DataType::Int32 | DataType::Int64
                ) {
                    return Err(ctx(&format!(
                        "column {:?} is {dt}, not a number",
                        schema.field(i).name()
                    )));
                }
            }
            (Layout::Columns(chosen.iter().map(|&i| position(i)).collect()), chosen.len())
        };
        if let Some(n) = columns.filter(|n| *n != width) {
            return Err(ctx(&format!("{width} features selected, the model takes {n}")));
        }
        let reader = builder
            .with_projection(projection)
            .with_batch_size(block_rows.max(1))
            .build()
            .map_err(|e| ctx(&e))?;
        Ok(ParquetRows { reader, layout, names, columns: width, rows, next_row: 0 })
    }

    /// Features per row.
    pub fn columns(&self) -> usize {
        self.columns
    }

    /// Rows in the file.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    fn to_rows(&self, batch: &RecordBatch) -> Result<Vec<f32>, String> {
        let n = self.columns;
        let rows = batch.num_rows();
        let mut out = vec![0f32; rows * n];
        match &self.layout {
            Layout::Columns(indices) => {
                for (c, &ix) in indices.iter().enumerate() {
                    let values = floats(batch.column(ix), &self.names[c], self.next_row)?;
                    for (r, v) in values.into_iter().enumerate() {
                        out[r * n + c] = v;
                    }
                }
            }
            Layout::List(ix) => {
                let column = batch.column(*ix);
                let name = &self.names[0];
                if let Some(r) = first_null(column.as_ref()) {
                    return Err(format!(
                        "column {name:?} is null at row {}",
                        self.next_row + r as u64
                    ));
                }
                let (values, offsets): (ArrayRef, Vec<usize>) = match column.data_type() {
                    DataType::List(_) => {
                        let l = column.as_list::<i32>();
                        (
                            l.values().clone(),
                            l.value_offsets().iter().map(|o| *o as usize).collect(),
                        )
                    }
                    DataType::LargeList(_) => {
                        let l = column.as_list::<i64>();
                        (
                            l.values().clone(),
                            l.value_offsets().iter().map(|o| *o as usize).collect(),
                        )
                    }
                    DataType::FixedSizeList(_, size) => {
                        let l = column.as_fixed_size_list();
                        let size = *size as usize;
                        let start = l.offset() * size;
                        (l.values().clone(), (0..=rows).map(|r| start + r * size).collect())
                    }
                    other => return Err(format!("column {name:?} is {other}, not a list")),
                };
                let flat = floats(&values, name, self.next_row)?;
                for r in 0..rows {
                    let (a, b) = (offsets[r], offsets[r + 1]);
                    if b - a != n {
                        return Err(format!(
                            "row {} of {name:?} has {} values, the model takes {n}",
                            self.next_row + r as u64,
                            b - a
                        ));
                    }
                    out[r * n..(r + 1) * n].copy_from_slice(&flat[a..b]);
                }
            }
        }
        Ok(out)
    }
}

impl Iterator for ParquetRows {
    type Item = Result<Vec<f32>, String>;

    fn next(&mut self) -> Option<Self::Item> {
        let batch = match self.reader.next()? {
            Ok(batch) => batch,
            Err(e) => return Some(Err(format!("reading Parquet: {e}"))),
        };
        let rows = self.to_rows(&batch);
        self.next_row += batch.num_rows() as u64;
        Some(rows)
    }
}

fn is_list(dt: &DataType) -> bool {
    matches!(dt, DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(_, _))
}

fn first_null(array: &dyn Array) -> Option<usize> {
    (array.null_count() > 0).then(|| (0..array.len()).find(|&i| array.is_null(i))).flatten()
}

/// A numeric array as float32; a null is an error, never a silent value.
fn floats(array: &ArrayRef, name: &str, first_row: u64) -> Result<Vec<f32>, String> {
    if let Some(r) = first_null(array.as_ref()) {
        return Err(format!("column {name:?} has a null at row {}", first_row + r as u64));
    }
    Ok(match array.data_type() {
        DataType::Float32 => array.as_primitive::<Float32Type>().values().to_vec(),
        DataType::Float64 => {
            array.as_primitive::<Float64Type>().values().iter().map(|v| *v as f32).collect()
        }
        DataType::Int32 => {
            array.as_primitive::<Int32Type>().values().iter().map(|v| *v as f32).collect()
        }
        DataType::Int64 => {
            array.as_primitive::<Int64Type>().values().iter().map(|v| *v as f32).collect()
        }
        other => return Err(format!("column {name:?} holds {other}, not numbers")),
    })
}

/// Writes scores as a Parquet `score` column.
pub struct ParquetScores {
    file: Option<File>,
    writer: Option<ArrowWriter<File>>,
    columns: usize,
}

impl ParquetScores {
    /// Writes to `file` (the CLI's temporary output).
    pub fn new(file: File) -> Self {
        ParquetScores { file: Some(file), writer: None, columns: 0 }
    }

    /// Appends rows of `columns` scores.
    pub fn write(&mut self, values: &[f32], columns: usize) -> Result<(), String> {
        let writer = match &mut self.writer {
            Some(w) => w,
            None => {
                self.columns = columns;
                let file = self.file.take().ok_or("the Parquet writer was closed")?;
                let props =
                    WriterProperties::builder().set_compression(Compression::SNAPPY).build();
                let w = ArrowWriter::try_new(file, Arc::new(schema(columns)), Some(props))
                    .map_err(|e| format!("writing Parquet: {e}"))?;
                self.writer.insert(w)
            }
        };
        let values = Arc::new(Float32Array::from(values.to_vec()));
        let column: ArrayRef = if columns == 1 {
            values
        } else {
            let item = Arc::new(Field::new("item", DataType::Float32, false));
            Arc::new(
                FixedSizeListArray::try_new(item, columns as i32, values, None)
                    .map_err(|e| format!("writing Parquet: {e}"))?,
            )
        };
        let batch = RecordBatch::try_new(Arc::new(schema(columns)), vec![column])
            .map_err(|e| format!("writing Parquet: {e}"))?;
        writer.write(&batch).map_err(|e| format!("writing Parquet: {e}"))
    }

    /// Finishes the file (footer included).
    pub fn finish(mut self) -> Result<(), String> {
        if self.writer.is_none() {
            // No rows: still a valid file, with a one-float score column.
            self.write(&[], 1)?;
        }
        let writer = self.writer.take().ok_or("the Parquet writer was closed")?;
        let file = writer.into_inner().map_err(|e| format!("writing Parquet: {e}"))?;
        file.sync_all().map_err(|e| format!("writing Parquet: {e}"))
    }
}

fn schema(columns: usize) -> Schema {
    let dt = if columns == 1 {
        DataType::Float32
    } else {
        DataType::FixedSizeList(
            Arc::new(Field::new("item", DataType::Float32, false)),
            columns as i32,
        )
    };
    Schema::new(vec![Field::new("score", dt, false)])
}
