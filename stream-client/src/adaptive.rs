//! Adaptive concurrency: how many requests one endpoint gets at once,
//! found from its answers rather than sized by the user.
//!
//! The limit follows additive increase, multiplicative decrease, as Vector's
//! adaptive request concurrency does, with a different latency signal. Each
//! window of about one round trip (`limit` answers, at least
//! [`MIN_WINDOW`]) ends in one decision:
//!
//! - **back-pressure** (429, 503, 504, a timeout) in the window: ×0.9;
//! - **a latency jump**: more than `β = α + max(2, limit / 8)` requests
//!   were waiting at the server on average: ×0.9;
//! - **room**: the limit was reached in the window and fewer than
//!   `α = max(2, limit / 4)` requests waited on average: +1 (×2 during the
//!   fast start, from [`INITIAL`], which ends at the first window with α
//!   or more waiting, stepping back to what was not waiting plus α, or at
//!   a decrease);
//! - otherwise the limit holds.
//!
//! So the limit settles about a third above what keeps the server's
//! workers busy, and never fewer than two requests wait there. α grows with
//! the limit because the round trip it covers is noisy: a long round trip
//! (a far server, a proxy, a client sharing its cores) needs more
//! requests in flight, and fewer of them waiting than the noise in that
//! round trip leaves the workers idle now and then. Measured in
//! `load-tests/adaptive/run.sh` (RESULTS.md "Adaptive concurrency").
//!
//! A stream keeps [`headroom`] more batches than its endpoints' limits add
//! up to, encoded and waiting for room, so a limit is reached whenever the
//! servers, not the caller, are the bottleneck (see `Inner::window`).
//!
//! Requests waiting at the server are counted by Little's law from the
//! server's own `X-Score-Queue-Ms` (time a request waited for a worker):
//! waiting = outstanding × queue time / round trip. Without that header
//! (another server), from the round trip against the lowest seen, as TCP
//! Vegas does: waiting = limit × (1 − lowest / round trip).
//!
//! Why not Vector's rule (+1 while the round trip is at most its average,
//! ×0.9 above average + k·σ): a batch client wants a small standing queue
//! at each server, so that a worker finishing a request finds the next one
//! already there. Any queue raises the round trip, so that rule keeps
//! backing off to the point where workers wait for the network (one
//! request at a time to a one-worker server, about 20 % below its
//! throughput). Counting what waits keeps two to four requests queued per
//! server, whatever its workers, the round-trip time or its changes.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Fewest answers in a decision window.
pub const MIN_WINDOW: u32 = 4;
/// Factor of a decrease.
pub const DECREASE: f64 = 0.9;
/// The limit a new endpoint starts at (the ceiling if lower): one
/// request at a time leaves even a one-worker server idle during every
/// round trip, and a decrease comes within a window if four is too many.
pub const INITIAL: usize = 4;

/// Batches a stream keeps ready beyond the sum of its endpoints' limits
/// (`total`), waiting for room under one: a quarter of the total, at least
/// two per endpoint.
pub fn headroom(total: usize, endpoints: usize) -> usize {
    (total / 4).max(2 * endpoints.max(1))
}

/// Average requests waiting at the server below which the limit grows (α).
fn alpha(limit: f64) -> f64 {
    (limit / 4.0).max(2.0)
}

/// Average requests waiting at the server above which the limit shrinks (β):
/// α and a band of `max(2, limit / 8)` in which the limit holds.
fn beta(limit: f64) -> f64 {
    alpha(limit) + (limit / 8.0).max(2.0)
}

/// How one answer went, for the limit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Signal {
    /// Scored: the round trip, and the server's queue time if it said.
    Answer {
        /// Time from sending to the end of the answer.
        rtt: Duration,
        /// `X-Score-Queue-Ms`.
        queued: Option<Duration>,
    },
    /// 429, 503, 504 or a timeout: the server (or its proxy) is saturated.
    BackPressure,
    /// Anything else (a refused request, a broken connection): no signal.
    Other,
}

