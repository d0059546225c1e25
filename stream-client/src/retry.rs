//! Retries: which failures to retry ([`classify_status`], [`Retryable`]) is
//! kept apart from when ([`Backoff`], with the server's `Retry-After` read
//! by [`score_protocol::retry_after`]) and from how many ([`RetryBudget`]).

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Why an attempt is worth retrying. The label names a counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Retryable {
    /// The connection could not be made.
    Connect,
    /// The per-request timeout passed.
    Timeout,
    /// The connection broke mid-request (a server killed or restarted).
    Io,
    /// HTTP 429: the server is overloaded.
    TooManyRequests,
    /// HTTP 502: a proxy could not reach the server.
    BadGateway,
    /// HTTP 503: the server is draining or not ready.
    Unavailable,
    /// HTTP 504: a deadline passed in a queue or a proxy.
    GatewayTimeout,
    /// Answered (or refused with 409) by another model version than the
    /// one the job is pinned to.
    WrongVersion,
}

impl Retryable {
    /// Every reason, for counters.
    pub const ALL: [Retryable; 8] = [
        Retryable::Connect,
        Retryable::Timeout,
        Retryable::Io,
        Retryable::TooManyRequests,
        Retryable::BadGateway,
        Retryable::Unavailable,
        Retryable::GatewayTimeout,
        Retryable::WrongVersion,
    ];

    /// Counter label.
    pub fn label(self) -> &'static str {
        match self {
            Retryable::Connect => "connect",
            Retryable::Timeout => "timeout",
            Retryable::Io => "io",
            Retryable::TooManyRequests => "429",
            Retryable::BadGateway => "502",
            Retryable::Unavailable => "503",
            Retryable::GatewayTimeout => "504",
            Retryable::WrongVersion => "version",
        }
    }

    /// Whether the failure says the server is saturated (the adaptive
    /// limit backs off): 429, 503, 504 or a timeout.
    pub fn is_back_pressure(self) -> bool {
        matches!(
            self,
            Retryable::TooManyRequests
                | Retryable::Unavailable
                | Retryable::GatewayTimeout
                | Retryable::Timeout
        )
    }
}

/// Whether an HTTP status is a transient failure. Every other non-2xx status
/// fails at once: retrying a 400 only repeats the mistake.
pub fn classify_status(status: u16) -> Option<Retryable> {
    match status {
        429 => Some(Retryable::TooManyRequests),
        502 => Some(Retryable::BadGateway),
        503 => Some(Retryable::Unavailable),
        504 => Some(Retryable::GatewayTimeout),
        _ => None,
    }
}

/// Classifies a transport error. Scoring is idempotent, so a request that
/// may or may not have reached the server is safe to send again.
pub fn classify_transport(e: &reqwest::Error) -> Retryable {
    if e.is_timeout() {
        Retryable::Timeout
    } else if e.is_connect() {
        Retryable::Connect
    } else {
        Retryable::Io
    }
}

/// A transport error in words: the innermost cause ("Connection refused
/// (os error 111)") rather than reqwest's "error sending request for url".
pub fn describe(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        return format!("no answer within {timeout:?}");
    }
    let mut cause: &dyn std::error::Error = e;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    let what = if e.is_connect() {
        "cannot connect"
    } else if e.is_body() || e.is_decode() {
        "the answer broke off"
    } else {
        "the connection failed"
    };
    format!("{what}: {cause}")
}

/// Exponential backoff with full jitter: attempt k waits a uniform random
/// time in `[0, min(max, base · 2^k)]`, which spreads a fleet of clients'
/// retries instead of synchronising them.
#[derive(Clone, Debug)]
pub struct Backoff {
    /// Ceiling of the first retry's wait.
    pub base: Duration,
    /// Ceiling of any wait.
    pub max: Duration,
}

impl Backoff {
    /// The wait before retry number `attempt` (0-based), honouring the
    /// server's `Retry-After` as a floor (plus jitter, so clients told the
    /// same second do not all come back in it) but never beyond `max`: a
    /// server (or anything posing as one) cannot park a job for days.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let ceiling = self.base.saturating_mul(1u32 << attempt.min(20)).min(self.max);
        match retry_after {
            Some(floor) => {
                let jitter = self.base.mul_f64(fastrand::f64());
                (floor + jitter).min(self.max)
            }
            None => ceiling.mul_f64(fastrand::f64()),
        }
    }
}

/// A retry budget shared by every request of a client: each first attempt
/// deposits `ratio` tokens, each retry withdraws one, and `min_per_sec`
/// retries are always allowed. When the fleet is overloaded and everything
/// fails, retries are capped at about `ratio` of the traffic instead of
/// multiplying it.
#[derive(Debug)]
pub struct RetryBudget {
    ratio: f64,
    min_per_sec: f64,
    max_tokens: f64,
    state: Mutex<BudgetState>,
}

#[derive(Debug)]
struct BudgetState {
    tokens: f64,
    refilled: Instant,
}

impl RetryBudget {
    /// A budget allowing retries of `ratio` of requests, plus `min_per_sec`.
    pub fn new(ratio: f64, min_per_sec: f64) -> Self {
        let max_tokens = (min_per_sec * 10.0).max(ratio * 1000.0).max(1.0);
        RetryBudget {
            ratio,
            min_per_sec,
            max_tokens,
            state: Mutex::new(BudgetState {
                tokens: min_per_sec.max(1.0),
                refilled: Instant::now(),
            }),
        }
    }

    /// Records a first attempt.
    pub fn deposit(&self) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.tokens = (s.tokens + self.ratio).min(self.max_tokens);
    }

    /// Takes one retry from the budget, if any is left.
    pub fn withdraw(&self) -> bool {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let elapsed = now.duration_since(s.refilled).as_secs_f64();
        s.refilled = now;
        s.tokens = (s.tokens + elapsed * self.min_per_sec).min(self.max_tokens);
        if s.tokens >= 1.0 {
            s.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_transient_statuses_retry() {
        for s in [429, 502, 503, 504] {
            assert!(classify_status(s).is_some(), "{s}");
        }
        for s in [200, 400, 404, 408, 413, 415, 500, 501] {
            assert!(classify_status(s).is_none(), "{s}");
        }
    }

    #[test]
    fn backoff_is_jittered_under_an_exponential_ceiling() {
        let b = Backoff { base: Duration::from_millis(100), max: Duration::from_secs(2) };
        for attempt in 0..10 {
            let ceiling = Duration::from_millis(100 << attempt).min(Duration::from_secs(2));
            for _ in 0..50 {
                assert!(b.delay(attempt, None) <= ceiling);
            }
        }
        let d = b.delay(0, Some(Duration::from_secs(1)));
        assert!(d >= Duration::from_secs(1) && d <= Duration::from_millis(1100), "{d:?}");
    }

    #[test]
    fn a_huge_retry_after_is_capped_at_the_backoff_maximum() {
        let b = Backoff { base: Duration::from_millis(100), max: Duration::from_secs(2) };
        let told = score_protocol::retry_after::parse("999999", std::time::SystemTime::now());
        for attempt in 0..5 {
            assert!(b.delay(attempt, told) <= Duration::from_secs(2));
        }
    }

    #[test]
    fn budget_caps_retries_at_a_ratio_of_requests() {
        let budget = RetryBudget::new(0.1, 0.0);
        // The initial token allows one retry.
        assert!(budget.withdraw());
        assert!(!budget.withdraw());
        for _ in 0..100 {
            budget.deposit();
        }
        let allowed = (0..100).filter(|_| budget.withdraw()).count();
        assert!((9..=10).contains(&allowed), "{allowed}");
    }
}
