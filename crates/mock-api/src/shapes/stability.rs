//! Stability AI's v2beta asynchronous generations, where the HTTP status is the job's status:
//! 202 while it runs, 200 with the result once done.
//!
//! `stability` (image-to-video): `POST /v2beta/image-to-video` → `{"id"}`;
//! `GET /v2beta/image-to-video/result/{id}` → 202 `{"status": "in-progress"}`, then 200
//! `{"video", "finish_reason", "seed"}`, or 422 `{"name", "errors"}`.
//!
//! `stability-upscale` (creative upscale): `POST /v2beta/stable-image/upscale/creative`, a
//! `multipart/form-data` body with the file `image` and the fields `prompt` (required),
//! `output_format` (`png`, `jpeg` or `webp`), `seed` → 200 `{"id"}`;
//! `GET /v2beta/results/{id}` → 202 `{"id", "status": "in-progress"}`, then 200 with the image:
//! its bytes (`Content-Type: image/{output_format}`, headers `finish-reason` and `seed`) when
//! `Accept` is `image/*` (or an image type, `*/*`, none), or `{"image": <base64>,
//! "finish_reason": "SUCCESS", "seed"}` when it is `application/json`. The image is
//! [`upscaled`] from the uploaded bytes and the prompt, so a test proves which file was sent.
//! A failed job answers 422 as above. Errors are Stability's `{"id", "name", "errors":
//! [message]}`: 400 `bad_request` (`"prompt: required"`, ...), 413 `payload_too_large` (a body
//! over `max_upload_bytes`), 404 `not_found`.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde_json::{Value, json};

use super::{
    Call, Look, Submission, admitted, form, json_response, poll, poll_json, start, submit,
    webhook_member,
};
use crate::Mock;
use crate::jobs::{Job, Progress};

/// The image formats an upscale may ask for.
const FORMATS: [&str; 3] = ["png", "jpeg", "webp"];
/// The largest seed.
const MAX_SEED: u64 = 4_294_967_294;

pub(super) fn routes() -> Router<Arc<Mock>> {
    Router::new()
        .route("/v2beta/image-to-video", post(stability_submit))
        .route("/v2beta/image-to-video/result/{id}", get(stability_poll))
}

pub(super) fn upscale_routes() -> Router<Arc<Mock>> {
    Router::new()
        .route(
            "/v2beta/stable-image/upscale/creative",
            post(upscale_submit),
        )
        .route("/v2beta/results/{id}", get(upscale_result))
}

/// A Stability error: `{"id", "name", "errors"}`, its name by the status.
pub(super) fn error(status: StatusCode, message: &str) -> Response {
    let name = match status.as_u16() {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "content_moderation",
        404 => "not_found",
        413 => "payload_too_large",
        422 => "invalid_request",
        429 => "rate_limit_exceeded",
        _ => "internal_error",
    };
    let id = format!("{:032x}", u128::from(crate::fnv1a(message.as_bytes())));
    json_response(status, json!({"id": id, "name": name, "errors": [message]}))
}

/// The image an upscale of `image` with `prompt` answers: the line
/// `"upscaled {len} {fnv1a(image)} {fnv1a(prompt)}\n"`, then the image's bytes reversed (see
/// [`crate::content::derived`]).
pub fn upscaled(image: &[u8], prompt: &str) -> Vec<u8> {
    crate::content::derived("upscaled", image, prompt)
}

