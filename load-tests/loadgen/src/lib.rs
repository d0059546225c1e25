//! `loadgen`: a load generator for scoring endpoints that take a binary
//! float32 matrix by `PUT` (score-server, or the Flask design it replaces).
//!
//! Two modes:
//! - **closed loop** (`--concurrency C`): C connections, each sending its
//!   next request as soon as the previous answer arrives. Measures the
//!   throughput a fixed number of callers gets.
//! - **open loop** (`--rate R`): requests start on a fixed schedule, R per
//!   second, whatever the answers do, over as many connections as needed
//!   (at most `--max-in-flight`; a request that finds the cap reached is
//!   counted as `dropped`). Latency is measured from the scheduled start,
//!   so a stalled server shows up in the percentiles instead of silently
//!   slowing the generator down (no coordinated omission).
//!
//! Either stops starting requests after `--duration` or `--requests`, then
//! waits for the answers of those in flight: every request started in the
//! measured window is counted once, and the window ends at the last answer.
//! The report gives rows/s and requests/s of successful answers, latency
//! percentiles of successful answers, and every other outcome by HTTP
//! status or error.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;

pub mod http1;

use http1::Connection;

/// Command-line arguments.
#[derive(Clone, Debug, clap::Parser)]
#[command(version, about = "Load generator for PUT /score endpoints (closed or open loop).")]
pub struct Args {
    /// Endpoint, e.g. http://127.0.0.1:8099/score or
    /// http://127.0.0.1:8099/models/mlp/score.
    #[arg(long, default_value = "http://127.0.0.1:8099/score")]
    pub url: String,
    /// Model name: shorthand for URL path /models/NAME/score on the URL's host.
    #[arg(long)]
    pub model: Option<String>,
    /// Features per row (the model's input width).
    #[arg(long, default_value_t = 100)]
    pub columns: usize,
    /// Rows per request.
    #[arg(long, default_value_t = 1000)]
    pub rows: usize,
    /// Closed loop with this many connections (the default mode, 1).
    #[arg(long, conflicts_with = "rate")]
    pub concurrency: Option<usize>,
    /// Open loop at this many requests per second.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Open loop: most requests in flight; beyond it a request is dropped.
    #[arg(long, default_value_t = 1024)]
    pub max_in_flight: usize,
    /// Stop after this long (measured after the warm-up).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Stop after this many requests (whichever comes first).
    #[arg(long)]
    pub requests: Option<u64>,
    /// Load sent before measuring starts, not counted.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub warmup: Duration,
    /// Per-request timeout.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// How the rows are encoded: `binary` (float32 row-major), `arrow-list`
    /// (an Arrow IPC stream of one list<float32> column) or `arrow-columns`
    /// (an Arrow IPC stream of one float32 column per feature, as Spark
    /// holds separate feature columns).
    #[arg(long, value_enum, default_value_t = BodyLayout::Binary)]
    pub format: BodyLayout,
    /// The input's name for the `v2-*` formats, and the member holding the
    /// rows for `json-rows`.
    #[arg(long, default_value = "X")]
    pub input: String,
    /// The output asked for by the `v2-*` formats.
    #[arg(long, default_value = "probabilities")]
    pub output: String,
    /// Do not send X-Score-Columns (for endpoints that do not know it).
    #[arg(long)]
    pub no_columns_header: bool,
    /// Print the report as one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// KEY=VALUE added to the JSON report (repeatable), to label a run.
    #[arg(long = "tag", value_parser = parse_tag)]
    pub tags: Vec<(String, String)>,
}

fn parse_tag(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("{s:?} is not KEY=VALUE"))?;
    Ok((k.to_string(), v.to_string()))
}

/// What a run measured.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// `closed` or `open`.
    pub mode: &'static str,
    /// Closed loop: connections. Open loop: the most in flight at once.
    pub concurrency: usize,
    /// Open loop: the target rate (requests/s).
    pub rate: Option<f64>,
    /// Rows per request.
    pub rows: usize,
    /// From the end of the warm-up to the last answer.
    pub elapsed: Duration,
    /// Answers by HTTP status (200 included).
    pub statuses: BTreeMap<u16, u64>,
    /// Requests that failed without an HTTP answer (connect, reset, timeout).
    pub transport_errors: u64,
    /// 200 answers whose X-Score-Rows did not match the rows sent.
    pub wrong_answers: u64,
    /// Open loop: requests not sent because `max_in_flight` were in flight.
    pub dropped: u64,
    /// Latency of each successful (200) answer, sorted, in microseconds.
    pub latencies_us: Vec<u64>,
}