/// One endpoint's limit.
#[derive(Debug)]
pub struct Limiter {
    /// The limit now, for lock-free reads.
    current: AtomicUsize,
    ceiling: usize,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    limit: f64,
    fast_start: bool,
    /// Lowest window-mean round trip, seconds (the Vegas fallback).
    lowest: f64,
    answers: u32,
    rtt_sum: f64,
    /// Sum of queue times when every answer in the window had one.
    queue_sum: Option<f64>,
    /// Outstanding requests (the new one included) summed over the
    /// window's sends, and the sends.
    outstanding_sum: f64,
    sends: u32,
    reached: bool,
    back_pressure: bool,
}

impl Limiter {
    /// A limit starting at [`INITIAL`] (fast start), never above `ceiling`.
    pub fn new(ceiling: usize) -> Limiter {
        let ceiling = ceiling.max(1);
        let initial = INITIAL.min(ceiling);
        Limiter {
            current: AtomicUsize::new(initial),
            ceiling,
            state: Mutex::new(State {
                limit: initial as f64,
                fast_start: true,
                lowest: f64::INFINITY,
                answers: 0,
                rtt_sum: 0.0,
                queue_sum: Some(0.0),
                outstanding_sum: 0.0,
                sends: 0,
                reached: false,
                back_pressure: false,
            }),
        }
    }

    /// The limit now (at least 1).
    pub fn limit(&self) -> usize {
        self.current.load(Ordering::Relaxed)
    }

    /// Notes that a request was sent with `outstanding` requests (itself
    /// included) on the endpoint.
    pub fn sent(&self, outstanding: usize) {
        let reached = outstanding >= self.limit();
        let mut s = self.lock();
        s.reached |= reached;
        s.outstanding_sum += outstanding as f64;
        s.sends += 1;
    }

