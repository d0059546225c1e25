//! The partition's rows in input order: which were sent and which the Java
//! side could not send (a null feature, a text batch past 2 GiB), so that
//! every input row comes back exactly once, in order, scored or with its
//! reason. Java keeps only the rows' pass-through values, in the same
//! order, and pairs them with what [`Ledger::next`] hands back; the
//! bookkeeping of where a rejected row falls between scored batches, and
//! its message, is here.

use std::collections::VecDeque;

/// What the Java side gets next.
#[derive(Debug, PartialEq)]
pub(crate) enum Out {
    /// The next `rows` rows' scores, row-major.
    Scores { values: Vec<f32>, rows: usize },
    /// The next `rows` rows failed, for this reason.
    Failed { rows: usize, message: String },
}

/// A batch being handed back, possibly in pieces (a rejected row may fall
/// inside it).
#[derive(Debug)]
enum Run {
    Scored { values: Vec<f32>, columns: usize, rows: usize, at: usize },
    Failed { rows: usize, at: usize, message: String },
}

/// Sent and rejected rows, in input order.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    /// Rejected rows not yet handed back: the sent rows before each, and
    /// its message.
    rejected: VecDeque<(u64, String)>,
    /// Rows sent so far.
    sent: u64,
    /// Rows rejected so far.
    rejections: u64,
    /// Sent rows handed back so far.
    returned: u64,
    run: Option<Run>,
}

impl Ledger {
    /// A row that cannot be sent, after `before` rows of the block being
    /// filled (not yet [`Ledger::sent`]): its message, `row N of the
    /// partition: why`, which it is handed back with.
    pub(crate) fn reject(&mut self, before: u64, why: &str) -> String {
        let sent_before = self.sent + before;
        let message = format!("row {} of the partition: {why}", sent_before + self.rejections);
        self.rejections += 1;
        self.rejected.push_back((sent_before, message.clone()));
        message
    }

    /// `rows` more rows were sent.
    pub(crate) fn sent(&mut self, rows: usize) {
        self.sent += rows as u64;
    }

    /// A scored batch from the session: `values` row-major, `columns` a row.
    pub(crate) fn scored(&mut self, values: Vec<f32>, columns: usize, rows: usize) {
        debug_assert!(self.run.is_none(), "a batch is still being handed back");
        self.run = Some(Run::Scored { values, columns, rows, at: 0 });
    }

    /// A batch of `rows` sent rows that failed.
    pub(crate) fn failed(&mut self, rows: usize, message: String) {
        debug_assert!(self.run.is_none(), "a batch is still being handed back");
        self.run = Some(Run::Failed { rows, at: 0, message });
    }

    /// The next rows in input order that are known, if any: a rejected
    /// row whose turn it is, else as much of the current batch as comes
    /// before the next rejected row. `None`: the session's next batch is
    /// needed.
    pub(crate) fn next(&mut self) -> Option<Out> {
        if let Some((before, _)) = self.rejected.front()
            && *before == self.returned
        {
            let (_, message) = self.rejected.pop_front()?;
            return Some(Out::Failed { rows: 1, message });
        }
        let limit = self.rejected.front().map(|(before, _)| (before - self.returned) as usize);
        let run = self.run.as_mut()?;
        let (out, left) = match run {
            Run::Scored { values, columns, rows, at } => {
                let take = (*rows - *at).min(limit.unwrap_or(usize::MAX));
                let out = values[*at * *columns..(*at + take) * *columns].to_vec();
                *at += take;
                (Out::Scores { values: out, rows: take }, *rows - *at)
            }
            Run::Failed { rows, at, message } => {
                let take = (*rows - *at).min(limit.unwrap_or(usize::MAX));
                *at += take;
                (Out::Failed { rows: take, message: message.clone() }, *rows - *at)
            }
        };
        if left == 0 {
            self.run = None;
        }
        self.returned += match &out {
            Out::Scores { rows, .. } | Out::Failed { rows, .. } => *rows as u64,
        };
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scores(rows: usize) -> Out {
        Out::Scores { values: (0..rows).map(|r| r as f32).collect(), rows }
    }

    #[test]
    fn rows_come_back_in_input_order_around_rejections() {
        let mut l = Ledger::default();
        // Input: bad, good, good, bad, good | good (two blocks of sends).
        assert_eq!(l.reject(0, "null"), "row 0 of the partition: null");
        assert_eq!(l.reject(2, "null"), "row 3 of the partition: null");
        l.sent(3);
        l.sent(1);
        assert_eq!(
            l.next(),
            Some(Out::Failed { rows: 1, message: "row 0 of the partition: null".into() })
        );
        assert_eq!(l.next(), None, "the session's batch is needed");
        l.scored(vec![0.0, 1.0, 2.0, 3.0], 1, 4);
        assert_eq!(l.next(), Some(scores(2)));
        assert_eq!(
            l.next(),
            Some(Out::Failed { rows: 1, message: "row 3 of the partition: null".into() })
        );
        assert_eq!(l.next(), Some(Out::Scores { values: vec![2.0, 3.0], rows: 2 }));
        assert_eq!(l.next(), None);
    }

    #[test]
    fn a_failed_batch_is_split_around_a_rejection_and_rejections_at_the_end_come_last() {
        let mut l = Ledger::default();
        l.sent(2);
        l.reject(0, "empty");
        l.sent(1);
        l.reject(0, "late");
        l.failed(3, "HTTP 400".into());
        assert_eq!(l.next(), Some(Out::Failed { rows: 2, message: "HTTP 400".into() }));
        assert_eq!(
            l.next(),
            Some(Out::Failed { rows: 1, message: "row 2 of the partition: empty".into() })
        );
        assert_eq!(l.next(), Some(Out::Failed { rows: 1, message: "HTTP 400".into() }));
        assert_eq!(
            l.next(),
            Some(Out::Failed { rows: 1, message: "row 4 of the partition: late".into() })
        );
        assert_eq!(l.next(), None);
    }

    #[test]
    fn wide_scores_are_cut_by_rows() {
        let mut l = Ledger::default();
        l.sent(3);
        l.reject(0, "x");
        l.scored((0..6).map(|v| v as f32).collect(), 2, 3);
        l.reject(0, "y");
        assert_eq!(
            l.next(),
            Some(Out::Scores { values: (0..6).map(|v| v as f32).collect(), rows: 3 })
        );
        assert!(matches!(l.next(), Some(Out::Failed { rows: 1, .. })));
        assert!(matches!(l.next(), Some(Out::Failed { rows: 1, .. })));
        assert_eq!(l.next(), None);
    }
}