impl Report {
    /// Successful answers.
    pub fn ok(&self) -> u64 {
        self.statuses.get(&200).copied().unwrap_or(0) - self.wrong_answers
    }

    /// Every answer or failure.
    pub fn total(&self) -> u64 {
        self.statuses.values().sum::<u64>() + self.transport_errors
    }

    /// Scored rows per second.
    pub fn rows_per_sec(&self) -> f64 {
        (self.ok() * self.rows as u64) as f64 / self.elapsed.as_secs_f64()
    }

    /// Successful requests per second.
    pub fn requests_per_sec(&self) -> f64 {
        self.ok() as f64 / self.elapsed.as_secs_f64()
    }

    /// Latency quantile `q` (0..=1) of successful answers.
    pub fn quantile(&self, q: f64) -> Duration {
        Duration::from_micros(quantile(&self.latencies_us, q))
    }

    /// The report as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        serde_json::json!({
            "mode": self.mode,
            "concurrency": self.concurrency,
            "rate": self.rate,
            "rows_per_request": self.rows,
            "seconds": self.elapsed.as_secs_f64(),
            "ok": self.ok(),
            "rows_per_s": self.rows_per_sec(),
            "requests_per_s": self.requests_per_sec(),
            "p50_ms": ms(self.quantile(0.5)),
            "p90_ms": ms(self.quantile(0.9)),
            "p99_ms": ms(self.quantile(0.99)),
            "max_ms": ms(self.quantile(1.0)),
            "statuses": self.statuses.iter().map(|(s, n)| (s.to_string(), *n)).collect::<BTreeMap<_, _>>(),
            "transport_errors": self.transport_errors,
            "wrong_answers": self.wrong_answers,
            "dropped": self.dropped,
        })
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |q: f64| self.quantile(q).as_secs_f64() * 1e3;
        let load = match self.rate {
            Some(rate) => {
                format!("open loop at {rate} req/s (at most {} in flight)", self.concurrency)
            }
            None => format!("closed loop, {} connections", self.concurrency),
        };
        writeln!(
            f,
            "{load}, {} rows a request, {:.2} s measured",
            self.rows,
            self.elapsed.as_secs_f64()
        )?;
        writeln!(
            f,
            "  {:.0} rows/s, {:.1} requests/s ({} ok)",
            self.rows_per_sec(),
            self.requests_per_sec(),
            self.ok()
        )?;
        writeln!(
            f,
            "  latency of ok answers: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            ms(0.5),
            ms(0.9),
            ms(0.99),
            ms(1.0)
        )?;
        write!(
            f,
            "  statuses {:?}, transport errors {}, wrong answers {}, dropped {}",
            self.statuses, self.transport_errors, self.wrong_answers, self.dropped
        )
    }
}

/// Nearest-rank quantile of sorted values (0 when empty).
pub fn quantile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A request body of `rows × columns` float32 values, deterministic.
pub fn body(rows: usize, columns: usize) -> Bytes {
    score_protocol::codec::encode(&values(rows, columns)).into()
}

fn values(rows: usize, columns: usize) -> Vec<f32> {
    let mut rng = fastrand::Rng::with_seed(7);
    (0..rows * columns).map(|_| rng.f32() * 4.0 - 2.0).collect()
}

/// How a request's rows are encoded (`--format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BodyLayout {
    /// float32 little-endian, row-major.
    Binary,
    /// An Arrow IPC stream of one `list<float32>` column.
    ArrowList,
    /// An Arrow IPC stream of one float32 column per feature.
    ArrowColumns,
    /// The Open Inference Protocol with the binary tensor data extension:
    /// a JSON header naming one FP32 `[rows, columns]` input (`--input`)
    /// and the output `probabilities` in binary, then the rows, `POST`ed
    /// to `/v2/models/NAME/infer` (`--model`, else the URL's path).
    V2Binary,
    /// The Open Inference Protocol in JSON: the same input with its values
    /// in `data`, the output (`--output`) answered in JSON. For servers
    /// without the binary extension (MLServer).
    V2Json,
    /// A JSON object whose member `--input` holds the rows as arrays of
    /// numbers, `POST`ed to the URL's path: how BentoML takes a numpy
    /// array.
    JsonRows,
}