    /// Takes an answer's signal; decides at the end of a window.
    pub fn observe(&self, signal: Signal) {
        let mut s = self.lock();
        match signal {
            Signal::Answer { rtt, queued } => {
                s.answers += 1;
                s.rtt_sum += rtt.as_secs_f64();
                s.queue_sum = match (s.queue_sum, queued) {
                    (Some(sum), Some(q)) => Some(sum + q.as_secs_f64()),
                    _ => None,
                };
            }
            Signal::BackPressure => s.back_pressure = true,
            Signal::Other => return,
        }
        let window = (s.limit as u32).max(MIN_WINDOW);
        if s.back_pressure || s.answers >= window {
            s.decide(self.ceiling);
            self.current.store((s.limit as usize).max(1), Ordering::Relaxed);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    fn decide(&mut self, ceiling: usize) {
        let decrease = |s: &mut State| {
            s.limit = (s.limit * DECREASE).floor().max(1.0);
            s.fast_start = false;
        };
        if self.back_pressure {
            decrease(self);
        } else if self.answers > 0 {
            let rtt = self.rtt_sum / self.answers as f64;
            self.lowest = self.lowest.min(rtt);
            // Requests in flight on average (Little's law's L).
            let in_flight = match self.sends {
                0 => self.limit,
                n => self.outstanding_sum / n as f64,
            };
            let waiting = match self.queue_sum {
                Some(queued) if rtt > 0.0 => in_flight * (queued / self.answers as f64) / rtt,
                _ if rtt > 0.0 => in_flight * (1.0 - self.lowest / rtt),
                _ => 0.0,
            };
            if self.fast_start && waiting >= alpha(self.limit) {
                // The last doubling overshot. By Little's law the requests
                // not waiting are the ones in service or on the wire: keep
                // those and α more.
                let busy = (in_flight - waiting).max(0.0);
                self.limit = (busy + alpha(busy)).ceil().clamp(1.0, self.limit);
                self.fast_start = false;
            } else if waiting > beta(self.limit) {
                decrease(self);
            } else if self.reached && waiting < alpha(self.limit) {
                self.limit = if self.fast_start { self.limit * 2.0 } else { self.limit + 1.0 };
            }
        }
        self.limit = self.limit.min(ceiling as f64);
        self.answers = 0;
        self.rtt_sum = 0.0;
        self.queue_sum = Some(0.0);
        self.outstanding_sum = 0.0;
        self.sends = 0;
        self.reached = false;
        self.back_pressure = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server with `workers` workers, each request taking `service` of
    /// work and `network` of round trip: the signals of `limit` requests
    /// kept in flight. The workers finish `workers / service` requests a
    /// second, so by Little's law the round trip is the larger of its
    /// unloaded value and `limit · service / workers`; the difference is
    /// time queued.
    fn answer(limit: usize, workers: usize, service: f64, network: f64) -> Signal {
        let unloaded = network + service;
        let rtt = unloaded.max(limit as f64 * service / workers as f64);
        Signal::Answer {
            rtt: Duration::from_secs_f64(rtt),
            queued: Some(Duration::from_secs_f64(rtt - unloaded)),
        }
    }

    /// The fewest requests in flight that keep the workers busy.
    fn needed(workers: usize, service: f64, network: f64) -> usize {
        (workers as f64 * (network + service) / service).ceil() as usize
    }

    /// The most the limit should settle at: α waiting above what keeps the
    /// workers busy, and one step of growth past it.
    fn settles(needed: usize) -> usize {
        needed + (needed / 3).max(2) + 2
    }

    fn settle(limiter: &Limiter, workers: usize, service: f64, network: f64, rounds: usize) {
        for _ in 0..rounds {
            let limit = limiter.limit();
            for _ in 0..limit.max(MIN_WINDOW as usize) {
                limiter.sent(limit);
                limiter.observe(answer(limit, workers, service, network));
            }
        }
    }

    #[test]
    fn finds_a_small_queue_above_what_keeps_the_workers_busy() {
        for workers in [1, 2, 4, 16] {
            for network in [0.0, 0.002, 0.010] {
                let limiter = Limiter::new(1024);
                settle(&limiter, workers, 0.001, network, 300);
                let limit = limiter.limit();
                let needed = needed(workers, 0.001, network);
                assert!(
                    limit > needed && limit <= settles(needed),
                    "{workers} workers, {network}s network: limit {limit}, {needed} needed"
                );
            }
        }
    }

    #[test]
    fn back_pressure_decreases_and_the_floor_is_one() {
        let limiter = Limiter::new(64);
        settle(&limiter, 8, 0.001, 0.0, 50);
        let before = limiter.limit();
        limiter.observe(Signal::BackPressure);
        assert_eq!(limiter.limit(), (before as f64 * DECREASE).floor() as usize);
        for _ in 0..100 {
            limiter.observe(Signal::BackPressure);
        }
        assert_eq!(limiter.limit(), 1);
    }

    #[test]
    fn follows_a_server_that_slows_down_and_never_passes_the_ceiling() {
        let limiter = Limiter::new(5);
        settle(&limiter, 16, 0.001, 0.0, 100);
        assert_eq!(limiter.limit(), 5, "held at the ceiling");
        let limiter = Limiter::new(256);
        settle(&limiter, 8, 0.001, 0.002, 100);
        // Capacity halves: each request takes twice the work.
        settle(&limiter, 8, 0.002, 0.002, 300);
        let limit = limiter.limit();
        let needed = needed(8, 0.002, 0.002);
        // It comes down until what waits is back within the band.
        assert!(
            limit > needed && (limit - needed) as f64 <= beta(limit as f64),
            "limit {limit} after the capacity halved, {needed} needed"
        );
    }

    #[test]
    fn without_queue_times_it_falls_back_to_the_round_trip() {
        let limiter = Limiter::new(256);
        for _ in 0..200 {
            let limit = limiter.limit();
            for _ in 0..limit.max(MIN_WINDOW as usize) {
                limiter.sent(limit);
                let Signal::Answer { rtt, .. } = answer(limit, 2, 0.001, 0.001) else {
                    unreachable!()
                };
                limiter.observe(Signal::Answer { rtt, queued: None });
            }
        }
        let limit = limiter.limit();
        let needed = needed(2, 0.001, 0.001);
        assert!(limit > needed && limit <= settles(needed), "limit {limit}, {needed} needed");
    }
}
