//! Azure Document Intelligence's analyze: `POST
//! /documentintelligence/documentModels/{model}:analyze` → 202, no body, the poll URL in
//! `Operation-Location` and a `Retry-After`; `GET` that URL → `running`, then `succeeded` with
//! `analyzeResult` or `failed` with `error`.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::{Call, Look, json_response, poll, submit, webhook_member};
use crate::Mock;
use crate::jobs::Progress;

pub(super) fn routes() -> Router<Arc<Mock>> {
    Router::new()
        .route(
            "/documentintelligence/documentModels/{action}",
            post(azure_submit),
        )
        .route(
            "/documentintelligence/documentModels/{model}/analyzeResults/{id}",
            get(azure_poll),
        )
}

async fn azure_submit(call: Call, Path(action): Path<String>, body: Bytes) -> Response {
    let Some(model) = action.strip_suffix(":analyze").map(str::to_owned) else {
        return json_response(
            StatusCode::NOT_FOUND,
            json!({"error": {"code": "NotFound", "message": format!("no operation {action}")}}),
        );
    };
    let base = call.origin();
    submit(&call, &body, webhook_member, |n| format!("{n:08x}-0000-4000-8000-000000000000"), |id, _| {
        let location = format!(
            "{base}/documentintelligence/documentModels/{model}/analyzeResults/{id}?api-version=2024-11-30"
        );
        let mut response = StatusCode::ACCEPTED.into_response();
        let headers = response.headers_mut();
        if let Ok(location) = HeaderValue::from_str(&location) {
            headers.insert("operation-location", location);
        }
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        response
    })
    .await
}

async fn azure_poll(call: Call, Path((_model, id)): Path<(String, String)>) -> Response {
    let answer = |_: &_, progress| {
        let running = matches!(progress, Progress::Running { .. });
        let (status, body) = self::answer(progress);
        let mut response = json_response(status, body);
        if running {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    };
    poll(&call, &id, Look::Poll, answer).await
}

/// What a poll of an analysis answers when it stands at `progress`.
pub(super) fn answer(progress: Progress) -> (StatusCode, Value) {
    let stamp = "2026-12-02T00:00:00Z";
    let body = match progress {
        Progress::Running { .. } => {
            json!({"status": "running", "createdDateTime": stamp, "lastUpdatedDateTime": stamp})
        }
        Progress::Done(result) => {
            json!({"status": "succeeded", "createdDateTime": stamp, "lastUpdatedDateTime": stamp, "analyzeResult": result})
        }
        Progress::Failed(message) => {
            json!({"status": "failed", "createdDateTime": stamp, "lastUpdatedDateTime": stamp,
                   "error": {"code": "InvalidRequest", "message": message}})
        }
    };
    (StatusCode::OK, body)
}