/// The same rows as [`body`], as an Arrow IPC stream laid out as `layout`
/// says (the binary body for [`BodyLayout::Binary`]).
pub fn body_as(layout: BodyLayout, rows: usize, columns: usize) -> anyhow::Result<Bytes> {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, Float32Array, ListArray, RecordBatch};
    let values = values(rows, columns);
    let batch = match layout {
        BodyLayout::Binary | BodyLayout::V2Binary | BodyLayout::V2Json | BodyLayout::JsonRows => {
            return Ok(body(rows, columns));
        }
        BodyLayout::ArrowList => {
            let item =
                Arc::new(arrow_schema::Field::new("item", arrow_schema::DataType::Float32, false));
            let offsets =
                arrow_buffer::OffsetBuffer::from_lengths(std::iter::repeat_n(columns, rows));
            let list =
                ListArray::try_new(item, offsets, Arc::new(Float32Array::from(values)), None)?;
            RecordBatch::try_from_iter([("features", Arc::new(list) as ArrayRef)])?
        }
        BodyLayout::ArrowColumns => RecordBatch::try_from_iter((0..columns).map(|c| {
            let column: Vec<f32> = values.iter().skip(c).step_by(columns).copied().collect();
            (format!("f{c}"), Arc::new(Float32Array::from(column)) as ArrayRef)
        }))?,
    };
    let mut writer = arrow_ipc::writer::StreamWriter::try_new(Vec::new(), &batch.schema())?;
    writer.write(&batch)?;
    writer.finish()?;
    Ok(writer.into_inner()?.into())
}

/// Where and what to send.
struct Target {
    /// `host:port` to connect to.
    address: String,
    /// The whole request, head and body, encoded once.
    request: Bytes,
    rows: usize,
    timeout: Duration,
}

impl Target {
    fn new(args: &Args) -> anyhow::Result<Target> {
        let uri: http::Uri =
            args.url.parse().with_context(|| format!("bad --url {:?}", args.url))?;
        if uri.scheme_str() != Some("http") {
            bail!("--url must be http:// (got {:?})", args.url);
        }
        let authority = uri.authority().context("--url has no host")?;
        let port = authority.port_u16().unwrap_or(80);
        let v2 = matches!(args.format, BodyLayout::V2Binary | BodyLayout::V2Json);
        let path = match &args.model {
            Some(model) if v2 => format!("/v2/models/{model}/infer"),
            Some(model) => format!("/models/{model}/score"),
            None => uri.path_and_query().map_or("/score".into(), |p| p.to_string()),
        };
        if args.rows == 0 || args.columns == 0 {
            bail!("--rows and --columns must be at least 1");
        }
        let media = match args.format {
            BodyLayout::V2Json | BodyLayout::JsonRows => score_protocol::media::JSON,
            BodyLayout::Binary | BodyLayout::V2Binary => score_protocol::media::OCTET_STREAM,
            BodyLayout::ArrowList | BodyLayout::ArrowColumns => score_protocol::media::ARROW_STREAM,
        };
        let mut headers = vec![("content-type", media.to_string())];
        if !args.no_columns_header && !v2 && args.format != BodyLayout::JsonRows {
            headers.push((score_protocol::headers::COLUMNS, args.columns.to_string()));
        }
        let mut body = body_as(args.format, args.rows, args.columns)?;
        let mut method = "PUT";
        if args.format == BodyLayout::V2Binary {
            // As tritonclient sends it: the JSON header, then the tensor.
            let header = serde_json::json!({
                "inputs": [{"name": args.input, "shape": [args.rows, args.columns],
                            "datatype": "FP32", "parameters": {"binary_data_size": body.len()}}],
                "outputs": [{"name": args.output, "parameters": {"binary_data": true}}],
            })
            .to_string();
            headers.push(("inference-header-content-length", header.len().to_string()));
            let mut joined = header.into_bytes();
            joined.extend_from_slice(&body);
            body = joined.into();
            method = "POST";
        } else if args.format == BodyLayout::V2Json {
            body = serde_json::json!({
                "inputs": [{"name": args.input, "shape": [args.rows, args.columns],
                            "datatype": "FP32", "data": values(args.rows, args.columns)}],
                "outputs": [{"name": args.output}],
            })
            .to_string()
            .into();
            method = "POST";
        } else if args.format == BodyLayout::JsonRows {
            let values = values(args.rows, args.columns);
            let rows: Vec<&[f32]> = values.chunks(args.columns).collect();
            body = serde_json::json!({ args.input.as_str(): rows }).to_string().into();
            method = "POST";
        }
        Ok(Target {
            address: format!("{}:{port}", authority.host()),
            request: http1::encode(method, &path, authority.as_str(), &headers, &body),
            rows: args.rows,
            timeout: args.timeout,
        })
    }

