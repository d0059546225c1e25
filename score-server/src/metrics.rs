//! Every Prometheus metric the server exports, named in this one module.
//!
//! HTTP metrics are labelled by route template (`/models/{name}/score`),
//! never by raw URI, so a client cannot blow up the label space.
//!
//! What every request records (its count and latency, and each model
//! call's rows, time and queue wait) is kept per thread and merged on
//! scrape ([`Hot`]): no lock or counter on the request path is shared
//! between threads (prometheus-client's histograms take a write
//! lock per observation, and its families a read lock on a shared map).
//! The rest (refusals, reloads, gauges) is rare and uses prometheus-client's
//! own types.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeLabelValue, MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
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
    /// Requests, their latency, model calls and queue waits, per thread.
    hot: Arc<Hot>,
    /// Requests refused before scoring, by reason.
    pub rejected: Family<ReasonLabels, Counter>,
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
        let m = Metrics {
            hot: Arc::new(Hot::new()),
            rejected: Family::default(),
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
        r.register_collector(Box::new(m.hot.clone()));
        r.register("rejected", "Requests refused before scoring, by reason", m.rejected.clone());
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
        let mut local = self.hot.local();
        match local.models.get_mut(model) {
            Some(m) => {
                m.rows += rows as u64;
                m.calls += 1;
            }
            None => {
                local.models.insert(model.to_string(), ModelStats { rows: rows as u64, calls: 1 });
            }
        }
        local.compute_time.observe(&LATENCY_BUCKETS, elapsed.as_secs_f64());
        local.batch_rows.observe(&BATCH_BUCKETS, rows as f64);
        local.batch_jobs.observe(&BATCH_BUCKETS, jobs as f64);
    }

    /// Records the time a chunk waited in the queue for a worker.
    pub fn observe_queue_wait(&self, waited: Duration) {
        self.hot.local().queue_wait.observe(&LATENCY_BUCKETS, waited.as_secs_f64());
    }

    /// Counts a request refused before scoring.
    pub fn reject(&self, reason: Rejection) {
        self.rejected.get_or_create(&ReasonLabels { reason }).inc();
    }

    /// Records one finished HTTP request.
    pub fn observe_http(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        let mut local = self.hot.local();
        let stats = match local.routes.get_mut(route) {
            Some(stats) => stats,
            None => local.routes.entry(route.to_string()).or_default(),
        };
        stats.duration.observe(&LATENCY_BUCKETS, elapsed.as_secs_f64());
        match stats.requests.iter_mut().find(|(m, s, _)| m == method && *s == status) {
            Some((_, _, n)) => *n += 1,
            None => stats.requests.push((method.to_string(), status, 1)),
        }
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

/// Most buckets of a histogram, `+Inf` included.
const MAX_BUCKETS: usize = 16;
const _: () = assert!(LATENCY_BUCKETS.len() < MAX_BUCKETS && BATCH_BUCKETS.len() < MAX_BUCKETS);

/// The per-request metrics, one shard per thread (threads share a shard
/// only when there are more threads than shards), each behind its own
/// mutex, which only its thread takes but on scrape.
#[derive(Debug)]
pub struct Hot {
    shards: Box<[Shard]>,
}

/// One thread's metrics, on its own cache lines.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Shard(Mutex<Local>);

#[derive(Debug, Default)]
struct Local {
    routes: HashMap<String, RouteStats>,
    models: HashMap<String, ModelStats>,
    queue_wait: Buckets,
    compute_time: Buckets,
    batch_rows: Buckets,
    batch_jobs: Buckets,
}

#[derive(Debug, Default)]
struct RouteStats {
    duration: Buckets,
    /// Requests by method and status: a handful per route.
    requests: Vec<(String, u16, u64)>,
}

#[derive(Debug, Default, Clone, Copy)]
struct ModelStats {
    rows: u64,
    calls: u64,
}

/// A histogram's counts: one per bound and one above them all.
#[derive(Debug, Default, Clone, Copy)]
struct Buckets {
    sum: f64,
    count: u64,
    counts: [u64; MAX_BUCKETS],
}

impl Buckets {
    fn observe(&mut self, bounds: &[f64], value: f64) {
        let i = bounds.iter().position(|b| value <= *b).unwrap_or(bounds.len());
        self.counts[i] += 1;
        self.sum += value;
        self.count += 1;
    }

    fn add(&mut self, other: &Buckets) {
        self.sum += other.sum;
        self.count += other.count;
        for (a, b) in self.counts.iter_mut().zip(other.counts) {
            *a += b;
        }
    }

    fn encode(&self, bounds: &[f64], mut encoder: MetricEncoder<'_>) -> std::fmt::Result {
        let buckets: Vec<(f64, u64)> =
            bounds.iter().copied().chain([f64::MAX]).zip(self.counts).collect();
        encoder.encode_histogram::<NoLabelSet>(self.sum, self.count, &buckets, None)
    }
}

impl Hot {
    fn new() -> Hot {
        let cores = std::thread::available_parallelism().map_or(4, |n| n.get());
        let shards = (cores * 4).next_power_of_two().clamp(8, 256);
        Hot { shards: (0..shards).map(|_| Shard::default()).collect() }
    }

    /// This thread's shard.
    fn local(&self) -> MutexGuard<'_, Local> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        thread_local! {
            static INDEX: usize = NEXT.fetch_add(1, Ordering::Relaxed);
        }
        let ix = INDEX.with(|ix| *ix) % self.shards.len();
        self.shards[ix].0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every shard added up, labels in order.
    fn merged(&self) -> Merged {
        let mut m = Merged::default();
        for shard in self.shards.iter() {
            let local = shard.0.lock().unwrap_or_else(PoisonError::into_inner);
            for (route, stats) in &local.routes {
                let into = m.routes.entry(route.clone()).or_default();
                into.0.add(&stats.duration);
                for (method, status, n) in &stats.requests {
                    *into.1.entry((method.clone(), *status)).or_default() += n;
                }
            }
            for (model, stats) in &local.models {
                let into = m.models.entry(model.clone()).or_default();
                into.rows += stats.rows;
                into.calls += stats.calls;
            }
            m.queue_wait.add(&local.queue_wait);
            m.compute_time.add(&local.compute_time);
            m.batch_rows.add(&local.batch_rows);
            m.batch_jobs.add(&local.batch_jobs);
        }
        m
    }
}

