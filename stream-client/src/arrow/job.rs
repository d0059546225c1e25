//! Scoring a stream of Arrow record batches into a stream of record
//! batches: what Spark's `mapInArrow` (Python) and `mapPartitions` (JVM)
//! hand a task. One output batch per input batch, in order, with the
//! passthrough columns, the score column and, on request, an error column.
//!
//! Input batches are pulled on the caller's thread, and only when a request
//! slot is free; nothing is read ahead beyond the client's window. A
//! binding drives [`ScoreBatches`] like any iterator: it converts batches
//! at its edge and may release its interpreter lock around `next()` (the
//! input iterator is called from inside it and must take the lock back).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::SchemaRef;
use bytes::Bytes;
use score_protocol::media::BodyFormat;

use super::features::{FeatureBlock, FeatureError, Features};
use super::output::{Entry, Output, OutputError, Segment};
use super::typed::TypedFeatures;
use crate::stream::{AsInput, Input};
use crate::{Client, ClientConfig, ScoreIter};

/// What to score and what to output, besides the client's configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ArrowOptions {
    /// Feature columns: one list column, or numeric columns in the model's
    /// order; `None`: the only list column, else every float column. For a
    /// model fed by name (several inputs, strings), the columns named after
    /// its inputs: sent as they are, as Arrow IPC, which happens when one
    /// of them holds strings or booleans, or when `by_name` is set.
    pub features: Option<Vec<String>>,
    /// Send the feature columns by name (Arrow IPC) even when all are
    /// numbers: for a model fed by name whose inputs are all numeric.
    pub by_name: bool,
    /// Columns passed through unchanged, before the score.
    pub keep: Vec<String>,
    /// Name of the score column.
    pub score_col: String,
    /// Name of the error column; with one, a batch that cannot be scored
    /// gets null scores and the reason there, and the job goes on. Without,
    /// it ends the output with an error.
    pub error_col: Option<String>,
}

/// Why a record-batch job stopped.
#[derive(Debug, thiserror::Error)]
pub enum JobError<E> {
    /// The input iterator's own error, passed through after the rows
    /// before it.
    #[error("{0}")]
    Input(E),
    /// The options do not fit the input (a missing column, a wrong type).
    #[error("{0}")]
    Invalid(String),
    /// Rows could not be scored: a bad input row, or the client's error
    /// (the server's sentence, the rows it covers).
    #[error("{0}")]
    Score(String),
    /// An output batch could not be built.
    #[error(transparent)]
    Output(#[from] OutputError),
}

impl<E> From<FeatureError> for JobError<E> {
    fn from(e: FeatureError) -> Self {
        JobError::Invalid(e.to_string())
    }
}

/// Scores `input` (record batches, or the input's errors) with the
/// process's shared client for `config` (its `columns` is taken from the
/// features). Checks the configuration and options before pulling any
/// batch.
pub fn score_record_batches<I, E>(
    mut config: ClientConfig,
    options: ArrowOptions,
    input: I,
) -> Result<ScoreBatches<I, E>, JobError<E>>
where
    I: Iterator<Item = Result<RecordBatch, E>>,
{
    config.keep_going = options.error_col.is_some();
    // The width is learned from the first batch (`Running::start`).
    config.validate().map_err(|e| JobError::Invalid(e.to_string()))?;
    let clash = |c: &String| options.keep.contains(c);
    if clash(&options.score_col) || options.error_col.as_ref().is_some_and(clash) {
        return Err(JobError::Invalid("a keep column has the score or error column's name".into()));
    }
    Ok(ScoreBatches { state: State::Start(Box::new((input, config, options))) })
}

/// Iterator of scored record batches; see [`score_record_batches`].
pub struct ScoreBatches<I, E> {
    state: State<I, E>,
}

enum State<I, E> {
    Start(Box<(I, ClientConfig, ArrowOptions)>),
    Running(Box<Running<I, E>>),
    Done,
}

impl<I, E> Iterator for ScoreBatches<I, E>
where
    I: Iterator<Item = Result<RecordBatch, E>>,
{
    type Item = Result<RecordBatch, JobError<E>>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match std::mem::replace(&mut self.state, State::Done) {
                State::Done => return None,
                State::Start(start) => {
                    let (input, config, options) = *start;
                    match Running::start(input, config, options) {
                        Ok(Some(running)) => self.state = State::Running(Box::new(running)),
                        Ok(None) => return None,
                        Err(e) => return Some(Err(e)),
                    }
                }
                State::Running(mut running) => {
                    let next = running.next();
                    if matches!(next, Ok(Some(_))) {
                        self.state = State::Running(running);
                    }
                    return next.transpose();
                }
            }
        }
    }
}