    async fn connect(&self) -> anyhow::Result<Connection> {
        Connection::connect(&self.address).await
    }

    /// One request on `connection`, or on a new one when it is `None`: the
    /// status and whether X-Score-Rows matched. Gives the connection back
    /// when it can carry another request (the exchange went through and the
    /// answer did not close it); otherwise the caller connects again.
    async fn exchange(
        &self,
        connection: Option<Connection>,
    ) -> (Option<Connection>, anyhow::Result<(u16, bool)>) {
        let mut connection = match connection {
            Some(c) => c,
            None => match self.connect().await {
                Ok(c) => c,
                Err(e) => return (None, Err(e)),
            },
        };
        match tokio::time::timeout(self.timeout, connection.exchange(&self.request)).await {
            Ok(Ok(answer)) => {
                let rows_ok = answer.rows.is_none_or(|r| r == self.rows);
                (answer.keep_alive.then_some(connection), Ok((answer.status, rows_ok)))
            }
            Ok(Err(e)) => (None, Err(e)),
            Err(_) => (None, Err(anyhow::anyhow!("timed out"))),
        }
    }
}

/// Outcomes, shared by the tasks of a run.
#[derive(Default)]
struct Recorder {
    statuses: BTreeMap<u16, u64>,
    transport_errors: u64,
    wrong_answers: u64,
    latencies_us: Vec<u64>,
}

impl Recorder {
    fn record(&mut self, outcome: &anyhow::Result<(u16, bool)>, latency: Duration) {
        match outcome {
            Ok((status, rows_ok)) => {
                *self.statuses.entry(*status).or_default() += 1;
                if *status == 200 {
                    if *rows_ok {
                        self.latencies_us.push(latency.as_micros() as u64);
                    } else {
                        self.wrong_answers += 1;
                    }
                }
            }
            Err(_) => self.transport_errors += 1,
        }
    }
}

/// What the tasks of a run share.
struct Run {
    target: Target,
    recorder: Mutex<Recorder>,
    /// Start of the run (the warm-up's): the open loop's schedule counts
    /// from here, so a scheduler thread that starts late still schedules
    /// every slot of the run (late, then on time).
    start: Instant,
    /// End of the warm-up.
    measure_from: Instant,
    /// No request starts at or after this.
    stop: Instant,
    /// Requests left (`--requests`), counted from the end of the warm-up.
    budget: AtomicU64,
}

impl Run {
    /// Whether a request may start at `at`: before the stop and, once
    /// measuring, within the request budget (which it then uses).
    fn may_start(&self, at: Instant) -> bool {
        let take =
            || self.budget.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        at < self.stop && (at < self.measure_from || take().is_ok())
    }

    /// Records an outcome if the request started in the measured window.
    fn record(&self, started: Instant, outcome: &anyhow::Result<(u16, bool)>) {
        if started >= self.measure_from {
            self.recorder.lock().expect("recorder").record(outcome, started.elapsed());
        }
    }
}

/// Runs the load the arguments describe and reports it.
pub async fn run(args: &Args) -> anyhow::Result<Report> {
    let target = Target::new(args)?;
    // Fail fast on a wrong address instead of reporting only errors.
    target.connect().await?;
    let start = Instant::now();
    let measure_from = start + args.warmup;
    let run = Arc::new(Run {
        target,
        recorder: Mutex::default(),
        start,
        measure_from,
        stop: measure_from + args.duration,
        budget: AtomicU64::new(args.requests.unwrap_or(u64::MAX)),
    });
    let mut report = match args.rate {
        None => {
            let concurrency = args.concurrency.unwrap_or(1).max(1);
            closed(&run, concurrency).await;
            Report { mode: "closed", concurrency, ..Report::default() }
        }
        Some(rate) => {
            if !(rate > 0.0 && rate.is_finite()) {
                bail!("--rate must be a positive number");
            }
            let dropped = open(&run, rate, args.max_in_flight).await?;
            Report {
                mode: "open",
                concurrency: args.max_in_flight,
                rate: Some(rate),
                dropped,
                ..Report::default()
            }
        }
    };
    // Every request started in the window is counted, with its answer even
    // if that came after the window closed: the run is measured up to its
    // last answer.
    let ended = Instant::now();
    let recorder = std::mem::take(&mut *run.recorder.lock().expect("recorder"));
    report.rows = run.target.rows;
    report.elapsed = ended.saturating_duration_since(measure_from).max(Duration::from_micros(1));
    report.statuses = recorder.statuses;
    report.transport_errors = recorder.transport_errors;
    report.wrong_answers = recorder.wrong_answers;
    report.latencies_us = recorder.latencies_us;
    report.latencies_us.sort_unstable();
    Ok(report)
}

