//! The client: configuration, and sending one batch with retries and
//! failover.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;

use crate::batch::Batch;
use crate::endpoints::Endpoints;
use crate::error::ScoreError;
use crate::retry::{
    Backoff, RetryBudget, Retryable, classify_status, classify_transport, parse_retry_after,
};
use crate::stats::{Counters, Stats};

/// Client configuration. `ClientConfig::new(urls, columns)` gives the
/// defaults; every field is public to adjust.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Base URLs of the servers (`http://host:port`), or of an nginx in front.
    pub urls: Vec<String>,
    /// Input width n; sent as `X-Score-Columns` so a wrong schema fails at once.
    pub columns: usize,
    /// Model name (`/models/NAME/score`); `None` for the server's default.
    pub model: Option<String>,
    /// Model output (`?output=NAME`); `None` for the default output.
    pub output: Option<String>,
    /// Most rows per request.
    pub batch_rows: usize,
    /// Most body bytes per request (keep under the server's body limit).
    pub batch_bytes: usize,
    /// Most requests in flight for one stream: the backpressure window.
    pub in_flight: usize,
    /// Per-attempt timeout; the request is cancelled when it passes.
    pub timeout: Duration,
    /// Optional deadline for a whole stream.
    pub deadline: Option<Duration>,
    /// Most attempts per batch, the first included.
    pub max_attempts: u32,
    /// Backoff between attempts.
    pub backoff: Backoff,
    /// Retries allowed as a fraction of requests (the retry budget).
    pub retry_ratio: f64,
    /// Retries always allowed per second, whatever the ratio.
    pub retry_min_per_sec: f64,
    /// Consecutive failures that put an endpoint aside.
    pub eject_after: u32,
    /// How long an endpoint stays aside.
    pub eject_for: Duration,
    /// After a batch fails for good (refused, retries given up, wrong
    /// answer), yield its error and go on with the next batches instead of
    /// ending the output. For callers that record errors per row.
    pub keep_going: bool,
}

impl ClientConfig {
    /// Defaults for `urls` and a model of `columns` inputs: 4,096-row
    /// batches (at most 16 MiB), 4 in flight, 60 s per attempt, 8 attempts,
    /// retries capped at 20 % of requests plus 10 per second.
    pub fn new(urls: impl IntoIterator<Item = impl Into<String>>, columns: usize) -> Self {
        ClientConfig {
            urls: urls.into_iter().map(Into::into).collect(),
            columns,
            model: None,
            output: None,
            batch_rows: 4096,
            batch_bytes: 16 << 20,
            in_flight: 4,
            timeout: Duration::from_secs(60),
            deadline: None,
            max_attempts: 8,
            backoff: Backoff { base: Duration::from_millis(50), max: Duration::from_secs(10) },
            retry_ratio: 0.2,
            retry_min_per_sec: 10.0,
            eject_after: 3,
            eject_for: Duration::from_secs(10),
            keep_going: false,
        }
    }

    fn validate(&self) -> Result<(), ScoreError> {
        let fail = |m: &str| Err(ScoreError::Config(m.to_string()));
        if self.urls.is_empty() {
            return fail("at least one server URL is needed");
        }
        if self.columns == 0 {
            return fail("columns must be at least 1");
        }
        if self.batch_rows == 0 || self.in_flight == 0 || self.max_attempts == 0 {
            return fail("batch_rows, in_flight and max_attempts must be at least 1");
        }
        if let Some(url) =
            self.urls.iter().find(|u| !u.starts_with("http://") && !u.starts_with("https://"))
        {
            return Err(ScoreError::Config(format!("{url:?} is not an http:// URL")));
        }
        Ok(())
    }

    fn score_url(&self, base: &str) -> String {
        let base = base.trim_end_matches('/');
        let mut url = match &self.model {
            Some(model) => format!("{base}/models/{model}/score"),
            None => format!("{base}/score"),
        };
        if let Some(output) = &self.output {
            url.push_str("?output=");
            url.push_str(output);
        }
        url
    }
}

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

/// A scoring client. Cheap to clone; clones share endpoints, retry budget
/// and counters. The runtime and connection pool are per process.
#[derive(Clone, Debug)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) config: ClientConfig,
    pub(crate) endpoints: Endpoints,
    pub(crate) budget: RetryBudget,
    pub(crate) counters: Counters,
}

