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
use std::sync::atomic::{AtomicUsize, Ordering};

/// Bytes are counted in KiB.
const UNIT: usize = 1024;

/// The part of the byte budget that bodies still arriving may hold
/// (numerator over 4): three quarters. The last quarter is for requests
/// whose bodies are complete (decoded JSON, answers).
pub const RECEIVING_SHARE: (usize, usize) = (3, 4);

/// The first charge of a body: what a sender that has sent a byte holds.
pub const FIRST_STEP: usize = 16 * UNIT;

/// The admission budget.
///
/// Only ever taken with "try" and given back, never waited on, so each
/// budget is one atomic counter: no lock on the request path (a tokio
/// semaphore takes its waiters' mutex on every release).
#[derive(Debug)]
pub struct Admission {
    budgets: Arc<Budgets>,
    max_units: usize,
    max_receiving_units: usize,
    max_requests: usize,
}

/// What is left of each budget.
#[derive(Debug)]
struct Budgets {
    bytes: Budget,
    receiving: Budget,
    requests: Budget,
}

/// Units left of one budget.
#[derive(Debug)]
struct Budget(AtomicUsize);

impl Budget {
    /// Takes `units` if that many are left.
    fn take(&self, units: usize) -> bool {
        units == 0
            || self
                .0
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| left.checked_sub(units))
                .is_ok()
    }

    fn give(&self, units: usize) {
        if units > 0 {
            self.0.fetch_add(units, Ordering::AcqRel);
        }
    }

    fn left(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }
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
/// share's (the same number of units of each), returned on drop.
#[derive(Debug)]
pub struct BodyCharge {
    budgets: Arc<Budgets>,
    units: usize,
}

/// A request with a complete body: its bytes and its request slot, returned
/// on drop.
#[derive(Debug)]
pub struct Permit {
    budgets: Arc<Budgets>,
    units: usize,
}

impl Admission {
    /// A budget of `max_bytes` bytes and `max_requests` requests.
    pub fn new(max_bytes: usize, max_requests: usize) -> Self {
        let max_units = max_bytes.div_ceil(UNIT).max(1);
        let max_receiving_units = (max_units * RECEIVING_SHARE.0 / RECEIVING_SHARE.1).max(1);
        let max_requests = max_requests.max(1);
        Admission {
            budgets: Arc::new(Budgets {
                bytes: Budget(AtomicUsize::new(max_units)),
                receiving: Budget(AtomicUsize::new(max_receiving_units)),
                requests: Budget(AtomicUsize::new(max_requests)),
            }),
            max_units,
            max_receiving_units,
            max_requests,
        }
    }

    /// A body about to arrive: holds nothing yet.
    pub fn start_body(&self) -> BodyCharge {
        BodyCharge { budgets: self.budgets.clone(), units: 0 }
    }

    /// Whether a body of `bytes` could be received now (without reserving
    /// anything): lets a declared length that cannot fit be refused from
    /// its headers, before any of it is read. A body larger than the whole
    /// receiving share only needs it all free (see [`BodyCharge::grow`]).
    pub fn has_room_for(&self, bytes: usize) -> bool {
        let units = Admission::units(bytes).min(self.max_receiving_units);
        self.budgets.receiving.left() >= units && self.budgets.bytes.left() >= units
    }

    /// Request bytes currently admitted (in whole KiB).
    pub fn inflight_bytes(&self) -> usize {
        (self.max_units - self.budgets.bytes.left()) * UNIT
    }

    /// Requests with complete bodies currently admitted.
    pub fn inflight_requests(&self) -> usize {
        self.max_requests - self.budgets.requests.left()
    }

    /// Bytes that bodies still arriving hold (in whole KiB).
    pub fn receiving_bytes(&self) -> usize {
        (self.max_receiving_units - self.budgets.receiving.left()) * UNIT
    }

    fn units(bytes: usize) -> usize {
        bytes.div_ceil(UNIT)
    }
}

