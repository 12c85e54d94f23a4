//! Stability AI's v2beta asynchronous generations, where the HTTP status is the job's status:
//! 202 while it runs, 200 with the result once done.
//!
//! `stability` (image-to-video): `POST /v2beta/image-to-video` → `{"id"}`;
//! `GET /v2beta/image-to-video/result/{id}` → 202 `{"status": "in-progress"}`, then 200
//! `{"video", "finish_reason", "seed"}`, or 422 `{"name", "errors"}`.

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
        .route("/v2beta/image-to-video", post(stability_submit))
        .route("/v2beta/image-to-video/result/{id}", get(stability_poll))
}

async fn stability_submit(
    State(mock): State<Arc<Mock>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    submit(
        &mock,
        &uri,
        &headers,
        &body,
        |n| format!("{n:064x}"),
        |id| json_response(StatusCode::OK, json!({"id": id})),
    )
    .await
}

async fn stability_poll(
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