async fn upscale_submit(call: Call, body: Body) -> Response {
    let form = match admitted(&call, form(&call, body)).await {
        Ok(form) => form,
        Err(answer) => return answer,
    };
    let bad = |message: &str| error(StatusCode::BAD_REQUEST, message);
    let Some(image) = form.file("image") else {
        return bad("image: required");
    };
    if form.text("prompt").is_none_or(|p| p.trim().is_empty()) {
        return bad("prompt: required");
    }
    if !form
        .text("output_format")
        .is_none_or(|f| FORMATS.contains(&f))
    {
        return bad("output_format: must be one of png, jpeg, webp");
    }
    let seed_ok = |s: &str| s.parse::<u64>().is_ok_and(|seed| seed <= MAX_SEED);
    if !form.text("seed").is_none_or(seed_ok) {
        return bad("seed: must be an integer from 0 to 4294967294");
    }
    let submission = Submission {
        upload: Some(image.data.clone()),
        ..Submission::new(&call, form.to_json())
    };
    let answer = |id: &str| json_response(StatusCode::OK, json!({ "id": id }));
    start(&call.mock, submission, |n| format!("{n:064x}"), answer).await
}

/// What a finished upscale is answered as, by `Accept`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delivery {
    Bytes,
    Json,
}

fn delivery(headers: &HeaderMap) -> Option<Delivery> {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Some(Delivery::Bytes);
    };
    accept.split(',').find_map(|kind| {
        let kind = kind.split(';').next().unwrap_or_default().trim();
        match kind {
            "application/json" => Some(Delivery::Json),
            "*/*" => Some(Delivery::Bytes),
            kind if kind.starts_with("image/") => Some(Delivery::Bytes),
            _ => None,
        }
    })
}

async fn upscale_result(call: Call, Path(id): Path<String>) -> Response {
    let delivery = delivery(&call.headers);
    let answer = |job: &Job, progress| {
        if !matches!(progress, Progress::Done(_)) {
            let (status, body) = self::answer(&id, progress);
            return json_response(status, body);
        }
        let Some(delivery) = delivery else {
            return error(
                StatusCode::BAD_REQUEST,
                "accept: must be image/* or application/json",
            );
        };
        finished(job, delivery)
    };
    poll(&call, &id, Look::Poll, answer).await
}

/// A finished upscale's answer.
fn finished(job: &Job, delivery: Delivery) -> Response {
    let text = |name: &str| job.input.get(name).and_then(Value::as_str);
    let prompt = text("prompt").unwrap_or_default();
    let image = upscaled(job.upload.as_deref().unwrap_or_default(), prompt);
    let seed = text("seed")
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|seed| *seed > 0)
        .unwrap_or_else(|| crate::fnv1a(prompt.as_bytes()) % MAX_SEED + 1);
    match delivery {
        Delivery::Json => json_response(
            StatusCode::OK,
            json!({
                "image": base64::engine::general_purpose::STANDARD.encode(&image),
                "finish_reason": "SUCCESS",
                "seed": seed,
            }),
        ),
        Delivery::Bytes => {
            let format = text("output_format").unwrap_or("png");
            let mut response = image.into_response();
            let headers = response.headers_mut();
            let content_type = format!("image/{format}");
            if let Ok(value) = HeaderValue::from_str(&content_type) {
                headers.insert(header::CONTENT_TYPE, value);
            }
            headers.insert("finish-reason", HeaderValue::from_static("SUCCESS"));
            headers.insert("seed", HeaderValue::from(seed));
            response
        }
    }
}

async fn stability_submit(call: Call, body: Bytes) -> Response {
    submit(
        &call,
        &body,
        webhook_member,
        |n| format!("{n:064x}"),
        |id, _| json_response(StatusCode::OK, json!({"id": id})),
    )
    .await
}

async fn stability_poll(call: Call, Path(id): Path<String>) -> Response {
    poll_json(&call, &id, answer).await
}

/// What a poll of generation `id` answers when it stands at `progress`.
pub(super) fn answer(id: &str, progress: Progress) -> (StatusCode, Value) {
    match progress {
        Progress::Running { .. } => (
            StatusCode::ACCEPTED,
            json!({"id": id, "status": "in-progress"}),
        ),
        Progress::Done(result) => (
            StatusCode::OK,
            json!({"video": result, "finish_reason": "SUCCESS", "seed": 42}),
        ),
        Progress::Failed(message) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"id": id, "name": "generation_failed", "errors": [message]}),
        ),
    }
}
