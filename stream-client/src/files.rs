//! Streaming readers and writers for the CLI's file formats: raw
//! little-endian float32 (`.f32`), NumPy `.npy` (float32, 2-D, C order) and
//! Parquet (see [`crate::parquet_io`]).
//! Readers yield blocks of rows and never hold the whole file; writers go to
//! a temporary file that is renamed only once complete.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use score_protocol::codec;

use crate::arrow::FeatureBlock;
pub use crate::file_error::FileError;
pub use crate::target::Target;

/// A file format, from the path's extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Raw float32 little-endian, row-major; the width comes from elsewhere.
    F32,
    /// NumPy `.npy`, float32, two dimensions.
    Npy,
    /// Parquet: numeric feature columns or one list column.
    Parquet,
}

impl Format {
    /// The format of an input: Parquet for a directory (a dataset as
    /// Spark writes it) or a pattern (`data/part-*.parquet`), else by
    /// extension.
    pub fn of_input(path: &Path) -> Result<Format, FileError> {
        let pattern =
            path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.contains(['*', '?']));
        if pattern || path.is_dir() {
            return Ok(Format::Parquet);
        }
        Format::of(path)
    }

    /// The format of `path`, by extension.
    pub fn of(path: &Path) -> Result<Format, FileError> {
        match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("f32") => Ok(Format::F32),
            Some("npy") => Ok(Format::Npy),
            Some("parquet") | Some("parq") => Ok(Format::Parquet),
            _ => Err(FileError::invalid(
                path,
                "unknown format: the name must end in .parquet, .npy or .f32 (an input may \
                 also be a directory of Parquet files, or a pattern such as \
                 data/part-*.parquet)",
            )),
        }
    }
}

/// Reads blocks of whole rows from a `.f32` or `.npy` input. Parquet
/// inputs are read by [`crate::parquet_io::ParquetBatches`] and scored
/// by the record-batch job, as in Spark.
pub struct RowReader {
    path: PathBuf,
    reader: BufReader<File>,
    columns: usize,
    rows: u64,
    remaining: u64,
    block_rows: usize,
}

impl RowReader {
    /// Opens `path`; `columns` is required for `.f32` and checked for
    /// `.npy`.
    pub fn open(
        path: &Path,
        columns: Option<usize>,
        block_rows: usize,
    ) -> Result<RowReader, FileError> {
        let format = Format::of(path)?;
        let file = File::open(path).map_err(FileError::io(path))?;
        let len = file.metadata().map_err(FileError::io(path))?.len();
        let mut reader = BufReader::with_capacity(1 << 20, file);
        let (columns, data_len) = match format {
            Format::F32 => {
                let columns = columns
                    .ok_or_else(|| FileError::invalid(path, "a .f32 input needs --columns"))?;
                (columns, len)
            }
            Format::Parquet => {
                return Err(FileError::invalid(
                    path,
                    "Parquet is read by parquet_io::ParquetBatches, not RowReader",
                ));
            }
            Format::Npy => {
                let (header_len, shape) =
                    read_npy_header(&mut reader).map_err(|e| FileError::invalid(path, e))?;
                if let Some(c) = columns.filter(|c| *c != shape.1) {
                    return Err(FileError::invalid(
                        path,
                        format!("has {} columns, --columns says {c}", shape.1),
                    ));
                }
                let expected = (shape.0 as u64)
                    .checked_mul(shape.1 as u64)
                    .and_then(|n| n.checked_mul(4))
                    .ok_or_else(|| FileError::invalid(path, "impossible .npy shape"))?;
                if len.checked_sub(header_len) != Some(expected) {
                    return Err(FileError::invalid(
                        path,
                        format!(
                            "truncated or padded: {} data bytes for shape ({}, {})",
                            len.saturating_sub(header_len),
                            shape.0,
                            shape.1
                        ),
                    ));
                }
                (shape.1, expected)
            }
        };
        let rows = usize::try_from(data_len)
            .map_err(|_| FileError::invalid(path, "too large for this machine"))
            .and_then(|len| codec::rows_in(len, columns).map_err(|e| FileError::invalid(path, e)))?
            as u64;
        Ok(RowReader {
            path: path.to_path_buf(),
            reader,
            columns,
            rows,
            remaining: rows,
            block_rows: block_rows.max(1),
        })
    }

    /// Row width.
    pub fn columns(&self) -> usize {
        self.columns
    }

    /// Rows in the file.
    pub fn rows(&self) -> u64 {
        self.rows
    }
}

impl Iterator for RowReader {
    type Item = Result<FeatureBlock, FileError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        let rows = (self.block_rows as u64).min(self.remaining) as usize;
        let mut bytes = vec![0u8; rows * self.columns * 4];
        if let Err(e) = self.reader.read_exact(&mut bytes) {
            self.remaining = 0;
            return Some(Err(FileError::Io { path: self.path.clone(), error: e }));
        }
        self.remaining -= rows as u64;
        let values = codec::decode(&bytes).map_err(|e| FileError::invalid(&self.path, e));
        Some(values.map(FeatureBlock::Owned))
    }
}

