//! Admission control: how much scoring work the server accepts at once.
//!
//! Work is counted in bytes (which bounds memory whatever the model's
//! width) and in requests (which bounds the queue), both taken with
//! `try_acquire`: when either is exhausted the request is refused at once
//! with 429 rather than left waiting.
//!
//! A body is charged for the bytes that have actually arrived, a little
//! ahead ([`BodyCharge::grow`], from [`FIRST_STEP`]), never for what its
//! headers promise: a client that sends headers declaring 64 MiB and then
//! nothing holds nothing. Bodies still arriving may hold at most
//! [`RECEIVING_SHARE`] of the byte budget, so requests whose bodies are
//! complete (being decoded, queued, scored, answered) always find room; and
//! a request is counted against the request budget only once its body is
//! complete ([`BodyCharge::complete`]), so idle senders cannot take the
//! request slots either. How many bodies can be arriving at once is bounded
//! by the connection cap, and how slowly by the minimum body rate.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bytes are counted in KiB so that budgets beyond 4 GiB fit tokio's u32
/// permit counts.
const UNIT: usize = 1024;

/// The part of the byte budget that bodies still arriving may hold
/// (numerator over 4): three quarters. The last quarter is for requests
/// whose bodies are complete (decoded JSON, answers).
pub const RECEIVING_SHARE: (usize, usize) = (3, 4);

/// The first charge of a body: what a sender that has sent a byte holds.
pub const FIRST_STEP: usize = 16 * UNIT;

/// The admission budget.
#[derive(Debug)]
pub struct Admission {
    bytes: Arc<Semaphore>,
    receiving: Arc<Semaphore>,
    requests: Arc<Semaphore>,
    max_units: usize,
    max_receiving_units: usize,
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

/// The bytes a body arriving holds: the whole budget's and the receiving
/// share's.
#[derive(Debug)]
pub struct BodyCharge {
    bytes: OwnedSemaphorePermit,
    receiving: OwnedSemaphorePermit,
}

/// A request with a complete body: its bytes and its request slot, returned
/// on drop.
#[derive(Debug)]
pub struct Permit {
    _bytes: OwnedSemaphorePermit,
    _request: OwnedSemaphorePermit,
}

impl Admission {
    /// A budget of `max_bytes` bytes and `max_requests` requests.
    pub fn new(max_bytes: usize, max_requests: usize) -> Self {
        let max_units = max_bytes.div_ceil(UNIT).clamp(1, u32::MAX as usize);
        let max_receiving_units = (max_units * RECEIVING_SHARE.0 / RECEIVING_SHARE.1).max(1);
        let max_requests = max_requests.clamp(1, u32::MAX as usize);
        Admission {
            bytes: Arc::new(Semaphore::new(max_units)),
            receiving: Arc::new(Semaphore::new(max_receiving_units)),
            requests: Arc::new(Semaphore::new(max_requests)),
            max_units,
            max_receiving_units,
            max_requests,
        }
    }

    /// A body about to arrive: holds nothing yet.
    pub fn start_body(&self) -> BodyCharge {
        let none = |s: &Arc<Semaphore>| {
            s.clone().try_acquire_many_owned(0).expect("zero permits are always available")
        };
        BodyCharge { bytes: none(&self.bytes), receiving: none(&self.receiving) }
    }

    /// Whether a body of `bytes` could be received now (without reserving
    /// anything): lets a declared length that cannot fit be refused from
    /// its headers, before any of it is read. A body larger than the whole
    /// receiving share only needs it all free (see [`BodyCharge::grow`]).
    pub fn has_room_for(&self, bytes: usize) -> bool {
        let units = (Admission::units(bytes) as usize).min(self.max_receiving_units);
        self.receiving.available_permits() >= units && self.bytes.available_permits() >= units
    }

    /// Request bytes currently admitted (in whole KiB).
    pub fn inflight_bytes(&self) -> usize {
        (self.max_units - self.bytes.available_permits()) * UNIT
    }

    /// Requests with complete bodies currently admitted.
    pub fn inflight_requests(&self) -> usize {
        self.max_requests - self.requests.available_permits()
    }

    /// Bytes that bodies still arriving hold (in whole KiB).
    pub fn receiving_bytes(&self) -> usize {
        (self.max_receiving_units - self.receiving.available_permits()) * UNIT
    }

    fn units(bytes: usize) -> u32 {
        bytes.div_ceil(UNIT).min(u32::MAX as usize) as u32
    }
}

impl BodyCharge {
    /// Bytes held so far.
    pub fn held(&self) -> usize {
        self.bytes.num_permits() * UNIT
    }

