//! One retry policy for every client: what is worth retrying, how long the server asks to
//! wait, and the backoff between attempts.

use std::time::{Duration, SystemTime};

use backon::BackoffBuilder;
use reqwest::header::{HeaderMap, RETRY_AFTER};

/// Whether an answer with this status is worth another attempt: `408 Request Timeout`,
/// `429 Too Many Requests` and every `5xx`. Any other 4xx will be refused again.
pub fn transient(status: u16) -> bool {
    status == 408 || status == 429 || (500..600).contains(&status)
}

/// Whether a failed request (no answer) is worth another attempt: everything but a request
/// that could not be built (a bad URL or header).
pub fn transient_error(error: &reqwest::Error) -> bool {
    !error.is_builder()
}

/// How long `Retry-After` asks to wait: a number of seconds, or an HTTP date (`Retry-After:
/// Wed, 21 Oct 2026 07:28:00 GMT`, zero when it has passed). `None` without a readable one.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    parse_retry_after(headers.get(RETRY_AFTER)?.to_str().ok()?)
}

/// The value of a `Retry-After` header.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(SystemTime::now()).unwrap_or_default())
}

/// The backoff between attempts: exponential from `min` to `max`, doubling, with jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub min: Duration,
    pub max: Duration,
}

impl Backoff {
    /// The delay before attempt `attempt + 1` (`attempt` counts from 1), never below what the
    /// server asked for with `Retry-After`.
    pub fn delay(self, attempt: usize, retry_after: Option<Duration>) -> Duration {
        let backoff = backon::ExponentialBuilder::default()
            .with_min_delay(self.min)
            .with_max_delay(self.max)
            .with_factor(2.0)
            .with_jitter()
            .without_max_times()
            .build()
            .nth(attempt.saturating_sub(1))
            .unwrap_or(self.max);
        backoff.max(retry_after.unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_throttling_and_server_errors_are_transient() {
        for status in [408, 429, 500, 502, 503, 504] {
            assert!(transient(status), "{status}");
        }
        for status in [200, 400, 401, 403, 404, 413, 422] {
            assert!(!transient(status), "{status}");
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        let later = SystemTime::now() + Duration::from_secs(120);
        let wait = parse_retry_after(&httpdate::fmt_http_date(later)).unwrap();
        assert!(wait > Duration::from_secs(100) && wait <= Duration::from_secs(120), "{wait:?}");
        assert_eq!(parse_retry_after(&httpdate::fmt_http_date(SystemTime::UNIX_EPOCH)), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn backoff_grows_to_its_maximum_and_honours_retry_after() {
        let policy = Backoff { min: Duration::from_millis(100), max: Duration::from_secs(2) };
        assert!(policy.delay(1, None) >= Duration::from_millis(100));
        assert!(policy.delay(30, None) <= Duration::from_secs(4), "jitter adds at most the delay again");
        assert_eq!(policy.delay(1, Some(Duration::from_secs(9))), Duration::from_secs(9));
    }
}
