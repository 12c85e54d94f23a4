//! What a profile's answers mean: a submit's (the job's id, and the fields later calls name), a
//! poll's (processing, done or failed, by the profile's status rule), a fetch's (the result), and
//! a provider's webhook body (by the profile's `hook` rule).
//!
//! | answer | outcome |
//! |---|---|
//! | submit, 2xx with an id | submitted: the id is kept with the fields of the answer later calls name (`{{submit.FIELD}}`), the answer shown as partial data (`partial`), the first poll after the poll interval (or `Retry-After`) |
//! | submit, 2xx without an id | permanent failure: repeating a submit the profile cannot read would only make more jobs |
//! | submit, 409 | retryable: an earlier submit with the same idempotency key is still in progress |
//! | poll, status in `processing` | processing: partial data (`partial`), poll again |
//! | poll, status in `done` | done: store the result (`result`), or fetch it (`fetch`); failed instead when the `error` pointer holds a value (Google's `{"done": true, "error": {...}}`) |
//! | poll, status in `failed` | permanent failure with the provider's message (`error`): dead at once |
//! | poll, any other status | retryable failure naming the value |
//! | fetch, 2xx | done: the answer as JSON (through the fetch's `result`), text, or base64 bytes; over `max_result_bytes` a permanent failure that says so |
//! | a webhook body | by `hook`: its status (without one, a webhook means done), its result and error pointers |
//! | a body that is not JSON | retryable failure (an empty body reads as `null`) |
//! | 429, 503, other errors | as [`super::failure::unsuccessful`] says, with the provider's message from `http_error` (by default the first string at `/error/message`, `/error`, `/message`, `/detail`) |
//!
//! An http-mode profile's lists win over the shared rules: a code it lists means what it says.

use std::time::Duration;

use base64::Engine;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Map, Value};
use taskq::{Failure, Outcome};

use super::failure::{message_of, unsuccessful};
use super::profile::{Fetch, HookRule, IdSource, Profile, ReadAs, StatusRule, Submit, Verdict};
use super::template::{Placeholder, walk};

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

/// A failed job's message, at `pointer` in an answer that says so, when it holds a value.
fn job_message(pointer: Option<&str>, body: &Value) -> Option<String> {
    let value = body.pointer(pointer?)?;
    (!value.is_null()).then(|| message_of(value))
}

/// The provider's message in an unsuccessful answer: the first string at the profile's
/// `http_error` pointers.
pub fn http_message(profile: &Profile, body: &[u8]) -> Option<String> {
    let body: Value = serde_json::from_slice(body).ok()?;
    profile
        .http_error
        .iter()
        .find_map(|at| body.pointer(at).filter(|value| value.is_string()))
        .map(message_of)
}

/// The outcome of an unsuccessful answer, with the provider's message.
fn refused(profile: &Profile, answer: &ApiResponse<'_>) -> Outcome {
    unsuccessful(
        answer.status,
        answer.retry_after,
        http_message(profile, answer.body),
    )
}

/// Reads the answer to `submit`, a call of `profile`.
pub fn submit(profile: &Profile, submit: &Submit, answer: &ApiResponse<'_>) -> Outcome {
    if answer.status == StatusCode::CONFLICT {
        // A provider that honours idempotency keys answers 409 while an earlier submit with the
        // same key is still being handled (a consumer that lost its lease mid-submit): later,
        // the same submit gets that job.
        return Outcome::Failed(Failure::retryable(
            "the API answered HTTP 409: a submit with this Idempotency-Key is still in progress",
        ));
    }
    if !answer.status.is_success() {
        return refused(profile, answer);
    }
    let body = json(answer.body);
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
            kept: kept(profile, &body),
            poll_in: answer.retry_after,
        },
    }
}

/// The fields of a submit's answer later calls name, as a JSON object keyed by their dotted
/// paths (`None` when the profile names none).
fn kept(profile: &Profile, body: &Value) -> Option<String> {
    if profile.kept.is_empty() {
        return None;
    }
    let kept: Map<String, Value> = profile
        .kept
        .iter()
        .map(|path| {
            let value = walk(body, path).cloned().unwrap_or(Value::Null);
            (Placeholder::kept_key(path), value)
        })
        .collect();
    Some(Value::Object(kept).to_string())
}

/// What a poll's (or a webhook's) answer said: an outcome, or done with this answer (whose
/// result is read from it, or fetched).
#[derive(Debug)]
pub enum Read {
    /// Not done: processing, failed, or a call that failed.
    Outcome(Outcome),
    /// Done: the answer that said so.
    Done(Value),
}

