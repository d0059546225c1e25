//! The client, and sending one batch with retries and failover.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use score_protocol::media::BodyFormat;
use score_protocol::models::{ModelDoc, ModelList};
use score_protocol::{ErrorBody, ErrorKind, codec, headers, retry_after};

use crate::adaptive::Signal;
use crate::batch::Batch;
pub use crate::batch::Scored;
use crate::config::{ClientConfig, Token};
use crate::endpoints::Endpoints;
use crate::error::ScoreError;
use crate::policy::{Decision, Outcome, Step, decide};
use crate::retry::{RetryBudget, Retryable, classify_status, classify_transport, describe};
use crate::stats::{Counters, Stats};

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
    /// Scores per row every answer must have: given, or the first answer's
    /// (0 until known).
    width: AtomicUsize,
    /// The model version every answer must come from: given, or the first
    /// answer's.
    pinned: OnceLock<String>,
    /// The `User-Agent` header, formatted once.
    user_agent: String,
}

impl Client {
    /// Checks the configuration and builds a client.
    pub fn new(config: ClientConfig) -> Result<Client, ScoreError> {
        config.validate()?;
        if config.columns == 0 {
            return Err(ScoreError::Config("columns must be at least 1".into()));
        }
        let urls = config.urls.iter().map(|u| config.score_url(u)).collect();
        let adaptive = config.adaptive.then_some(config.in_flight);
        let endpoints = Endpoints::new(urls, config.eject_after, config.eject_for, adaptive);
        let budget = RetryBudget::new(config.retry_ratio, config.retry_min_per_sec);
        let width = AtomicUsize::new(config.score_columns.unwrap_or(0));
        let pinned = OnceLock::new();
        if let Some(version) = &config.model_version {
            let _ = pinned.set(version.clone());
        }
        let user_agent = config.user_agent_header();
        Ok(Client {
            inner: Arc::new(Inner {
                config,
                endpoints,
                budget,
                counters: Counters::default(),
                width,
                pinned,
                user_agent,
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The counters so far, the pinned model version and each endpoint's
    /// concurrency limit now.
    pub fn stats(&self) -> Stats {
        self.inner.stats()
    }

    /// The model version this client's answers all come from: the one
    /// given up front, else the first answer's (`None` before it).
    pub fn model_version(&self) -> Option<String> {
        self.inner.pinned.get().cloned()
    }
}

impl Inner {
    /// See [`Client::stats`].
    pub(crate) fn stats(&self) -> Stats {
        let mut stats = self.counters.snapshot();
        stats.model_version = self.pinned.get().cloned();
        stats.limits = self
            .endpoints
            .limits()
            .into_iter()
            .filter_map(|(url, limit)| Some((url, limit?)))
            .collect();
        stats
    }

    /// Batches one stream keeps started now: `in_flight`, or with adaptive
    /// concurrency the endpoints' limits added up and a few more, when that
    /// is less (so a stream holds few more request bodies than the servers
    /// take).
    ///
    /// The few more ([`crate::adaptive::headroom`]) wait, encoded, for
    /// room under a limit, and go the moment a request ends. Without them
    /// the next request would leave only after the caller took the oldest
    /// result and assembled the next batch, and answers that came back out
    /// of order would hold places in the window: the servers would see
    /// fewer requests than their limits, and the limits would stop growing
    /// (they grow only when reached).
    pub(crate) fn window(&self) -> usize {
        let ceiling = self.config.in_flight;
        self.endpoints.total_limit().map_or(ceiling, |total| {
            (total + crate::adaptive::headroom(total, self.endpoints.len())).clamp(1, ceiling)
        })
    }

    /// Sends one batch until it is scored, fails for good, or runs out of
    /// attempts, budget or time. What follows an attempt is
    /// [`crate::policy::decide`]'s; this loop sends, records and sleeps.
    pub(crate) async fn score(
        &self,
        batch: Batch,
        deadline: Option<Instant>,
    ) -> Result<Scored, ScoreError> {
        let http = crate::runtime::shared().http;
        self.counters.batch_started(batch.rows);
        self.budget.deposit();
        let mut attempt = 0u32;
        let mut avoid = None;
        // Since when, and how often, this batch has failed to connect.
        let mut unreachable: Option<(Instant, u32)> = None;
        let mut reconnecting = false;
        loop {
            if !reconnecting {
                attempt += 1;
            }
            let in_flight = match deadline {
                None => self.endpoints.start(avoid).await,
                Some(d) => tokio::time::timeout_at(d.into(), self.endpoints.start(avoid))
                    .await
                    .map_err(|_| {
                        self.counters.failed();
                        ScoreError::GaveUp {
                            first_row: batch.first_row,
                            rows: batch.rows,
                            attempts: attempt - 1,
                            last: "the deadline passed while every server was at its limit".into(),
                        }
                    })?,
            };
            let ix = in_flight.index();
            let url = &self.endpoints.get(ix).url;
            let started = Instant::now();
            let mut timeout = self.config.timeout;
            if let Some(d) = deadline {
                timeout = timeout.min(d.saturating_duration_since(started));
            }
            let outcome = {
                let _in_flight = in_flight;
                self.counters.request(batch.body.len());
                self.attempt(&http, url, &batch, timeout).await
            };
            self.record(ix, url, &outcome, started.elapsed());
            unreachable = match (&outcome, unreachable) {
                (Outcome::Transient { reason: Retryable::Connect, .. }, None) => Some((started, 1)),
                (Outcome::Transient { reason: Retryable::Connect, .. }, Some((since, n))) => {
                    Some((since, n + 1))
                }
                _ => None,
            };
            let step = Step {
                attempt,
                max_attempts: self.config.max_attempts,
                endpoint: ix,
                endpoints: self.endpoints.len(),
                url,
                first_row: batch.first_row,
                rows: batch.rows,
                pinned: self.pinned.get().map(String::as_str),
                deadline,
                now: Instant::now(),
                unreachable,
                timeout: self.config.timeout,
            };
            reconnecting = false;
            match decide(&step, outcome, &self.budget, &self.config.backoff) {
                Decision::Done(scored) => {
                    self.counters.success(scored.values.len() * 4, started.elapsed());
                    return Ok(scored);
                }
                Decision::Fail(error) => {
                    self.counters.failed();
                    return Err(error);
                }
                Decision::Retry { wait, avoid: next, reason, last } => {
                    self.counters.retry(reason);
                    tracing::debug!(%last, ?wait, attempt, "retrying batch");
                    if !wait.is_zero() {
                        tokio::time::sleep(wait).await;
                    }
                    avoid = next;
                }
                Decision::Reconnect { wait, avoid: next, last } => {
                    self.counters.retry(Retryable::Connect);
                    tracing::debug!(%last, ?wait, attempt, "connecting again");
                    if !wait.is_zero() {
                        tokio::time::sleep(wait).await;
                    }
                    avoid = next;
                    reconnecting = true;
                }
            }
        }
    }

    /// What an attempt says of its endpoint: the adaptive limit's signal,
    /// and its health (a version it should not serve puts it aside; 429
    /// and 503 say "busy", not "broken", and do not eject).
    fn record(&self, ix: usize, url: &str, outcome: &Outcome, rtt: Duration) {
        let signal = match outcome {
            Outcome::Scored(_, queued) => Signal::Answer { rtt, queued: *queued },
            Outcome::Transient { reason, .. } if reason.is_back_pressure() => Signal::BackPressure,
            _ => Signal::Other,
        };
        self.endpoints.observe(ix, signal);
        match outcome {
            Outcome::Scored(..) => {
                self.endpoints.record(ix, true);
            }
            Outcome::WrongVersion { .. } => self.endpoints.put_aside(ix),
            Outcome::Transient { reason, .. } => {
                let busy = matches!(reason, Retryable::TooManyRequests | Retryable::Unavailable);
                if self.endpoints.record(ix, busy) {
                    self.counters.ejected();
                    tracing::warn!(%url, "endpoint put aside after repeated failures");
                }
            }
            Outcome::Refused { .. } | Outcome::Bad(_) => {}
        }
    }

    /// One request: sends the batch and reads the answer, never more of it
    /// than the batch's rows can need.
    async fn attempt(
        &self,
        http: &reqwest::Client,
        url: &str,
        batch: &Batch,
        timeout: Duration,
    ) -> Outcome {
        let transport = |e: reqwest::Error| Outcome::Transient {
            reason: classify_transport(&e),
            retry_after: None,
            message: describe(&e, timeout),
        };
        let mut request = authorized(http.put(url), self.config.token.as_ref())
            .header(reqwest::header::USER_AGENT, self.user_agent.as_str())
            .header(reqwest::header::CONTENT_TYPE, batch.format.media_type());
        if let Some(version) = self.pinned.get() {
            // The server refuses (409) rather than score with another.
            request = request.header(headers::MODEL_VERSION, version.as_str());
        }
        if batch.format == BodyFormat::Binary {
            request = request.header(headers::COLUMNS, self.config.columns);
        }
        let sent = request
            // Work the server cannot start before we give up is work for
            // nobody: tell it when that is.
            .header(headers::DEADLINE_MS, timeout.as_millis().max(1) as u64)
            .timeout(timeout)
            .body(batch.body.clone())
            .send()
            .await;
        let mut response = match sent {
            Ok(response) => response,
            Err(e) => return transport(e),
        };
        let status = response.status().as_u16();
        if status != 200 {
            return self.failed(response, status).await;
        }
        let header = |name: &str| {
            response.headers().get(name).map(|v| v.to_str().ok().and_then(|v| v.parse().ok()))
        };
        let Some(Some(columns)) = header(headers::COLUMNS) else {
            return Outcome::Bad("no valid X-Score-Columns header".into());
        };
        if let Some(rows) = header(headers::ROWS)
            && rows != Some(batch.rows)
        {
            return Outcome::Bad(format!(
                "X-Score-Rows is {} for a request of {} rows",
                rows.map_or("not a number".into(), |r| r.to_string()),
                batch.rows
            ));
        }
        let served = model_version(&response);
        if let Some(served) = served {
            let pinned = self.pinned.get_or_init(|| {
                tracing::info!(version = %served, "model version pinned for this job");
                served.clone()
            });
            if *pinned != served {
                return Outcome::WrongVersion {
                    message: format!("answered by model version {served}, not {pinned}"),
                    served: Some(served),
                };
            }
        }
        if let Err(detail) = self.check_width(columns) {
            return Outcome::Bad(detail);
        }
        let queued = response
            .headers()
            .get(headers::QUEUE_MS)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|ms| ms.is_finite() && *ms >= 0.0)
            .map(|ms| Duration::from_secs_f64(ms / 1e3));
        let body = match read_answer(&mut response, batch.rows, columns, timeout).await {
            Ok(body) => body,
            Err(outcome) => return outcome,
        };
        let mut values = Vec::with_capacity(batch.rows * columns);
        if let Err(e) = codec::decode_into(&body, &mut values) {
            return Outcome::Bad(e.to_string());
        }
        Outcome::Scored(
            Scored { first_row: batch.first_row, rows: batch.rows, columns, values },
            queued,
        )
    }

    /// A non-200 answer: transient or a refusal, with the server's sentence.
    async fn failed(&self, response: reqwest::Response, status: u16) -> Outcome {
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| retry_after::parse(v, SystemTime::now()));
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let served = model_version(&response);
        // An error body is a sentence; read at most a little of anything else.
        let text = read_capped(response, 64 << 10).await;
        if let Some(body) = ErrorBody::parse(&text)
            && body.kind == ErrorKind::VersionMismatch
        {
            return Outcome::WrongVersion { served, message: body.error };
        }
        let mut message = ErrorBody::message_of(&text, 500)
            .unwrap_or_else(|| format!("HTTP {status} with no message"));
        if (300..400).contains(&status) {
            message = format!(
                "redirected to {}; the client does not follow redirects (the body would be sent \
                 again to another origin): give the final URL",
                location.as_deref().unwrap_or("(no Location)")
            );
        }
        match classify_status(status) {
            Some(reason) => Outcome::Transient {
                reason,
                retry_after,
                message: format!("HTTP {status}: {message}"),
            },
            None => Outcome::Refused { status, message },
        }
    }

    /// Checks an answer's width against the model's, learning it from the
    /// first answer when it was not given.
    fn check_width(&self, columns: usize) -> Result<(), String> {
        if columns == 0 {
            return Err("X-Score-Columns is 0".into());
        }
        match self.width.compare_exchange(0, columns, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => Ok(()),
            Err(known) if known == columns => Ok(()),
            Err(known) => Err(format!(
                "{columns} scores per row, but the model's output has {known} (the model \
                 changed under the job?)"
            )),
        }
    }
}

/// The model version an answer names (`X-Model-Version`: on a 200 the
/// version that scored it, on a 409 the one the server serves).
fn model_version(response: &reqwest::Response) -> Option<String> {
    response.headers().get(headers::MODEL_VERSION)?.to_str().ok().map(str::to_string)
}

/// The answer's body: exactly `rows × columns` floats' bytes, never more
/// read than that (a longer or shorter answer is an [`Outcome`] too).
async fn read_answer(
    response: &mut reqwest::Response,
    rows: usize,
    columns: usize,
    timeout: Duration,
) -> Result<Vec<u8>, Outcome> {
    let Some(expected) = codec::body_len(rows, columns) else {
        return Err(Outcome::Bad(format!(
            "X-Score-Columns {columns} cannot be the width of {rows} rows"
        )));
    };
    if let Some(len) = response.content_length().filter(|len| *len != expected as u64) {
        return Err(Outcome::Bad(format!(
            "{len} bytes announced for {rows} rows × {columns} columns (expected {expected})"
        )));
    }
    let mut body = Vec::with_capacity(expected);
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) if body.len() + chunk.len() > expected => {
                return Err(Outcome::Bad(format!(
                    "more than the {expected} bytes of {rows} rows × {columns} columns"
                )));
            }
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) => break,
            Err(e) => {
                return Err(Outcome::Transient {
                    reason: classify_transport(&e),
                    retry_after: None,
                    message: format!(
                        "answer cut short: received {} of {expected} bytes ({})",
                        body.len(),
                        describe(&e, timeout)
                    ),
                });
            }
        }
    }
    if body.len() != expected {
        return Err(Outcome::Transient {
            reason: Retryable::Io,
            retry_after: None,
            message: format!("answer cut short: received {} of {expected} bytes", body.len()),
        });
    }
    Ok(body)
}