/// Reads an `.npy` header: returns its length and the 2-D shape.
fn read_npy_header(r: &mut impl Read) -> Result<(u64, (usize, usize)), String> {
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic).map_err(|e| format!("not an .npy file: {e}"))?;
    if &magic[..6] != b"\x93NUMPY" {
        return Err("not an .npy file (bad magic)".into());
    }
    let (len_bytes, prefix) = match magic[6] {
        1 => (2, 10u64),
        2 | 3 => (4, 12u64),
        v => return Err(format!("unsupported .npy version {v}")),
    };
    let mut len = [0u8; 4];
    r.read_exact(&mut len[..len_bytes]).map_err(|e| e.to_string())?;
    let header_len = u32::from_le_bytes(len) as usize;
    if header_len > 1 << 16 {
        return Err("implausible .npy header length".into());
    }
    let mut header = vec![0u8; header_len];
    r.read_exact(&mut header).map_err(|e| e.to_string())?;
    let header = String::from_utf8_lossy(&header).replace(' ', "");
    if !header.contains("'descr':'<f4'") {
        return Err(format!("only little-endian float32 ('<f4') is supported, header: {header}"));
    }
    if !header.contains("'fortran_order':False") {
        return Err("only C-order arrays are supported (save with np.ascontiguousarray)".into());
    }
    let shape = header
        .split("'shape':(")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .ok_or("no shape in the .npy header")?;
    let dims: Vec<usize> = shape
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|_| format!("bad shape {shape:?}")))
        .collect::<Result<_, _>>()?;
    match dims[..] {
        [rows, columns] => Ok((prefix + header_len as u64, (rows, columns))),
        _ => Err(format!("expected a 2-D array, shape is ({shape})")),
    }
}

/// Writes scored rows to `PATH.partial`, renamed to `PATH` by [`finish`].
///
/// [`finish`]: RowWriter::finish
pub struct RowWriter {
    sink: Sink,
    format: Format,
    tmp: PathBuf,
    path: PathBuf,
    rows: u64,
    columns: Option<usize>,
    scratch: Vec<u8>,
}

enum Sink {
    Raw(BufWriter<File>),
    Parquet(Box<crate::parquet_io::ParquetScores>),
}

/// Fixed size of the `.npy` header we write, so it can be rewritten in place
/// once the row count is known.
const NPY_HEADER: usize = 128;

impl RowWriter {
    /// Creates the temporary output next to `path`.
    pub fn create(path: &Path) -> Result<RowWriter, FileError> {
        let format = Format::of(path)?;
        let tmp = Self::partial_path(path);
        let file = File::create(&tmp).map_err(FileError::io(&tmp))?;
        let sink = match format {
            Format::Parquet => {
                Sink::Parquet(Box::new(crate::parquet_io::ParquetScores::new(file, tmp.clone())))
            }
            _ => {
                let mut writer = BufWriter::with_capacity(1 << 20, file);
                if format == Format::Npy {
                    writer.write_all(&npy_header(0, 0)).map_err(FileError::io(&tmp))?;
                }
                Sink::Raw(writer)
            }
        };
        let path = path.to_path_buf();
        Ok(RowWriter { sink, format, tmp, path, rows: 0, columns: None, scratch: Vec::new() })
    }

    /// Where the output of `path` is written until it is complete.
    pub fn partial_path(path: &Path) -> PathBuf {
        crate::target::partial_path(path)
    }

    /// Appends rows of `columns` floats.
    pub fn write(&mut self, values: &[f32], columns: usize) -> Result<(), FileError> {
        if *self.columns.get_or_insert(columns) != columns {
            return Err(FileError::invalid(
                &self.tmp,
                "the server changed the number of output columns mid-stream",
            ));
        }
        match &mut self.sink {
            Sink::Parquet(w) => w.write(values, columns)?,
            Sink::Raw(w) => {
                self.scratch.clear();
                codec::encode_into(values, &mut self.scratch);
                w.write_all(&self.scratch).map_err(FileError::io(&self.tmp))?;
            }
        }
        self.rows += (values.len() / columns.max(1)) as u64;
        Ok(())
    }

    /// Flushes, fixes the `.npy` header and renames the file into place.
    pub fn finish(self) -> Result<u64, FileError> {
        let err = FileError::io(&self.tmp);
        match self.sink {
            Sink::Parquet(w) => w.finish()?,
            Sink::Raw(mut w) => {
                let header = npy_header(self.rows, self.columns.unwrap_or(0));
                let npy = self.format == Format::Npy;
                let done = (|| {
                    if npy {
                        w.seek(SeekFrom::Start(0))?;
                        w.write_all(&header)?;
                    }
                    w.flush()?;
                    w.get_ref().sync_all()
                })();
                done.map_err(err)?;
            }
        }
        std::fs::rename(&self.tmp, &self.path).map_err(FileError::io(&self.path))?;
        Ok(self.rows)
    }

    /// Removes the temporary file: nothing partial is left looking complete.
    pub fn abandon(self) {
        let tmp = self.tmp.clone();
        drop(self);
        let _ = std::fs::remove_file(tmp);
    }
}

fn npy_header(rows: u64, columns: usize) -> Vec<u8> {
    let dict =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {columns}), }}");
    let mut header = b"\x93NUMPY\x01\x00".to_vec();
    header.extend_from_slice(&((NPY_HEADER - 10) as u16).to_le_bytes());
    header.extend_from_slice(dict.as_bytes());
    header.resize(NPY_HEADER - 1, b' ');
    header.push(b'\n');
    header
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_round_trip() {
        let dir = std::env::temp_dir().join(format!("npy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("x.npy");
        let mut w = RowWriter::create(&path).expect("create");
        w.write(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 3).expect("write");
        assert_eq!(w.finish().expect("finish"), 2);
        let reader = RowReader::open(&path, None, 1).expect("open");
        assert_eq!((reader.rows(), reader.columns()), (2, 3));
        let rows: Vec<Vec<f32>> = reader.map(|r| r.expect("row").as_ref().to_vec()).collect();
        assert_eq!(rows, vec![vec![1.0, 2.0, 3.0], vec![4.0, 5.0, 6.0]]);
        std::fs::remove_dir_all(dir).expect("clean");
    }
}
