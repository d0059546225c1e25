//! Admission control: how much scoring work the server accepts at once.
//!
//! Work is counted in request body bytes (which bounds memory whatever the
//! model's width) and in requests (which bounds the queue). Both are taken
//! with `try_acquire`: when either is exhausted the request is refused at
//! once with 429 rather than left waiting. The permit lives as long as the
//! request, so the budget covers reading the body, queueing, scoring and
//! writing the answer.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bytes are counted in KiB so that budgets beyond 4 GiB fit tokio's u32
/// permit counts.
const UNIT: usize = 1024;

/// The admission budget.
#[derive(Debug)]
pub struct Admission {
    bytes: Arc<Semaphore>,
    requests: Arc<Semaphore>,
    max_units: usize,
    max_requests: usize,
}

/// Why a request was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The byte budget is spent.
    Bytes,
    /// The request budget is spent.
    Requests,
}

/// A request's share of the budget, returned on drop.
#[derive(Debug)]
pub struct Permit {
    bytes: OwnedSemaphorePermit,
    _request: OwnedSemaphorePermit,
}

impl Admission {
    /// A budget of `max_bytes` request bytes and `max_requests` requests.
    pub fn new(max_bytes: usize, max_requests: usize) -> Self {
        let max_units = max_bytes.div_ceil(UNIT).clamp(1, u32::MAX as usize);
        let max_requests = max_requests.clamp(1, u32::MAX as usize);
        Admission {
            bytes: Arc::new(Semaphore::new(max_units)),
            requests: Arc::new(Semaphore::new(max_requests)),
            max_units,
            max_requests,
        }
    }

    /// Admits a request of `bytes`, or refuses it at once. A request larger
    /// than the whole budget is charged the whole budget, so it runs alone
    /// rather than never.
    pub fn try_admit(&self, bytes: usize) -> Result<Permit, Refused> {
        let units = self.units(bytes);
        let request = self.requests.clone().try_acquire_owned().map_err(|_| Refused::Requests)?;
        let bytes = self.bytes.clone().try_acquire_many_owned(units).map_err(|_| Refused::Bytes)?;
        Ok(Permit { bytes, _request: request })
    }

    /// Request bytes currently admitted (in whole KiB).
    pub fn inflight_bytes(&self) -> usize {
        (self.max_units - self.bytes.available_permits()) * UNIT
    }

    /// Requests currently admitted.
    pub fn inflight_requests(&self) -> usize {
        self.max_requests - self.requests.available_permits()
    }

    fn units(&self, bytes: usize) -> u32 {
        // Cannot truncate: clamped to max_units, itself at most u32::MAX.
        bytes.div_ceil(UNIT).clamp(1, self.max_units) as u32
    }
}

impl Permit {
    /// Gives back the part of the permit above `bytes`: a body without a
    /// Content-Length is admitted at the body limit, then shrunk once read.
    pub fn shrink_to(&mut self, bytes: usize) {
        let keep = bytes.div_ceil(UNIT).max(1);
        let held = self.bytes.num_permits();
        if keep < held {
            drop(self.bytes.split(held - keep));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_when_bytes_are_spent_and_frees_on_drop() {
        let admission = Admission::new(10 * UNIT, 100);
        let a = admission.try_admit(6 * UNIT).expect("fits");
        assert_eq!(admission.try_admit(5 * UNIT).unwrap_err(), Refused::Bytes);
        assert_eq!(admission.inflight_bytes(), 6 * UNIT);
        drop(a);
        assert!(admission.try_admit(10 * UNIT).is_ok());
        assert_eq!(admission.inflight_bytes(), 0);
    }

    #[test]
    fn refuses_when_requests_are_spent() {
        let admission = Admission::new(1 << 20, 2);
        let _a = admission.try_admit(1).expect("first");
        let _b = admission.try_admit(1).expect("second");
        assert_eq!(admission.try_admit(1).unwrap_err(), Refused::Requests);
        assert_eq!(admission.inflight_requests(), 2);
    }

    #[test]
    fn oversized_request_runs_alone() {
        let admission = Admission::new(4 * UNIT, 10);
        let big = admission.try_admit(100 * UNIT).expect("charged the whole budget");
        assert_eq!(admission.try_admit(1).unwrap_err(), Refused::Bytes);
        drop(big);
        assert!(admission.try_admit(1).is_ok());
    }

    #[test]
    fn shrink_returns_the_excess() {
        let admission = Admission::new(64 * UNIT, 10);
        let mut permit = admission.try_admit(64 * UNIT).expect("fits");
        permit.shrink_to(3 * UNIT + 1);
        assert_eq!(admission.inflight_bytes(), 4 * UNIT);
        assert!(admission.try_admit(60 * UNIT).is_ok());
    }
}
