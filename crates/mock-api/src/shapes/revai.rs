//! Rev.ai's asynchronous jobs: `POST /speechtotext/v1/jobs` (`Authorization: Bearer`), JSON
//! `{"source_config": {"url"}, "notification_config"?: {"url"}, "metadata"?, "language"?}` (or
//! the legacy `media_url` and `callback_url`) → the job, `"status": "in_progress"`;
//! `GET /speechtotext/v1/jobs/{id}` → `in_progress`, then `transcribed`, or `failed` with
//! `failure` (a code) and `failure_detail` (the message).
//!
//! The transcript is a fetch of its own (it counts no poll),
//! `GET /speechtotext/v1/jobs/{id}/transcript`: with `Accept: text/plain` the text
//! (`Speaker 0    00:00:00    ...`), with `Accept: application/vnd.rev.transcript.v1.0+json`
//! (or `application/json`, `*/*`, none) the JSON transcript, `{"monologues": [{"speaker",
//! "elements": [{"type": "text", "value", "ts", "end_ts", "confidence"}, {"type": "punct",
//! "value"}, ...]}]}`, whose values joined are the text's words; any other `Accept` is a 406.
//! Both are made from the job's id and the source URL's file name. Before the job is
//! `transcribed`, a 409 `invalid-job-state`.
//!
//! A submit naming a notification URL gets `{"job": <the job as a poll answers it>}` POSTed there
//! when the job finishes (Rev.ai's callback carries the job, not the transcript). Errors are RFC
//! 7807 problem details (`application/problem+json`): `{"type", "title", "status", ...}`.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::{Call, Look, collection, json_response, poll};
use crate::Mock;
use crate::jobs::{Job, Progress};

/// When every job was made and finished: fixed stamps keep answers deterministic.
const CREATED_ON: &str = "2026-12-02T00:00:00.000Z";
const COMPLETED_ON: &str = "2026-12-02T00:00:05.000Z";
/// The JSON transcript's media type.
const TRANSCRIPT_JSON: &str = "application/vnd.rev.transcript.v1.0+json";

pub(super) fn routes() -> Router<Arc<Mock>> {
    collection("/speechtotext/v1/jobs", post(submit), get(status))
        .route("/speechtotext/v1/jobs/{id}/transcript", get(transcript))
}

/// A problem details answer (RFC 7807) of Rev.ai's: `kind` names its type
/// (`https://www.rev.ai/api/v1/errors/{kind}`), `extra` members are added.
fn problem(status: StatusCode, kind: &str, title: &str, extra: Value) -> Response {
    let mut body = json!({
        "type": format!("https://www.rev.ai/api/v1/errors/{kind}"),
        "title": title,
        "status": status.as_u16(),
    });
    if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    let mut response = json_response(status, body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    response
}

/// A Rev.ai error: problem details whose type and title go by the status.
pub(super) fn error(status: StatusCode, message: &str) -> Response {
    let (kind, title) = match status.as_u16() {
        401 => (
            "unauthorized",
            "Authorization has been denied for this request",
        ),
        404 => ("job-not-found", "could not find job"),
        429 => ("too-many-requests", "Too Many Requests"),
        400..=499 => (
            "invalid-parameters",
            "Your request parameters didn't pass validation",
        ),
        _ => ("internal-error", "Internal Server Error"),
    };
    problem(status, kind, title, json!({ "detail": message }))
}

async fn submit(call: Call, body: Bytes) -> Response {
    super::submit(
        &call,
        &body,
        accept,
        |n| format!("Rv{n:010}"),
        |id, input| {
            let running = Progress::Running { done: 0, of: 1 };
            json_response(StatusCode::OK, job_object(id, input, &running))
        },
    )
    .await
}

/// A job's body accepted, or the problem with it: the notification URL it names, if any.
fn accept(input: &Value) -> Result<Option<String>, Box<Response>> {
    if source(input).is_none() {
        return Err(Box::new(problem(
            StatusCode::BAD_REQUEST,
            "invalid-parameters",
            "Your request parameters didn't pass validation",
            json!({"parameters": {"source_config": ["A source_config with a url is required"]}}),
        )));
    }
    let notify = input
        .pointer("/notification_config/url")
        .or_else(|| input.get("callback_url"))
        .and_then(Value::as_str);
    Ok(notify.map(str::to_owned))
}

/// The media URL a job transcribes.
fn source(input: &Value) -> Option<&str> {
    input
        .pointer("/source_config/url")
        .or_else(|| input.get("media_url"))
        .and_then(Value::as_str)
}

async fn status(call: Call, Path(id): Path<String>) -> Response {
    let answer = |job: &Job, progress| {
        json_response(StatusCode::OK, job_object(&job.id, &job.input, &progress))
    };
    poll(&call, &id, Look::Poll, answer).await
}

/// The job object of job `id` made of `input`, standing at `progress`.
fn job_object(id: &str, input: &Value, progress: &Progress) -> Value {
    let mut body = json!({
        "id": id,
        "created_on": CREATED_ON,
        "status": "in_progress",
        "type": "async",
        "language": input.get("language").and_then(Value::as_str).unwrap_or("en"),
    });
    for member in ["metadata", "delete_after_seconds"] {
        if let Some(value) = input.get(member) {
            body[member] = value.clone();
        }
    }
    match progress {
        Progress::Running { .. } => {}
        Progress::Done(_) => {
            body["status"] = json!("transcribed");
            body["completed_on"] = json!(COMPLETED_ON);
            body["duration_seconds"] = json!(words(id, input).len() as f64 * 0.5);
        }
        Progress::Failed(message) => {
            body["status"] = json!("failed");
            body["completed_on"] = json!(COMPLETED_ON);
            body["failure"] = json!("internal_processing");
            body["failure_detail"] = json!(message);
        }
    }
    body
}

/// What a notification URL is POSTed once `job` finished with `outcome`.
pub(super) fn webhook(job: &Job, outcome: &Progress) -> Value {
    json!({ "job": job_object(&job.id, &job.input, outcome) })
}

/// How a transcript is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Text,
    Json,
}

