//! Replicate's predictions: `POST /v1/predictions` → 201 with the prediction (`id`,
//! `status: "starting"`, `urls.get`); `GET /v1/predictions/{id}` → `processing`, then
//! `succeeded` with `output` or `failed` with `error`.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::{Look, json_response, poll, submit};
use crate::Mock;
use crate::jobs::Progress;

pub(super) fn routes() -> Router<Arc<Mock>> {
    Router::new()
        .route("/v1/predictions", post(replicate_submit))
        .route("/v1/predictions/{id}", get(replicate_poll))
}

async fn replicate_submit(
    State(mock): State<Arc<Mock>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let input: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let base = super::origin(&mock, &uri, &headers);
    submit(
        &mock,
        &uri,
        &headers,
        &body,
        |n| format!("p{n:06}"),
        |id| {
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

async fn replicate_poll(
    State(mock): State<Arc<Mock>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let answer = |_: &_, progress| {
        let (status, body) = self::answer(&id, progress);
        json_response(status, body)
    };
    poll(&mock, &headers, &id, Look::Poll, answer).await
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