/// The input side: pulls record batches, extracts features, and records
/// each batch's passthrough columns for the output side.
struct Source<I, E> {
    input: I,
    /// What the batches pulled already give, not yet handed on.
    pieces: VecDeque<Piece>,
    schema: SchemaRef,
    features: Mode,
    keep: Vec<usize>,
    /// Fail on a bad row (no error column) rather than report it per row.
    strict: bool,
    /// Rows and bytes a request (the by-name mode cuts its own).
    max_rows: usize,
    max_bytes: usize,
    next_row: u64,
    side: Arc<Mutex<Side<E>>>,
}

/// How features are sent.
enum Mode {
    /// Interleaved into float32 rows (a model fed one matrix).
    Matrix(Features),
    /// As Arrow columns by name (a model fed by name).
    ByName(TypedFeatures),
}

/// What the source hands the client: float rows, or one request's body.
enum Piece {
    Floats(FeatureBlock),
    Body(usize, Bytes),
}

impl AsInput for Piece {
    fn as_input(&self) -> Input<'_> {
        match self {
            Piece::Floats(block) => Input::Floats(block.as_ref()),
            Piece::Body(rows, body) => {
                Input::Body { rows: *rows, body: body.clone(), format: BodyFormat::Arrow }
            }
        }
    }
}

/// Shared by the input and output sides (both on the caller's thread).
struct Side<E> {
    /// Input batches not yet fully output, in order.
    queue: VecDeque<Entry>,
    /// Why the input ended early; raised once the rows before it are out.
    error: Option<JobError<E>>,
}

impl<I, E> Source<I, E> {
    fn feed(&mut self, batch: RecordBatch) -> Result<(), JobError<E>> {
        if batch.schema().fields() != self.schema.fields() {
            return Err(JobError::Invalid(format!(
                "the batch at row {} has another schema than the first batch",
                self.next_row
            )));
        }
        let (pieces, bad) = match &mut self.features {
            Mode::Matrix(features) => {
                let extracted = features.extract(&batch)?;
                (vec![Piece::Floats(extracted.block)], extracted.bad)
            }
            Mode::ByName(features) => {
                let encoded = features
                    .encode(&batch, self.max_rows, self.max_bytes)
                    .map_err(JobError::Invalid)?;
                let pieces = encoded.bodies.into_iter().map(|(r, b)| Piece::Body(r, b)).collect();
                (pieces, encoded.bad)
            }
        };
        if self.strict
            && let Some(e) = super::features::first_error(&bad, self.next_row)
        {
            return Err(JobError::Score(e));
        }
        let keep: Vec<ArrayRef> = self.keep.iter().map(|&i| batch.column(i).clone()).collect();
        let entry = Entry { keep, rows: batch.num_rows(), bad };
        self.next_row += batch.num_rows() as u64;
        lock(&self.side).queue.push_back(entry);
        self.pieces.extend(pieces);
        Ok(())
    }
}

impl<I, E> Iterator for Source<I, E>
where
    I: Iterator<Item = Result<RecordBatch, E>>,
{
    type Item = Piece;

    fn next(&mut self) -> Option<Piece> {
        loop {
            if let Some(piece) = self.pieces.pop_front() {
                return Some(piece);
            }
            let fed = match self.input.next()? {
                Ok(batch) => self.feed(batch),
                Err(e) => Err(JobError::Input(e)),
            };
            if let Err(e) = fed {
                lock(&self.side).error = Some(e);
                return None;
            }
        }
    }
}

fn lock<E>(side: &Mutex<Side<E>>) -> MutexGuard<'_, Side<E>> {
    side.lock().unwrap_or_else(|e| e.into_inner())
}

struct Running<I, E> {
    scores: ScoreIter<Source<I, E>>,
    side: Arc<Mutex<Side<E>>>,
    output: Output,
    keep_going: bool,
    exhausted: bool,
    /// What the job sends, in the user's terms (the feature columns and
    /// their width), added to a server's refusal: the server sees only a
    /// body and a header, the user knows columns.
    sent: String,
}

