//! `stream_client._native`: the Rust half of the Python package.
//!
//! [`score`] turns a Python iterator of Arrow record batches (what Spark's
//! `mapInArrow` hands a task) into an iterator of scored record batches, one
//! per input batch, with the passthrough columns and a score column (and, on
//! request, an error column). The work is stream-client's ordered, bounded
//! window: input batches are pulled from Python on the calling thread, only
//! when a request slot is free; the GIL is released while waiting for the
//! servers; nothing is read ahead beyond the in-flight window.
//!
//! The Python side (`python/stream_client/__init__.py`) holds the
//! configuration (`Scorer`, which pickles) and calls in here.

mod ffi;
mod output;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::SchemaRef;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyIterator};
use stream_client::features::{FeatureBlock, Features};
use stream_client::{Client, ClientConfig, ScoreIter};

use crate::output::{Entry, Output, Segment};

pyo3::create_exception!(
    stream_client,
    ScoreError,
    pyo3::exceptions::PyException,
    "Rows could not be scored: the server refused them, retries gave up, or the input is bad. \
     The message says which rows and why (with the server's own sentence when it answered)."
);

/// Clients of this process by configuration: they share endpoint health and
/// the retry budget across the tasks a Python worker runs. Keyed by pid too,
/// since a forked child must not reuse its parent's.
static CLIENTS: Mutex<Option<(u32, HashMap<String, Client>)>> = Mutex::new(None);

fn client_for(config: ClientConfig) -> PyResult<Client> {
    let key = format!("{config:?}");
    let pid = std::process::id();
    let mut guard = CLIENTS.lock().unwrap_or_else(|e| e.into_inner());
    if guard.as_ref().is_none_or(|(p, _)| *p != pid) {
        *guard = Some((pid, HashMap::new()));
    }
    let Some((_, clients)) = guard.as_mut() else { unreachable!("set above") };
    if let Some(c) = clients.get(&key) {
        return Ok(c.clone());
    }
    let client = Client::new(config).map_err(|e| PyValueError::new_err(e.to_string()))?;
    clients.insert(key, client.clone());
    Ok(client)
}

/// Logs of the Rust client go to stderr (the Spark executor's log), at the
/// level in `STREAM_CLIENT_LOG` (default `warn`).
fn init_logging() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_env("STREAM_CLIENT_LOG")
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .try_init();
    });
}

/// What the caller asked for, kept until the first batch shows the schema.
struct Request {
    config: ClientConfig,
    features: Option<Vec<String>>,
    keep: Vec<String>,
    score_col: String,
    error_col: Option<String>,
    score_columns: Option<usize>,
}

/// The input side: pulls record batches from Python, extracts features,
/// and records each batch's passthrough columns for the output side.
struct Source {
    input: Py<PyIterator>,
    /// The first batch's features, extracted before the window starts.
    first: Option<FeatureBlock>,
    schema: SchemaRef,
    features: Features,
    keep: Vec<usize>,
    /// Raise on a bad row (default) rather than report it per row.
    strict: bool,
    next_row: u64,
    side: Arc<Mutex<Side>>,
}

/// Shared by the input and output sides (both on the calling thread).
#[derive(Default)]
struct Side {
    /// Input batches not yet fully output, in order.
    queue: std::collections::VecDeque<Entry>,
    /// Why the input ended early; raised once the rows before it are out.
    error: Option<PyErr>,
}

impl Source {
    fn pull(&mut self) -> PyResult<Option<RecordBatch>> {
        Python::attach(|py| match self.input.bind(py).clone().next() {
            None => Ok(None),
            Some(obj) => ffi::import_batch(&obj?).map(Some),
        })
    }

    fn feed(&mut self, batch: RecordBatch) -> Result<FeatureBlock, PyErr> {
        if batch.schema().fields() != self.schema.fields() {
            return Err(PyValueError::new_err(format!(
                "the batch at row {} has another schema than the first batch",
                self.next_row
            )));
        }
        let extracted = self.features.extract(&batch).map_err(PyValueError::new_err)?;
        if self.strict
            && let Some(e) = extracted.first_error(self.next_row)
        {
            return Err(ScoreError::new_err(e));
        }
        let keep: Vec<ArrayRef> = self.keep.iter().map(|&i| batch.column(i).clone()).collect();
        let entry = Entry { keep, rows: batch.num_rows(), bad: extracted.bad };
        self.next_row += batch.num_rows() as u64;
        lock(&self.side).queue.push_back(entry);
        Ok(extracted.block)
    }
}

