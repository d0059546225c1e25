//! Several score-servers: pick the one with the fewest outstanding requests,
//! put aside one that keeps failing, and steer a retry elsewhere.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::adaptive::{Limiter, Signal};

/// One server's scoring URL and its health as this client sees it.
#[derive(Debug)]
pub struct Endpoint {
    /// Full scoring URL, e.g. `http://10.0.0.5:8099/models/churn/score?output=p`.
    pub url: String,
    outstanding: AtomicUsize,
    failures: AtomicU32,
    ejected_until: Mutex<Option<Instant>>,
    /// Its adaptive concurrency limit (`None`: only the window bounds it).
    limiter: Option<Limiter>,
}

/// The endpoint set.
#[derive(Debug)]
pub struct Endpoints {
    list: Vec<Endpoint>,
    eject_after: u32,
    eject_for: Duration,
    next: AtomicUsize,
    /// Woken when a request ends or a limit grows: a request waiting for
    /// room looks again.
    room: Notify,
}

/// Marks a request as outstanding on an endpoint until dropped.
#[derive(Debug)]
pub struct InFlight<'a> {
    endpoints: &'a Endpoints,
    ix: usize,
}

impl InFlight<'_> {
    /// The endpoint's index.
    pub fn index(&self) -> usize {
        self.ix
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.endpoints.list[self.ix].outstanding.fetch_sub(1, Ordering::Relaxed);
        self.endpoints.room.notify_waiters();
    }
}

impl Endpoints {
    /// Endpoints from full scoring URLs. An endpoint that fails
    /// `eject_after` times in a row is avoided for `eject_for`. With
    /// `adaptive`, each endpoint's concurrency adapts up to that ceiling.
    pub fn new(
        urls: Vec<String>,
        eject_after: u32,
        eject_for: Duration,
        adaptive: Option<usize>,
    ) -> Self {
        let list = urls
            .into_iter()
            .map(|url| Endpoint {
                url,
                outstanding: AtomicUsize::new(0),
                failures: AtomicU32::new(0),
                ejected_until: Mutex::new(None),
                limiter: adaptive.map(Limiter::new),
            })
            .collect();
        Endpoints {
            list,
            eject_after: eject_after.max(1),
            eject_for,
            next: AtomicUsize::new(0),
            room: Notify::new(),
        }
    }

    /// Number of endpoints.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// The endpoint at `ix`.
    pub fn get(&self, ix: usize) -> &Endpoint {
        &self.list[ix]
    }

    /// The endpoints to try, best first: among those not put aside (and
    /// other than `avoid`, the one that just failed, when there is a
    /// choice), the most room under their limit (else the fewest
    /// outstanding requests), ties broken round-robin. When all are put
    /// aside, the one that comes back first.
    fn ranked(&self, avoid: Option<usize>) -> Vec<usize> {
        let now = Instant::now();
        let n = self.list.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let healthy = |ix: usize| self.list[ix].ejected_until().is_none_or(|t| t <= now);
        let candidates: Vec<usize> =
            (0..n).map(|i| (start + i) % n).filter(|&ix| healthy(ix)).collect();
        let preferred: Vec<usize> =
            candidates.iter().copied().filter(|&ix| Some(ix) != avoid).collect();
        let mut pool = if preferred.is_empty() { candidates } else { preferred };
        if pool.is_empty() {
            pool.extend((0..n).min_by_key(|&ix| self.list[ix].ejected_until().unwrap_or(now)));
        }
        // Stable: equal room keeps the round-robin order.
        pool.sort_by_key(|&ix| {
            let e = &self.list[ix];
            e.outstanding.load(Ordering::Relaxed) as i64 - e.limit().unwrap_or(0) as i64
        });
        pool
    }

    /// Picks an endpoint as [`Endpoints::ranked`] orders them, whatever
    /// their limits.
    #[cfg(test)]
    pub fn pick(&self, avoid: Option<usize>) -> usize {
        self.ranked(avoid)[0]
    }