impl BodyCharge {
    /// Bytes held so far.
    pub fn held(&self) -> usize {
        self.units * UNIT
    }

    /// Makes the charge cover `bytes` of a body. Refused
    /// when either budget is spent. A body larger than the whole receiving
    /// share is charged the whole share: it arrives alone rather than never.
    pub fn grow(&mut self, admission: &Admission, bytes: usize) -> Result<(), Refused> {
        let target = Admission::units(bytes).min(admission.max_receiving_units);
        if target <= self.units {
            return Ok(());
        }
        let more = target - self.units;
        if !self.budgets.receiving.take(more) {
            return Err(Refused::Bytes);
        }
        if !self.budgets.bytes.take(more) {
            self.budgets.receiving.give(more);
            return Err(Refused::Bytes);
        }
        self.units = target;
        Ok(())
    }

    /// Gives back what is held beyond `bytes` (after a buffer's old
    /// allocation is freed).
    pub fn shrink_to(&mut self, bytes: usize) {
        let keep = Admission::units(bytes);
        if keep < self.units {
            self.budgets.receiving.give(self.units - keep);
            self.budgets.bytes.give(self.units - keep);
            self.units = keep;
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
        if !self.budgets.requests.take(1) {
            return Err(Refused::Requests);
        }
        let want = Admission::units(len.saturating_add(extra)).max(1).min(admission.max_units);
        let held = self.units;
        if want > held && !self.budgets.bytes.take(want - held) {
            self.budgets.requests.give(1);
            return Err(Refused::Bytes);
        }
        if want < held {
            self.budgets.bytes.give(held - want);
        }
        // The bytes move to the permit; the receiving share is given back.
        self.budgets.receiving.give(held);
        self.units = 0;
        Ok(Permit { budgets: self.budgets.clone(), units: want })
    }
}

impl Permit {
    /// Adds `bytes` to what the request holds: what decoding expanded and
    /// what its answer will take, charged before that work is done.
    /// Refused when the byte budget is spent (the caller answers 429, or
    /// 413 when [`Admission::could_ever_hold`] says no wait would help).
    pub fn grow(&mut self, bytes: usize) -> Result<(), Refused> {
        let more = Admission::units(bytes);
        if !self.budgets.bytes.take(more) {
            return Err(Refused::Bytes);
        }
        self.units += more;
        Ok(())
    }

    /// Bytes held.
    pub fn held(&self) -> usize {
        self.units * UNIT
    }
}

impl Admission {
    /// Whether a request holding `held` bytes could take `more` once the
    /// budget is otherwise free: if not, waiting cannot help.
    pub fn could_ever_hold(&self, held: usize, more: usize) -> bool {
        Admission::units(held).saturating_add(Admission::units(more)) <= self.max_units
    }

    /// The byte budget.
    pub fn max_bytes(&self) -> usize {
        self.max_units * UNIT
    }
}

impl Drop for BodyCharge {
    fn drop(&mut self) {
        self.budgets.receiving.give(self.units);
        self.budgets.bytes.give(self.units);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.budgets.bytes.give(self.units);
        self.budgets.requests.give(1);
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
    fn a_permit_grows_for_decoding_and_the_answer() {
        let admission = Admission::new(8 * STEP, 10);
        let mut permit = admission.start_body().complete(&admission, STEP, 0).expect("room");
        permit.grow(3 * STEP).expect("room for the answer");
        assert_eq!(admission.inflight_bytes(), 4 * STEP);
        assert!(admission.could_ever_hold(permit.held(), 4 * STEP));
        assert!(!admission.could_ever_hold(permit.held(), 4 * STEP + 1));
        assert_eq!(permit.grow(5 * STEP), Err(Refused::Bytes));
        assert_eq!(admission.inflight_bytes(), 4 * STEP, "a refused growth takes nothing");
        drop(permit);
        assert_eq!(admission.inflight_bytes(), 0);
        assert_eq!(admission.inflight_requests(), 0);
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
