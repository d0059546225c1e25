//! `stream_client._native`: the Rust half of the Python package, and only
//! conversions: Python values to a [`ClientConfig`], pyarrow batches to and
//! from arrow-rs (through [`ffi`]), Rust errors to Python exceptions, and
//! the GIL released while waiting for the servers.
//!
//! The work itself is stream-client's record-batch job
//! ([`stream_client::arrow::score_record_batches`]): features extracted,
//! the bounded window, retries, order, the score and error columns. The
//! Python side (`python/stream_client/__init__.py`) holds the configuration
//! (`Scorer`, which pickles) and calls in here.

mod ffi;

use arrow_array::RecordBatch;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyIterator};
use stream_client::arrow::{ArrowOptions, JobError, ScoreBatches, score_record_batches};
use stream_client::{Client, ClientConfig, Token};

pyo3::create_exception!(
    stream_client,
    ScoreError,
    pyo3::exceptions::PyException,
    "Rows could not be scored: the server refused them, retries gave up, or the input is bad. \
     The message says which rows and why (with the server's own sentence when it answered)."
);

/// The one conversion of the job's errors into Python exceptions.
fn to_py(e: JobError<PyErr>) -> PyErr {
    match e {
        JobError::Input(e) => e,
        JobError::Invalid(m) => PyValueError::new_err(m),
        JobError::Score(m) => ScoreError::new_err(m),
        JobError::Output(e) => PyRuntimeError::new_err(e.to_string()),
    }
}

/// A validated client configuration (stream-client's `ClientConfig`). A
/// setting left `None` takes the library's default.
#[pyclass(frozen, module = "stream_client._native", name = "Config")]
struct PyConfig {
    config: ClientConfig,
}

#[pymethods]
impl PyConfig {
    /// The configuration from settings by name (`{"urls": "http://...",
    /// "batch_rows": "1024"}`): names, units, defaults and checks are the
    /// core's (`stream_client::settings`); a bad one is a `ValueError`
    /// naming it.
    #[new]
    fn new(settings: Vec<(String, String)>) -> PyResult<Self> {
        let pairs = settings.iter().map(|(n, v)| (n.as_str(), v.as_str()));
        let config =
            ClientConfig::from_settings(pairs).map_err(|e| PyValueError::new_err(e.to_string()))?;
        Ok(PyConfig { config })
    }

    /// A setting's value as the core holds it (`None` when unset).
    fn setting(&self, name: &str) -> Option<String> {
        self.config.setting(name)
    }
}

/// The library's defaults, for the Python signatures.
#[pyfunction]
fn defaults(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let d = ClientConfig::default();
    let out = PyDict::new(py);
    out.set_item("batch_rows", d.batch_rows)?;
    out.set_item("batch_bytes", d.batch_bytes)?;
    out.set_item("in_flight", d.in_flight)?;
    out.set_item("timeout", d.timeout.as_secs_f64())?;
    out.set_item("max_attempts", d.max_attempts)?;
    Ok(out)
}

/// Pulls pyarrow batches from a Python iterator, taking the GIL for each.
struct PyBatches {
    input: Py<PyIterator>,
}

impl Iterator for PyBatches {
    type Item = Result<RecordBatch, PyErr>;

    fn next(&mut self) -> Option<Self::Item> {
        Python::attach(|py| {
            let next = self.input.bind(py).clone().next()?;
            Some(next.and_then(|obj| ffi::import_batch(&obj)))
        })
    }
}

/// Iterator of scored record batches (wrap each with
/// `pyarrow.record_batch`): one per input batch, in input order.
#[pyclass(module = "stream_client._native")]
struct Scoring {
    batches: ScoreBatches<PyBatches, PyErr>,
}

#[pymethods]
impl Scoring {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&mut self, py: Python<'_>) -> PyResult<Option<ffi::ArrowBatch>> {
        let batches = &mut self.batches;
        match py.detach(|| batches.next()) {
            None => Ok(None),
            Some(Ok(batch)) => Ok(Some(ffi::ArrowBatch::new(batch))),
            Some(Err(e)) => Err(to_py(e)),
        }
    }
}

