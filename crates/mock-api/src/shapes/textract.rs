//! AWS Textract's asynchronous text detection, in the AWS JSON 1.1 protocol: every call is
//! `POST /` with `Content-Type: application/x-amz-json-1.1`, the operation named by
//! `X-Amz-Target`.
//!
//! `Textract.StartDocumentTextDetection`, `{"DocumentLocation": {"S3Object": {"Bucket", "Name"}},
//! "ClientRequestToken"?, "JobTag"?}` → `{"JobId"}`; a `ClientRequestToken` seen before answers
//! the job it made (Textract's idempotency). `Textract.GetDocumentTextDetection`, `{"JobId",
//! "MaxResults"?, "NextToken"?}` is the poll → `{"JobStatus": "IN_PROGRESS"}`, then
//! `{"JobStatus": "SUCCEEDED", "DocumentMetadata": {"Pages"}, "Blocks": [...], "NextToken"?}`,
//! or `{"JobStatus": "FAILED", "StatusMessage"}`. The result is paged: a document has
//! `textract_blocks` blocks (a `PAGE` block, then `LINE` and `WORD` blocks, [`BLOCKS_PER_PAGE`]
//! to a document page), answered `MaxResults` at a time (1 to 1000, 1000 when not given), with
//! a `NextToken` until the last; every call counts as a poll. With `textract_endless_pages`,
//! every page carries a `NextToken`, past the end too (pages of no blocks), as a provider bug
//! would.
//!
//! Errors are AWS JSON errors, `{"__type", "message"}` with `X-Amzn-ErrorType`: 400
//! `UnknownOperationException` (no or another `X-Amz-Target`), `InvalidJobIdException`,
//! `InvalidParameterException`, `SerializationException` (not JSON). The credential is the key in
//! `Authorization` as it is, or, with `MOCK_AWS_ACCESS_KEY_ID` set, an AWS Signature Version 4
//! checked before the call gets here (see [`crate::credentials`]), refused with 403
//! `InvalidSignatureException`.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use serde_json::{Value, json};

use super::{Call, Look, Submission, refusal, see, start};
use crate::Mock;
use crate::jobs::{Job, Progress};

/// Blocks to a document page.
pub const BLOCKS_PER_PAGE: usize = 50;
/// The most blocks a page of results holds, and how many when `MaxResults` is not given.
pub const MAX_RESULTS: u64 = 1000;
/// The protocol's media type.
const AMZ_JSON: &str = "application/x-amz-json-1.1";

pub(super) fn routes() -> Router<Arc<Mock>> {
    Router::new().route("/", post(call))
}

/// An AWS JSON answer.
fn aws_json(status: StatusCode, body: &Value) -> Response {
    let request_id = format!(
        "{:08x}-0000-4000-8000-000000000000",
        crate::fnv1a(body.to_string().as_bytes()) >> 32
    );
    let mut response = (status, body.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(AMZ_JSON));
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        headers.insert("x-amzn-requestid", value);
    }
    response
}

/// An AWS JSON error of type `kind`.
pub(crate) fn aws_error(status: StatusCode, kind: &'static str, message: &str) -> Response {
    let mut response = aws_json(status, &json!({"__type": kind, "message": message}));
    response
        .headers_mut()
        .insert("x-amzn-errortype", HeaderValue::from_static(kind));
    response
}

/// A Textract error, its type by the status.
pub(super) fn error(status: StatusCode, message: &str) -> Response {
    let kind = match status.as_u16() {
        401 => "UnrecognizedClientException",
        403 => "AccessDeniedException",
        429 => "ThrottlingException",
        400..=499 => "InvalidParameterException",
        _ => "InternalServerError",
    };
    aws_error(status, kind, message)
}

fn invalid(message: &str) -> Response {
    aws_error(
        StatusCode::BAD_REQUEST,
        "InvalidParameterException",
        message,
    )
}

async fn call(call: Call, body: Bytes) -> Response {
    if let Some(refused) = refusal(&call.mock, &call.headers).await {
        return refused;
    }
    let target = call
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let operation = target.strip_prefix("Textract.");
    if !matches!(
        operation,
        Some("StartDocumentTextDetection" | "GetDocumentTextDetection")
    ) {
        let message = format!("Unknown operation: X-Amz-Target {target:?}");
        return aws_error(
            StatusCode::BAD_REQUEST,
            "UnknownOperationException",
            &message,
        );
    }
    let input: Value = match serde_json::from_slice(&body) {
        Ok(input @ Value::Object(_)) => input,
        _ => {
            let message = "The request body is not a JSON object";
            return aws_error(StatusCode::BAD_REQUEST, "SerializationException", message);
        }
    };
    if operation == Some("StartDocumentTextDetection") {
        start_detection(&call, input).await
    } else {
        get_detection(&call.mock, &input).await
    }
}

