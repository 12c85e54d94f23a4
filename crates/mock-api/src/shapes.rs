//! Four shapes of real asynchronous APIs, modelled on their public documentation, so profiles
//! can be tested against something that answers like the real thing. Each requires its own
//! credential header (`MOCK_API_KEY`'s value) and answers 401 without it.
//!
//! | shape | submit | poll | running → done |
//! |---|---|---|---|
//! | `replicate` (`Authorization: Bearer`) | `POST /v1/predictions` → 201 `{"id", "status": "starting"}` | `GET /v1/predictions/{id}` | `"status"`: `processing` → `succeeded` (`output`) or `failed` (`error`) |
//! | `google` (`x-goog-api-key`) | `POST /v1/models/{model}:predictLongRunning` → `{"name": "models/{model}/operations/{n}"}` | `GET /v1/{name}` (a slash in the id) | no `done` field → `"done": true` with `response`, or with `error: {code, message}` |
//! | `azure` (`Ocp-Apim-Subscription-Key`) | `POST /documentintelligence/documentModels/{model}:analyze` → 202, empty, `Operation-Location: <full URL>`, `Retry-After: 1` | `GET` that URL | `"status"`: `running` (with `Retry-After: 1`) → `succeeded` (`analyzeResult`) or `failed` (`error: {code, message}`) |
//! | `stability` (`Authorization: Bearer`) | `POST /v2beta/image-to-video` → 200 `{"id"}` | `GET /v2beta/image-to-video/result/{id}` | HTTP 202 `{"status": "in-progress"}` → HTTP 200 `{"video", "finish_reason"}`, or HTTP 422 `{"errors": [message]}` |
//!
//! With webhooks on, a job's webhook is POSTed the body its poll answers once it finished (the
//! last column's finished bodies), made by the same function as the poll's, so the two cannot
//! drift apart.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::jobs::{Finished, Pace, Progress, Submit};
use crate::{Mock, Shape};

/// The routes of `shape` (not `original`).
pub fn routes(shape: Shape) -> Router<Arc<Mock>> {
    match shape {
        Shape::Original => Router::new(),
        Shape::Replicate => Router::new()
            .route("/v1/predictions", post(replicate_submit))
            .route("/v1/predictions/{id}", get(replicate_poll)),
        Shape::Google => Router::new()
            .route("/v1/models/{action}", post(google_submit))
            .route("/v1/models/{model}/operations/{n}", get(google_poll)),
        Shape::Azure => Router::new()
            .route(
                "/documentintelligence/documentModels/{action}",
                post(azure_submit),
            )
            .route(
                "/documentintelligence/documentModels/{model}/analyzeResults/{id}",
                get(azure_poll),
            ),
        Shape::Stability => Router::new()
            .route("/v2beta/image-to-video", post(stability_submit))
            .route("/v2beta/image-to-video/result/{id}", get(stability_poll)),
    }
}

/// The credential header each shape requires, and whether its value is `Bearer KEY`.
fn credential(shape: Shape) -> (&'static str, bool) {
    match shape {
        Shape::Original => ("", false),
        Shape::Replicate | Shape::Stability => ("authorization", true),
        Shape::Google => ("x-goog-api-key", false),
        Shape::Azure => ("ocp-apim-subscription-key", false),
    }
}

/// What every call goes through before its shape's own work: the call is counted, the
/// credential checked, and a share of calls fail as configured. Answers the refusal, if any,
/// after the configured delay (a refusal takes as long as any answer).
async fn refusal(mock: &Mock, headers: &HeaderMap) -> Option<Response> {
    let refused = check(mock, headers)?;
    mock.delay().await;
    Some(refused)
}

/// [`refusal`]'s checks.
fn check(mock: &Mock, headers: &HeaderMap) -> Option<Response> {
    mock.counters.call();
    let (name, bearer) = credential(mock.config.shape);
    let key = &mock.config.api_key.0;
    let expected = if bearer {
        format!("Bearer {key}")
    } else {
        key.clone()
    };
    if headers.get(name).and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        mock.counters.unauthorized();
        return Some(
            (
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({"error": format!("missing or wrong {name} header")})),
            )
                .into_response(),
        );
    }
    mock.injected_failure()
}

/// A submit: admitted, the body parsed, the job made (or found by its idempotency key), then
/// the configured delay; the answer may be dropped on purpose. `answer` shapes the reply. A new
/// job with a webhook under the clock's pace gets a timer that finishes it when it is due, so
/// that its webhook is called then even if nobody polls.
async fn submit(
    mock: &Arc<Mock>,
    headers: &HeaderMap,
    body: &Bytes,
    name_job: impl Fn(u64) -> String,
    answer: impl FnOnce(&str) -> Response,
) -> Response {
    if let Some(refused) = refusal(mock, headers).await {
        return refused;
    }
    let input = if body.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(body) {
            Ok(input) => input,
            Err(err) => {
                return (
                    StatusCode::BAD_REQUEST,
                    axum::Json(json!({"error": format!("the body is not JSON: {err}")})),
                )
                    .into_response();
            }
        }
    };
    let webhook = mock
        .config
        .webhooks
        .then(|| {
            input
                .get("webhook")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .flatten();
    let with_webhook = webhook.is_some();
    let now = tokio::time::Instant::now();
    let submitted = mock.jobs.submit(
        Submit {
            key: headers.get("idempotency-key").and_then(|v| v.to_str().ok()),
            input,
            webhook,
            now,
        },
        name_job,
    );
    let pace = mock.pace();
    if let Pace::Clock(after) = pace
        && submitted.new
        && with_webhook
    {
        let (mock, id, epoch) = (Arc::clone(mock), submitted.id.clone(), submitted.epoch);
        tokio::spawn(async move {
            tokio::time::sleep_until(now + after).await;
            let now = tokio::time::Instant::now();
            if let Some(finished) = mock.jobs.finish_due(&id, epoch, pace, now) {
                job_finished(&mock, finished);
            }
        });
    }
    mock.delay().await;
    if submitted.new && mock.drop_this_answer() {
        return crate::dropped_answer();
    }
    answer(&submitted.id)
}

/// A poll: admitted, the job advanced, then the configured delay. `answer` shapes the reply.
/// When this poll is the first to see the job finished, its webhook is called at once, before
/// the delay: the job finished at this poll's arrival.
async fn poll(
    mock: &Mock,
    headers: &HeaderMap,
    id: &str,
    answer: impl FnOnce(Progress) -> Response,
) -> Response {
    if let Some(refused) = refusal(mock, headers).await {
        return refused;
    }
    let polled = mock.jobs.poll(id, mock.pace(), tokio::time::Instant::now());
    let progress = polled.map(|polled| {
        if let Some(finished) = polled.finished {
            job_finished(mock, finished);
        }
        polled.progress
    });
    mock.delay().await;
    match progress {
        Some(progress) => answer(progress),
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": format!("no job {id}")})),
        )
            .into_response(),
    }
}

