//! Parquet for the CLI: features as several numeric columns or as one
//! list / fixed-size-list column; scores written as one non-null `score`
//! column, built by [`crate::arrow::score_column`] like every other output
//! (float32 when the model gives one value per row, a list of float32
//! otherwise). Read record batch by record batch, never whole.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{RecordBatch, RecordBatchReader};
use arrow_schema::{Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::arrow::{FeatureBlock, Features, score_column, score_type};
use crate::file_error::FileError;

/// The record batches of the columns `names` of a Parquet file (the
/// inputs of a model fed by name, sent as they are) and the file's row
/// count.
pub fn open_columns(
    path: &Path,
    names: &[String],
    block_rows: usize,
) -> Result<(ParquetRecordBatchReader, u64), FileError> {
    let invalid = |e: &dyn std::fmt::Display| FileError::invalid(path, e);
    let file = File::open(path).map_err(FileError::io(path))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| invalid(&e))?;
    let schema = builder.schema().clone();
    let rows = builder.metadata().file_metadata().num_rows().max(0) as u64;
    let chosen = names
        .iter()
        .map(|n| {
            schema.index_of(n).map_err(|_| FileError::Features {
                path: path.to_path_buf(),
                source: score_protocol::features::FeatureRuleError::NoColumn(n.clone()).into(),
            })
        })
        .collect::<Result<Vec<usize>, _>>()?;
    let projection = parquet::arrow::ProjectionMask::roots(builder.parquet_schema(), chosen);
    let reader = builder
        .with_projection(projection)
        .with_batch_size(block_rows.max(1))
        .build()
        .map_err(|e| invalid(&e))?;
    Ok((reader, rows))
}

/// Reads rows of features from a Parquet file.
pub struct ParquetRows {
    path: PathBuf,
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
    ) -> Result<ParquetRows, FileError> {
        let invalid = |e: &dyn std::fmt::Display| FileError::invalid(path, e);
        let features_error = |source| FileError::Features { path: path.to_path_buf(), source };
        let file = File::open(path).map_err(FileError::io(path))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| invalid(&e))?;
        let schema = builder.schema().clone();
        let rows = builder.metadata().file_metadata().num_rows().max(0) as u64;
        let found = Features::resolve(&schema, features, columns).map_err(features_error)?;
        let Some(width) = found.width() else {
            return Err(invalid(&"a list feature column needs --columns or a server to ask"));
        };
        let chosen: Vec<usize> =
            found.names().iter().filter_map(|n| schema.index_of(n).ok()).collect();
        let projection =
            parquet::arrow::ProjectionMask::roots(builder.parquet_schema(), chosen.clone());
        let reader = builder
            .with_projection(projection)
            .with_batch_size(block_rows.max(1))
            .build()
            .map_err(|e| invalid(&e))?;
        // The projected batches keep the file's column order: find the
        // features again by name in them.
        let names = found.names().to_vec();
        let features = Features::resolve(&reader.schema(), Some(&names), Some(width))
            .map_err(features_error)?;
        let path = path.to_path_buf();
        Ok(ParquetRows { path, reader, features, columns: width, rows, next_row: 0 })
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
    type Item = Result<FeatureBlock, FileError>;

    fn next(&mut self) -> Option<Self::Item> {
        let batch = match self.reader.next()? {
            Ok(batch) => batch,
            Err(e) => return Some(Err(FileError::invalid(&self.path, e))),
        };
        let first_row = self.next_row;
        self.next_row += batch.num_rows() as u64;
        let extracted = match self.features.extract(&batch) {
            Ok(extracted) => extracted,
            Err(source) => {
                return Some(Err(FileError::Features { path: self.path.clone(), source }));
            }
        };
        Some(match extracted.first_error(first_row) {
            Some(error) => Err(FileError::invalid(&self.path, error)),
            None => Ok(extracted.block),
        })
    }
}

/// Writes scores as a Parquet `score` column.
pub struct ParquetScores {
    path: PathBuf,
    file: Option<File>,
    writer: Option<ArrowWriter<File>>,
    columns: usize,
}

impl ParquetScores {
    /// Writes to `file` (the CLI's temporary output, at `path`).
    pub fn new(file: File, path: PathBuf) -> Self {
        ParquetScores { path, file: Some(file), writer: None, columns: 0 }
    }

    /// Appends rows of `columns` scores.
    pub fn write(&mut self, values: &[f32], columns: usize) -> Result<(), FileError> {
        let invalid = |e: &dyn std::fmt::Display| FileError::invalid(&self.path, e);
        let schema = Arc::new(schema(columns));
        let writer = match &mut self.writer {
            Some(w) => w,
            None => {
                self.columns = columns;
                let file = self.file.take().ok_or_else(|| invalid(&"the writer was closed"))?;
                let props =
                    WriterProperties::builder().set_compression(Compression::SNAPPY).build();
                let w = ArrowWriter::try_new(file, schema.clone(), Some(props))
                    .map_err(|e| invalid(&e))?;
                self.writer.insert(w)
            }
        };
        let column = score_column(values.to_vec(), columns, None).map_err(|e| invalid(&e))?;
        let batch = RecordBatch::try_new(schema, vec![column]).map_err(|e| invalid(&e))?;
        writer.write(&batch).map_err(|e| invalid(&e))
    }

    /// Finishes the file (footer included).
    pub fn finish(mut self) -> Result<(), FileError> {
        if self.writer.is_none() {
            // No rows: still a valid file, with a one-float score column.
            self.write(&[], 1)?;
        }
        let invalid = |e: &dyn std::fmt::Display| FileError::invalid(&self.path, e);
        let writer = self.writer.take().ok_or_else(|| invalid(&"the writer was closed"))?;
        let file = writer.into_inner().map_err(|e| invalid(&e))?;
        file.sync_all().map_err(FileError::io(&self.path))
    }
}

fn schema(columns: usize) -> Schema {
    Schema::new(vec![Field::new("score", score_type(columns), false)])
}
