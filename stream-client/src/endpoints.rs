//! Several score-servers: pick the one with the fewest outstanding requests,
//! put aside one that keeps failing, and steer a retry elsewhere.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// One server's scoring URL and its health as this client sees it.
#[derive(Debug)]
pub struct Endpoint {
    /// Full scoring URL, e.g. `http://10.0.0.5:8099/models/churn/score?output=p`.
    pub url: String,
    outstanding: AtomicUsize,
    failures: AtomicU32,
    ejected_until: Mutex<Option<Instant>>,
}

/// The endpoint set.
#[derive(Debug)]
pub struct Endpoints {
    list: Vec<Endpoint>,
    eject_after: u32,
    eject_for: Duration,
    next: AtomicUsize,
}

/// Marks a request as outstanding on an endpoint until dropped.
#[derive(Debug)]
pub struct InFlight<'a> {
    endpoint: &'a Endpoint,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.endpoint.outstanding.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Endpoints {
    /// Endpoints from full scoring URLs. An endpoint that fails
    /// `eject_after` times in a row is avoided for `eject_for`.
    pub fn new(urls: Vec<String>, eject_after: u32, eject_for: Duration) -> Self {
        let list = urls
            .into_iter()
            .map(|url| Endpoint {
                url,
                outstanding: AtomicUsize::new(0),
                failures: AtomicU32::new(0),
                ejected_until: Mutex::new(None),
            })
            .collect();
        Endpoints { list, eject_after: eject_after.max(1), eject_for, next: AtomicUsize::new(0) }
    }

    /// Number of endpoints.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// The endpoint at `ix`.
    pub fn get(&self, ix: usize) -> &Endpoint {
        &self.list[ix]
    }

    /// Picks an endpoint: among those not put aside (and other than `avoid`,
    /// the one that just failed, when there is a choice), the fewest
    /// outstanding requests, ties broken round-robin. When all are put aside,
    /// the one that comes back first.
    pub fn pick(&self, avoid: Option<usize>) -> usize {
        let now = Instant::now();
        let n = self.list.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let healthy = |ix: usize| self.list[ix].ejected_until().is_none_or(|t| t <= now);
        let candidates: Vec<usize> =
            (0..n).map(|i| (start + i) % n).filter(|&ix| healthy(ix)).collect();
        let preferred: Vec<usize> =
            candidates.iter().copied().filter(|&ix| Some(ix) != avoid).collect();
        let pool = if preferred.is_empty() { candidates } else { preferred };
        if let Some(best) =
            pool.iter().copied().min_by_key(|&ix| self.list[ix].outstanding.load(Ordering::Relaxed))
        {
            return best;
        }
        (0..n).min_by_key(|&ix| self.list[ix].ejected_until().unwrap_or(now)).unwrap_or(0)
    }

    /// Counts a request as outstanding on `ix` until the guard drops.
    pub fn start(&self, ix: usize) -> InFlight<'_> {
        let endpoint = &self.list[ix];
        endpoint.outstanding.fetch_add(1, Ordering::Relaxed);
        InFlight { endpoint }
    }

    /// Records the outcome of a request to `ix`. Returns true when this
    /// failure put the endpoint aside.
    pub fn record(&self, ix: usize, ok: bool) -> bool {
        let endpoint = &self.list[ix];
        if ok {
            endpoint.failures.store(0, Ordering::Relaxed);
            return false;
        }
        let failures = endpoint.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures >= self.eject_after && self.list.len() > 1 {
            *endpoint.ejected_until.lock().unwrap_or_else(|e| e.into_inner()) =
                Some(Instant::now() + self.eject_for);
            endpoint.failures.store(0, Ordering::Relaxed);
            return true;
        }
        false
    }
}

impl Endpoint {
    fn ejected_until(&self) -> Option<Instant> {
        *self.ejected_until.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three() -> Endpoints {
        Endpoints::new(vec!["a".into(), "b".into(), "c".into()], 2, Duration::from_secs(60))
    }

    #[test]
    fn fewest_outstanding_wins() {
        let e = three();
        let _a = e.start(0);
        let _b1 = e.start(1);
        let _b2 = e.start(1);
        for _ in 0..10 {
            assert_eq!(e.pick(None), 2);
        }
    }

    #[test]
    fn failing_endpoint_is_put_aside_and_retries_go_elsewhere() {
        let e = three();
        assert!(!e.record(1, false));
        assert!(e.record(1, false), "second failure in a row ejects");
        for _ in 0..20 {
            assert_ne!(e.pick(None), 1);
            assert_ne!(e.pick(Some(0)), 0);
        }
    }

    #[test]
    fn all_ejected_still_picks_one() {
        let e = Endpoints::new(vec!["a".into(), "b".into()], 1, Duration::from_secs(60));
        e.record(0, false);
        e.record(1, false);
        assert!(e.pick(None) < 2);
    }
}
