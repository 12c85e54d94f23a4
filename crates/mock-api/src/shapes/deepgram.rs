//! Deepgram's pre-recorded audio with a callback: `POST /v1/listen?callback=URL&...`
//! (`Authorization: Token`), JSON `{"url": "https://..."}` (with `Content-Type:
//! application/json`; Deepgram takes any other body for audio) → 200 `{"request_id"}`. There is
//! nothing to poll: when the job finishes (`job_ms` after the submit, or as soon as the submit
//! is answered), its full result is POSTed to the callback, `{"metadata": {"request_id", ...},
//! "results": {"channels": [{"alternatives": [{"transcript", "confidence", "words"}]}]}}`, the
//! transcript made from the audio URL's file name; the other query parameters (`model`,
//! `language`, ...) are echoed in `metadata`. The callback is called whether `webhooks` is on or
//! not: it is the only way to the result.
//!
//! A submit without `callback` is a 400: a synchronous transcription is not what the mock is
//! for. A job that fails (asked for by a `"fail"` member of the body) posts Deepgram's error body
//! instead, `{"err_code", "err_msg", "request_id"}` (the shape of a failed callback is not in
//! Deepgram's documents), the body of every error too.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::Query;
use axum::http::{StatusCode, header};
use axum::response::Response;
use axum::routing::post;
use serde_json::{Value, json};

use super::{Call, Submission, hook, json_response, refusal, start};
use crate::Mock;
use crate::jobs::{Job, Progress};

/// When every request was made: a fixed stamp keeps answers deterministic.
const CREATED: &str = "2026-12-02T00:00:00.000Z";

pub(super) fn routes() -> Router<Arc<Mock>> {
    Router::new().route("/v1/listen", post(listen))
}

/// A Deepgram error body: `{"err_code", "err_msg", "request_id"}`, its code by the status.
pub(super) fn error(status: StatusCode, message: &str) -> Response {
    let code = match status.as_u16() {
        401 => "INVALID_AUTH",
        402 => "ASR_PAYMENT_REQUIRED",
        403 => "INSUFFICIENT_PERMISSIONS",
        404 => "NOT_FOUND",
        429 => "TOO_MANY_REQUESTS",
        400..=499 => "Bad Request",
        _ => "INTERNAL_SERVER_ERROR",
    };
    json_response(status, error_body(code, message, &request_id(message)))
}

fn error_body(code: &str, message: &str, id: &str) -> Value {
    json!({"err_code": code, "err_msg": message, "request_id": id})
}

/// A request id made from `seed`.
fn request_id(seed: &str) -> String {
    format!(
        "{:08x}-de9a-4000-8000-000000000000",
        crate::fnv1a(seed.as_bytes()) >> 32
    )
}

async fn listen(
    call: Call,
    Query(mut options): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    if let Some(refused) = refusal(&call.mock, &call.headers).await {
        return refused;
    }
    let bad = |message: &str| error(StatusCode::BAD_REQUEST, message);
    let Some(callback) = options.remove("callback") else {
        return bad("Bad Request: this mock answers by callback only; give callback=URL");
    };
    let json = call
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    let input: Option<Value> = json.then(|| serde_json::from_slice(&body).ok()).flatten();
    let Some(input) = input.filter(|i| i.get("url").and_then(Value::as_str).is_some()) else {
        return bad("Bad Request: failed to process audio: corrupt or unsupported data");
    };
    let input = json!({"body": input, "options": options});
    let submission = Submission {
        webhook: hook(&call.mock, Some(&callback)),
        ..Submission::new(&call, input)
    };
    start(
        &call.mock,
        submission,
        |n| request_id(&n.to_string()),
        |id| json_response(StatusCode::OK, json!({ "request_id": id })),
    )
    .await
}

/// What the callback of `job` is POSTed once it finished with `outcome`.
pub(super) fn callback(job: &Job, outcome: &Progress) -> Value {
    if let Progress::Failed(message) = outcome {
        return error_body("Bad Request", message, &job.id);
    }
    let url = job
        .input
        .pointer("/body/url")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let file = url
        .split(['?', '#'])
        .next()
        .and_then(|u| u.rsplit('/').next())
        .unwrap_or_default();
    let transcript = format!("this is the transcript of {file}");
    let words: Vec<_> = transcript
        .split_whitespace()
        .enumerate()
        .map(|(i, word)| {
            let start = i as f64 * 0.5;
            json!({"word": word, "start": start, "end": start + 0.4, "confidence": 0.98})
        })
        .collect();
    let option = |name: &str| job.input.pointer(&format!("/options/{name}")).cloned();
    let model = option("model").unwrap_or_else(|| json!("general"));
    json!({
        "metadata": {
            "transaction_key": "deprecated",
            "request_id": job.id,
            "sha256": format!("{:064x}", crate::fnv1a(url.as_bytes())),
            "created": CREATED,
            "duration": words.len() as f64 * 0.5,
            "channels": 1,
            "models": ["mock-model-0000"],
            "model_info": {"mock-model-0000": {"name": model, "version": "2026-01-01", "arch": "mock"}},
            "options": job.input.get("options"),
        },
        "results": {"channels": [{"alternatives": [{
            "transcript": transcript,
            "confidence": 0.98,
            "words": words,
        }]}]},
    })
}
