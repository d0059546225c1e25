//! Parquet for the CLI: features as several numeric columns or as one
//! list / fixed-size-list column; scores written as one non-null `score`
//! column, built by [`crate::arrow::score_column`] like every other output
//! (float32 when the model gives one value per row, a list of float32
//! otherwise). Read record batch by record batch, never whole.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{RecordBatch, RecordBatchReader};
use arrow_schema::{Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::arrow::{score_column, score_type};
use crate::file_error::FileError;

/// The Parquet files an input names: the file itself; every Parquet file
/// under a directory, as Spark writes a dataset (`part-*.parquet`, in
/// partition sub-directories too; names starting with `_` or `.`, such as
/// `_SUCCESS` and checksums, are skipped); or the files a pattern of `*`
/// and `?` in the last component matches (`data/part-*.parquet`). Sorted,
/// so the rows come out in a stable order.
pub fn parquet_files(input: &Path) -> Result<Vec<PathBuf>, FileError> {
    let name = input.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if name.contains(['*', '?']) {
        let dir = input.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(FileError::io(dir))? {
            let path = entry.map_err(FileError::io(dir))?.path();
            let matched =
                path.file_name().and_then(|n| n.to_str()).is_some_and(|n| matches(name, n));
            if matched && path.is_file() {
                files.push(path);
            }
        }
        files.sort();
        if files.is_empty() {
            return Err(FileError::invalid(input, "no file matches this pattern"));
        }
        return Ok(files);
    }
    if !input.is_dir() {
        return Ok(vec![input.to_path_buf()]);
    }
    let mut files = Vec::new();
    let mut dirs = vec![input.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).map_err(FileError::io(&dir))? {
            let path = entry.map_err(FileError::io(&dir))?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.starts_with(['_', '.']) {
                continue;
            }
            if path.is_dir() {
                dirs.push(path);
            } else if name.ends_with(".parquet") || name.ends_with(".parq") {
                files.push(path);
            }
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(FileError::invalid(input, "a directory with no .parquet file in it"));
    }
    Ok(files)
}

/// Whether `name` matches `pattern`, where `*` is any run of characters
/// and `?` any one character.
fn matches(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    // Classic two-pointer wildcard match with backtracking to the last `*`.
    let (mut i, mut j, mut star, mut mark) = (0, 0, None, 0);
    while j < n.len() {
        if i < p.len() && (p[i] == '?' || p[i] == n[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some(i);
            mark = j;
            i += 1;
        } else if let Some(s) = star {
            i = s + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    p[i..].iter().all(|c| *c == '*')
}

/// Record batches of some columns of several Parquet files, one file
/// after another, read a batch at a time: the CLI's input as the
/// record-batch job (the one Spark's tasks run) takes it.
pub struct ParquetBatches {
    files: std::vec::IntoIter<PathBuf>,
    names: Vec<String>,
    block_rows: usize,
    current: Option<(PathBuf, ParquetRecordBatchReader)>,
    schema: arrow_schema::SchemaRef,
}

impl ParquetBatches {
    /// Opens `files` for the columns `names` (every column when empty).
    /// Every file must have those columns with the first file's types.
    pub fn open(
        files: Vec<PathBuf>,
        names: &[String],
        block_rows: usize,
    ) -> Result<(ParquetBatches, u64), FileError> {
        let mut rows = 0u64;
        for path in &files {
            let file = File::open(path).map_err(FileError::io(path))?;
            let builder = ParquetRecordBatchReaderBuilder::try_new(file)
                .map_err(|e| FileError::invalid(path, e))?;
            rows += builder.metadata().file_metadata().num_rows().max(0) as u64;
        }
        let first =
            files.first().cloned().ok_or_else(|| FileError::invalid(Path::new("-"), "no input"))?;
        let (_, reader) = open_projected(&first, names, block_rows)?;
        let schema = reader.schema();
        let mut batches = ParquetBatches {
            files: files.into_iter(),
            names: names.to_vec(),
            block_rows,
            current: None,
            schema,
        };
        batches.files.next();
        batches.current = Some((first, reader));
        Ok((batches, rows))
    }

    /// The schema of the batches (the first file's projected columns).
    pub fn schema(&self) -> arrow_schema::SchemaRef {
        self.schema.clone()
    }
}

/// A reader of the columns `names` (all when empty) of one Parquet file.
fn open_projected(
    path: &Path,
    names: &[String],
    block_rows: usize,
) -> Result<(PathBuf, ParquetRecordBatchReader), FileError> {
    let invalid = |e: &dyn std::fmt::Display| FileError::invalid(path, e);
    let file = File::open(path).map_err(FileError::io(path))?;
    let mut builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| invalid(&e))?;
    if !names.is_empty() {
        let schema = builder.schema().clone();
        let chosen = names
            .iter()
            .map(|n| {
                schema.index_of(n).map_err(|_| FileError::Features {
                    path: path.to_path_buf(),
                    error: score_protocol::features::FeatureRuleError::NoColumn(n.clone()).into(),
                })
            })
            .collect::<Result<Vec<usize>, _>>()?;
        let projection = parquet::arrow::ProjectionMask::roots(builder.parquet_schema(), chosen);
        builder = builder.with_projection(projection);
    }
    let reader = builder.with_batch_size(block_rows.max(1)).build().map_err(|e| invalid(&e))?;
    Ok((path.to_path_buf(), reader))
}

impl Iterator for ParquetBatches {
    type Item = Result<RecordBatch, FileError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (path, reader) = self.current.as_mut()?;
            match reader.next() {
                Some(Ok(batch)) if batch.schema().fields() != self.schema.fields() => {
                    let path = path.clone();
                    self.current = None;
                    return Some(Err(FileError::invalid(
                        &path,
                        format!(
                            "its columns differ from the first file's: {} here, {} there",
                            describe(&batch.schema()),
                            describe(&self.schema)
                        ),
                    )));
                }
                Some(Ok(batch)) => return Some(Ok(batch)),
                Some(Err(e)) => {
                    let path = path.clone();
                    self.current = None;
                    return Some(Err(FileError::invalid(&path, e)));
                }
                None => match self.files.next() {
                    None => {
                        self.current = None;
                        return None;
                    }
                    Some(next) => match open_projected(&next, &self.names, self.block_rows) {
                        Ok(opened) => self.current = Some(opened),
                        Err(e) => {
                            self.current = None;
                            return Some(Err(e));
                        }
                    },
                },
            }
        }
    }
}

/// Columns as `name type, ...`, for a sentence.
fn describe(schema: &Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| format!("{} {}", f.name(), f.data_type()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Writes record batches as Parquet: to `PATH.partial`, renamed to `PATH`
/// by [`BatchWriter::finish`], or to stdout.
pub struct BatchWriter {
    target: crate::target::Target,
    writer: Option<ArrowWriter<Box<dyn std::io::Write + Send>>>,
    rows: u64,
}

impl BatchWriter {
    /// Writes to `target` (opened, nothing written until the first batch).
    pub fn new(target: crate::target::Target) -> Self {
        BatchWriter { target, writer: None, rows: 0 }
    }

    /// Appends `batch`; the first batch's schema is the file's.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), FileError> {
        let path = self.target.shown().to_path_buf();
        let invalid = |e: &dyn std::fmt::Display| FileError::invalid(&path, e);
        let writer = match &mut self.writer {
            Some(w) => w,
            None => {
                let props =
                    WriterProperties::builder().set_compression(Compression::SNAPPY).build();
                let sink = self.target.sink()?;
                let w = ArrowWriter::try_new(sink, batch.schema(), Some(props))
                    .map_err(|e| invalid(&e))?;
                self.writer.insert(w)
            }
        };
        writer.write(batch).map_err(|e| invalid(&e))?;
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    /// Finishes the file (footer included), then moves it into place;
    /// returns the rows written. `empty`: the schema of a file with no
    /// rows, when no batch came.
    pub fn finish(mut self, empty: arrow_schema::SchemaRef) -> Result<u64, FileError> {
        if self.writer.is_none() {
            self.write(&RecordBatch::new_empty(empty))?;
        }
        let path = self.target.shown().to_path_buf();
        let writer = self.writer.take().ok_or_else(|| FileError::invalid(&path, "closed"))?;
        let mut sink = writer.into_inner().map_err(|e| FileError::invalid(&path, e))?;
        sink.flush().map_err(FileError::io(&path))?;
        drop(sink);
        self.target.commit()?;
        Ok(self.rows)
    }

    /// Removes the partial file: nothing partial is left looking complete.
    pub fn abandon(self) {
        drop(self.writer);
        self.target.abandon();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_as_a_shell_does() {
        assert!(matches("part-*.parquet", "part-00000-abc.snappy.parquet"));
        assert!(matches("*", "anything"));
        assert!(matches("a?c", "abc"));
        assert!(matches("*.parquet", ".parquet"));
        assert!(!matches("part-*.parquet", "part-0.crc"));
        assert!(!matches("a?c", "ac"));
        assert!(matches("a*b*c", "aXbYbZc"));
        assert!(!matches("a*b*c", "aXbYbZ"));
    }
}
