//! Shapes of real asynchronous APIs, modelled on their public documentation, so that a profile
//! written from a provider's documents works against the mock unchanged but for its base URL.
//! Each requires its own credential header (`MOCK_API_KEY`'s value) and answers 401 without it,
//! in its provider's error body, unless a Bearer token or an AWS signature is required instead
//! (see [`crate::credentials`], whose gate stands in front of these routes). URLs a shape answers with are absolute, on the scheme and host
//! the client called.
//!
//! | shape (credential) | submit | status: running → done | result | webhook |
//! |---|---|---|---|---|
//! | `replicate` (`Authorization: Bearer`) | `POST /v1/predictions` → 201 `{"id", "status": "starting", "urls": {"get"}}` | `GET /v1/predictions/{id}`: `"status"`: `processing` → `succeeded` or `failed` (`error`) | in the poll: `output` | `"webhook"` in the body: the poll's answer |
//! | `google` (`x-goog-api-key`) | `POST /v1/models/{model}:predictLongRunning` (or `/v1beta/...`, as the Gemini API) → `{"name": "models/{model}/operations/{n}"}` | `GET /v1/{name}` (a slash in the id): no `done` field → `"done": true`, with `error: {code, message}` if failed | in the poll: `response` | `"webhook"`: the poll's answer |
//! | `azure` (`Ocp-Apim-Subscription-Key`) | `POST /documentintelligence/documentModels/{model}:analyze` → 202, empty, `Operation-Location: <full URL>`, `Retry-After: 1` | `GET` that URL: `"status"`: `running` (with `Retry-After: 1`) → `succeeded` or `failed` (`error: {code, message}`) | in the poll: `analyzeResult` | `"webhook"`: the poll's answer |
//! | `stability` (`Authorization: Bearer`) | `POST /v2beta/image-to-video` → 200 `{"id"}` | `GET /v2beta/image-to-video/result/{id}`: HTTP 202 `{"status": "in-progress"}` → HTTP 200, or HTTP 422 `{"errors": [message]}` | in the poll: `{"video", "finish_reason"}` | `"webhook"`: the poll's answer |
//! | `fal` (`Authorization: Key`) | `POST /{owner}/{app}[/{subpath}]`, JSON input → 200 `{"request_id", "status_url", "response_url", "cancel_url"}` (under `/{owner}/{app}/requests/{id}`) | `GET status_url`: HTTP 202 `IN_QUEUE` (`queue_position`), `IN_PROGRESS` → HTTP 200 `COMPLETED` (a failed job's too) | `GET response_url`: the output `{"images": [{"url", ...}], "seed"}`, or the model's 422 `{"detail": [...]}`; 400 before | `?fal_webhook=URL`: `{"request_id", "gateway_request_id", "status": "OK" \| "ERROR", "payload"}` |
//! | `openai-batch` (`Authorization: Bearer`) | `POST /v1/batches`, `{"input_file_id", "endpoint", "completion_window": "24h"}` → the batch, `validating`; `file-missing` → 400 | `GET /v1/batches/{id}`: `validating`, `in_progress`, `finalizing` → `completed` (`output_file_id`, `request_counts`) or `failed` (`errors.data[]`) | `GET /v1/files/{output_file_id}/content`: JSON Lines, a line per request | none (OpenAI's are per project) |
//! | `revai` (`Authorization: Bearer`) | `POST /speechtotext/v1/jobs`, `{"source_config": {"url"}}` → the job, `in_progress` | `GET /speechtotext/v1/jobs/{id}`: `in_progress` → `transcribed` or `failed` (`failure`, `failure_detail`) | `GET .../{id}/transcript`: text (`Accept: text/plain`) or JSON (`application/vnd.rev.transcript.v1.0+json`); 409 problem before | `notification_config.url`: `{"job"}` |
//! | `stability-upscale` (`Authorization: Bearer`) | `POST /v2beta/stable-image/upscale/creative`, multipart: file `image`, `prompt` (required), `output_format`, `seed` → 200 `{"id"}`; 413 over `max_upload_bytes` | `GET /v2beta/results/{id}`: HTTP 202 `{"status": "in-progress"}` → HTTP 200 (or 422) | in the poll: the image's bytes (`Accept: image/*`) or `{"image": <base64>, "finish_reason", "seed"}` (`application/json`), made from the upload and the prompt | none |
//! | `elevenlabs-dubbing` (`xi-api-key`) | `POST /v1/dubbing`, multipart: file `file` or field `source_url`, `target_lang` (required) → `{"dubbing_id", "expected_duration_sec"}` | `GET /v1/dubbing/{id}`: `dubbing` → `dubbed` (`target_languages`) or `failed` (`error`) | `GET /v1/dubbing/{id}/audio/{lang}`: `audio/mpeg` made from the source; 404 for another language, 425 before | none |
//! | `textract` (`Authorization`: the key as it is, or a Signature Version 4 with `MOCK_AWS_ACCESS_KEY_ID`) | `POST /`, `X-Amz-Target: Textract.StartDocumentTextDetection`, `{"DocumentLocation": {"S3Object": {"Bucket", "Name"}}, "ClientRequestToken"?}` → `{"JobId"}` | `POST /`, `Textract.GetDocumentTextDetection`, `{"JobId", "MaxResults"?, "NextToken"?}`: `"JobStatus"`: `IN_PROGRESS` → `SUCCEEDED` or `FAILED` (`StatusMessage`) | in the poll, paged: `Blocks` and `NextToken` until the last page | none (SNS) |
//! | `deepgram` (`Authorization: Token`) | `POST /v1/listen?callback=URL&...`, `{"url"}` → 200 `{"request_id"}`; 400 without `callback` | none: nothing to poll | pushed only | `callback`, always: `{"metadata", "results": {"channels": [{"alternatives": [{"transcript", ...}]}]}}` |
//!
//! The non-2xx bodies are each provider's: `{"error": message}` for the first four (as before),
//! fal's `{"detail"}`, OpenAI's `{"error": {"message", "type", "param", "code"}}`, Rev.ai's RFC
//! 7807 problem details, Stability's `{"id", "name", "errors"}`, ElevenLabs' `{"detail":
//! {"status", "message"}}`, AWS's `{"__type", "message"}`, Deepgram's `{"err_code", "err_msg",
//! "request_id"}`. Each module's doc says its shape in full.
//!
//! A webhook body a poll also answers is made by the same function as the poll's, so the two
//! cannot drift apart.
//!
//! # Layout
//! This module holds what every shape goes through, each shape's module only what its provider
//! does its own way: the paths, the field names, the status words, the error body. Every
//! handler takes a `Call` (the mock, the URI, the headers) and hands it on. A call is
//! admitted by `refusal` (counted, the credential checked in one place, `authorized`, a share
//! failed on purpose). What a call does to a job is in `lifecycle`: a submit makes its job with
//! `start` (the delay, a dropped answer, a timer for a job due by the clock); a poll or a result
//! fetch looks at its job with `see` (a poll counts towards `polls_until_done`, a fetch does
//! not), and whoever sees a job finish first calls its webhook (`job_finished`); the shapes
//! reach these through this module. The flows several shapes share are whole here: a
//! body read after admission (`admitted`), a JSON submit (`submit`, the shape saying what it
//! refuses and where its webhook is named), a poll answered by the same function as the webhook
//! (`poll_json`), a provider's jobs as a REST collection (`collection`). Non-2xx answers are
//! made by `error`, in each provider's own error body.

