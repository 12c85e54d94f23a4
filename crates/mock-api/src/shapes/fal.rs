//! fal.ai's queue: `POST /{owner}/{app}[/{subpath}]` (`Authorization: Key`), the model's input as
//! JSON → 200 `{"request_id", "gateway_request_id", "status": "IN_QUEUE", "queue_position",
//! "status_url", "response_url", "cancel_url"}`, absolute URLs under `/{owner}/{app}/requests/{id}`
//! (the subpath is not part of them, as with fal).
//!
//! `GET status_url` is the poll: 202 `{"status": "IN_QUEUE", "queue_position"}` in the first half
//! of a job's run, 202 `{"status": "IN_PROGRESS"}` in the second, then 200
//! `{"status": "COMPLETED"}`, a failed job's too (with its `error`): fal's status says the
//! request ended, not how. `GET response_url` is the result, fetched apart (it counts no poll):
//! the model's output, `{"images": [{"url", "content_type", ...}], "seed", ...}`, its image URLs
//! on the mock's file host; or the model's error as fal passes it on, 422
//! `{"detail": [{"loc", "msg", "type"}]}`; or 400 `{"detail": "Request is still in progress"}`.
//! `PUT cancel_url` answers 400 `{"status": "ALREADY_COMPLETED"}` once the job finished, 202
//! `{"status": "CANCELLATION_REQUESTED"}` before (the job runs on: the mock cancels nothing).
//!
//! A submit with the query `fal_webhook=URL` gets, when its job finishes, `{"request_id",
//! "gateway_request_id", "status": "OK", "payload": <output>}` POSTed there, or `"status":
//! "ERROR"` with `"error"` and the error body as `payload`. Other errors are `{"detail": message}`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post, put};
use serde_json::{Value, json};

use super::{Call, Look, json_response, poll, stage};
use crate::Mock;
use crate::jobs::{Job, Progress};

pub(super) fn routes() -> Router<Arc<Mock>> {
    Router::new()
        .route("/{owner}/{app}", post(submit))
        .route("/{owner}/{app}/{*subpath}", post(submit_to_subpath))
        .route("/{owner}/{app}/requests/{id}/status", get(status))
        .route("/{owner}/{app}/requests/{id}", get(response))
        .route("/{owner}/{app}/requests/{id}/cancel", put(cancel))
}

/// A fal error body.
pub(super) fn error(status: StatusCode, message: &str) -> Response {
    json_response(status, json!({ "detail": message }))
}

async fn submit_to_subpath(
    call: Call,
    Path((owner, app, _subpath)): Path<(String, String, String)>,
    query: Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    submit(call, Path((owner, app)), query, body).await
}

async fn submit(
    call: Call,
    Path((owner, app)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let base = format!("{}/{owner}/{app}/requests", call.origin());
    let name_job = |n| format!("{n:08x}-fa1a-4000-8000-000000000000");
    // fal names the webhook in the query, not in the model's input.
    let accept = |_: &Value| Ok(query.get("fal_webhook").cloned());
    super::submit(&call, &body, accept, name_job, |id, _| {
        let urls = |tail: &str| format!("{base}/{id}{tail}");
        json_response(
            StatusCode::OK,
            json!({
                "request_id": id,
                "gateway_request_id": id,
                "status": "IN_QUEUE",
                "queue_position": 0,
                "status_url": urls("/status"),
                "response_url": urls(""),
                "cancel_url": urls("/cancel"),
            }),
        )
    })
    .await
}

async fn status(call: Call, Path((owner, app, id)): Path<(String, String, String)>) -> Response {
    let response_url = format!("{}/{owner}/{app}/requests/{id}", call.origin());
    let answer = |_: &Job, progress| {
        let mut body = json!({"request_id": id, "response_url": response_url, "logs": null});
        let status = match progress {
            Progress::Running { done, of } if stage(done, of, 2) == 0 => {
                body["status"] = json!("IN_QUEUE");
                body["queue_position"] = json!(of.div_ceil(2).saturating_sub(done));
                StatusCode::ACCEPTED
            }
            Progress::Running { .. } => {
                body["status"] = json!("IN_PROGRESS");
                StatusCode::ACCEPTED
            }
            Progress::Done(_) => {
                body["status"] = json!("COMPLETED");
                body["metrics"] = json!({"inference_time": 0.5});
                StatusCode::OK
            }
            Progress::Failed(message) => {
                body["status"] = json!("COMPLETED");
                body["error"] = json!(message);
                body["error_type"] = json!("validation_error");
                StatusCode::OK
            }
        };
        json_response(status, body)
    };
    poll(&call, &id, Look::Poll, answer).await
}

async fn response(
    call: Call,
    Path((_owner, _app, id)): Path<(String, String, String)>,
) -> Response {
    let answer = |job: &Job, progress| match progress {
        Progress::Running { .. } => error(StatusCode::BAD_REQUEST, "Request is still in progress"),
        Progress::Done(_) => json_response(StatusCode::OK, output(job)),
        Progress::Failed(message) => {
            json_response(StatusCode::UNPROCESSABLE_ENTITY, model_error(&message))
        }
    };
    poll(&call, &id, Look::Peek, answer).await
}

async fn cancel(call: Call, Path((_owner, _app, id)): Path<(String, String, String)>) -> Response {
    let answer = |_: &Job, progress| match progress {
        Progress::Running { .. } => json_response(
            StatusCode::ACCEPTED,
            json!({"status": "CANCELLATION_REQUESTED"}),
        ),
        _ => json_response(
            StatusCode::BAD_REQUEST,
            json!({"status": "ALREADY_COMPLETED"}),
        ),
    };
    poll(&call, &id, Look::Peek, answer).await
}

/// The model's output for `job`: `num_images` images (1 to 4) on the mock's file host, the
/// input's `seed` or one of its fingerprint, and its `prompt`.
fn output(job: &Job) -> Value {
    let input = &job.input;
    let n = input
        .get("num_images")
        .and_then(Value::as_u64)
        .unwrap_or(1)
        .clamp(1, 4);
    let seed = input
        .get("seed")
        .and_then(Value::as_u64)
        .unwrap_or_else(|| crate::fnv1a(input.to_string().as_bytes()) % (1 << 32));
    let images: Vec<_> = (0..n)
        .map(|i| {
            json!({
                "url": format!("{}/files/{}-{i}.png", job.origin, job.id),
                "content_type": "image/png",
                "width": 1024,
                "height": 1024,
            })
        })
        .collect();
    json!({
        "images": images,
        "seed": seed,
        "prompt": input.get("prompt").cloned().unwrap_or(Value::Null),
        "has_nsfw_concepts": vec![false; images.len()],
        "timings": {"inference": 0.5},
    })
}

/// The model's error for a job that failed with `message`, as fal passes a model's 422 on.
fn model_error(message: &str) -> Value {
    json!({"detail": [{"loc": ["body"], "msg": message, "type": "value_error"}]})
}

/// What `fal_webhook` is POSTed once `job` finished with `outcome`.
pub(super) fn webhook(job: &Job, outcome: Progress) -> Value {
    // The mock has no gateway in front of its queue: both ids are the request's.
    let id = &job.id;
    match outcome {
        Progress::Failed(message) => json!({
            "request_id": id,
            "gateway_request_id": id,
            "status": "ERROR",
            "error": "Invalid status code: 422",
            "payload": model_error(&message),
        }),
        _ => json!({
            "request_id": id,
            "gateway_request_id": id,
            "status": "OK",
            "payload": output(job),
            "error": null,
        }),
    }
}
