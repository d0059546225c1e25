//! What the tests that run scoring jobs against real processes share
//! (`fleet.rs`: binaries behind nginx; `docker.rs`: the same in
//! containers): the synthetic input, the client's settings, a job that
//! checks order and completeness, and bit-for-bit comparison.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use stream_client::{Client, ClientConfig, ScoreError, Scored, Stats};

/// Input width of the fixture models.
pub const COLUMNS: usize = 100;

/// Row `i` of the synthetic input: deterministic, so any run can be
/// compared with any other.
pub fn row(i: u64) -> Vec<f32> {
    (0..COLUMNS as u64).map(|j| ((i * 31 + j * 7) % 1000) as f32 / 500.0 - 1.0).collect()
}

/// Rows `first..first + rows` as a binary request body.
pub fn body(first: u64, rows: u64) -> Vec<u8> {
    (first..first + rows).flat_map(row).flat_map(f32::to_le_bytes).collect()
}

/// A plain HTTP/1.0 GET, for readiness polls (no client pool involved).
pub fn get(url: &str) -> Option<(u16, String)> {
    let rest = url.strip_prefix("http://")?;
    let (host, path) = rest.split_at(rest.find('/')?);
    let mut stream = TcpStream::connect(host).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let status = text.split(' ').nth(1)?.parse().ok()?;
    Some((status, text))
}

/// The client the jobs use: `in_flight` 8, 30 s per attempt.
pub fn config(urls: &[String]) -> ClientConfig {
    let mut config = ClientConfig::new(urls.iter().cloned(), COLUMNS);
    config.in_flight = 8;
    config.timeout = Duration::from_secs(30);
    config
}

/// Runs a job over rows `0..` of `input` and returns every score in order,
/// checking that batches arrive in order and none is missing. `on_batch`
/// sees each scored batch as it arrives (to inject a fault mid-job).
pub fn run_job(
    client: &Client,
    input: impl Iterator<Item = Vec<f32>>,
    mut on_batch: impl FnMut(&Scored),
) -> Result<Vec<f32>, ScoreError> {
    let mut out = Vec::new();
    let mut next_row = 0u64;
    for batch in client.score_rows(input) {
        let batch = batch?;
        assert_eq!(batch.first_row, next_row, "batches out of order or missing");
        next_row += batch.rows as u64;
        on_batch(&batch);
        out.extend_from_slice(&batch.values);
    }
    Ok(out)
}

/// Every score equal, bit for bit, to the clean run's.
pub fn assert_same_scores(got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "different number of scores");
    if let Some(i) = (0..got.len()).find(|&i| got[i].to_bits() != want[i].to_bits()) {
        panic!("score {i} differs: {} vs {} in the clean run", got[i], want[i]);
    }
}

/// What nginx's access log (`log_format score` in nginx/nginx.conf) says.
#[derive(Debug, Default)]
pub struct NginxLog {
    /// Requests logged.
    pub requests: u64,
    /// Final status → requests.
    pub statuses: BTreeMap<String, u64>,
    /// Requests nginx sent to a second (or third) replica.
    pub retried: u64,
    /// Attempts beyond the first, over all requests.
    pub extra_attempts: u64,
}

impl NginxLog {
    /// Parses lines `TIME STATUS "UPSTREAM_STATUSES" …`; other lines (a
    /// container's log also holds nginx's errors) are skipped.
    pub fn parse(text: &str) -> NginxLog {
        let mut log = NginxLog::default();
        for line in text.lines() {
            let mut fields = line.splitn(3, ' ');
            let (Some(_time), Some(status), Some(rest)) =
                (fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            let Some(upstreams) = rest.strip_prefix('"').and_then(|r| r.split('"').next()) else {
                continue;
            };
            if status.len() != 3 || !status.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            *log.statuses.entry(status.to_string()).or_default() += 1;
            // "502, 200": two replicas; "502 : 503": an internal redirect
            // (the @no_replica answer) after the attempts.
            let attempts =
                upstreams.split([',', ':']).filter(|s| s.trim() != "-").count().max(1) as u64;
            log.requests += 1;
            if attempts > 1 {
                log.retried += 1;
                log.extra_attempts += attempts - 1;
            }
        }
        log
    }

    /// What was logged after `earlier` (the same log read before).
    pub fn since(&self, earlier: &NginxLog) -> NginxLog {
        let mut statuses = self.statuses.clone();
        for (status, n) in &earlier.statuses {
            if let Some(count) = statuses.get_mut(status) {
                *count -= n;
            }
        }
        statuses.retain(|_, n| *n > 0);
        NginxLog {
            requests: self.requests - earlier.requests,
            statuses,
            retried: self.retried - earlier.retried,
            extra_attempts: self.extra_attempts - earlier.extra_attempts,
        }
    }
}

/// One line: what the client retried and what nginx resent, for a job.
pub fn summary(stats: &Stats, nginx: &NginxLog) -> String {
    format!(
        "client {} requests, {} retries ({:?}); nginx {} requests {:?}, {} resent to another replica ({} extra attempts)",
        stats.requests,
        stats.total_retries(),
        stats.retries,
        nginx.requests,
        nginx.statuses,
        nginx.retried,
        nginx.extra_attempts,
    )
}
