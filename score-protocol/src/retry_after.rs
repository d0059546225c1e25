//! `Retry-After` (RFC 9110 §10.2.3): what the server sends on 429 and 503,
//! and how a client reads it.

use std::time::{Duration, SystemTime};

/// The header's value for a wait: whole seconds, at least one (a zero would
/// invite an immediate retry storm).
pub fn format(wait: Duration) -> u64 {
    wait.as_secs().max(1)
}

/// Parses delay-seconds or an HTTP-date (a date in the past is no wait).
/// `None` for anything else.
pub fn parse(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse("7", now), Some(Duration::from_secs(7)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(parse(&later, now), Some(Duration::from_secs(30)));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse(&past, now), Some(Duration::ZERO));
        assert_eq!(parse("soon", now), None);
        assert_eq!(format(Duration::from_millis(300)), 1);
    }
}
