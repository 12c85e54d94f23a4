//! OpenAI's Batch API: `POST /v1/batches` (`Authorization: Bearer`), JSON `{"input_file_id",
//! "endpoint", "completion_window": "24h", "metadata"?}` → the batch object, `"status":
//! "validating"`; `GET /v1/batches/{id}` → `validating`, `in_progress`, `finalizing` in turn
//! (the run split in three), then `completed` with `output_file_id` and `request_counts`, or
//! `failed` with `errors: {"object": "list", "data": [{"code", "message", "param", "line"}]}`;
//! `GET /v1/files/{output_file_id}/content` → the output as JSON Lines
//! (`application/octet-stream`), one line per request: `{"id", "custom_id", "response":
//! {"status_code": 200, "request_id", "body"}, "error": null}`, the bodies of `endpoint`'s kind.
//!
//! The input file is not uploaded to the mock: a batch has [`DEFAULT_REQUESTS`] requests
//! (`request-1`, ...), or as many as its `metadata.requests` says (a string, as metadata values
//! are). An `input_file_id` of `file-missing` is a file that does not exist: 400. Errors are
//! OpenAI's `{"error": {"message", "type", "param", "code"}}`.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::{Call, Look, collection, json_response, poll, refusal, see, stage};
use crate::Mock;
use crate::jobs::{Job, Progress};

/// The requests of a batch whose metadata does not say.
pub const DEFAULT_REQUESTS: u64 = 3;
/// The most requests a batch holds, as OpenAI's input files.
pub const MAX_REQUESTS: u64 = 50_000;
/// The endpoints a batch may call.
const ENDPOINTS: [&str; 8] = [
    "/v1/responses",
    "/v1/chat/completions",
    "/v1/embeddings",
    "/v1/completions",
    "/v1/moderations",
    "/v1/images/generations",
    "/v1/images/edits",
    "/v1/videos",
];
/// When every batch was made (seconds since the Unix epoch): a fixed stamp keeps answers
/// deterministic.
const CREATED_AT: u64 = 1_796_169_600;

pub(super) fn routes() -> Router<Arc<Mock>> {
    collection("/v1/batches", post(submit), get(status))
        .route("/v1/files/{file_id}/content", get(content))
}

/// An OpenAI error body: its `type` and `code` by the status.
pub(super) fn error(status: StatusCode, message: &str) -> Response {
    let (kind, code) = match status.as_u16() {
        401 => ("invalid_request_error", json!("invalid_api_key")),
        429 => ("requests", json!("rate_limit_exceeded")),
        500.. => ("server_error", Value::Null),
        _ => ("invalid_request_error", Value::Null),
    };
    openai_error(status, message, kind, Value::Null, code)
}

fn openai_error(
    status: StatusCode,
    message: &str,
    kind: &str,
    param: Value,
    code: Value,
) -> Response {
    json_response(
        status,
        json!({"error": {"message": message, "type": kind, "param": param, "code": code}}),
    )
}

/// A 400 about the submit's `param`.
fn invalid(param: &str, message: &str, code: Option<&str>) -> Response {
    openai_error(
        StatusCode::BAD_REQUEST,
        message,
        "invalid_request_error",
        json!(param),
        json!(code),
    )
}

/// What is wrong with a batch's body, if anything.
fn validate(input: &Value) -> Option<Response> {
    let Some(file) = input.get("input_file_id").and_then(Value::as_str) else {
        let message = "Missing required parameter: 'input_file_id'.";
        return Some(invalid(
            "input_file_id",
            message,
            Some("missing_required_parameter"),
        ));
    };
    if file == "file-missing" {
        let message = format!("Invalid 'input_file_id': '{file}'. File not found.");
        return Some(invalid("input_file_id", &message, None));
    }
    let endpoint = input.get("endpoint").and_then(Value::as_str);
    if !endpoint.is_some_and(|e| ENDPOINTS.contains(&e)) {
        let message = format!(
            "Invalid 'endpoint': {}. Expected one of {}.",
            endpoint.unwrap_or("none"),
            ENDPOINTS.join(", ")
        );
        return Some(invalid("endpoint", &message, Some("invalid_value")));
    }
    if input.get("completion_window").and_then(Value::as_str) != Some("24h") {
        let message = "Invalid 'completion_window': expected '24h'.";
        return Some(invalid("completion_window", message, Some("invalid_value")));
    }
    None
}

async fn submit(call: Call, body: Bytes) -> Response {
    // OpenAI's webhooks are configured per project, never named by a batch.
    let accept = |input: &Value| validate(input).map_or(Ok(None), |bad| Err(Box::new(bad)));
    super::submit(
        &call,
        &body,
        accept,
        |n| format!("batch_{n:024x}"),
        |id, input| json_response(StatusCode::OK, batch(id, input, "validating")),
    )
    .await
}

async fn status(call: Call, Path(id): Path<String>) -> Response {
    let answer = |job: &Job, progress| json_response(StatusCode::OK, polled(job, progress));
    poll(&call, &id, Look::Poll, answer).await
}