/// `request` with the bearer token, if there is one.
fn authorized(request: reqwest::RequestBuilder, token: Option<&Token>) -> reqwest::RequestBuilder {
    match token {
        Some(token) => request.header(reqwest::header::AUTHORIZATION, token.header()),
        None => request,
    }
}

/// Reads at most `cap` bytes of a body (the rest is dropped with the
/// connection).
async fn read_capped(mut response: reqwest::Response, cap: usize) -> Vec<u8> {
    let mut out = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = cap.saturating_sub(out.len());
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if out.len() >= cap {
            break;
        }
    }
    out
}

/// Largest `/models` answer read: a list of a few hundred models is tens of
/// KiB; anything near this is not a model list, and reading it whole
/// would let whatever answers take the client's memory.
const MAX_DESCRIPTION: usize = 16 << 20;

/// Asks a server for a model's description (`GET /models/{name}`, or the
/// default model from `GET /models`). Blocking; call from a plain thread.
pub fn fetch_model(
    base_url: &str,
    model: Option<&str>,
    token: Option<&Token>,
) -> Result<ModelDoc, ScoreError> {
    let shared = crate::runtime::shared();
    let base = base_url.trim_end_matches('/');
    let url = match model {
        Some(m) => format!("{base}/models/{m}"),
        None => format!("{base}/models"),
    };
    let timeout = Duration::from_secs(30);
    let fail = |detail: String| ScoreError::Describe(format!("{url}: {detail}"));
    let (status, body): (u16, Vec<u8>) = shared
        .handle
        .block_on(async {
            let request = authorized(shared.http.get(&url), token);
            let response = request.timeout(timeout).send().await?;
            let status = response.status().as_u16();
            // One byte past the cap tells a whole answer from a cut one.
            Ok((status, read_capped(response, MAX_DESCRIPTION + 1).await))
        })
        .map_err(|e: reqwest::Error| fail(describe(&e, timeout)))?;
    if body.len() > MAX_DESCRIPTION {
        return Err(fail(format!(
            "the answer is larger than {} MiB; that is not a model list (is the URL a \
             score-server?)",
            MAX_DESCRIPTION >> 20
        )));
    }
    if status != 200 {
        let message = ErrorBody::message_of(&body, 500).unwrap_or_default();
        return Err(fail(format!("HTTP {status}: {message}")));
    }
    let parse_error = |e: serde_json::Error| fail(format!("not a model description: {e}"));
    match model {
        Some(_) => serde_json::from_slice::<ModelDoc>(&body).map_err(parse_error),
        None => serde_json::from_slice::<ModelList>(&body)
            .map_err(parse_error)?
            .default_model()
            .cloned()
            .ok_or_else(|| fail("no default model listed".into())),
    }
}