    /// Makes the charge cover `bytes` of a body. Refused
    /// when either budget is spent. A body larger than the whole receiving
    /// share is charged the whole share: it arrives alone rather than never.
    pub fn grow(&mut self, admission: &Admission, bytes: usize) -> Result<(), Refused> {
        let held = self.receiving.num_permits();
        let target = (Admission::units(bytes) as usize).min(admission.max_receiving_units);
        if target <= held {
            return Ok(());
        }
        let more = (target - held) as u32;
        let receiving =
            admission.receiving.clone().try_acquire_many_owned(more).map_err(|_| Refused::Bytes)?;
        let bytes =
            admission.bytes.clone().try_acquire_many_owned(more).map_err(|_| Refused::Bytes)?;
        self.receiving.merge(receiving);
        self.bytes.merge(bytes);
        Ok(())
    }

    /// Gives back what is held beyond `bytes` (after a buffer's old
    /// allocation is freed).
    pub fn shrink_to(&mut self, bytes: usize) {
        let keep = Admission::units(bytes) as usize;
        let held = self.receiving.num_permits();
        if keep < held {
            drop(self.receiving.split(held - keep));
            drop(self.bytes.split(held - keep));
        }
    }

    /// The body is complete at `len` bytes: the receiving share is given
    /// back, the byte charge trimmed to `len` (plus `extra` for what
    /// decoding will need), and the request takes a request slot.
    pub fn complete(
        mut self,
        admission: &Admission,
        len: usize,
        extra: usize,
    ) -> Result<Permit, Refused> {
        let request =
            admission.requests.clone().try_acquire_owned().map_err(|_| Refused::Requests)?;
        let want =
            (Admission::units(len.saturating_add(extra)).max(1) as usize).min(admission.max_units);
        let held = self.bytes.num_permits();
        if want < held {
            drop(self.bytes.split(held - want));
        } else if want > held {
            let more = admission
                .bytes
                .clone()
                .try_acquire_many_owned((want - held) as u32)
                .map_err(|_| Refused::Bytes)?;
            self.bytes.merge(more);
        }
        Ok(Permit { _bytes: self.bytes, _request: request })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STEP: usize = 256 * UNIT;

    #[test]
    fn bodies_are_charged_for_what_they_hold() {
        let admission = Admission::new(64 * STEP, 100);
        let mut charge = admission.start_body();
        assert_eq!(admission.inflight_bytes(), 0, "headers alone hold nothing");
        charge.grow(&admission, FIRST_STEP).expect("room");
        assert_eq!(charge.held(), FIRST_STEP);
        charge.grow(&admission, 10).expect("already covered");
        assert_eq!(charge.held(), FIRST_STEP);
        charge.grow(&admission, 3 * STEP + 1).expect("room");
        assert_eq!(charge.held(), 3 * STEP + UNIT);
        assert_eq!(admission.inflight_bytes(), 3 * STEP + UNIT);
        drop(charge);
        assert_eq!(admission.inflight_bytes(), 0);
    }

    #[test]
    fn arriving_bodies_cannot_take_the_complete_share() {
        let admission = Admission::new(8 * STEP, 100);
        let mut a = admission.start_body();
        a.grow(&admission, 6 * STEP).expect("three quarters fit");
        let mut b = admission.start_body();
        assert_eq!(b.grow(&admission, 1), Err(Refused::Bytes));
        // A complete request still finds room for its decoded data.
        let done = a.complete(&admission, 6 * STEP, 2 * STEP).expect("the last quarter");
        assert_eq!(admission.inflight_bytes(), 8 * STEP);
        assert_eq!(admission.receiving_bytes(), 0);
        drop(done);
        assert_eq!(admission.inflight_bytes(), 0);
    }

    #[test]
    fn a_body_larger_than_the_share_arrives_alone() {
        let admission = Admission::new(8 * STEP, 10);
        let mut big = admission.start_body();
        big.grow(&admission, 100 * STEP).expect("charged the whole share");
        assert_eq!(admission.receiving_bytes(), 6 * STEP);
        assert_eq!(admission.start_body().grow(&admission, 1), Err(Refused::Bytes));
        let permit = big.complete(&admission, 100 * STEP, 0).expect("the whole budget");
        assert_eq!(admission.inflight_bytes(), 8 * STEP);
        drop(permit);
        assert!(admission.start_body().grow(&admission, 1).is_ok());
    }

    #[test]
    fn requests_are_counted_once_complete() {
        let admission = Admission::new(1 << 30, 2);
        let idle: Vec<BodyCharge> = (0..10).map(|_| admission.start_body()).collect();
        let _a = admission.start_body().complete(&admission, 10, 0).expect("first");
        let _b = admission.start_body().complete(&admission, 10, 0).expect("second");
        assert_eq!(admission.inflight_requests(), 2);
        let c = admission.start_body().complete(&admission, 10, 0);
        assert_eq!(c.unwrap_err(), Refused::Requests);
        drop(idle);
    }

    #[test]
    fn completion_trims_to_the_body() {
        let admission = Admission::new(64 * STEP, 10);
        let mut charge = admission.start_body();
        charge.grow(&admission, 3 * UNIT).expect("room");
        let permit = charge.complete(&admission, 3 * UNIT + 1, 0).expect("room");
        assert_eq!(admission.inflight_bytes(), 4 * UNIT);
        drop(permit);
    }
}
