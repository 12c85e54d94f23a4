//! What an unsuccessful HTTP answer means, whatever the API's shape, and when to call again.
//!
//! | answer | outcome |
//! |---|---|
//! | 429, 503 | throttled: called again after `Retry-After` (or the backoff); no attempt used |
//! | 408, other 5xx | retryable failure; `Retry-After` decides the delay when given |
//! | other 4xx, 3xx | permanent failure: the request itself is wrong (or redirected off the API's host, which is not followed); retrying cannot help |
//!
//! `Retry-After` is read in both of its forms, seconds and an HTTP date, and capped.

use std::time::{Duration, SystemTime};

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use taskq::{Failure, Outcome};

use super::template::text_of;

/// The longest provider message kept in a task's record, in bytes.
const MAX_MESSAGE_BYTES: usize = 1000;

/// Whether the answer asks the caller to slow down rather than saying the call failed.
pub fn is_throttling(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE
}

/// The outcome of an answer that is not a success, with the provider's own message when it gave
/// one.
pub fn unsuccessful(
    status: StatusCode,
    retry_after: Option<Duration>,
    provider_message: Option<String>,
) -> Outcome {
    let mut message = format!("the API answered HTTP {}", status.as_u16());
    if status.is_redirection() {
        message.push_str(" (redirects are followed only on the API's own host, five at most)");
    }
    if let Some(said) = provider_message {
        message.push_str(": ");
        message.push_str(&said);
    }
    if is_throttling(status) {
        return Outcome::Throttled {
            message,
            retry_after,
        };
    }
    let retryable = status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT;
    let mut failure = if retryable {
        Failure::retryable(message)
    } else {
        Failure::permanent(message)
    };
    failure.retry_after = retry_after.filter(|_| retryable);
    Outcome::Failed(failure)
}

/// The wait a `Retry-After` header asks for (seconds or an HTTP date), at most `cap`; `None`
/// when there is none, it does not parse, or it asks for no wait at all (`0`, or a date already
/// past, as a provider whose clock is behind ours sends): then the poll interval or the backoff
/// applies, so a throttled task never calls again at once.
pub fn retry_after(headers: &HeaderMap, cap: Duration) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let wait = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => httpdate::parse_http_date(value)
            .ok()?
            .duration_since(SystemTime::now())
            .ok()?,
    };
    (!wait.is_zero()).then(|| wait.min(cap))
}

/// A provider's message as a task record keeps it: text as it is, other JSON as JSON, cut to
/// [`MAX_MESSAGE_BYTES`].
pub fn message_of(value: &serde_json::Value) -> String {
    let mut text = text_of(value);
    if text.len() > MAX_MESSAGE_BYTES {
        text.truncate(clip(&text, MAX_MESSAGE_BYTES).len());
        text.push('…');
    }
    text
}

/// The start of `text`, at most `max_bytes` long, cut between characters.
pub(crate) fn clip(text: &str, max_bytes: usize) -> &str {
    let mut end = text.len().min(max_bytes);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    fn failure(outcome: Outcome) -> Failure {
        match outcome {
            Outcome::Failed(failure) => failure,
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn throttling_uses_no_attempt_server_errors_retry_and_client_errors_are_permanent() {
        let wait = Some(Duration::from_secs(7));
        for code in [429, 503] {
            let status = StatusCode::from_u16(code).unwrap();
            assert_eq!(
                unsuccessful(status, wait, None),
                Outcome::Throttled {
                    message: format!("the API answered HTTP {code}"),
                    retry_after: wait
                }
            );
        }
        for code in [500, 502, 504, 408] {
            let status = StatusCode::from_u16(code).unwrap();
            let failure = failure(unsuccessful(status, wait, None));
            assert!(!failure.permanent, "{code}");
            assert_eq!(failure.retry_after, wait);
        }
        for code in [400, 401, 403, 404, 422, 302] {
            let status = StatusCode::from_u16(code).unwrap();
            let failure = failure(unsuccessful(status, wait, None));
            assert!(failure.permanent, "{code}");
            assert_eq!(failure.retry_after, None, "{code}");
        }
    }

    #[test]
    fn the_providers_message_is_kept() {
        let failure = failure(unsuccessful(
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            Some("prompt is empty".into()),
        ));
        assert_eq!(
            failure.message,
            "the API answered HTTP 422: prompt is empty"
        );
    }

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn retry_after_reads_seconds_and_dates_and_is_capped() {
        let cap = Duration::from_secs(60);
        assert_eq!(
            retry_after(&headers("5"), cap),
            Some(Duration::from_secs(5))
        );
        assert_eq!(retry_after(&headers("99999"), cap), Some(cap));
        let in_ten = SystemTime::now() + Duration::from_secs(10);
        let wait = retry_after(&headers(&httpdate::fmt_http_date(in_ten)), cap).unwrap();
        assert!(
            wait > Duration::from_secs(8) && wait <= Duration::from_secs(10),
            "{wait:?}"
        );
        let past = headers("Wed, 21 Oct 2015 07:28:00 GMT");
        assert_eq!(retry_after(&past, cap), None, "no wait is no Retry-After");
        assert_eq!(retry_after(&headers("0"), cap), None);
        let far = SystemTime::now() + Duration::from_secs(86_400);
        assert_eq!(
            retry_after(&headers(&httpdate::fmt_http_date(far)), cap),
            Some(cap)
        );
        assert_eq!(retry_after(&headers("soon"), cap), None);
        assert_eq!(retry_after(&HeaderMap::new(), cap), None);
    }

    #[test]
    fn long_messages_are_cut_on_a_character_boundary() {
        let long = serde_json::Value::String("é".repeat(MAX_MESSAGE_BYTES));
        let cut = message_of(&long);
        assert!(cut.len() <= MAX_MESSAGE_BYTES + '…'.len_utf8());
        assert!(cut.ends_with('…'));
        assert_eq!(message_of(&serde_json::json!({"code": 3})), r#"{"code":3}"#);
        assert_eq!(clip("héllo", 2), "h", "é is two bytes: cut before it");
        assert_eq!(clip("héllo", 3), "hé");
        assert_eq!(clip("hi", 200), "hi");
    }
}