/// Reads a poll's answer.
pub fn poll(profile: &Profile, status: &StatusRule, answer: &ApiResponse<'_>) -> Read {
    let code = answer.status.as_u16();
    let listed = match status {
        StatusRule::Http(rule) => rule.verdict(code),
        StatusRule::Pointer(_) => None,
    };
    if listed.is_none() && !answer.status.is_success() {
        return Read::Outcome(refused(profile, answer));
    }
    let body = match json(answer.body) {
        Ok(body) => body,
        Err(err) => return Read::Outcome(Outcome::Failed(Failure::retryable(err))),
    };
    let verdict = match (listed, status) {
        (Some(verdict), _) => Ok(verdict),
        (None, StatusRule::Pointer(rule)) => rule.verdict(&body),
        (None, StatusRule::Http(_)) => Err(format!(
            "HTTP {code}, which the profile's status.http does not list"
        )),
    };
    judged(
        profile.error.as_deref(),
        profile.partial.as_deref(),
        verdict,
        body,
        answer.retry_after,
    )
}

/// Reads a provider's webhook body by the profile's `hook` rule.
pub fn hook(rule: &HookRule, body: &str) -> Read {
    let body = match serde_json::from_str::<Value>(body) {
        Ok(body) => body,
        // The producer keeps JSON bodies only: one that is not was never meant to be read.
        Err(err) => return Read::Outcome(Outcome::Failed(Failure::retryable(err.to_string()))),
    };
    let verdict = match &rule.status {
        Some(StatusRule::Pointer(status)) => status.verdict(&body),
        // Compiled away: a webhook has no code of its own.
        Some(StatusRule::Http(_)) | None => Ok(Verdict::Done),
    };
    judged(rule.error.as_deref(), None, verdict, body, None)
}

/// What a verdict on `body` means, failed jobs' messages at `error`.
fn judged(
    error: Option<&str>,
    partial: Option<&str>,
    verdict: Result<Verdict, String>,
    body: Value,
    retry_after: Option<Duration>,
) -> Read {
    Read::Outcome(match verdict {
        Ok(Verdict::Processing) => Outcome::Processing {
            data: text_at(&body, partial),
            poll_in: retry_after,
        },
        Ok(Verdict::Done) => match job_message(error, &body) {
            Some(said) => Outcome::Failed(Failure::permanent(format!(
                "the API reported the job done with an error: {said}"
            ))),
            None => return Read::Done(body),
        },
        Ok(Verdict::Failed) => Outcome::Failed(Failure::permanent(
            job_message(error, &body)
                .map(|said| format!("the API reported the job failed: {said}"))
                .unwrap_or_else(|| "the API reported the job failed".to_owned()),
        )),
        Err(unknown) => Outcome::Failed(Failure::retryable(format!("the API answered {unknown}"))),
    })
}

/// The result in a done answer that is not fetched: at `pointer` (`None`: the whole answer).
pub fn result_of(done: &Value, pointer: Option<&str>) -> Outcome {
    Outcome::Done(text_at(done, pointer))
}

/// Reads a fetch's answer: the result, as the fetch says; a result over `max_bytes` (its JSON
/// text, or its base64) is a permanent failure.
pub fn fetch(
    profile: &Profile,
    fetch: &Fetch,
    answer: &ApiResponse<'_>,
    max_bytes: usize,
) -> Outcome {
    if !answer.status.is_success() {
        return refused(profile, answer);
    }
    let result = match fetch.read_as {
        ReadAs::Json => match json(answer.body) {
            Ok(body) => return fetched(fetch, &body, max_bytes),
            Err(err) => return Outcome::Failed(Failure::retryable(err)),
        },
        ReadAs::Text => match std::str::from_utf8(answer.body) {
            Ok(text) => Value::String(text.to_owned()).to_string(),
            Err(_) => {
                return Outcome::Failed(Failure::permanent(
                    "the fetched result is not UTF-8 text: read it \"as\": \"base64\"",
                ));
            }
        },
        ReadAs::Base64 => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(answer.body)).to_string()
        }
    };
    sized(result, max_bytes)
}

/// The result of a fetched JSON answer (all its pages merged): at the fetch's `result`.
pub fn fetched(fetch: &Fetch, body: &Value, max_bytes: usize) -> Outcome {
    sized(text_at(body, fetch.result.as_deref()), max_bytes)
}

/// `result` as the task's result, unless over `max_bytes`.
fn sized(result: String, max_bytes: usize) -> Outcome {
    if result.len() > max_bytes {
        return Outcome::Failed(Failure::permanent(format!(
            "the result is {} bytes, over the queue's max_result_bytes of {max_bytes}",
            result.len()
        )));
    }
    Outcome::Done(result)
}

#[cfg(test)]
mod tests;
