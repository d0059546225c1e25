//! What to do after an attempt: done, fail with this error, or retry after
//! this wait avoiding these endpoints. One pure step ([`decide`]) of the
//! attempt, its outcome, the retry budget and the deadline, in the shape
//! of tower's `retry::Policy`; the request loop around it
//! (`client.rs`) only sends, records and sleeps.

use std::time::{Duration, Instant};

use crate::batch::Scored;
use crate::error::ScoreError;
use crate::retry::{Backoff, RetryBudget, Retryable};

/// How one attempt went.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Scored, shape and version checked; the server's queue time if it
    /// said.
    Scored(Scored, Option<Duration>),
    /// Served by another model version than the job's.
    WrongVersion { served: Option<String>, message: String },
    /// Worth another attempt.
    Transient { reason: Retryable, retry_after: Option<Duration>, message: String },
    /// Refused for good by the server.
    Refused { status: u16, message: String },
    /// The answer contradicts the request or the protocol.
    Bad(String),
}

/// The attempt that just ended, and what the policy needs to know of it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Step<'a> {
    /// Attempts made so far (this one included, from 1).
    pub attempt: u32,
    /// Most attempts a batch gets.
    pub max_attempts: u32,
    /// The endpoint tried and how many there are.
    pub endpoint: usize,
    pub endpoints: usize,
    /// Its URL, for error messages.
    pub url: &'a str,
    /// The batch's place in the input.
    pub first_row: u64,
    pub rows: usize,
    /// The model version the job is pinned to, if any yet.
    pub pinned: Option<&'a str>,
    /// When the batch's caller stops waiting, and now.
    pub deadline: Option<Instant>,
    pub now: Instant,
    /// When the batch began failing to connect (the first of its
    /// connection failures in a row, this one included) and how many
    /// there have been; `None` when this attempt connected.
    pub unreachable: Option<(Instant, u32)>,
    /// How long an attempt may take, connecting included.
    pub timeout: Duration,
}

/// What the loop does next.
#[derive(Debug)]
pub(crate) enum Decision {
    /// The batch is scored.
    Done(Scored),
    /// The batch fails with this error.
    Fail(ScoreError),
    /// Try again after `wait`, not on endpoint `avoid` (where there is a
    /// choice), counting the retry under `reason`.
    Retry { wait: Duration, avoid: Option<usize>, reason: Retryable, last: String },
    /// The connection could not be made: try to connect again after
    /// `wait`, not on endpoint `avoid`, still within the same attempt (it
    /// spends no attempt and no retry budget).
    Reconnect { wait: Duration, avoid: Option<usize>, last: String },
}

/// The longest wait between two tries to connect within one attempt: a
/// proxy back from a restart is found within about this.
const RECONNECT_MAX: Duration = Duration::from_secs(1);