mod azure;
mod deepgram;
mod elevenlabs;
mod fal;
mod google;
mod lifecycle;
mod openai;
mod replicate;
mod revai;
mod stability;
mod textract;

use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use serde_json::{Value, json};

use crate::credentials::after_scheme;
use crate::jobs::{Job, Progress};
use crate::multipart::{self, Form, FormError};
use crate::{Mock, Shape};
use lifecycle::{Look, see, start};

pub use elevenlabs::dubbed;
pub use stability::upscaled;
pub(crate) use textract::aws_error;

/// The routes of `shape` (none for `original`).
pub fn routes(shape: Shape) -> Router<Arc<Mock>> {
    match shape {
        Shape::Original => Router::new(),
        Shape::Replicate => replicate::routes(),
        Shape::Google => google::routes(),
        Shape::Azure => azure::routes(),
        Shape::Stability => stability::routes(),
        Shape::Fal => fal::routes(),
        Shape::OpenaiBatch => openai::routes(),
        Shape::Revai => revai::routes(),
        Shape::StabilityUpscale => stability::upscale_routes(),
        Shape::ElevenlabsDubbing => elevenlabs::routes(),
        Shape::Textract => textract::routes(),
        Shape::Deepgram => deepgram::routes(),
    }
}

/// What every shape's handler is called with, taken from the request in one extractor: the
/// mock, and the request's URI and headers (for the credential, the idempotency key, and the
/// host the answer's URLs are made on).
struct Call {
    mock: Arc<Mock>,
    uri: Uri,
    headers: HeaderMap,
}

