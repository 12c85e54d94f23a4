//! Replicate's predictions: `POST /v1/predictions` → 201 with the prediction (`id`,
//! `status: "starting"`, `urls.get`); `GET /v1/predictions/{id}` → `processing`, then
//! `succeeded` with `output` or `failed` with `error`.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::{Call, collection, json_response, poll_json, submit, webhook_member};
use crate::Mock;
use crate::jobs::Progress;

pub(super) fn routes() -> Router<Arc<Mock>> {
    collection(
        "/v1/predictions",
        post(replicate_submit),
        get(replicate_poll),
    )
}

async fn replicate_submit(call: Call, body: Bytes) -> Response {
    let base = call.origin();
    submit(
        &call,
        &body,
        webhook_member,
        |n| format!("p{n:06}"),
        |id, input| {
            json_response(
                StatusCode::CREATED,
                json!({
                    "id": id,
                    "status": "starting",
                    "input": input.get("input").cloned().unwrap_or(Value::Null),
                    "output": null,
                    "error": null,
                    "urls": {"get": format!("{base}/v1/predictions/{id}")},
                }),
            )
        },
    )
    .await
}

async fn replicate_poll(call: Call, Path(id): Path<String>) -> Response {
    poll_json(&call, &id, answer).await
}

/// What a poll of prediction `id` answers when it stands at `progress`.
pub(super) fn answer(id: &str, progress: Progress) -> (StatusCode, Value) {
    let body = match progress {
        Progress::Running { done, of } => json!({
            "id": id, "status": "processing", "output": null, "error": null,
            "logs": format!("step {done} of {of}"),
        }),
        Progress::Done(result) => json!({
            "id": id, "status": "succeeded", "output": result, "error": null,
        }),
        Progress::Failed(message) => json!({
            "id": id, "status": "failed", "output": null, "error": message,
        }),
    };
    (StatusCode::OK, body)
}
