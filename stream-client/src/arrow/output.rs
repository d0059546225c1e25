//! Output batches: each input batch's passthrough columns beside its scores
//! (and errors), rows in input order. Scored requests and input batches
//! have independent boundaries; this module lines them up. The score
//! column is built by [`score_column`], the one definition every output
//! (Parquet files, Python, the JVM) uses.

use std::collections::VecDeque;
use std::sync::Arc;

use arrow_array::builder::StringBuilder;
use arrow_array::{ArrayRef, Float32Array, ListArray, RecordBatch};
use arrow_buffer::{BooleanBuffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow_schema::{ArrowError, DataType, Field, FieldRef, Schema};

use crate::batch::Scored;

/// The Arrow type of a score column of `k` floats per row: `float32` for
/// one, else a `list<float32>` (items named `element`, as Spark and
/// Parquet name them; a Spark `array<float>`).
pub fn score_type(k: usize) -> DataType {
    if k == 1 {
        DataType::Float32
    } else {
        DataType::List(Arc::new(Field::new("element", DataType::Float32, true)))
    }
}

/// A score column of `values.len() / k` rows of `k` floats; rows marked
/// invalid in `nulls` are null (their values are ignored).
pub fn score_column(
    values: Vec<f32>,
    k: usize,
    nulls: Option<NullBuffer>,
) -> Result<ArrayRef, ArrowError> {
    let values = ScalarBuffer::from(values);
    if k == 1 {
        return Ok(Arc::new(Float32Array::try_new(values, nulls)?));
    }
    let rows = values.len() / k.max(1);
    let DataType::List(item) = score_type(k) else { unreachable!("k > 1 is a list") };
    let offsets = OffsetBuffer::from_lengths(std::iter::repeat_n(k, rows));
    Ok(Arc::new(ListArray::try_new(
        item,
        offsets,
        Arc::new(Float32Array::new(values, None)),
        nulls,
    )?))
}

/// Why an output batch could not be built.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// Results for rows that were never sent, or rows without results: a
    /// bug in the driver.
    #[error("stream-client: {0} (a bug)")]
    Misaligned(&'static str),
    /// Arrow refused the columns.
    #[error("building the output batch: {0}")]
    Arrow(#[from] ArrowError),
}

/// One input batch waiting for its scores.
#[derive(Debug)]
pub struct Entry {
    /// Its passthrough columns.
    pub keep: Vec<ArrayRef>,
    /// Its rows.
    pub rows: usize,
    /// Its rows that were not sent (bad features): (row, why), sorted.
    pub bad: Vec<(usize, String)>,
}

impl Entry {
    /// Rows that were sent and so need a result.
    pub fn good_rows(&self) -> usize {
        self.rows - self.bad.len()
    }
}

/// Results of consecutive sent rows.
#[derive(Debug)]
pub enum Segment {
    /// A scored request.
    Scored(Scored),
    /// A request that failed for good (error-column mode).
    Failed {
        /// Its rows.
        rows: usize,
        /// Why.
        message: String,
    },
}

impl Segment {
    fn rows(&self) -> usize {
        match self {
            Segment::Scored(s) => s.rows,
            Segment::Failed { rows, .. } => *rows,
        }
    }
}

/// Assembles output batches.
#[derive(Debug)]
pub struct Output {
    keep_fields: Vec<FieldRef>,
    score_col: String,
    error_col: Option<String>,
    /// Scores per row, once known (given, or from the first answer; the
    /// client checks that every answer has the same).
    k: Option<usize>,
    segments: VecDeque<Segment>,
    /// Rows of the front segment already output.
    used: usize,
    available: usize,
}

impl Output {
    /// Output of `keep_fields`, then `score_col`, then `error_col` if any.
    pub fn new(
        keep_fields: Vec<FieldRef>,
        score_col: String,
        error_col: Option<String>,
        k: Option<usize>,
    ) -> Self {
        Output {
            keep_fields,
            score_col,
            error_col,
            k,
            segments: VecDeque::new(),
            used: 0,
            available: 0,
        }
    }

    /// Sent rows with a result not yet output.
    pub fn available(&self) -> usize {
        self.available
    }

    /// Adds the next results.
    pub fn push(&mut self, segment: Segment) {
        if let Segment::Scored(s) = &segment {
            self.k.get_or_insert(s.columns);
        }
        self.available += segment.rows();
        self.segments.push_back(segment);
    }

    /// The output batch of `entry`; its good rows must be available.
    pub fn build(&mut self, entry: Entry) -> Result<RecordBatch, OutputError> {
        let k = self.k.unwrap_or(1);
        let n = entry.rows;
        let mut values: Vec<f32> = Vec::with_capacity(n * k);
        let mut valid: Vec<bool> = Vec::with_capacity(n);
        let mut errors = self.error_col.as_ref().map(|_| StringBuilder::new());
        let mut bad = entry.bad.iter().peekable();
        let mut row = 0;
        while row < n {
            if let Some((_, why)) = bad.next_if(|(r, _)| *r == row) {
                values.extend(std::iter::repeat_n(0.0, k));
                valid.push(false);
                if let Some(e) = errors.as_mut() {
                    e.append_value(format!("bad input: {why}"));
                }
                row += 1;
                continue;
            }
            // A run of good rows up to the next bad one, within one segment.
            let until = bad.peek().map_or(n, |(r, _)| *r);
            let front = self.segments.front().ok_or(OutputError::Misaligned("results missing"))?;
            let front_rows = front.rows();
            let run = (until - row).min(front_rows - self.used);
            match front {
                Segment::Scored(s) => {
                    let slice = s
                        .values
                        .get(self.used * k..(self.used + run) * k)
                        .ok_or(OutputError::Misaligned("a result of another width"))?;
                    values.extend_from_slice(slice);
                    valid.extend(std::iter::repeat_n(true, run));
                    if let Some(e) = errors.as_mut() {
                        (0..run).for_each(|_| e.append_null());
                    }
                }
                Segment::Failed { message, .. } => {
                    values.extend(std::iter::repeat_n(0.0, run * k));
                    valid.extend(std::iter::repeat_n(false, run));
                    if let Some(e) = errors.as_mut() {
                        (0..run).for_each(|_| e.append_value(message));
                    }
                }
            }
            self.used += run;
            self.available -= run;
            row += run;
            if self.used == front_rows {
                self.segments.pop_front();
                self.used = 0;
            }
        }
        let nulls = valid.iter().any(|v| !v).then(|| NullBuffer::new(BooleanBuffer::from(valid)));
        let score = score_column(values, k, nulls)?;
        let mut fields = self.keep_fields.clone();
        fields.push(Arc::new(Field::new(&self.score_col, score.data_type().clone(), true)));
        let mut columns = entry.keep;
        columns.push(score);
        if let (Some(name), Some(mut e)) = (&self.error_col, errors) {
            fields.push(Arc::new(Field::new(name, DataType::Utf8, true)));
            columns.push(Arc::new(e.finish()));
        }
        Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?)
    }
}
