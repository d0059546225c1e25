//! Parquet for the CLI: features as several numeric columns or as one
//! list / fixed-size-list column; scores written as one `score` column
//! (float32 when the model gives one value per row, a fixed-size list of
//! float32 otherwise). Read record batch by record batch, never whole.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow_array::{ArrayRef, FixedSizeListArray, Float32Array, RecordBatch, RecordBatchReader};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::features::{FeatureBlock, Features};

/// Reads rows of features from a Parquet file.
pub struct ParquetRows {
    reader: ParquetRecordBatchReader,
    features: Features,
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
        let found = Features::resolve(&schema, features, columns).map_err(|e| ctx(&e))?;
        let Some(width) = found.width() else {
            return Err(ctx(&"a list feature column needs --columns or a server to ask"));
        };
        let chosen: Vec<usize> =
            found.names().iter().filter_map(|n| schema.index_of(n).ok()).collect();
        let projection =
            parquet::arrow::ProjectionMask::roots(builder.parquet_schema(), chosen.clone());
        let reader = builder
            .with_projection(projection)
            .with_batch_size(block_rows.max(1))
            .build()
            .map_err(|e| ctx(&e))?;
        // The projected batches keep the file's column order: find the
        // features again by name in them.
        let names = found.names().to_vec();
        let features =
            Features::resolve(&reader.schema(), Some(&names), Some(width)).map_err(|e| ctx(&e))?;
        Ok(ParquetRows { reader, features, columns: width, rows, next_row: 0 })
    }

    /// Features per row.
    pub fn columns(&self) -> usize {
        self.columns
    }

    /// Rows in the file.
    pub fn rows(&self) -> u64 {
        self.rows
    }
}

impl Iterator for ParquetRows {
    type Item = Result<FeatureBlock, String>;

    fn next(&mut self) -> Option<Self::Item> {
        let batch = match self.reader.next()? {
            Ok(batch) => batch,
            Err(e) => return Some(Err(format!("reading Parquet: {e}"))),
        };
        let first_row = self.next_row;
        self.next_row += batch.num_rows() as u64;
        Some(self.features.extract(&batch).and_then(|e| match e.first_error(first_row) {
            Some(error) => Err(error),
            None => Ok(e.block),
        }))
    }
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