/// Asks the servers in turn for a model's description: the first answer,
/// or every failure when none answers. Blocking; call from a plain thread.
pub fn fetch_model_any(
    urls: &[String],
    model: Option<&str>,
    token: Option<&Token>,
) -> Result<ModelDoc, ScoreError> {
    let mut failures = Vec::new();
    for url in urls {
        match fetch_model(url, model, token) {
            Ok(doc) => return Ok(doc),
            Err(ScoreError::Describe(why)) => failures.push(why),
            Err(e) => failures.push(e.to_string()),
        }
    }
    if failures.is_empty() {
        return Err(ScoreError::Config("no server URL given".into()));
    }
    Err(ScoreError::Describe(failures.join("; ")))
}

/// Asks a server for a model's input width. Blocking; call from a plain
/// thread.
pub fn fetch_input_columns(
    base_url: &str,
    model: Option<&str>,
    token: Option<&Token>,
) -> Result<usize, ScoreError> {
    fetch_model(base_url, model, token).map(|doc| doc.input.columns)
}

/// This process's clients by configuration: the tasks a process runs (a
/// Python worker's, a JVM executor's) share endpoint health and the retry
/// budget. Keyed by pid too: a forked child must not use its parent's.
static SHARED: std::sync::Mutex<Option<(u32, std::collections::HashMap<ClientConfig, Client>)>> =
    std::sync::Mutex::new(None);