/// `concurrency` tasks, each with its own connection, each sending the next
/// request when the last is answered.
async fn closed(run: &Arc<Run>, concurrency: usize) {
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let run = run.clone();
            tokio::spawn(async move {
                let mut connection = None;
                loop {
                    let started = Instant::now();
                    if !run.may_start(started) {
                        return;
                    }
                    let outcome;
                    (connection, outcome) = run.target.exchange(connection.take()).await;
                    run.record(started, &outcome);
                }
            })
        })
        .collect();
    for task in tasks {
        let _ = task.await;
    }
}

/// Requests started on a fixed schedule over a pool of idle connections;
/// returns how many were dropped at the in-flight cap.
///
/// The schedule is kept by a thread of its own sleeping with
/// `std::thread::sleep` (tens of microseconds late), not by the runtime's
/// timer, whose 1 ms ticks would add up to a millisecond of the generator's
/// own lateness to every latency measured from the schedule.
async fn open(run: &Arc<Run>, rate: f64, max_in_flight: usize) -> anyhow::Result<u64> {
    let idle: Arc<Mutex<Vec<Connection>>> = Arc::default();
    let max_in_flight = max_in_flight.clamp(1, u32::MAX as usize);
    let slots = Arc::new(tokio::sync::Semaphore::new(max_in_flight));
    let interval = Duration::from_secs_f64(1.0 / rate);
    let runtime = tokio::runtime::Handle::current();
    let scheduler = {
        let (run, slots) = (run.clone(), slots.clone());
        std::thread::Builder::new().name("loadgen-schedule".into()).spawn(move || {
            let mut dropped = 0;
            let start = run.start;
            for n in 0u64.. {
                let scheduled = start + interval.mul_f64(n as f64);
                if !run.may_start(scheduled) {
                    break;
                }
                std::thread::sleep(scheduled.saturating_duration_since(Instant::now()));
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    dropped += u64::from(scheduled >= run.measure_from);
                    continue;
                };
                let (run, idle) = (run.clone(), idle.clone());
                runtime.spawn(async move {
                    let _slot = slot;
                    let reused = idle.lock().expect("idle").pop();
                    let (connection, outcome) = run.target.exchange(reused).await;
                    idle.lock().expect("idle").extend(connection);
                    run.record(scheduled, &outcome);
                });
            }
            dropped
        })?
    };
    let dropped = tokio::task::spawn_blocking(move || scheduler.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the scheduling thread panicked"))?;
    // Every slot back: the requests in flight have all been answered.
    let _ = slots.acquire_many(max_in_flight as u32).await;
    Ok(dropped)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    /// `json-rows` sends the same rows as the binary body, one JSON array
    /// each, under `--input`, POSTed to the URL's own path.
    #[test]
    fn json_rows_carries_the_binary_body_rows() {
        let args = Args::parse_from([
            "loadgen",
            "--url",
            "http://127.0.0.1:9/mlp",
            "--format",
            "json-rows",
            "--input",
            "x",
            "--rows",
            "3",
            "--columns",
            "4",
        ]);
        let target = Target::new(&args).expect("target");
        let request = std::str::from_utf8(&target.request).expect("utf-8");
        let (head, body) = request.split_once("\r\n\r\n").expect("head and body");
        assert!(head.starts_with("POST /mlp HTTP/1.1"), "{head}");
        assert!(!head.to_ascii_lowercase().contains(score_protocol::headers::COLUMNS), "{head}");
        let sent: serde_json::Value = serde_json::from_str(body).expect("json");
        let rows: Vec<Vec<f32>> = serde_json::from_value(sent["x"].clone()).expect("rows");
        let binary: Vec<f32> = body_as(BodyLayout::Binary, 3, 4)
            .expect("binary")
            .chunks(4)
            .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
            .collect();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows.concat(), binary);
    }
}
