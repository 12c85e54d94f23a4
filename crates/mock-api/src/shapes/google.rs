//! A Google long-running operation (Gemini's `predictLongRunning`):
//! `POST /v1/models/{model}:predictLongRunning` → `{"name": "models/{model}/operations/{n}"}`;
//! `GET /v1/{name}` → no `done` while running, then `"done": true` with `response` or `error`;
//! the same under `/v1beta`, the Gemini API's version.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::{Call, json_response, poll_json, submit, webhook_member};
use crate::Mock;
use crate::jobs::Progress;

pub(super) fn routes() -> Router<Arc<Mock>> {
    Router::new()
        .route("/v1/models/{action}", post(google_submit))
        .route("/v1/models/{model}/operations/{n}", get(google_poll))
        // The Gemini API's version of the same calls.
        .route("/v1beta/models/{action}", post(google_submit))
        .route("/v1beta/models/{model}/operations/{n}", get(google_poll))
}

async fn google_submit(call: Call, Path(action): Path<String>, body: Bytes) -> Response {
    let Some(model) = action.strip_suffix(":predictLongRunning") else {
        return json_response(
            StatusCode::NOT_FOUND,
            json!({"error": {"code": 404, "message": format!("no method {action}")}}),
        );
    };
    let name_job = |n| format!("models/{model}/operations/{n}");
    submit(&call, &body, webhook_member, name_job, |name, _| {
        json_response(StatusCode::OK, json!({"name": name}))
    })
    .await
}

async fn google_poll(call: Call, Path((model, n)): Path<(String, String)>) -> Response {
    let name = format!("models/{model}/operations/{n}");
    poll_json(&call, &name, answer).await
}

/// What a poll of operation `name` answers when it stands at `progress`.
pub(super) fn answer(name: &str, progress: Progress) -> (StatusCode, Value) {
    // As in proto3 JSON, a running operation leaves `done` out (false is the default).
    let body = match progress {
        Progress::Running { done, of } => {
            json!({"name": name, "metadata": {"progress": done, "of": of}})
        }
        Progress::Done(result) => json!({"name": name, "done": true, "response": result}),
        Progress::Failed(message) => json!({
            "name": name, "done": true, "error": {"code": 3, "message": message},
        }),
    };
    (StatusCode::OK, body)
}