/// The transcript format `Accept` asks for, if one the mock has.
fn format(headers: &HeaderMap) -> Option<Format> {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Some(Format::Json);
    };
    accept.split(',').find_map(
        |kind| match kind.split(';').next().unwrap_or_default().trim() {
            "text/plain" => Some(Format::Text),
            TRANSCRIPT_JSON | "application/json" | "application/*" | "*/*" => Some(Format::Json),
            _ => None,
        },
    )
}

async fn transcript(call: Call, Path(id): Path<String>) -> Response {
    let format = format(&call.headers);
    let answer = |job: &Job, progress: Progress| {
        let Some(format) = format else {
            return problem(
                StatusCode::NOT_ACCEPTABLE,
                "unsupported-accept",
                "Requested Accept header is not supported",
                json!({"allowed_values": ["text/plain", TRANSCRIPT_JSON]}),
            );
        };
        let current = job_object(&job.id, &job.input, &progress)["status"].clone();
        if !matches!(progress, Progress::Done(_)) {
            return problem(
                StatusCode::CONFLICT,
                "invalid-job-state",
                "Job is in invalid state",
                json!({
                    "detail": format!("Job is in invalid state to obtain the transcript: {current}"),
                    "allowed_values": ["transcribed"],
                    "current_value": current,
                }),
            );
        }
        match format {
            Format::Text => (
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                format!(
                    "Speaker 0    00:00:00    {}.\n",
                    words(&job.id, &job.input).join(" ")
                ),
            )
                .into_response(),
            Format::Json => {
                let mut response = json_response(StatusCode::OK, transcript_json(job));
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(TRANSCRIPT_JSON),
                );
                response
            }
        }
    };
    poll(&call, &id, Look::Peek, answer).await
}

/// The words spoken in the media of job `id` made of `input`: a sentence naming the media's
/// file and the job.
fn words(id: &str, input: &Value) -> Vec<String> {
    let file = source(input)
        .and_then(|url| url.split(['?', '#']).next())
        .and_then(|url| url.rsplit('/').next())
        .filter(|file| !file.is_empty())
        .unwrap_or("the media");
    format!("This is the transcript of {file} for job {id}")
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// The JSON transcript of `job`: one monologue, a text element per word, the spaces and the
/// final stop as punctuation.
fn transcript_json(job: &Job) -> Value {
    let words = words(&job.id, &job.input);
    let mut elements = Vec::new();
    for (i, word) in words.iter().enumerate() {
        if i > 0 {
            elements.push(json!({"type": "punct", "value": " "}));
        }
        let ts = i as f64 * 0.5;
        elements.push(json!({
            "type": "text", "value": word, "ts": ts, "end_ts": ts + 0.4, "confidence": 0.95,
        }));
    }
    elements.push(json!({"type": "punct", "value": "."}));
    json!({"monologues": [{"speaker": 0, "elements": elements}]})
}