impl Iterator for Source {
    type Item = FeatureBlock;

    fn next(&mut self) -> Option<FeatureBlock> {
        if let Some(block) = self.first.take() {
            return Some(block);
        }
        let fed = self.pull().and_then(|b| b.map(|b| self.feed(b)).transpose());
        match fed {
            Ok(block) => block,
            Err(e) => {
                lock(&self.side).error = Some(e);
                None
            }
        }
    }
}

fn lock(side: &Mutex<Side>) -> std::sync::MutexGuard<'_, Side> {
    side.lock().unwrap_or_else(|e| e.into_inner())
}

type Scores = ScoreIter<std::iter::Empty<Vec<f32>>, Source>;

/// Iterator of scored record batches (wrap each with
/// `pyarrow.record_batch`): one per input batch, in input order.
#[pyclass(module = "stream_client._native")]
struct Scoring {
    state: State,
}

enum State {
    Start(Box<(Py<PyIterator>, Request)>),
    Running(Box<Running>),
    Done,
}

struct Running {
    scores: Scores,
    side: Arc<Mutex<Side>>,
    output: Output,
    keep_going: bool,
    exhausted: bool,
}

#[pymethods]
impl Scoring {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&mut self, py: Python<'_>) -> PyResult<Option<ffi::ArrowBatch>> {
        loop {
            match std::mem::replace(&mut self.state, State::Done) {
                State::Done => return Ok(None),
                State::Start(start) => {
                    let (input, request) = *start;
                    if let Some(running) = start_running(py, input, request)? {
                        self.state = State::Running(Box::new(running));
                    }
                }
                State::Running(mut running) => {
                    let next = running.next(py);
                    if matches!(next, Ok(Some(_))) {
                        self.state = State::Running(running);
                    }
                    return next.map(|b| b.map(ffi::ArrowBatch::new));
                }
            }
        }
    }
}

/// Pulls the first batch (to learn the schema), then sets up the window.
/// `None` for an empty input.
fn start_running(
    py: Python<'_>,
    input: Py<PyIterator>,
    request: Request,
) -> PyResult<Option<Running>> {
    let first = match input.bind(py).clone().next() {
        None => return Ok(None),
        Some(obj) => ffi::import_batch(&obj?)?,
    };
    let schema = first.schema();
    let features = Features::resolve(&schema, request.features.as_deref(), None)
        .map_err(|e| PyValueError::new_err(hint(e)))?;
    let keep = request
        .keep
        .iter()
        .map(|k| {
            schema.index_of(k).map_err(|_| {
                PyValueError::new_err(format!("keep: no column named {k:?} in the input"))
            })
        })
        .collect::<PyResult<Vec<usize>>>()?;
    let mut source = Source {
        input,
        first: None,
        schema: schema.clone(),
        features,
        keep: keep.clone(),
        strict: request.error_col.is_none(),
        next_row: 0,
        side: Arc::new(Mutex::new(Side::default())),
    };
    // The width of a variable-length list column shows in its first row:
    // extract the first batch now so the client is built with it.
    let first_block = source.feed(first)?;
    let Some(width) = source.features.width() else {
        // Every row of the first batch was bad and there is no width yet.
        return Err(ScoreError::new_err(
            "cannot tell the feature width: the first batch has no usable row",
        ));
    };
    source.first = Some(first_block);
    let mut config = request.config;
    config.columns = width;
    let keep_going = config.keep_going;
    let client = client_for(config)?;
    let side = source.side.clone();
    let keep_fields = keep.iter().map(|&i| schema.fields()[i].clone()).collect();
    let output =
        Output::new(keep_fields, request.score_col, request.error_col, request.score_columns);
    Ok(Some(Running {
        scores: client.score_blocks(source),
        side,
        output,
        keep_going,
        exhausted: false,
    }))
}