impl Client {
    /// The process's client for `config`, built on first use.
    pub fn shared(config: ClientConfig) -> Result<Client, ScoreError> {
        let pid = std::process::id();
        let mut guard = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        let clients = match guard.as_mut() {
            Some((p, clients)) if *p == pid => clients,
            _ => &mut guard.insert((pid, Default::default())).1,
        };
        if let Some(client) = clients.get(&config) {
            return Ok(client.clone());
        }
        let client = Client::new(config.clone())?;
        clients.insert(config, client.clone());
        Ok(client)
    }

    /// The counters of every client [`Client::shared`] made in this process,
    /// added up.
    pub fn shared_stats() -> Stats {
        let guard = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        let mut total = Stats::default();
        if let Some((pid, clients)) = guard.as_ref()
            && *pid == std::process::id()
        {
            for client in clients.values() {
                total.add(&client.stats());
            }
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adaptive::INITIAL;

    fn client(urls: usize, in_flight: usize, adaptive: bool) -> Client {
        let urls: Vec<String> = (0..urls).map(|i| format!("http://127.0.0.{}:9", i + 1)).collect();
        let mut config = ClientConfig::new(urls, 1);
        config.in_flight = in_flight;
        config.adaptive = adaptive;
        Client::new(config).expect("config")
    }

    #[test]
    fn the_window_is_the_limits_and_some_headroom_under_the_ceiling() {
        // Three endpoints starting at INITIAL each, two batches each waiting.
        assert_eq!(client(3, 32, true).inner.window(), 3 * INITIAL + 6);
        assert_eq!(client(1, 32, true).inner.window(), INITIAL + 2);
        // The ceiling bounds it, and a fixed window is `in_flight`.
        assert_eq!(client(3, 8, true).inner.window(), 8);
        assert_eq!(client(3, 32, false).inner.window(), 32);
    }
}