    /// Starts a request on the best endpoint with room under its limit, if
    /// one has room.
    pub fn try_start(&self, avoid: Option<usize>) -> Option<InFlight<'_>> {
        self.ranked(avoid).into_iter().find_map(|ix| {
            let e = &self.list[ix];
            let limit = e.limit().unwrap_or(usize::MAX);
            let took = e.outstanding.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |o| {
                (o < limit).then_some(o + 1)
            });
            let outstanding = took.ok()? + 1;
            if let Some(limiter) = &e.limiter {
                limiter.sent(outstanding);
            }
            Some(InFlight { endpoints: self, ix })
        })
    }

    /// Starts a request on the best endpoint with room, waiting for room.
    pub async fn start(&self, avoid: Option<usize>) -> InFlight<'_> {
        loop {
            let room = self.room.notified();
            let mut room = std::pin::pin!(room);
            room.as_mut().enable();
            if let Some(started) = self.try_start(avoid) {
                return started;
            }
            room.await;
        }
    }

    /// Feeds an answer's signal to the endpoint's limit.
    pub fn observe(&self, ix: usize, signal: Signal) {
        if let Some(limiter) = &self.list[ix].limiter {
            let before = limiter.limit();
            limiter.observe(signal);
            if limiter.limit() > before {
                self.room.notify_waiters();
            }
        }
    }

    /// Each endpoint's URL and limit now (`None` when not adaptive).
    pub fn limits(&self) -> Vec<(String, Option<usize>)> {
        self.list.iter().map(|e| (e.url.clone(), e.limit())).collect()
    }

    /// The sum of the limits of the endpoints not put aside (of all, when
    /// every one is), or `None` when not adaptive: how many requests the
    /// endpoints take at once now.
    pub fn total_limit(&self) -> Option<usize> {
        let now = Instant::now();
        let limits = |healthy_only: bool| -> Option<usize> {
            self.list
                .iter()
                .filter(|e| !healthy_only || e.ejected_until().is_none_or(|t| t <= now))
                .map(Endpoint::limit)
                .sum()
        };
        match limits(true) {
            Some(0) => limits(false),
            total => total,
        }
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
            self.put_aside(ix);
            return true;
        }
        false
    }

    /// Puts `ix` aside at once (it serves another model version than the
    /// job's), when there are others.
    pub fn put_aside(&self, ix: usize) {
        if self.list.len() > 1 {
            let endpoint = &self.list[ix];
            *endpoint.ejected_until.lock().unwrap_or_else(|e| e.into_inner()) =
                Some(Instant::now() + self.eject_for);
            endpoint.failures.store(0, Ordering::Relaxed);
        }
    }
}

impl Endpoint {
    fn ejected_until(&self) -> Option<Instant> {
        *self.ejected_until.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The adaptive limit now (`None` when not adaptive).
    pub fn limit(&self) -> Option<usize> {
        self.limiter.as_ref().map(Limiter::limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three() -> Endpoints {
        Endpoints::new(vec!["a".into(), "b".into(), "c".into()], 2, Duration::from_secs(60), None)
    }

    #[test]
    fn fewest_outstanding_wins() {
        let e = three();
        e.list[0].outstanding.store(1, Ordering::Relaxed);
        e.list[1].outstanding.store(2, Ordering::Relaxed);
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
    fn adaptive_limits_bound_each_endpoint() {
        use crate::adaptive::INITIAL;
        let e = Endpoints::new(vec!["a".into(), "b".into()], 3, Duration::from_secs(60), Some(8));
        assert_eq!(e.total_limit(), Some(2 * INITIAL), "each starts at INITIAL");
        let started: Vec<_> = (0..2 * INITIAL).map(|_| e.try_start(None).expect("room")).collect();
        let on_a = started.iter().filter(|f| f.index() == 0).count();
        assert_eq!(on_a, INITIAL, "as many on each endpoint");
        assert!(e.try_start(None).is_none(), "both at their limit");
        drop(started);
        assert!(e.try_start(None).is_some(), "room again");
    }

    #[test]
    fn all_ejected_still_picks_one() {
        let e = Endpoints::new(vec!["a".into(), "b".into()], 1, Duration::from_secs(60), None);
        e.record(0, false);
        e.record(1, false);
        assert!(e.pick(None) < 2);
    }
}
