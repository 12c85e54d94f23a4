//! ElevenLabs' dubbing (v1): `POST /v1/dubbing` (`xi-api-key`), always
//! `multipart/form-data`: the media as the file `file`, or its URL as the field `source_url`
//! (one of them), and `target_lang` (required), `source_lang`, `name`, ... → 200
//! `{"dubbing_id", "expected_duration_sec"}`; `GET /v1/dubbing/{id}` → `{"dubbing_id", "name",
//! "status": "dubbing", "target_languages", ...}`, then `"dubbed"`, or `"failed"` with
//! `"error"`.
//!
//! The dub is a fetch of its own (it counts no poll), `GET /v1/dubbing/{id}/audio/{lang}`:
//! binary `audio/mpeg`, [`dubbed`] from the uploaded bytes (or the source URL's) and the
//! language; 404 for a language not dubbed, 425 (too early) before the dub is done. Errors are
//! ElevenLabs' `{"detail": {"status", "message"}}`: 422 `invalid_parameters` for a form without
//! `target_lang` or a source, 413 over `max_upload_bytes`.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::{Call, Look, Submission, admitted, collection, form, json_response, poll, start};
use crate::Mock;
use crate::jobs::{Job, Progress};

/// When every dub was made: a fixed stamp keeps answers deterministic.
const CREATED_AT: &str = "2026-12-02T00:00:00Z";

pub(super) fn routes() -> Router<Arc<Mock>> {
    collection("/v1/dubbing", post(submit), get(status))
        .route("/v1/dubbing/{id}/audio/{lang}", get(audio))
}

/// An ElevenLabs error: `{"detail": {"status", "message"}}`, its status word by the HTTP status.
pub(super) fn error(status: StatusCode, message: &str) -> Response {
    let word = match status.as_u16() {
        401 => "invalid_api_key",
        404 => "not_found",
        413 => "payload_too_large",
        425 => "dubbing_not_ready",
        400 | 422 => "invalid_parameters",
        429 => "too_many_concurrent_requests",
        _ => "internal_server_error",
    };
    detail(status, word, message)
}

fn detail(status: StatusCode, word: &str, message: &str) -> Response {
    json_response(
        status,
        json!({"detail": {"status": word, "message": message}}),
    )
}

/// The audio a dub of `source` (the uploaded bytes, or the source URL's) into `lang` answers:
/// the line `"dubbed {len} {fnv1a(source)} {fnv1a(lang)}\n"`, then the source's bytes reversed
/// (see [`crate::content::derived`]).
pub fn dubbed(source: &[u8], lang: &str) -> Vec<u8> {
    crate::content::derived("dubbed", source, lang)
}

async fn submit(call: Call, body: Body) -> Response {
    let form = match admitted(&call, form(&call, body)).await {
        Ok(form) => form,
        Err(answer) => return answer,
    };
    let invalid = |message: &str| error(StatusCode::UNPROCESSABLE_ENTITY, message);
    let file = form.file("file");
    let url = form.text("source_url").filter(|u| !u.trim().is_empty());
    let expected = match (file, url) {
        (Some(file), None) => (file.data.len() as f64 / 16_000.0).max(1.0).round(),
        (None, Some(_)) => 10.0,
        (Some(_), Some(_)) => return invalid("file, source_url: give one, not both"),
        (None, None) => return invalid("file, source_url: one is required"),
    };
    if form.text("target_lang").is_none_or(|l| l.trim().is_empty()) {
        return invalid("target_lang: field required");
    }
    let submission = Submission {
        upload: file.map(|file| file.data.clone()),
        ..Submission::new(&call, form.to_json())
    };
    start(
        &call.mock,
        submission,
        |n| format!("dub{n:017}"),
        |id| {
            json_response(
                StatusCode::OK,
                json!({"dubbing_id": id, "expected_duration_sec": expected}),
            )
        },
    )
    .await
}

/// The language a dub was asked for.
fn target(job: &Job) -> &str {
    job.input
        .get("target_lang")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

async fn status(call: Call, Path(id): Path<String>) -> Response {
    let answer = |job: &Job, progress| {
        let mut body = json!({
            "dubbing_id": job.id,
            "name": job.input.get("name").and_then(Value::as_str).unwrap_or_default(),
            "status": "dubbing",
            "target_languages": [target(job)],
            "created_at": CREATED_AT,
            "error": null,
        });
        match progress {
            Progress::Running { .. } => {}
            Progress::Done(_) => body["status"] = json!("dubbed"),
            Progress::Failed(message) => {
                body["status"] = json!("failed");
                body["error"] = json!(message);
            }
        }
        json_response(StatusCode::OK, body)
    };
    poll(&call, &id, Look::Poll, answer).await
}

async fn audio(call: Call, Path((id, lang)): Path<(String, String)>) -> Response {
    let answer = |job: &Job, progress| {
        if lang != target(job) {
            let message = format!("Dubbing {id} has no language {lang}");
            return detail(StatusCode::NOT_FOUND, "language_not_found", &message);
        }
        match progress {
            Progress::Done(_) => {
                let source = match &job.upload {
                    Some(bytes) => bytes.to_vec(),
                    None => job.input["source_url"]
                        .as_str()
                        .unwrap_or_default()
                        .as_bytes()
                        .to_vec(),
                };
                (
                    [(header::CONTENT_TYPE, "audio/mpeg")],
                    dubbed(&source, &lang),
                )
                    .into_response()
            }
            Progress::Running { .. } => error(StatusCode::TOO_EARLY, "Dubbing is not ready yet"),
            Progress::Failed(message) => detail(StatusCode::NOT_FOUND, "dubbing_failed", &message),
        }
    };
    poll(&call, &id, Look::Peek, answer).await
}