/// The batch object of `id` made of `input`, in `status`, nothing done yet.
fn batch(id: &str, input: &Value, status: &str) -> Value {
    json!({
        "id": id,
        "object": "batch",
        "endpoint": input.get("endpoint"),
        "errors": null,
        "input_file_id": input.get("input_file_id"),
        "completion_window": "24h",
        "status": status,
        "output_file_id": null,
        "error_file_id": null,
        "created_at": CREATED_AT,
        "in_progress_at": null,
        "expires_at": CREATED_AT + 86_400,
        "finalizing_at": null,
        "completed_at": null,
        "failed_at": null,
        "expired_at": null,
        "cancelling_at": null,
        "cancelled_at": null,
        "request_counts": {"total": 0, "completed": 0, "failed": 0},
        "metadata": input.get("metadata"),
    })
}

/// The batch object of `job` standing at `progress`.
fn polled(job: &Job, progress: Progress) -> Value {
    let total = requests(&job.input);
    let mut body = batch(&job.id, &job.input, "validating");
    let counts = |completed: u64| json!({"total": total, "completed": completed, "failed": 0});
    match progress {
        Progress::Running { done, of } => match stage(done, of, 3) {
            0 => {}
            1 => {
                body["status"] = json!("in_progress");
                body["in_progress_at"] = json!(CREATED_AT + 1);
                body["request_counts"] = counts(total * u64::from(done) / u64::from(of.max(1)));
            }
            _ => {
                body["status"] = json!("finalizing");
                body["in_progress_at"] = json!(CREATED_AT + 1);
                body["finalizing_at"] = json!(CREATED_AT + 2);
                body["request_counts"] = counts(total);
            }
        },
        Progress::Done(_) => {
            body["status"] = json!("completed");
            body["in_progress_at"] = json!(CREATED_AT + 1);
            body["finalizing_at"] = json!(CREATED_AT + 2);
            body["completed_at"] = json!(CREATED_AT + 3);
            body["output_file_id"] = json!(output_file(&job.id));
            body["request_counts"] = counts(total);
        }
        Progress::Failed(message) => {
            body["status"] = json!("failed");
            body["failed_at"] = json!(CREATED_AT + 1);
            body["errors"] = json!({"object": "list", "data": [
                {"code": "invalid_request", "message": message, "param": null, "line": 1},
            ]});
        }
    }
    body
}

/// The requests of a batch made of `input`.
fn requests(input: &Value) -> u64 {
    input
        .pointer("/metadata/requests")
        .and_then(Value::as_str)
        .and_then(|n| n.parse().ok())
        .unwrap_or(DEFAULT_REQUESTS)
        .min(MAX_REQUESTS)
}

/// The output file of batch `id` (`batch_HEX` → `file-HEX`).
fn output_file(id: &str) -> String {
    format!("file-{}", id.trim_start_matches("batch_"))
}

async fn content(call: Call, Path(file_id): Path<String>) -> Response {
    if let Some(refused) = refusal(&call.mock, &call.headers).await {
        return refused;
    }
    let seen = match file_id.strip_prefix("file-") {
        Some(hex) => see(&call.mock, &format!("batch_{hex}"), Look::Peek).await,
        None => {
            call.mock.delay().await;
            None
        }
    };
    match seen {
        Some((job, Progress::Done(_))) => (
            [(header::CONTENT_TYPE, "application/octet-stream")],
            output(&job),
        )
            .into_response(),
        _ => {
            let message = format!("No such File object: {file_id}");
            let kind = "invalid_request_error";
            openai_error(
                StatusCode::NOT_FOUND,
                &message,
                kind,
                json!("id"),
                Value::Null,
            )
        }
    }
}

/// The output file of `job`: a line per request.
fn output(job: &Job) -> String {
    let endpoint = job
        .input
        .get("endpoint")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut lines = String::new();
    for i in 1..=requests(&job.input) {
        let fingerprint = crate::fnv1a(format!("{}/{i}", job.id).as_bytes());
        let custom_id = format!("request-{i}");
        let line = json!({
            "id": format!("batch_req_{fingerprint:016x}"),
            "custom_id": custom_id,
            "response": {
                "status_code": 200,
                "request_id": format!("req_{fingerprint:032x}"),
                "body": response_body(endpoint, &custom_id, fingerprint),
            },
            "error": null,
        });
        lines.push_str(&line.to_string());
        lines.push('\n');
    }
    lines
}

/// What a request of a batch calling `endpoint` answered.
fn response_body(endpoint: &str, custom_id: &str, fingerprint: u64) -> Value {
    match endpoint {
        "/v1/embeddings" => json!({
            "object": "list",
            "data": [{"object": "embedding", "index": 0, "embedding": [0.25, -0.5, 0.125]}],
            "model": "text-embedding-3-small",
            "usage": {"prompt_tokens": 4, "total_tokens": 4},
        }),
        _ => json!({
            "id": format!("chatcmpl-{fingerprint:016x}"),
            "object": "chat.completion",
            "created": CREATED_AT,
            "model": "gpt-4o-mini",
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": format!("The answer to {custom_id}.")},
                "finish_reason": "stop",
            }],
            "usage": {"prompt_tokens": 9, "completion_tokens": 6, "total_tokens": 15},
        }),
    }
}
