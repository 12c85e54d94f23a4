//! What a profile's answers mean: a submit's (the job's id) and a poll's (processing, done or
//! failed, by the profile's status rule).
//!
//! | answer | outcome |
//! |---|---|
//! | submit, 2xx with an id | submitted: the id is kept, the answer shown as partial data (`partial`), the first poll after the poll interval (or `Retry-After`) |
//! | submit, 2xx without an id | permanent failure: repeating a submit the profile cannot read would only make more jobs |
//! | submit, 409 | retryable: an earlier submit with the same idempotency key is still in progress |
//! | poll, status in `processing` | processing: partial data (`partial`), poll again |
//! | poll, status in `done` | done: store the result (`result`); failed instead when the `error` pointer holds a value (Google's `{"done": true, "error": {...}}`) |
//! | poll, status in `failed` | permanent failure with the provider's message (`error`): dead at once |
//! | poll, any other status | retryable failure naming the value |
//! | a body that is not JSON | retryable failure (an empty body reads as `null`) |
//! | 429, 503, other errors | as [`super::failure::unsuccessful`] says, with the provider's message |
//!
//! An http-mode profile's lists win over the shared rules: a code it lists means what it says.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;
use taskq::{Failure, Outcome};

use super::failure::{message_of, unsuccessful};
use super::profile::{IdSource, Profile, StatusRule, Submit, Verdict};

/// The longest job id accepted, in bytes.
const MAX_ID_BYTES: usize = 2048;

/// An answer as the poller read it.
#[derive(Debug)]
pub struct ApiResponse<'a> {
    /// The status line's code.
    pub status: StatusCode,
    /// The response headers.
    pub headers: &'a HeaderMap,
    /// The `Retry-After` wait, read and capped.
    pub retry_after: Option<Duration>,
    /// The body, whole.
    pub body: &'a [u8],
}

/// The body as JSON: `Ok(Null)` when empty, `Err` with the parser's words when not JSON.
fn json(body: &[u8]) -> Result<Value, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(body).map_err(|err| format!("the API's answer is not JSON: {err}"))
}

/// The JSON text at `pointer` (`None`: the whole body), `null` when absent.
fn text_at(body: &Value, pointer: Option<&str>) -> String {
    match pointer {
        None => body.to_string(),
        Some(pointer) => body.pointer(pointer).unwrap_or(&Value::Null).to_string(),
    }
}

/// The provider's message at the profile's `error` pointer, when it holds a value.
fn provider_message(profile: &Profile, body: &Value) -> Option<String> {
    let value = body.pointer(profile.error.as_deref()?)?;
    (!value.is_null()).then(|| message_of(value))
}

/// Reads the answer to `submit`, a call of `profile`.
pub fn submit(profile: &Profile, submit: &Submit, answer: &ApiResponse<'_>) -> Outcome {
    let body = json(answer.body);
    if answer.status == StatusCode::CONFLICT {
        // A provider that honours idempotency keys answers 409 while an earlier submit with the
        // same key is still being handled (a consumer that lost its lease mid-submit): later,
        // the same submit gets that job.
        return Outcome::Failed(Failure::retryable(
            "the API answered HTTP 409: a submit with this Idempotency-Key is still in progress",
        ));
    }
    if !answer.status.is_success() {
        let said = body.ok().and_then(|body| provider_message(profile, &body));
        return unsuccessful(answer.status, answer.retry_after, said);
    }
    let (id, body) = match &submit.id {
        IdSource::Header(name) => (
            answer
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            body.unwrap_or(Value::Null),
        ),
        IdSource::Pointer(pointer) => match body {
            Ok(body) => (
                match body.pointer(pointer) {
                    Some(Value::String(id)) => Some(id.clone()),
                    Some(Value::Number(id)) => Some(id.to_string()),
                    _ => None,
                },
                body,
            ),
            Err(err) => return Outcome::Failed(Failure::permanent(err)),
        },
    };
    let id_source = match &submit.id {
        IdSource::Header(name) => format!("header {name}"),
        IdSource::Pointer(pointer) => pointer.clone(),
    };
    match id.filter(|id| !id.is_empty()) {
        None => Outcome::Failed(Failure::permanent(format!(
            "the submit's answer has no job id at {id_source}"
        ))),
        Some(id) if id.len() > MAX_ID_BYTES => Outcome::Failed(Failure::permanent(format!(
            "the submit's job id at {id_source} is over {MAX_ID_BYTES} bytes"
        ))),
        Some(id) => Outcome::Submitted {
            remote_id: id,
            data: text_at(&body, profile.partial.as_deref()),
            kept: None,
            poll_in: answer.retry_after,
        },
    }
}

/// Reads a poll's answer.
pub fn poll(profile: &Profile, answer: &ApiResponse<'_>) -> Outcome {
    let body = json(answer.body);
    let code = answer.status.as_u16();
    let listed = match &profile.status {
        StatusRule::Http(rule) => rule.verdict(code),
        StatusRule::Pointer(_) => None,
    };
    if listed.is_none() && !answer.status.is_success() {
        let said = body.ok().and_then(|body| provider_message(profile, &body));
        return unsuccessful(answer.status, answer.retry_after, said);
    }
    let body = match body {
        Ok(body) => body,
        Err(err) => return Outcome::Failed(Failure::retryable(err)),
    };
    let verdict = match (listed, &profile.status) {
        (Some(verdict), _) => Ok(verdict),
        (None, StatusRule::Pointer(rule)) => rule.verdict(&body),
        (None, StatusRule::Http(_)) => Err(format!(
            "HTTP {code}, which the profile's status.http does not list"
        )),
    };
    match verdict {
        Ok(Verdict::Processing) => Outcome::Processing {
            data: text_at(&body, profile.partial.as_deref()),
            poll_in: answer.retry_after,
        },
        Ok(Verdict::Done) => match provider_message(profile, &body) {
            Some(said) => Outcome::Failed(Failure::permanent(format!(
                "the API reported the job done with an error: {said}"
            ))),
            None => Outcome::Done(text_at(&body, profile.result.as_deref())),
        },
        Ok(Verdict::Failed) => Outcome::Failed(Failure::permanent(
            provider_message(profile, &body)
                .map(|said| format!("the API reported the job failed: {said}"))
                .unwrap_or_else(|| "the API reported the job failed".to_owned()),
        )),
        Err(unknown) => Outcome::Failed(Failure::retryable(format!("the API answered {unknown}"))),
    }
}

#[cfg(test)]
mod tests;