impl<I, E> Running<I, E>
where
    I: Iterator<Item = Result<RecordBatch, E>>,
{
    /// Pulls the first batch (to learn the schema and a list column's
    /// width), then sets up the window. `None` for an empty input.
    fn start(
        mut input: I,
        mut config: ClientConfig,
        options: ArrowOptions,
    ) -> Result<Option<Self>, JobError<E>> {
        let first = match input.next() {
            None => return Ok(None),
            Some(batch) => batch.map_err(JobError::Input)?,
        };
        let schema = first.schema();
        let names = options.features.as_deref();
        let features = if options.by_name || TypedFeatures::needed(&schema, names) {
            let Some(names) = names else {
                return Err(JobError::Invalid(
                    "name the feature columns (the model's inputs) to send them by name".into(),
                ));
            };
            Mode::ByName(TypedFeatures::resolve(&schema, names)?)
        } else {
            Mode::Matrix(
                Features::resolve(&schema, names, None).map_err(|e| JobError::Invalid(hint(e)))?,
            )
        };
        let keep = options
            .keep
            .iter()
            .map(|k| {
                schema.index_of(k).map_err(|_| {
                    JobError::Invalid(format!("keep: no column named {k:?} in the input"))
                })
            })
            .collect::<Result<Vec<usize>, _>>()?;
        let mut source = Source {
            input,
            pieces: VecDeque::new(),
            schema: schema.clone(),
            features,
            keep: keep.clone(),
            strict: options.error_col.is_none(),
            max_rows: config.batch_rows,
            max_bytes: config.batch_bytes,
            next_row: 0,
            side: Arc::new(Mutex::new(Side { queue: VecDeque::new(), error: None })),
        };
        source.feed(first)?;
        let width = match &source.features {
            Mode::Matrix(features) => features.width(),
            Mode::ByName(features) => Some(features.width()),
        };
        let sent = sent(&source.features, options.features.as_deref());
        let Some(width) = width else {
            // Every row of the first batch was bad and there is no width yet.
            return Err(JobError::Score(
                "cannot tell the feature width: the first batch has no usable row".into(),
            ));
        };
        config.columns = width;
        let keep_going = config.keep_going;
        let k = config.score_columns;
        let client = Client::shared(config).map_err(|e| JobError::Invalid(e.to_string()))?;
        let side = source.side.clone();
        let keep_fields = keep.iter().map(|&i| schema.fields()[i].clone()).collect();
        let output = Output::new(keep_fields, options.score_col, options.error_col, k);
        Ok(Some(Running {
            scores: client.score_blocks(source),
            side,
            output,
            keep_going,
            exhausted: false,
            sent,
        }))
    }

    /// The next output batch: waits until every row of the oldest input
    /// batch has a score or an error.
    fn next(&mut self) -> Result<Option<RecordBatch>, JobError<E>> {
        loop {
            let head_rows = lock(&self.side).queue.front().map(Entry::good_rows);
            match head_rows {
                Some(need) if self.output.available() >= need => {
                    let entry = lock(&self.side).queue.pop_front();
                    let entry = entry.ok_or(OutputError::Misaligned("an input batch vanished"))?;
                    return Ok(Some(self.output.build(entry)?));
                }
                None if self.exhausted => {
                    return match lock(&self.side).error.take() {
                        Some(e) => Err(e),
                        None => Ok(None),
                    };
                }
                _ if self.exhausted => {
                    return Err(OutputError::Misaligned(
                        "the output ended before every row had a result",
                    )
                    .into());
                }
                _ => {}
            }
            match self.scores.next() {
                None => self.exhausted = true,
                Some(Ok(scored)) => self.output.push(Segment::Scored(scored)),
                Some(Err(e)) if self.keep_going && e.batch().is_some() => {
                    let rows = e.batch().map_or(0, |(_, rows)| rows);
                    self.output.push(Segment::Failed { rows, message: self.explain(&e) });
                }
                Some(Err(e)) => return Err(JobError::Score(self.explain(&e))),
            }
        }
    }
}

impl<I, E> Running<I, E> {
    /// A client error as the user reads it: a request the server refused
    /// as malformed (400) says what the job sent.
    fn explain(&self, e: &crate::ScoreError) -> String {
        match e {
            crate::ScoreError::Rejected { status: 400, .. } => {
                format!("{e} (this job sends {})", self.sent)
            }
            _ => e.to_string(),
        }
    }
}

/// The features a job sends, in the user's terms.
fn sent(mode: &Mode, named: Option<&[String]>) -> String {
    match mode {
        Mode::Matrix(features) => {
            let names = features.names();
            let width = features.width().map_or(String::new(), |w| format!(", {w} values a row"));
            match names {
                [one] => format!("column {one:?}{width}"),
                _ => format!("{} columns{width}: {}", names.len(), list(names)),
            }
        }
        Mode::ByName(features) => {
            let names = named.unwrap_or_default();
            format!(
                "{} columns by name ({} values a row): {}",
                names.len(),
                features.width(),
                list(names)
            )
        }
    }
}

/// Up to four names, then how many more.
fn list(names: &[String]) -> String {
    let shown: Vec<String> = names.iter().take(4).map(|n| format!("{n:?}")).collect();
    match names.len() {
        n if n > 4 => format!("{}, ... ({} more)", shown.join(", "), n - 4),
        _ => shown.join(", "),
    }
}

/// Adds what to do to a feature-selection error that a Spark ML vector
/// column (a struct in Arrow) causes.
fn hint(e: FeatureError) -> String {
    let text = e.to_string();
    if text.contains("Struct(") {
        format!(
            "{text}; a Spark ML vector column must be converted first, e.g. with \
             pyspark.ml.functions.vector_to_array"
        )
    } else {
        text
    }
}
