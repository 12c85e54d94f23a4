//! What a third-party answer means for the task: a pure function, tested on its own.
//!
//! | answer | outcome |
//! |---|---|
//! | 2xx, `{"status":"done"}` or `200` | done: store `data` |
//! | 2xx, `{"status":"processing"}` or `300` | processing: store `data`, poll again |
//! | 2xx with any other body | retryable failure (the API is misbehaving, maybe for a moment) |
//! | 408, 429, 5xx | retryable failure; `Retry-After` decides the delay when given |
//! | other 4xx | permanent failure: the request itself is wrong, retrying cannot help |

use std::time::Duration;

use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::value::RawValue;
use taskq::{Failure, Outcome};

/// The expected body: `{"status": ..., "data": ...}`.
#[derive(Deserialize)]
struct Body<'a> {
    status: Status,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
}

/// The answer's status: the words, or the seed design's numbers.
#[derive(Deserialize)]
#[serde(untagged)]
enum Status {
    Word(String),
    Code(i64),
}

/// Turns a status line, a `Retry-After` delay and a body into an outcome.
pub fn interpret(status: StatusCode, retry_after: Option<Duration>, body: &[u8]) -> Outcome {
    if !status.is_success() {
        let retryable = status.is_server_error()
            || status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::REQUEST_TIMEOUT;
        let message = format!("the API answered HTTP {}", status.as_u16());
        let mut failure = if retryable {
            Failure::retryable(message)
        } else {
            Failure::permanent(message)
        };
        failure.retry_after = retry_after.filter(|_| retryable);
        return Outcome::Failed(failure);
    }
    let body: Body<'_> = match serde_json::from_slice(body) {
        Ok(body) => body,
        Err(err) => {
            return Outcome::Failed(Failure::retryable(format!(
                "the API's answer is not the expected JSON: {err}"
            )));
        }
    };
    let data = body
        .data
        .map_or_else(|| "null".to_owned(), |raw| raw.get().to_owned());
    match body.status {
        Status::Word(word) if word == "done" => Outcome::Done(data),
        Status::Code(200) => Outcome::Done(data),
        Status::Word(word) if word == "processing" => Outcome::Processing {
            data,
            poll_in: retry_after,
        },
        Status::Code(300) => Outcome::Processing {
            data,
            poll_in: retry_after,
        },
        Status::Word(other) => Outcome::Failed(Failure::retryable(format!(
            "the API answered an unknown status {other:?}"
        ))),
        Status::Code(other) => Outcome::Failed(Failure::retryable(format!(
            "the API answered an unknown status {other}"
        ))),
    }
}

/// Reads a `Retry-After` header given in seconds (an HTTP date is ignored: the backoff applies).
pub fn retry_after(value: Option<&str>, cap: Duration) -> Option<Duration> {
    let seconds: u64 = value?.trim().parse().ok()?;
    Some(Duration::from_secs(seconds).min(cap))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(body: &str) -> Outcome {
        interpret(StatusCode::OK, None, body.as_bytes())
    }

    fn failure(outcome: Outcome) -> Failure {
        match outcome {
            Outcome::Failed(failure) => failure,
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn done_and_processing_keep_the_data_as_sent() {
        assert_eq!(
            ok(r#"{"status":"done","data":{"a": 1}}"#),
            Outcome::Done(r#"{"a": 1}"#.into())
        );
        assert_eq!(
            ok(r#"{"status":"processing","data":[1]}"#),
            Outcome::Processing {
                data: "[1]".into(),
                poll_in: None
            }
        );
        assert_eq!(ok(r#"{"status":"done"}"#), Outcome::Done("null".into()));
    }

    #[test]
    fn the_seed_designs_numeric_statuses_are_understood() {
        assert_eq!(ok(r#"{"status":200,"data":1}"#), Outcome::Done("1".into()));
        assert!(matches!(
            ok(r#"{"status":300,"data":1}"#),
            Outcome::Processing { .. }
        ));
    }

    #[test]
    fn unexpected_bodies_are_retryable_failures() {
        for body in [
            "",
            "not json",
            "{}",
            r#"{"status":"weird"}"#,
            r#"{"status":301}"#,
            "[1]",
        ] {
            let failure = failure(ok(body));
            assert!(!failure.permanent, "{body:?}");
        }
    }

    #[test]
    fn server_errors_and_throttling_retry_and_other_client_errors_are_permanent() {
        for code in [500, 502, 503, 429, 408] {
            let status = StatusCode::from_u16(code).unwrap();
            assert!(!failure(interpret(status, None, b"")).permanent, "{code}");
        }
        for code in [400, 401, 403, 404, 422] {
            let status = StatusCode::from_u16(code).unwrap();
            assert!(failure(interpret(status, None, b"")).permanent, "{code}");
        }
    }

    #[test]
    fn retry_after_is_honoured_for_throttling_only() {
        let wait = Some(Duration::from_secs(7));
        let throttled = failure(interpret(StatusCode::TOO_MANY_REQUESTS, wait, b""));
        assert_eq!(throttled.retry_after, wait);
        let not_found = failure(interpret(StatusCode::NOT_FOUND, wait, b""));
        assert_eq!(not_found.retry_after, None);
    }

    #[test]
    fn retry_after_seconds_are_read_and_capped() {
        let cap = Duration::from_secs(60);
        assert_eq!(retry_after(Some("5"), cap), Some(Duration::from_secs(5)));
        assert_eq!(retry_after(Some("99999"), cap), Some(cap));
        assert_eq!(
            retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT"), cap),
            None
        );
        assert_eq!(retry_after(None, cap), None);
    }
}