/// A job just finished: counted, and its webhook, if any, called with the body a poll of it
/// answers from now on.
fn job_finished(mock: &Mock, finished: Finished) {
    mock.counters.finished();
    if let Some(url) = finished.webhook {
        let (_, body) = answer(mock.config.shape, &finished.id, finished.outcome);
        mock.webhooks.send(url, finished.id, &body);
    }
}

/// What a poll of job `id` of `shape` answers when it stands at `progress` (headers aside).
fn answer(shape: Shape, id: &str, progress: Progress) -> (StatusCode, Value) {
    match shape {
        // The original shape makes no jobs.
        Shape::Original => (StatusCode::NOT_FOUND, Value::Null),
        Shape::Replicate => replicate_answer(id, progress),
        Shape::Google => google_answer(id, progress),
        Shape::Azure => azure_answer(progress),
        Shape::Stability => stability_answer(id, progress),
    }
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

async fn replicate_submit(
    State(mock): State<Arc<Mock>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let input: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let host = host(&uri, &headers);
    let scheme = mock.scheme();
    submit(
        &mock,
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
                    "urls": {"get": format!("{scheme}://{host}/v1/predictions/{id}")},
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
    let answer = |progress| {
        let (status, body) = replicate_answer(&id, progress);
        json_response(status, body)
    };
    poll(&mock, &headers, &id, answer).await
}

fn replicate_answer(id: &str, progress: Progress) -> (StatusCode, Value) {
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

async fn google_submit(
    State(mock): State<Arc<Mock>>,
    headers: HeaderMap,
    Path(action): Path<String>,
    body: Bytes,
) -> Response {
    let Some(model) = action.strip_suffix(":predictLongRunning") else {
        return json_response(
            StatusCode::NOT_FOUND,
            json!({"error": {"code": 404, "message": format!("no method {action}")}}),
        );
    };
    let name_job = |n| format!("models/{model}/operations/{n}");
    submit(&mock, &headers, &body, name_job, |name| {
        json_response(StatusCode::OK, json!({"name": name}))
    })
    .await
}

async fn google_poll(
    State(mock): State<Arc<Mock>>,
    headers: HeaderMap,
    Path((model, n)): Path<(String, String)>,
) -> Response {
    let name = format!("models/{model}/operations/{n}");
    let answer = |progress| {
        let (status, body) = google_answer(&name, progress);
        json_response(status, body)
    };
    poll(&mock, &headers, &name, answer).await
}

fn google_answer(name: &str, progress: Progress) -> (StatusCode, Value) {
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

async fn azure_submit(
    State(mock): State<Arc<Mock>>,
    uri: Uri,
    headers: HeaderMap,
    Path(action): Path<String>,
    body: Bytes,
) -> Response {
    let Some(model) = action.strip_suffix(":analyze").map(str::to_owned) else {
        return json_response(
            StatusCode::NOT_FOUND,
            json!({"error": {"code": "NotFound", "message": format!("no operation {action}")}}),
        );
    };
    let base = format!("{}://{}", mock.scheme(), host(&uri, &headers));
    submit(&mock, &headers, &body, |n| format!("{n:08x}-0000-4000-8000-000000000000"), |id| {
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

async fn azure_poll(
    State(mock): State<Arc<Mock>>,
    headers: HeaderMap,
    Path((_model, id)): Path<(String, String)>,
) -> Response {
    let answer = |progress| {
        let running = matches!(progress, Progress::Running { .. });
        let (status, body) = azure_answer(progress);
        let mut response = json_response(status, body);
        if running {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    };
    poll(&mock, &headers, &id, answer).await
}

fn azure_answer(progress: Progress) -> (StatusCode, Value) {
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

async fn stability_submit(
    State(mock): State<Arc<Mock>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    submit(
        &mock,
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
    let answer = |progress| {
        let (status, body) = stability_answer(&id, progress);
        json_response(status, body)
    };
    poll(&mock, &headers, &id, answer).await
}

fn stability_answer(id: &str, progress: Progress) -> (StatusCode, Value) {
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

/// The host the client called (for the URLs a shape answers with): the request's authority
/// (HTTP/2), else its `Host` header (HTTP/1.1).
fn host(uri: &Uri, headers: &HeaderMap) -> String {
    uri.authority()
        .map(|authority| authority.as_str())
        .or_else(|| headers.get(header::HOST).and_then(|v| v.to_str().ok()))
        .unwrap_or("localhost")
        .to_owned()
}
