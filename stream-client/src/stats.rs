//! Counters a caller can read while a job runs, and that the client logs
//! when a stream ends.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::retry::Retryable;

/// Latency buckets: powers of two of microseconds, up to about 35 minutes.
const BUCKETS: usize = 32;

/// Live counters, shared by every request of a client.
#[derive(Debug, Default)]
pub struct Counters {
    rows_sent: AtomicU64,
    rows_scored: AtomicU64,
    requests: AtomicU64,
    failed_batches: AtomicU64,
    bytes_sent: AtomicU64,
    bytes_received: AtomicU64,
    retries: [AtomicU64; Retryable::ALL.len()],
    ejections: AtomicU64,
    latency_us: [AtomicU64; BUCKETS],
    latency_total_us: AtomicU64,
}

/// A snapshot of the counters.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    /// Rows handed to requests (each row once, whatever the retries).
    pub rows_sent: u64,
    /// Rows scored and delivered to the output.
    pub rows_scored: u64,
    /// HTTP requests made, retries included.
    pub requests: u64,
    /// Batches that ended in an error.
    pub failed_batches: u64,
    /// Request body bytes sent, retries included.
    pub bytes_sent: u64,
    /// Response body bytes received.
    pub bytes_received: u64,
    /// Retries by reason label (`connect`, `timeout`, `io`, `429`, `502`, `503`, `504`).
    pub retries: Vec<(&'static str, u64)>,
    /// Times an endpoint was put aside.
    pub ejections: u64,
    /// Successful request latency: median.
    pub latency_p50: Duration,
    /// Successful request latency: 99th percentile.
    pub latency_p99: Duration,
    /// Successful request latency: mean.
    pub latency_mean: Duration,
    /// The model version every answer came from (`None` before the first
    /// answer, unless given up front).
    pub model_version: Option<String>,
    /// Each endpoint's adaptive concurrency limit now, by scoring URL
    /// (empty when adaptive concurrency is off).
    pub limits: Vec<(String, usize)>,
}

impl Stats {
    /// Total retries.
    pub fn total_retries(&self) -> u64 {
        self.retries.iter().map(|(_, n)| n).sum()
    }

    /// Retries for one reason.
    pub fn retries_for(&self, reason: Retryable) -> u64 {
        self.retries.iter().find(|(l, _)| *l == reason.label()).map_or(0, |(_, n)| *n)
    }

    /// Adds `other`'s counters to these (latencies: the larger of the two,
    /// an upper bound).
    pub fn add(&mut self, other: &Stats) {
        self.rows_sent += other.rows_sent;
        self.rows_scored += other.rows_scored;
        self.requests += other.requests;
        self.failed_batches += other.failed_batches;
        self.bytes_sent += other.bytes_sent;
        self.bytes_received += other.bytes_received;
        self.ejections += other.ejections;
        for (label, n) in &other.retries {
            match self.retries.iter_mut().find(|(l, _)| l == label) {
                Some((_, mine)) => *mine += n,
                None => self.retries.push((label, *n)),
            }
        }
        self.latency_p50 = self.latency_p50.max(other.latency_p50);
        self.latency_p99 = self.latency_p99.max(other.latency_p99);
        self.latency_mean = self.latency_mean.max(other.latency_mean);
        if self.model_version.is_none() {
            self.model_version.clone_from(&other.model_version);
        }
        self.limits.extend(other.limits.iter().cloned());
    }

    /// The limits in a few words for a progress line: `limit 6` for one
    /// endpoint, `limits 3/4/6` for several (empty when not adaptive).
    pub fn limits_line(&self) -> String {
        let limits: Vec<String> = self.limits.iter().map(|(_, l)| l.to_string()).collect();
        match limits.len() {
            0 => String::new(),
            1 => format!("limit {}", limits[0]),
            _ => format!("limits {}", limits.join("/")),
        }
    }
}

impl Counters {
    pub(crate) fn batch_started(&self, rows: usize) {
        self.rows_sent.fetch_add(rows as u64, Ordering::Relaxed);
    }

    pub(crate) fn request(&self, bytes: usize) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.bytes_sent.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn success(&self, bytes: usize, latency: Duration) {
        self.bytes_received.fetch_add(bytes as u64, Ordering::Relaxed);
        let us = latency.as_micros().min(u64::MAX as u128) as u64;
        self.latency_total_us.fetch_add(us, Ordering::Relaxed);
        let bucket = (64 - us.leading_zeros() as usize).min(BUCKETS - 1);
        self.latency_us[bucket].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn delivered(&self, rows: usize) {
        self.rows_scored.fetch_add(rows as u64, Ordering::Relaxed);
    }

    pub(crate) fn failed(&self) {
        self.failed_batches.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn retry(&self, reason: Retryable) {
        let ix = Retryable::ALL.iter().position(|r| *r == reason).unwrap_or(0);
        self.retries[ix].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn ejected(&self) {
        self.ejections.fetch_add(1, Ordering::Relaxed);
    }

    /// Reads every counter.
    pub fn snapshot(&self) -> Stats {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let hist: Vec<u64> = self.latency_us.iter().map(load).collect();
        let count: u64 = hist.iter().sum();
        // Upper bound of the bucket holding the q-quantile.
        let quantile = |q: f64| {
            let target = (count as f64 * q).ceil().max(1.0) as u64;
            let mut seen = 0;
            for (i, n) in hist.iter().enumerate() {
                seen += n;
                if seen >= target {
                    return Duration::from_micros(1u64 << i.min(62));
                }
            }
            Duration::ZERO
        };
        Stats {
            rows_sent: load(&self.rows_sent),
            rows_scored: load(&self.rows_scored),
            requests: load(&self.requests),
            failed_batches: load(&self.failed_batches),
            bytes_sent: load(&self.bytes_sent),
            bytes_received: load(&self.bytes_received),
            retries: Retryable::ALL
                .iter()
                .zip(&self.retries)
                .map(|(r, n)| (r.label(), load(n)))
                .collect(),
            ejections: load(&self.ejections),
            latency_p50: if count > 0 { quantile(0.5) } else { Duration::ZERO },
            latency_p99: if count > 0 { quantile(0.99) } else { Duration::ZERO },
            latency_mean: Duration::from_micros(
                load(&self.latency_total_us).checked_div(count).unwrap_or(0),
            ),
            model_version: None,
            limits: Vec::new(),
        }
    }
}