/// Scores an iterator of Arrow record batches; see the Python `Scorer`.
#[pyfunction]
#[pyo3(signature = (batches, config, *, features, keep, score_col, error_col, by_name=false))]
fn score(
    batches: &Bound<'_, PyAny>,
    config: &PyConfig,
    features: Option<Vec<String>>,
    keep: Vec<String>,
    score_col: String,
    error_col: Option<String>,
    by_name: bool,
) -> PyResult<Scoring> {
    // Logs go to stderr (the Spark executor's log); level in STREAM_CLIENT_LOG.
    stream_client::log_to_stderr("STREAM_CLIENT_LOG");
    let input = PyBatches { input: PyIterator::from_object(batches)?.unbind() };
    let options = ArrowOptions { features, keep, score_col, error_col, by_name };
    let batches = score_record_batches(config.config.clone(), options, input).map_err(to_py)?;
    Ok(Scoring { batches })
}

/// The model's description from the first of `urls` that answers (GIL
/// released while asking).
fn fetch_doc(
    py: Python<'_>,
    urls: &[String],
    model: Option<&str>,
    token: Option<String>,
) -> PyResult<score_protocol::ModelDoc> {
    let token = token.map(Token::new);
    py.detach(|| stream_client::fetch_model_any(urls, model, token.as_ref()))
        .map_err(|e| ScoreError::new_err(e.to_string()))
}

/// The model's description (`GET /models/{name}`, or the default model) as
/// JSON text, from the first of `urls` that answers.
#[pyfunction]
#[pyo3(signature = (urls, model=None, token=None))]
fn model_info(
    py: Python<'_>,
    urls: Vec<String>,
    model: Option<String>,
    token: Option<String>,
) -> PyResult<String> {
    let doc = fetch_doc(py, &urls, model.as_deref(), token)?;
    serde_json::to_string(&doc).map_err(|e| PyRuntimeError::new_err(e.to_string()))
}

/// Scores per row of `output` (`None`: the default output) of the model.
#[pyfunction]
#[pyo3(signature = (urls, model=None, output=None, token=None))]
fn score_columns(
    py: Python<'_>,
    urls: Vec<String>,
    model: Option<String>,
    output: Option<String>,
    token: Option<String>,
) -> PyResult<usize> {
    let doc = fetch_doc(py, &urls, model.as_deref(), token)?;
    doc.score_columns(output.as_deref()).map_err(ScoreError::new_err)
}

/// Counters summed over this process's clients: rows, requests, retries...
/// and the model version the answers came from, each endpoint's limit.
#[pyfunction]
fn stats(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let s = Client::shared_stats();
    let d = PyDict::new(py);
    d.set_item("model_version", s.model_version.clone())?;
    let limits = PyDict::new(py);
    for (url, limit) in &s.limits {
        limits.set_item(url, limit)?;
    }
    d.set_item("limits", limits)?;
    d.set_item("rows_sent", s.rows_sent)?;
    d.set_item("rows_scored", s.rows_scored)?;
    d.set_item("requests", s.requests)?;
    d.set_item("retries", s.total_retries())?;
    d.set_item("failed_batches", s.failed_batches)?;
    d.set_item("bytes_sent", s.bytes_sent)?;
    d.set_item("ejections", s.ejections)?;
    Ok(d)
}

/// The native module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("ScoreError", m.py().get_type::<ScoreError>())?;
    m.add_class::<PyConfig>()?;
    m.add_class::<Scoring>()?;
    m.add_class::<ffi::ArrowBatch>()?;
    m.add_function(wrap_pyfunction!(defaults, m)?)?;
    m.add_function(wrap_pyfunction!(score, m)?)?;
    m.add_function(wrap_pyfunction!(model_info, m)?)?;
    m.add_function(wrap_pyfunction!(score_columns, m)?)?;
    m.add_function(wrap_pyfunction!(stats, m)?)?;
    Ok(())
}