/// Request counts by method and status.
type ByMethodStatus = BTreeMap<(String, u16), u64>;

#[derive(Default)]
struct Merged {
    /// Latency, and requests by method and status, by route.
    routes: BTreeMap<String, (Buckets, ByMethodStatus)>,
    models: BTreeMap<String, ModelStats>,
    queue_wait: Buckets,
    compute_time: Buckets,
    batch_rows: Buckets,
    batch_jobs: Buckets,
}

impl Collector for Hot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let m = self.merged();
        let counter = MetricType::Counter;
        let histogram = MetricType::Histogram;
        let mut e = encoder.encode_descriptor(
            "http_requests",
            "HTTP requests by route, method and status",
            None,
            counter,
        )?;
        for (route, (_, requests)) in &m.routes {
            for ((method, status), n) in requests {
                let labels =
                    HttpLabels { route: route.clone(), method: method.clone(), status: *status };
                e.encode_family(&labels)?.encode_counter::<NoLabelSet, _, u64>(n, None)?;
            }
        }
        let mut e = encoder.encode_descriptor(
            "http_request_duration_seconds",
            "HTTP request latency by route",
            None,
            histogram,
        )?;
        for (route, (duration, _)) in &m.routes {
            duration.encode(
                &LATENCY_BUCKETS,
                e.encode_family(&RouteLabels { route: route.clone() })?,
            )?;
        }
        for (name, help, value) in [
            ("rows", "Rows scored, by model", (|s: &ModelStats| s.rows) as fn(&ModelStats) -> u64),
            ("model_calls", "Model calls, by model", |s| s.calls),
        ] {
            let mut e = encoder.encode_descriptor(name, help, None, counter)?;
            for (model, stats) in &m.models {
                e.encode_family(&ModelLabels { model: model.clone() })?
                    .encode_counter::<NoLabelSet, _, u64>(&value(stats), None)?;
            }
        }
        for (name, help, bounds, buckets) in [
            (
                "queue_wait_seconds",
                "Time a chunk waited for a worker",
                &LATENCY_BUCKETS[..],
                &m.queue_wait,
            ),
            ("compute_seconds", "Duration of one model call", &LATENCY_BUCKETS, &m.compute_time),
            ("batch_rows", "Rows per model call after merging", &BATCH_BUCKETS, &m.batch_rows),
            (
                "batch_requests",
                "Request chunks merged into one model call",
                &BATCH_BUCKETS,
                &m.batch_jobs,
            ),
        ] {
            buckets.encode(bounds, encoder.encode_descriptor(name, help, None, histogram)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts from many threads, each on its own shard or sharing one,
    /// add up on scrape, in prometheus-client's text format.
    #[test]
    fn per_thread_counts_add_up_on_scrape() {
        let metrics = Arc::new(Metrics::new());
        let threads: Vec<_> = (0..24)
            .map(|t| {
                let metrics = metrics.clone();
                std::thread::spawn(move || {
                    for i in 0..1000 {
                        let status = if i % 10 == 0 { 429 } else { 200 };
                        let route = if t % 2 == 0 { "/score" } else { "/models/{name}/score" };
                        metrics.observe_http(route, "PUT", status, Duration::from_micros(300));
                        metrics.observe_batch("m", 10, 2, Duration::from_millis(2));
                        metrics.observe_queue_wait(Duration::from_secs(2));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        let text = metrics.encode();
        for line in [
            r#"score_http_requests_total{route="/score",method="PUT",status="200"} 10800"#,
            r#"score_http_requests_total{route="/score",method="PUT",status="429"} 1200"#,
            r#"score_http_requests_total{route="/models/{name}/score",method="PUT",status="200"} 10800"#,
            r#"score_http_request_duration_seconds_count{route="/score"} 12000"#,
            r#"score_http_request_duration_seconds_bucket{le="0.00025",route="/score"} 0"#,
            r#"score_http_request_duration_seconds_bucket{le="0.0005",route="/score"} 12000"#,
            r#"score_rows_total{model="m"} 240000"#,
            r#"score_model_calls_total{model="m"} 24000"#,
            r#"score_batch_requests_sum 48000.0"#,
            r#"score_queue_wait_seconds_bucket{le="1.0"} 0"#,
            r#"score_queue_wait_seconds_bucket{le="5.0"} 24000"#,
            r#"score_queue_wait_seconds_bucket{le="+Inf"} 24000"#,
            "# TYPE score_compute_seconds histogram",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
    }
}
