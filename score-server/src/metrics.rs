//! Every Prometheus metric the server exports, named in this one module.
//!
//! HTTP metrics are labelled by route template (`/models/{name}/score`),
//! never by raw URI, so a client cannot blow up the label space.

use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Latency buckets in seconds: 100 µs to 30 s, roughly ×2.5 apart.
const LATENCY_BUCKETS: [f64; 14] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0];

/// Rows per model call: 1 to 64 Ki, powers of 4.
const BATCH_BUCKETS: [f64; 9] = [1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0];

/// Labels of an HTTP request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// Route template, or `unmatched`.
    pub route: String,
    /// HTTP method.
    pub method: String,
    /// Status code.
    pub status: u16,
}

/// Labels naming a route.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// Route template.
    pub route: String,
}

/// Labels naming a model.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelLabels {
    /// Model name.
    pub model: String,
}

/// Labels of a loaded model.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelInfoLabels {
    /// Model name.
    pub model: String,
    /// Content hash.
    pub version: String,
    /// The engine that runs it: `tract` or `onnxruntime`.
    pub engine: String,
}

/// What a reload did to a model.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)] // the variants are the label values
pub enum ReloadOutcome {
    /// A new version is served.
    loaded,
    /// The files had not changed.
    unchanged,
    /// The new files did not load; the old version serves on.
    failed,
}

/// Labels of a model reload.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    /// Model name.
    pub model: String,
    /// What happened.
    pub outcome: ReloadOutcome,
}

/// Why a request was refused before it was scored.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)] // the variants are the label values
pub enum Rejection {
    /// Admission was full (429).
    overloaded,
    /// The server was shutting down (503).
    draining,
    /// The request's deadline passed before its work started (504).
    deadline,
}

/// Labels naming why a request was refused.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// Why.
    pub reason: Rejection,
}

/// The server's metrics.
pub struct Metrics {
    registry: Registry,
    /// Requests by route, method and status.
    pub http_requests: Family<HttpLabels, Counter>,
    /// Request latency by route.
    pub http_duration: Family<RouteLabels, Histogram>,
    /// Rows scored by model.
    pub rows_scored: Family<ModelLabels, Counter>,
    /// Model calls by model.
    pub model_calls: Family<ModelLabels, Counter>,
    /// Requests refused before scoring, by reason.
    pub rejected: Family<ReasonLabels, Counter>,
    /// Time a chunk waited in the queue.
    pub queue_wait: Histogram,
    /// Time of one model call.
    pub compute_time: Histogram,
    /// Rows per model call (after merging).
    pub batch_rows: Histogram,
    /// Requests merged into one model call.
    pub batch_jobs: Histogram,
    /// Queued work skipped because its caller had gone.
    pub jobs_abandoned: Counter,
    /// Queued work dropped because its deadline had passed.
    pub jobs_deadline_exceeded: Counter,
    /// Request bytes admitted and not yet answered.
    pub inflight_bytes: Gauge,
    /// Requests admitted and not yet answered.
    pub inflight_requests: Gauge,
    /// Chunks waiting in the compute queue.
    pub queued_jobs: Gauge,
    /// 1 while draining.
    pub draining: Gauge,
    /// 1 for every loaded model, labelled with its version.
    pub model_info: Family<ModelInfoLabels, Gauge>,
    /// Model reloads by model and outcome.
    pub reloads: Family<ReloadLabels, Counter>,
    /// Worker threads.
    pub workers: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("score");
        let http_requests = Family::<HttpLabels, Counter>::default();
        let http_duration = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(LATENCY_BUCKETS)
        });
        let m = Metrics {
            http_requests,
            http_duration,
            rows_scored: Family::default(),
            model_calls: Family::default(),
            rejected: Family::default(),
            queue_wait: Histogram::new(LATENCY_BUCKETS),
            compute_time: Histogram::new(LATENCY_BUCKETS),
            batch_rows: Histogram::new(BATCH_BUCKETS),
            batch_jobs: Histogram::new(BATCH_BUCKETS),
            jobs_abandoned: Counter::default(),
            jobs_deadline_exceeded: Counter::default(),
            inflight_bytes: Gauge::default(),
            inflight_requests: Gauge::default(),
            queued_jobs: Gauge::default(),
            draining: Gauge::default(),
            model_info: Family::default(),
            reloads: Family::default(),
            workers: Gauge::default(),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register(
            "http_requests",
            "HTTP requests by route, method and status",
            m.http_requests.clone(),
        );
        r.register(
            "http_request_duration_seconds",
            "HTTP request latency by route",
            m.http_duration.clone(),
        );
        r.register("rows", "Rows scored, by model", m.rows_scored.clone());
        r.register("model_calls", "Model calls, by model", m.model_calls.clone());
        r.register("rejected", "Requests refused before scoring, by reason", m.rejected.clone());
        r.register("queue_wait_seconds", "Time a chunk waited for a worker", m.queue_wait.clone());
        r.register("compute_seconds", "Duration of one model call", m.compute_time.clone());
        r.register("batch_rows", "Rows per model call after merging", m.batch_rows.clone());
        r.register(
            "batch_requests",
            "Request chunks merged into one model call",
            m.batch_jobs.clone(),
        );
        r.register(
            "jobs_abandoned",
            "Queued chunks skipped because the caller had gone",
            m.jobs_abandoned.clone(),
        );
        r.register(
            "jobs_deadline_exceeded",
            "Queued chunks dropped after their deadline",
            m.jobs_deadline_exceeded.clone(),
        );
        r.register(
            "inflight_bytes",
            "Request bytes admitted and not yet answered",
            m.inflight_bytes.clone(),
        );
        r.register(
            "inflight_requests",
            "Requests admitted and not yet answered",
            m.inflight_requests.clone(),
        );
        r.register("queued_jobs", "Chunks waiting in the compute queue", m.queued_jobs.clone());
        r.register("draining", "1 while the server drains before exit", m.draining.clone());
        r.register(
            "model_info",
            "Loaded models, their versions and the engine that runs each",
            m.model_info.clone(),
        );
        r.register("workers", "Compute worker threads", m.workers.clone());
        r.register(
            "model_reloads",
            "Model reloads (SIGHUP, --watch) by model and outcome",
            m.reloads.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Records one model call.
    pub fn observe_batch(&self, model: &str, rows: usize, jobs: usize, elapsed: Duration) {
        let labels = ModelLabels { model: model.to_string() };
        self.rows_scored.get_or_create(&labels).inc_by(rows as u64);
        self.model_calls.get_or_create(&labels).inc();
        self.compute_time.observe(elapsed.as_secs_f64());
        self.batch_rows.observe(rows as f64);
        self.batch_jobs.observe(jobs as f64);
    }

    /// Counts a request refused before scoring.
    pub fn reject(&self, reason: Rejection) {
        self.rejected.get_or_create(&ReasonLabels { reason }).inc();
    }

    /// Records one finished HTTP request.
    pub fn observe_http(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        let labels = HttpLabels { route: route.to_string(), method: method.to_string(), status };
        self.http_requests.get_or_create(&labels).inc();
        self.http_duration
            .get_or_create(&RouteLabels { route: route.to_string() })
            .observe(elapsed.as_secs_f64());
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            tracing::error!("encoding metrics failed; this is a bug");
        }
        out
    }
}