async fn start_detection(call: &Call, input: Value) -> Response {
    let object = input.pointer("/DocumentLocation/S3Object");
    let named = |field: &str| object.and_then(|o| o.get(field)).and_then(Value::as_str);
    if named("Bucket").is_none() || named("Name").is_none() {
        return invalid(
            "Request has invalid parameters: DocumentLocation.S3Object needs a Bucket and a Name",
        );
    }
    let token = input
        .get("ClientRequestToken")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let submission = Submission::new(call, input);
    let submission = Submission {
        key: token.or(submission.key),
        ..submission
    };
    start(
        &call.mock,
        submission,
        |n| format!("{n:064x}"),
        |id| aws_json(StatusCode::OK, &json!({ "JobId": id })),
    )
    .await
}

/// The `NextToken` of the page of job `id` that starts at block `offset`.
fn next_token(id: &str, offset: u64) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{id}:{offset}"))
}

/// The block a `NextToken` of job `id` starts at, if it is one of that job's.
fn offset(token: &str, id: &str) -> Option<u64> {
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token)
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (job, offset) = decoded.rsplit_once(':')?;
    (job == id).then(|| offset.parse().ok()).flatten()
}

async fn get_detection(mock: &Mock, input: &Value) -> Response {
    let Some(id) = input.get("JobId").and_then(Value::as_str) else {
        return invalid("Request has invalid parameters: JobId is required");
    };
    let max = match input.get("MaxResults") {
        None | Some(Value::Null) => MAX_RESULTS,
        Some(max) => match max.as_u64().filter(|n| (1..=MAX_RESULTS).contains(n)) {
            Some(max) => max,
            None => return invalid("Request has invalid parameters: MaxResults must be 1 to 1000"),
        },
    };
    let from = match input.get("NextToken").and_then(Value::as_str) {
        None => 0,
        Some(token) => match offset(token, id) {
            Some(from) => from,
            None => return invalid("Request has invalid parameters: NextToken is not valid"),
        },
    };
    let Some((job, progress)) = see(mock, id, Look::Poll).await else {
        let kind = "InvalidJobIdException";
        return aws_error(StatusCode::BAD_REQUEST, kind, "Request has invalid Job Id");
    };
    let body = match progress {
        Progress::Running { .. } => json!({"JobStatus": "IN_PROGRESS"}),
        Progress::Failed(message) => json!({"JobStatus": "FAILED", "StatusMessage": message}),
        Progress::Done(_) => page(mock, &job, from, max),
    };
    aws_json(StatusCode::OK, &body)
}

/// The page of `job`'s result that starts at block `from` and holds at most `max` blocks.
fn page(mock: &Mock, job: &Job, from: u64, max: u64) -> Value {
    let total = u64::try_from(mock.config.textract_blocks).unwrap_or(u64::MAX);
    let to = from.saturating_add(max);
    let blocks: Vec<_> = (from..to.min(total)).map(|i| block(job, i)).collect();
    let mut body = json!({
        "DocumentMetadata": {"Pages": total.div_ceil(BLOCKS_PER_PAGE as u64)},
        "JobStatus": "SUCCEEDED",
        "Blocks": blocks,
        "DetectDocumentTextModelVersion": "1.0",
    });
    if to < total || mock.config.textract_endless_pages {
        body["NextToken"] = json!(next_token(&job.id, to));
    }
    body
}

/// Block `i` of `job`'s document: a `PAGE` block opens each document page, then `LINE` blocks
/// each followed by its three `WORD` blocks.
fn block(job: &Job, i: u64) -> Value {
    let per_page = BLOCKS_PER_PAGE as u64;
    let page = i / per_page + 1;
    let id = format!(
        "{:08x}-{:04x}-4000-8000-{i:012x}",
        crate::fnv1a(job.id.as_bytes()) >> 32,
        page % 0x1_0000
    );
    let file = job
        .input
        .pointer("/DocumentLocation/S3Object/Name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let box_at =
        |top: f64| json!({"BoundingBox": {"Width": 0.5, "Height": 0.02, "Left": 0.1, "Top": top}});
    let top = (i % per_page) as f64 / per_page as f64;
    match i % per_page {
        0 => json!({"BlockType": "PAGE", "Id": id, "Page": page, "Geometry": box_at(0.0)}),
        k if k % 4 == 1 => json!({
            "BlockType": "LINE", "Id": id, "Page": page, "Confidence": 99.5,
            "Text": format!("{file} line {i}"), "Geometry": box_at(top),
        }),
        _ => json!({
            "BlockType": "WORD", "Id": id, "Page": page, "Confidence": 99.1,
            "Text": format!("w{i}"), "TextType": "PRINTED", "Geometry": box_at(top),
        }),
    }
}