impl FromRequestParts<Arc<Mock>> for Call {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, mock: &Arc<Mock>) -> Result<Self, Infallible> {
        Ok(Self {
            mock: Arc::clone(mock),
            uri: parts.uri.clone(),
            headers: parts.headers.clone(),
        })
    }
}

impl Call {
    /// `scheme://host` the client reached the mock by.
    fn origin(&self) -> String {
        origin(&self.mock, &self.uri, &self.headers)
    }
}

/// The header each shape's credential goes in, and the scheme its value starts with
/// (`Bearer KEY`), if any.
fn credential(shape: Shape) -> (&'static str, Option<&'static str>) {
    match shape {
        Shape::Original => ("", None),
        Shape::Replicate
        | Shape::Stability
        | Shape::OpenaiBatch
        | Shape::Revai
        | Shape::StabilityUpscale => ("authorization", Some("Bearer")),
        Shape::Google => ("x-goog-api-key", None),
        Shape::ElevenlabsDubbing => ("xi-api-key", None),
        // AWS signs each request (Signature Version 4): with MOCK_AWS_ACCESS_KEY_ID set, the
        // signature is checked instead (see `crate::credentials`); without, the key stands in
        // `Authorization` as it is.
        Shape::Textract => ("authorization", None),
        Shape::Azure => ("ocp-apim-subscription-key", None),
        Shape::Fal => ("authorization", Some("Key")),
        Shape::Deepgram => ("authorization", Some("Token")),
    }
}

/// Whether `headers` carry `shape`'s API key `key`, as its provider sends it: the one place that
/// decides the key, which each shape's calls check ([`check`]) unless a token or a signature
/// stands in for it (then the credentials gate in front of the routes decides). A scheme is
/// compared in any case ([`after_scheme`]).
fn authorized(shape: Shape, headers: &HeaderMap, key: &str) -> bool {
    let (name, scheme) = credential(shape);
    let Some(value) = headers.get(name).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    match scheme {
        None => value == key,
        Some(scheme) => after_scheme(value, scheme) == Some(key),
    }
}