impl Running {
    /// The next output batch: waits (GIL released) until every row of the
    /// oldest input batch has a score or an error.
    fn next(&mut self, py: Python<'_>) -> PyResult<Option<RecordBatch>> {
        loop {
            let head_rows = lock(&self.side).queue.front().map(Entry::good_rows);
            match head_rows {
                Some(need) if self.output.available() >= need => {
                    let entry = lock(&self.side).queue.pop_front();
                    let Some(entry) = entry else { unreachable!("front seen above") };
                    return self.output.build(entry).map(Some);
                }
                None if self.exhausted => {
                    return match lock(&self.side).error.take() {
                        Some(e) => Err(e),
                        None => Ok(None),
                    };
                }
                _ if self.exhausted => {
                    return Err(PyRuntimeError::new_err(
                        "stream-client: the output ended before every row had a result (a bug)",
                    ));
                }
                _ => {}
            }
            let scores = &mut self.scores;
            match py.detach(|| scores.next()) {
                None => self.exhausted = true,
                Some(Ok(scored)) => self.output.push(Segment::Scored(scored))?,
                Some(Err(e)) if self.keep_going && e.batch().is_some() => {
                    let rows = e.batch().map_or(0, |(_, rows)| rows);
                    self.output.push(Segment::Failed { rows, message: e.to_string() })?;
                }
                Some(Err(e)) => return Err(ScoreError::new_err(e.to_string())),
            }
        }
    }
}

/// Scores an iterator of Arrow record batches; see the Python `Scorer`.
#[pyfunction]
#[pyo3(signature = (
    batches, *, urls, features, keep, score_col, error_col, score_columns,
    model, output, batch_rows, batch_bytes, in_flight, timeout, max_attempts, deadline,
))]
#[allow(clippy::too_many_arguments)]
fn score(
    batches: &Bound<'_, PyAny>,
    urls: Vec<String>,
    features: Option<Vec<String>>,
    keep: Vec<String>,
    score_col: String,
    error_col: Option<String>,
    score_columns: Option<usize>,
    model: Option<String>,
    output: Option<String>,
    batch_rows: usize,
    batch_bytes: usize,
    in_flight: usize,
    timeout: f64,
    max_attempts: u32,
    deadline: Option<f64>,
) -> PyResult<Scoring> {
    init_logging();
    let seconds = |what: &str, s: f64| {
        Duration::try_from_secs_f64(s).ok().filter(|d| !d.is_zero()).ok_or_else(|| {
            PyValueError::new_err(format!("{what} must be a positive number of seconds"))
        })
    };
    let mut config = ClientConfig::new(urls, 1);
    config.model = model;
    config.output = output;
    config.batch_rows = batch_rows;
    config.batch_bytes = batch_bytes;
    config.in_flight = in_flight;
    config.timeout = seconds("timeout", timeout)?;
    config.max_attempts = max_attempts;
    config.deadline = deadline.map(|d| seconds("deadline", d)).transpose()?;
    config.keep_going = error_col.is_some();
    // Check the settings before any batch is pulled.
    Client::new(config.clone()).map_err(|e| PyValueError::new_err(e.to_string()))?;
    if keep.contains(&score_col) || error_col.as_ref().is_some_and(|e| keep.contains(e)) {
        return Err(PyValueError::new_err("a keep column has the score or error column's name"));
    }
    let input = PyIterator::from_object(batches)?.unbind();
    let request = Request { config, features, keep, score_col, error_col, score_columns };
    Ok(Scoring { state: State::Start(Box::new((input, request))) })
}

/// Counters summed over this process's clients: rows, requests, retries...
#[pyfunction]
fn stats(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let d = PyDict::new(py);
    let guard = CLIENTS.lock().unwrap_or_else(|e| e.into_inner());
    let clients = guard
        .as_ref()
        .filter(|(pid, _)| *pid == std::process::id())
        .map(|(_, c)| c.values().map(Client::stats).collect::<Vec<_>>())
        .unwrap_or_default();
    let sum = |f: fn(&stream_client::Stats) -> u64| clients.iter().map(f).sum::<u64>();
    d.set_item("rows_sent", sum(|s| s.rows_sent))?;
    d.set_item("rows_scored", sum(|s| s.rows_scored))?;
    d.set_item("requests", sum(|s| s.requests))?;
    d.set_item("retries", sum(|s| s.total_retries()))?;
    d.set_item("failed_batches", sum(|s| s.failed_batches))?;
    d.set_item("bytes_sent", sum(|s| s.bytes_sent))?;
    d.set_item("ejections", sum(|s| s.ejections))?;
    Ok(d)
}

/// The native module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("ScoreError", m.py().get_type::<ScoreError>())?;
    m.add_class::<Scoring>()?;
    m.add_class::<ffi::ArrowBatch>()?;
    m.add_function(wrap_pyfunction!(score, m)?)?;
    m.add_function(wrap_pyfunction!(stats, m)?)?;
    Ok(())
}

fn hint(e: String) -> String {
    if e.contains("Struct(") {
        format!(
            "{e}; a Spark ML vector column must be converted first, e.g. with \
             pyspark.ml.functions.vector_to_array"
        )
    } else {
        e
    }
}