/// The next move after `outcome`. Takes a retry from `budget` when it
/// decides to retry, and nothing else: no I/O, no clock (the step carries
/// `now`), so every branch is tested without a socket.
pub(crate) fn decide(
    step: &Step<'_>,
    outcome: Outcome,
    budget: &RetryBudget,
    backoff: &Backoff,
) -> Decision {
    let url = step.url.to_string();
    // With one address (a proxy), the next attempt may reach another
    // replica behind it: retry there rather than nowhere.
    let avoid = (step.endpoints > 1).then_some(step.endpoint);
    let (reason, retry_after, last) = match outcome {
        Outcome::Scored(scored, _) => return Decision::Done(scored),
        Outcome::Refused { status, message } => {
            return Decision::Fail(ScoreError::Rejected {
                url,
                status,
                message,
                first_row: step.first_row,
                rows: step.rows,
            });
        }
        Outcome::Bad(detail) => {
            return Decision::Fail(ScoreError::BadResponse {
                url,
                first_row: step.first_row,
                rows: step.rows,
                detail,
            });
        }
        Outcome::WrongVersion { served, message } => {
            // Not broken, but of no use to this job while it serves that
            // version: the next attempts go elsewhere.
            if step.attempt >= step.max_attempts || !budget.withdraw() {
                return Decision::Fail(ScoreError::WrongVersion {
                    pinned: step.pinned.unwrap_or("?").to_string(),
                    url,
                    served: served.unwrap_or_else(|| "another version".into()),
                    first_row: step.first_row,
                    rows: step.rows,
                    attempts: step.attempt,
                });
            }
            // Behind one proxy address, give the fleet a moment; with a
            // choice, go to another endpoint at once.
            let wait = if step.endpoints == 1 {
                backoff.delay(step.attempt - 1, None)
            } else {
                Duration::ZERO
            };
            return Decision::Retry { wait, avoid, reason: Retryable::WrongVersion, last: message };
        }
        Outcome::Transient { reason, retry_after, message } => {
            (reason, retry_after, format!("{url}: {message}"))
        }
    };
    let give_up = |why: &str| {
        Decision::Fail(ScoreError::GaveUp {
            first_row: step.first_row,
            rows: step.rows,
            attempts: step.attempt,
            last: format!("{last} ({why})"),
        })
    };
    if let (Retryable::Connect, Some((since, tries))) = (reason, step.unreachable) {
        // No request went out, so no server did any work: waiting for a
        // connection is part of this attempt, bounded by its timeout, and
        // spends neither attempts nor the budget (which guards servers
        // from retry storms). A proxy restarting, or a name briefly gone
        // from DNS, is then ridden out instead of failing the job.
        let until = since + step.timeout;
        if step.now < until {
            // With several endpoints, the first tries go to the others at
            // once; then all of them are down, and the tries back off.
            let wait = if step.endpoints > 1 && tries < step.endpoints as u32 {
                Duration::ZERO
            } else {
                backoff.delay(tries - 1, None).min(RECONNECT_MAX).min(until - step.now)
            };
            if step.deadline.is_some_and(|d| step.now + wait >= d) {
                return give_up("the deadline would pass before the retry");
            }
            return Decision::Reconnect { wait, avoid, last };
        }
    }
    if step.attempt >= step.max_attempts {
        return give_up(&match step.unreachable {
            Some((since, _)) => format!(
                "attempts exhausted; no connection for {:.1} s",
                step.now.duration_since(since).as_secs_f64()
            ),
            None => "attempts exhausted".into(),
        });
    }
    if !budget.withdraw() {
        return give_up("retry budget exhausted");
    }
    let wait = backoff.delay(step.attempt - 1, retry_after);
    if step.deadline.is_some_and(|d| step.now + wait >= d) {
        return give_up("the deadline would pass before the retry");
    }
    Decision::Retry { wait, avoid, reason, last }
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "http://a:1/score";

    fn step(attempt: u32, endpoints: usize) -> Step<'static> {
        Step {
            attempt,
            max_attempts: 3,
            endpoint: 0,
            endpoints,
            url: URL,
            first_row: 10,
            rows: 5,
            pinned: Some("v1"),
            deadline: None,
            now: Instant::now(),
            unreachable: None,
            timeout: Duration::from_secs(5),
        }
    }

    fn backoff() -> Backoff {
        Backoff { base: Duration::from_millis(100), max: Duration::from_secs(2) }
    }

    fn plenty() -> RetryBudget {
        RetryBudget::new(1.0, 1000.0)
    }

    fn busy() -> Outcome {
        Outcome::Transient {
            reason: Retryable::TooManyRequests,
            retry_after: None,
            message: "HTTP 429: full".into(),
        }
    }

    #[test]
    fn scored_is_done() {
        let scored = Scored { first_row: 10, rows: 1, columns: 1, values: vec![0.5] };
        let d = decide(&step(1, 1), Outcome::Scored(scored.clone(), None), &plenty(), &backoff());
        assert!(matches!(d, Decision::Done(s) if s == scored));
    }

    #[test]
    fn refusals_and_bad_answers_fail_at_once_with_the_servers_words() {
        let d = decide(
            &step(1, 2),
            Outcome::Refused { status: 400, message: "wrong width".into() },
            &plenty(),
            &backoff(),
        );
        let Decision::Fail(ScoreError::Rejected {
            status: 400,
            message,
            first_row: 10,
            rows: 5,
            ..
        }) = d
        else {
            panic!("{d:?}")
        };
        assert_eq!(message, "wrong width");
        let d = decide(&step(1, 2), Outcome::Bad("short".into()), &plenty(), &backoff());
        assert!(matches!(d, Decision::Fail(ScoreError::BadResponse { .. })), "{d:?}");
    }

    #[test]
    fn transient_failures_retry_elsewhere_within_the_backoff() {
        let d = decide(&step(2, 3), busy(), &plenty(), &backoff());
        let Decision::Retry { wait, avoid, reason, last } = d else { panic!("{d:?}") };
        assert_eq!((avoid, reason), (Some(0), Retryable::TooManyRequests));
        assert!(wait <= Duration::from_millis(200), "{wait:?}: attempt 2 waits at most base·2");
        assert_eq!(last, format!("{URL}: HTTP 429: full"));
        // One address: no endpoint to avoid.
        let d = decide(&step(1, 1), busy(), &plenty(), &backoff());
        assert!(matches!(d, Decision::Retry { avoid: None, .. }), "{d:?}");
    }

    #[test]
    fn retry_after_is_a_floor_under_the_max() {
        let told = Outcome::Transient {
            reason: Retryable::Unavailable,
            retry_after: Some(Duration::from_secs(1)),
            message: "draining".into(),
        };
        let Decision::Retry { wait, .. } = decide(&step(1, 1), told, &plenty(), &backoff()) else {
            panic!()
        };
        assert!(wait >= Duration::from_secs(1) && wait <= Duration::from_secs(2), "{wait:?}");
    }

    #[test]
    fn attempts_budget_and_deadline_each_end_retrying() {
        let why = |d: Decision| match d {
            Decision::Fail(ScoreError::GaveUp { last, attempts, .. }) => (last, attempts),
            other => panic!("{other:?}"),
        };
        let (last, attempts) = why(decide(&step(3, 2), busy(), &plenty(), &backoff()));
        assert!(last.ends_with("(attempts exhausted)"), "{last}");
        assert_eq!(attempts, 3);

        let empty = RetryBudget::new(0.0, 0.0);
        assert!(empty.withdraw(), "a new budget holds one retry");
        let (last, _) = why(decide(&step(1, 2), busy(), &empty, &backoff()));
        assert!(last.ends_with("(retry budget exhausted)"), "{last}");

        let mut s = step(1, 2);
        s.deadline = Some(s.now);
        let (last, _) = why(decide(&s, busy(), &plenty(), &backoff()));
        assert!(last.ends_with("(the deadline would pass before the retry)"), "{last}");
    }

    #[test]
    fn another_version_goes_elsewhere_at_once_or_fails_naming_both() {
        let other = || Outcome::WrongVersion { served: Some("v2".into()), message: "409".into() };
        let d = decide(&step(1, 2), other(), &plenty(), &backoff());
        assert!(
            matches!(
                d,
                Decision::Retry {
                    wait: Duration::ZERO,
                    avoid: Some(0),
                    reason: Retryable::WrongVersion,
                    ..
                }
            ),
            "{d:?}"
        );
        let d = decide(&step(3, 2), other(), &plenty(), &backoff());
        let Decision::Fail(ScoreError::WrongVersion { pinned, served, attempts: 3, .. }) = d else {
            panic!("{d:?}")
        };
        assert_eq!((pinned.as_str(), served.as_str()), ("v1", "v2"));
    }

    #[test]
    fn connecting_again_spends_nothing_until_the_attempts_timeout() {
        let refused = || Outcome::Transient {
            reason: Retryable::Connect,
            retry_after: None,
            message: "cannot connect: Connection refused".into(),
        };
        let empty = RetryBudget::new(0.0, 0.0);
        assert!(empty.withdraw(), "a new budget holds one retry");
        // The only endpoint, attempts and budget spent: still within the
        // attempt's timeout, so it waits and connects again.
        let mut s = step(3, 1);
        s.unreachable = Some((s.now - Duration::from_secs(4), 9));
        let d = decide(&s, refused(), &empty, &backoff());
        let Decision::Reconnect { wait, avoid: None, .. } = d else { panic!("{d:?}") };
        assert!(wait <= RECONNECT_MAX, "{wait:?}");
        // Several endpoints: the others first, at once.
        let mut s = step(1, 3);
        s.unreachable = Some((s.now, 1));
        let d = decide(&s, refused(), &empty, &backoff());
        assert!(matches!(d, Decision::Reconnect { wait: Duration::ZERO, avoid: Some(0), .. }));
        // Past the timeout, a failure to connect counts like any other.
        let mut s = step(3, 1);
        s.unreachable = Some((s.now - Duration::from_secs(5), 20));
        let Decision::Fail(ScoreError::GaveUp { last, .. }) =
            decide(&s, refused(), &plenty(), &backoff())
        else {
            panic!()
        };
        assert!(last.ends_with("(attempts exhausted; no connection for 5.0 s)"), "{last}");
    }
}