/// A non-2xx answer of `shape` saying `message`, in its provider's error body.
pub(crate) fn error(shape: Shape, status: StatusCode, message: &str) -> Response {
    match shape {
        Shape::Original | Shape::Replicate | Shape::Google | Shape::Azure | Shape::Stability => {
            json_response(status, json!({ "error": message }))
        }
        Shape::Fal => fal::error(status, message),
        Shape::OpenaiBatch => openai::error(status, message),
        Shape::Revai => revai::error(status, message),
        Shape::StabilityUpscale => stability::error(status, message),
        Shape::ElevenlabsDubbing => elevenlabs::error(status, message),
        Shape::Textract => textract::error(status, message),
        Shape::Deepgram => deepgram::error(status, message),
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
    let shape = mock.config.shape;
    let key_required = mock.credentials.api_key_required();
    if key_required && !authorized(shape, headers, &mock.config.api_key.0) {
        mock.counters.unauthorized();
        let (name, _) = credential(shape);
        let message = format!("missing or wrong {name} header");
        return Some(error(shape, StatusCode::UNAUTHORIZED, &message));
    }
    mock.injected_failure_as(|status| error(shape, status, "simulated failure"))
}

/// What a submit asks a job to be made of.
struct Submission {
    /// The job's input: the JSON body, or a form as JSON.
    input: Value,
    /// The bytes of an uploaded file, if any.
    upload: Option<Bytes>,
    /// Where to call when the job finishes, if anywhere (see [`hook`]).
    webhook: Option<String>,
    /// The idempotency key, if any.
    key: Option<String>,
    /// The scheme and host the submit reached the mock by.
    origin: String,
}

impl Submission {
    /// A submit of `input`, its idempotency key its `Idempotency-Key`: no upload, no webhook.
    fn new(call: &Call, input: Value) -> Self {
        Self {
            input,
            upload: None,
            webhook: None,
            key: call
                .headers
                .get("idempotency-key")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            origin: call.origin(),
        }
    }
}

/// The webhook a submit named, if webhooks are on (or the shape gives results no other way).
fn hook(mock: &Mock, url: Option<&str>) -> Option<String> {
    let on = mock.config.webhooks || mock.config.shape.pushes_results();
    on.then(|| url.map(str::to_owned)).flatten()
}

/// A body the mock would not read: its status and why, answered in the shape's error body.
#[derive(Debug)]
struct Unreadable {
    status: StatusCode,
    message: String,
}

impl Unreadable {
    /// The answer of `mock`'s shape.
    fn answer(self, mock: &Mock) -> Response {
        error(mock.config.shape, self.status, &self.message)
    }
}

/// A body as JSON (`null` when empty), or why not (a 400).
fn json_input(body: &Bytes) -> Result<Value, Unreadable> {
    if body.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(body).map_err(|err| Unreadable {
        status: StatusCode::BAD_REQUEST,
        message: format!("the body is not JSON: {err}"),
    })
}

/// A multipart submit's form, the call admitted: read up to `max_upload_bytes`, or why not (a
/// 413 when longer, a 400 when not a form).
async fn form(call: &Call, body: Body) -> Result<Form, Unreadable> {
    let limit = call.mock.config.max_upload_bytes;
    multipart::read(&call.headers, body, limit)
        .await
        .map_err(|err| Unreadable {
            status: match err {
                FormError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                _ => StatusCode::BAD_REQUEST,
            },
            message: err.to_string(),
        })
}

/// A call admitted by [`refusal`], then its body read by `read` (never started for a refused
/// call): the body, or the answer that ends the call, the refusal or why the body is
/// unreadable in the shape's error body.
async fn admitted<T>(
    call: &Call,
    read: impl Future<Output = Result<T, Unreadable>>,
) -> Result<T, Response> {
    if let Some(refused) = refusal(&call.mock, &call.headers).await {
        return Err(refused);
    }
    read.await.map_err(|bad| bad.answer(&call.mock))
}

/// The webhook a JSON submit names when its shape takes it from the body's top-level
/// `"webhook"`, as most do (an [`submit`]'s `accept`).
fn webhook_member(input: &Value) -> Result<Option<String>, Box<Response>> {
    Ok(input
        .get("webhook")
        .and_then(Value::as_str)
        .map(str::to_owned))
}

/// A JSON submit, as most shapes make them: admitted, the body parsed, then `accept`ed (the
/// shape's answer to a body it refuses, or the webhook URL the submit names), then [`start`].
/// `answer` shapes the reply from the job's id and the body.
async fn submit(
    call: &Call,
    body: &Bytes,
    accept: impl FnOnce(&Value) -> Result<Option<String>, Box<Response>>,
    name_job: impl Fn(u64) -> String,
    answer: impl FnOnce(&str, &Value) -> Response,
) -> Response {
    let input = match admitted(call, async { json_input(body) }).await {
        Ok(input) => input,
        Err(answer) => return answer,
    };
    let webhook = match accept(&input) {
        Ok(url) => hook(&call.mock, url.as_deref()),
        Err(refused) => return *refused,
    };
    let submission = Submission {
        webhook,
        ..Submission::new(call, input.clone())
    };
    start(&call.mock, submission, name_job, |id| answer(id, &input)).await
}

/// A call about job `id`: admitted, then [`see`]. `answer` shapes the reply; an unknown id is
/// the shape's 404.
async fn poll(
    call: &Call,
    id: &str,
    look: Look,
    answer: impl FnOnce(&Job, Progress) -> Response,
) -> Response {
    let mock = &call.mock;
    if let Some(refused) = refusal(mock, &call.headers).await {
        return refused;
    }
    match see(mock, id, look).await {
        Some((job, progress)) => answer(&job, progress),
        None => error(
            mock.config.shape,
            StatusCode::NOT_FOUND,
            &format!("no job {id}"),
        ),
    }
}

/// A poll whose answer is what `answer` makes of the job's id and progress: the status and
/// the JSON body (for the shapes whose webhook body is made by the same function).
async fn poll_json(
    call: &Call,
    id: &str,
    answer: fn(&str, Progress) -> (StatusCode, Value),
) -> Response {
    poll(call, id, Look::Poll, |_, progress| {
        let (status, body) = answer(id, progress);
        json_response(status, body)
    })
    .await
}

/// The routes of a provider whose jobs are a REST collection: a submit POSTs to `path`, a poll
/// GETs `{path}/{id}`.
fn collection(
    path: &str,
    submit: MethodRouter<Arc<Mock>>,
    poll: MethodRouter<Arc<Mock>>,
) -> Router<Arc<Mock>> {
    Router::new()
        .route(path, submit)
        .route(&format!("{path}/{{id}}"), poll)
}

/// Which of `n` stages a running job is in at step `done` of `of`: its run split in `n` equal
/// parts (a shape with several words for "running" says them in turn). `polls_until_done` of
/// `n + 1` shows every stage once.
fn stage(done: u32, of: u32, n: u32) -> u32 {
    let stage = u64::from(done) * u64::from(n) / u64::from(of.max(1));
    u32::try_from(stage)
        .unwrap_or(u32::MAX)
        .min(n.saturating_sub(1))
}

pub(crate) fn json_response(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
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

/// `scheme://host` the client reached the mock by.
fn origin(mock: &Mock, uri: &Uri, headers: &HeaderMap) -> String {
    format!("{}://{}", mock.scheme(), host(uri, headers))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_is_split_in_equal_stages_the_last_held_until_done() {
        let stages = |of, n| (1..of).map(|done| stage(done, of, n)).collect::<Vec<_>>();

        assert_eq!(stages(4, 3), [0, 1, 2]);
        assert_eq!(stages(3, 2), [0, 1]);
        assert_eq!(stages(2, 3), [1]);
        assert_eq!(stage(0, 100, 3), 0);
        assert_eq!(stage(99, 100, 3), 2);
        assert_eq!(stage(5, 0, 1), 0);
    }

    #[test]
    fn a_scheme_is_compared_in_any_case_and_the_key_exactly() {
        let headers = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert("authorization", value.parse().expect("a value"));
            headers
        };

        assert!(authorized(Shape::Fal, &headers("Key k"), "k"));
        assert!(authorized(Shape::Fal, &headers("key k"), "k"));
        assert!(!authorized(Shape::Fal, &headers("Bearer k"), "k"));
        assert!(!authorized(Shape::Fal, &headers("Key K"), "k"));
        assert!(!authorized(Shape::Fal, &HeaderMap::new(), "k"));
    }
}