impl Client {
    /// Checks the configuration and builds a client.
    pub fn new(config: ClientConfig) -> Result<Client, ScoreError> {
        config.validate()?;
        let urls = config.urls.iter().map(|u| config.score_url(u)).collect();
        let endpoints = Endpoints::new(urls, config.eject_after, config.eject_for);
        let budget = RetryBudget::new(config.retry_ratio, config.retry_min_per_sec);
        Ok(Client {
            inner: Arc::new(Inner { config, endpoints, budget, counters: Counters::default() }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The counters so far.
    pub fn stats(&self) -> Stats {
        self.inner.counters.snapshot()
    }
}

impl Inner {
    /// Sends one batch until it is scored, fails for good, or runs out of
    /// attempts, budget or time.
    pub(crate) async fn score(
        &self,
        batch: Batch,
        deadline: Option<Instant>,
    ) -> Result<Scored, ScoreError> {
        let shared = crate::runtime::shared();
        self.counters.batch_started(batch.rows);
        self.budget.deposit();
        let mut attempt = 0u32;
        let mut avoid = None;
        loop {
            attempt += 1;
            let ix = self.endpoints.pick(avoid);
            let url = &self.endpoints.get(ix).url;
            let started = Instant::now();
            let outcome = {
                let _in_flight = self.endpoints.start(ix);
                self.counters.request(batch.body.len());
                let mut timeout = self.config.timeout;
                if let Some(d) = deadline {
                    timeout = timeout.min(d.saturating_duration_since(started));
                }
                self.send(&shared.http, url, batch.body.clone(), timeout).await
            };
            let (reason, retry_after, last) = match outcome {
                Ok(Response::Ok { rows, columns, body }) => {
                    self.endpoints.record(ix, true);
                    let scored = self.check(url, &batch, rows, columns, body)?;
                    self.counters.success(scored.values.len() * 4, started.elapsed());
                    return Ok(scored);
                }
                Ok(Response::Failed { status, message, retry_after }) => {
                    match classify_status(status) {
                        Some(reason) => {
                            (reason, retry_after, format!("{url}: HTTP {status}: {message}"))
                        }
                        None => {
                            self.counters.failed();
                            return Err(ScoreError::Rejected {
                                url: url.clone(),
                                status,
                                message,
                                first_row: batch.first_row,
                                rows: batch.rows,
                            });
                        }
                    }
                }
                Err(e) => (classify_transport(&e), None, format!("{url}: {e}")),
            };
            // 429 and 503 say "busy", not "broken": they do not eject.
            let broken = !matches!(reason, Retryable::TooManyRequests | Retryable::Unavailable);
            if self.endpoints.record(ix, !broken) {
                self.counters.ejected();
                tracing::warn!(%url, "endpoint put aside after repeated failures");
            }
            let give_up = |why: &str| {
                self.counters.failed();
                ScoreError::GaveUp {
                    first_row: batch.first_row,
                    rows: batch.rows,
                    attempts: attempt,
                    last: format!("{last} ({why})"),
                }
            };
            if attempt >= self.config.max_attempts {
                return Err(give_up("attempts exhausted"));
            }
            if !self.budget.withdraw() {
                return Err(give_up("retry budget exhausted"));
            }
            let wait = self.config.backoff.delay(attempt - 1, retry_after);
            if deadline.is_some_and(|d| Instant::now() + wait >= d) {
                return Err(give_up("the deadline would pass before the retry"));
            }
            self.counters.retry(reason);
            tracing::debug!(%last, ?wait, attempt, "retrying batch");
            tokio::time::sleep(wait).await;
            avoid = (self.endpoints.len() > 1).then_some(ix);
        }
    }

    async fn send(
        &self,
        http: &reqwest::Client,
        url: &str,
        body: Bytes,
        timeout: Duration,
    ) -> Result<Response, reqwest::Error> {
        let response = http
            .put(url)
            .header("content-type", "application/octet-stream")
            .header("x-score-columns", self.config.columns)
            .timeout(timeout)
            .body(body)
            .send()
            .await?;
        let status = response.status().as_u16();
        if status == 200 {
            let header = |name: &str| {
                response
                    .headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
            };
            let (rows, columns) = (header("x-score-rows"), header("x-score-columns"));
            let body = response.bytes().await?;
            return Ok(Response::Ok { rows, columns, body });
        }
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let text = response.text().await.unwrap_or_default();
        let message = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or_else(|| text.chars().take(500).collect());
        Ok(Response::Failed { status, message, retry_after })
    }

    /// Checks an answer against its request and decodes it.
    fn check(
        &self,
        url: &str,
        batch: &Batch,
        rows: Option<usize>,
        columns: Option<usize>,
        body: Bytes,
    ) -> Result<Scored, ScoreError> {
        let bad = |detail: String| {
            self.counters.failed();
            ScoreError::BadResponse {
                url: url.to_string(),
                first_row: batch.first_row,
                rows: batch.rows,
                detail,
            }
        };
        let columns = columns.ok_or_else(|| bad("no X-Score-Columns header".into()))?;
        if let Some(rows) = rows.filter(|r| *r != batch.rows) {
            return Err(bad(format!(
                "X-Score-Rows is {rows} for a request of {} rows",
                batch.rows
            )));
        }
        let expected = batch.rows * columns * 4;
        if columns == 0 || body.len() != expected {
            return Err(bad(format!(
                "{} bytes for {} rows × {columns} columns (expected {expected})",
                body.len(),
                batch.rows
            )));
        }
        let values =
            body.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        Ok(Scored { first_row: batch.first_row, rows: batch.rows, columns, values })
    }
}

enum Response {
    Ok { rows: Option<usize>, columns: Option<usize>, body: Bytes },
    Failed { status: u16, message: String, retry_after: Option<Duration> },
}

/// Asks a server for a model's input width (`GET /models/{name}`, or the
/// default model from `GET /models`). Blocking; call from a plain thread.
pub fn fetch_input_columns(base_url: &str, model: Option<&str>) -> Result<usize, ScoreError> {
    let shared = crate::runtime::shared();
    let base = base_url.trim_end_matches('/');
    let url = match model {
        Some(m) => format!("{base}/models/{m}"),
        None => format!("{base}/models"),
    };
    let fail = |detail: String| {
        ScoreError::Config(format!("cannot read the model's width from {url}: {detail}"))
    };
    let doc: serde_json::Value = shared
        .handle
        .block_on(async {
            let response = shared.http.get(&url).timeout(Duration::from_secs(30)).send().await?;
            response.error_for_status()?.json().await
        })
        .map_err(|e| fail(e.to_string()))?;
    let model_doc = match model {
        Some(_) => &doc,
        None => doc["models"]
            .as_array()
            .and_then(|ms| ms.iter().find(|m| m["default"] == true))
            .ok_or_else(|| fail("no default model listed".into()))?,
    };
    model_doc["input"]["columns"]
        .as_u64()
        .map(|c| c as usize)
        .ok_or_else(|| fail("no input.columns in the answer".into()))
}
