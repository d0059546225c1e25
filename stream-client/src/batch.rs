//! Cutting a stream of rows into request bodies, capped by rows and by bytes.

use bytes::Bytes;
use score_protocol::media::BodyFormat;

use crate::error::ScoreError;

/// A scored batch: `rows × columns` floats in input order.
#[derive(Clone, Debug, PartialEq)]
pub struct Scored {
    /// Index of the first row in the input.
    pub first_row: u64,
    /// Rows.
    pub rows: usize,
    /// Floats per row (k).
    pub columns: usize,
    /// The scores, row-major.
    pub values: Vec<f32>,
}

impl Scored {
    /// The scores row by row.
    pub fn rows(&self) -> std::slice::ChunksExact<'_, f32> {
        self.values.chunks_exact(self.columns.max(1))
    }
}

/// A request's worth of rows, already encoded as the wire body.
#[derive(Clone, Debug)]
pub struct Batch {
    /// Index of the batch's first row in the input.
    pub first_row: u64,
    /// Rows in the batch.
    pub rows: usize,
    /// `rows × columns` float32 little-endian, or (format `Arrow`) an
    /// Arrow IPC stream of the rows, one column per model input.
    pub body: Bytes,
    /// The body's format.
    pub format: BodyFormat,
}

/// Accumulates rows (or blocks of rows) into batches.
#[derive(Debug)]
pub struct Batcher {
    columns: usize,
    max_rows: usize,
    buf: Vec<u8>,
    rows: usize,
    next_row: u64,
}

impl Batcher {
    /// Batches of at most `max_rows` rows and `max_bytes` bytes (at least one
    /// row each).
    pub fn new(columns: usize, max_rows: usize, max_bytes: usize) -> Self {
        let row_bytes = columns * 4;
        let max_rows = max_rows.min(max_bytes / row_bytes.max(1)).max(1);
        Batcher { columns, max_rows, buf: Vec::new(), rows: 0, next_row: 0 }
    }

    /// Rows per full batch.
    pub fn max_rows(&self) -> usize {
        self.max_rows
    }

    /// Adds one row; returns a batch when this row filled one.
    pub fn push_row(&mut self, row: &[f32]) -> Result<Option<Batch>, ScoreError> {
        if row.len() != self.columns {
            return Err(ScoreError::BadRow {
                row: self.next_row + self.rows as u64,
                len: row.len(),
                columns: self.columns,
            });
        }
        if self.buf.is_empty() {
            self.buf.reserve_exact(self.max_rows * self.columns * 4);
        }
        score_protocol::codec::encode_into(row, &mut self.buf);
        self.rows += 1;
        Ok((self.rows == self.max_rows).then(|| self.take()))
    }

    /// Adds a block of whole rows (row-major); returns the batches it
    /// completed.
    pub fn push_block(&mut self, block: &[f32]) -> Result<Vec<Batch>, ScoreError> {
        if self.columns == 0 || !block.len().is_multiple_of(self.columns) {
            return Err(ScoreError::BadRow {
                row: self.next_row + self.rows as u64,
                len: block.len(),
                columns: self.columns,
            });
        }
        let mut done = Vec::new();
        for row in block.chunks_exact(self.columns) {
            if let Some(batch) = self.push_row(row)? {
                done.push(batch);
            }
        }
        Ok(done)
    }

    /// Adds a body encoded already (an Arrow IPC stream of `rows` rows): the
    /// partial batch of float rows first, if any, then it.
    pub fn push_body(&mut self, rows: usize, body: Bytes, format: BodyFormat) -> Vec<Batch> {
        let mut done: Vec<Batch> = self.flush().into_iter().collect();
        done.push(Batch { first_row: self.next_row, rows, body, format });
        self.next_row += rows as u64;
        done
    }

    /// The partial batch, if any rows are pending.
    pub fn flush(&mut self) -> Option<Batch> {
        (self.rows > 0).then(|| self.take())
    }

    fn take(&mut self) -> Batch {
        let batch = Batch {
            first_row: self.next_row,
            rows: self.rows,
            body: Bytes::from(std::mem::take(&mut self.buf)),
            format: BodyFormat::Binary,
        };
        self.next_row += self.rows as u64;
        self.rows = 0;
        batch
    }
}
