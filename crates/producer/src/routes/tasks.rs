//! The client's side: enqueue by name (with a payload or not), read a task, cancel it.
//!
//! This is the asynchronous request-reply pattern: an enqueue answers at once, 202 with
//! `Location` (where the task can be read) and `Retry-After` (when reading it again may show
//! news), or 200 with the result when the task is already done. With `?wait=SECS` (up to 60) an
//! enqueue or a read is a long-poll: it holds the request until the task is final or the time is
//! up, woken by the task's events (see [`crate::waiters`]), then answers as usual.

use std::time::Duration;

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use taskq::Cancel;
use taskq::{Enqueued, NewTask, TaskName, TaskView};

use super::auth::Unauthorized;
use crate::error::{AppError, ErrorBody};
use crate::payload::Payload;
use crate::served::{QueueParam, Target};
use crate::state::AppState;
use crate::waiters::Interest;
use crate::{query, schedule};

/// A task's view as answered to clients.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TaskResponse {
    /// The task.
    #[serde(flatten)]
    pub view: TaskView,
    /// Whether this request created the task (only on enqueue).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enqueued: Option<bool>,
}

impl TaskResponse {
    fn of(view: TaskView) -> Json<Self> {
        Json(Self {
            view,
            enqueued: None,
        })
    }
}

/// The body of `POST /tasks`. An unknown key is refused (a misspelt `delay_ms` must not enqueue a
/// task due at once).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Submit {
    /// The task's name: the dedup key, 1 to 256 bytes of UTF-8 without control characters
    /// (not `.` or `..`).
    #[schema(min_length = 1, max_length = 256)]
    pub name: String,
    /// Optional JSON of any kind, up to 64 KiB, kept in the task's record and shown with it.
    #[schema(value_type = Option<serde_json::Value>)]
    pub payload: Option<Payload>,
    /// Optional: the task is first due this many ms from now (at most a year); not with
    /// `run_at_ms`.
    #[schema(maximum = 31_536_000_000_u64)]
    pub delay_ms: Option<u64>,
    /// Optional: the task is first due at this Redis server time (ms since the Unix epoch, as the
    /// views' `*_at_ms` show it; a time already past is now); not with `delay_ms`.
    #[schema(maximum = 9_999_999_999_999_u64)]
    pub run_at_ms: Option<u64>,
    /// Optional: where to POST the task's view when it ends (done, dead or cancelled), signed
    /// the Standard Webhooks way and retried until a 2xx. http or https, at most 2,048 bytes, no
    /// credentials; a loopback, private, link-local or metadata address is refused (unless
    /// CALLBACK_ALLOW_PRIVATE). A duplicate keeps the first task's.
    #[schema(max_length = 2048)]
    pub callback_url: Option<String>,
}

/// A `callback_url` the producer may accept: checked by the callback policy (see
/// [`webhooks::Destination`]); the consumer checks again, on the addresses it connects to.
pub(super) fn callback_url(
    state: &AppState,
    url: Option<String>,
) -> Result<Option<String>, AppError> {
    let Some(url) = url else { return Ok(None) };
    webhooks::Destination::parse(&url, state.callback_allow_private)
        .map_err(|err| AppError::BadRequest(format!("callback_url: {err}")))?;
    Ok(Some(url))
}

/// Enqueues the task named by the `task-name` query parameter.
#[utoipa::path(
    get, path = "/", tag = "tasks",
    security((), ("client_token" = []), ("admin_token" = [])),
    params(
        ("task-name" = String, Query, description = "the task's name (percent-encoded)"),
        ("delay_ms" = Option<u64>, Query, description = "the new task is first due this many ms from now (at most a year; a duplicate keeps its own time)", maximum = 31_536_000_000_u64),
        WaitParam,
        QueueParam,
    ),
    responses(
        (status = 202, description = "Enqueued now, or already queued, running or processing", body = TaskResponse, headers(
            ("Location" = String, description = "where to read the task"),
            ("Retry-After" = u64, description = "seconds until reading it again may show news"),
        )),
        (status = 200, description = "Final, no Retry-After: done (data holds the result), dead (error holds the last error; an operator may retry it) or cancelled; the name stays taken until the record expires or is purged", body = TaskResponse),
        (status = 400, description = "Missing, repeated or invalid task-name, or a bad delay_ms or wait", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 404, description = "No such queue", body = ErrorBody),
        (status = 503, description = "Redis is unavailable, or the queue is full (Redis' memory above REDIS_MEMORY_HIGH_WATER of maxmemory, or MAX_QUEUED tasks): nothing written, try again after Retry-After", body = ErrorBody, headers(
            ("Retry-After" = u64, description = "seconds to wait when the queue is full"),
        )),
    )
)]
pub async fn enqueue(
    State(state): State<AppState>,
    target: Target,
    RawQuery(query): RawQuery,
) -> Result<Response, AppError> {
    let name = query::task_name(query.as_deref())?;
    let run_at = schedule::run_at(query::delay_ms(query.as_deref())?, None)?;
    let wait = query::wait(query.as_deref())?.min(state.long_poll_max);
    let mut enqueued = admitted(
        &state,
        &target,
        target.queue().schedule(&name, None, run_at).await,
    )?;
    if !wait.is_zero() && !enqueued.view.state.is_final() {
        enqueued.view = until_final(&state, &target, &name, wait).await?;
    }
    accepted(&state, &target, &name, enqueued)
}

/// The `wait` query parameter of a long-poll.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WaitParam {
    /// Hold the request up to this many seconds (0 to 60, at most 3 decimals) until the task is
    /// done, dead or cancelled; answered at once when it already is, else with the view as it is
    /// when the time is up (or sooner, at the producer's LONG_POLL_MAX_MS).
    #[param(minimum = 0, maximum = 60)]
    pub wait: Option<f64>,
}

/// Reads the task until it is final or `wait` is up (a long-poll), then answers it as it is.
/// Woken by the task's events, it reads Redis once per wake-up (and once at the deadline), never
/// in a loop of its own.
async fn until_final(
    state: &AppState,
    target: &Target,
    name: &TaskName,
    wait: Duration,
) -> Result<TaskView, AppError> {
    let deadline = tokio::time::Instant::now() + wait;
    // Registered before the first read: a change between the read and the wait still wakes it.
    let watch = state
        .waiters
        .watch(target.served.name(), name, Interest::Final);
    loop {
        let view = view(target, name).await?;
        if view.state.is_final() || watch.closing() || tokio::time::Instant::now() >= deadline {
            return Ok(view);
        }
        let _ = tokio::time::timeout_at(deadline, watch.changed()).await;
    }
}

/// `HEAD /?task-name=NAME`: the status a read of the task would answer (200, or 404 for a name
/// never seen), and never an enqueue, so that link checkers and `curl -I` create nothing.
pub async fn peek(
    target: Target,
    RawQuery(query): RawQuery,
) -> Result<Json<TaskResponse>, AppError> {
    let name = query::task_name(query.as_deref())?;
    read(&target, &name).await
}

/// Enqueues a task with a JSON payload.
#[utoipa::path(
    post, path = "/tasks", tag = "tasks",
    security((), ("client_token" = []), ("admin_token" = [])),
    params(QueueParam),
    request_body = Submit,
    responses(
        (status = 202, description = "Enqueued now, or already queued, running or processing (a duplicate keeps the first payload)", body = TaskResponse, headers(
            ("Location" = String, description = "where to read the task"),
            ("Retry-After" = u64, description = "seconds until reading it again may show news"),
        )),
        (status = 200, description = "Final, no Retry-After: done (data holds the result), dead (error holds the last error; an operator may retry it) or cancelled; the name stays taken until the record expires or is purged", body = TaskResponse),
        (status = 400, description = "Invalid name, malformed JSON, delay_ms and run_at_ms both given or out of range, or a callback_url refused", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 404, description = "No such queue", body = ErrorBody),
        (status = 413, description = "Payload over 64 KiB", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 422, description = "JSON of the wrong shape, or a payload the consumer could not read (a number beyond a 64-bit float, nesting deeper than 127)", body = ErrorBody),
        (status = 503, description = "Redis is unavailable, or the queue is full (Redis' memory above REDIS_MEMORY_HIGH_WATER of maxmemory, or MAX_QUEUED tasks): nothing written, try again after Retry-After", body = ErrorBody, headers(
            ("Retry-After" = u64, description = "seconds to wait when the queue is full"),
        )),
    )
)]
pub async fn submit(
    State(state): State<AppState>,
    target: Target,
    body: Result<Json<Submit>, JsonRejection>,
) -> Result<Response, AppError> {
    let Json(submit) = body?;
    let name = TaskName::parse(submit.name)?;
    let run_at = schedule::run_at(submit.delay_ms, submit.run_at_ms)?;
    let callback_url = callback_url(&state, submit.callback_url)?;
    let enqueued = target
        .queue()
        .submit_task(NewTask {
            name: name.clone(),
            payload: submit.payload.map(Payload::into_raw),
            run_at,
            callback_url,
        })
        .await;
    let enqueued = admitted(&state, &target, enqueued)?;
    accepted(&state, &target, &name, enqueued)
}

/// An enqueue's result; a refusal because the queue is full (see [`crate::admission`]) is
/// counted and answered 503 with `Retry-After`.
pub(super) fn admitted<T>(
    state: &AppState,
    target: &Target,
    result: taskq::Result<T>,
) -> Result<T, AppError> {
    result.map_err(|err| match err {
        taskq::Error::Full(full) => refused(state, target, full),
        err => err.into(),
    })
}

/// A refusal because the queue is full, counted.
pub(super) fn refused(state: &AppState, target: &Target, full: taskq::Full) -> AppError {
    target.served.admission.count_refusal(full);
    AppError::Full(full, retry_after_secs(state))
}

/// The `Retry-After` of 202 and 503 answers, in whole seconds (at least 1).
fn retry_after_secs(state: &AppState) -> u64 {
    state.retry_after.as_secs_f64().ceil().max(1.0) as u64
}

/// 200 when the task is final (done with its result, dead with its last error, cancelled): it
/// will not change until an operator retries or purges it, so there is no `Retry-After`. Else 202
/// with where to look and when.
fn accepted(
    state: &AppState,
    target: &Target,
    name: &TaskName,
    enqueued: Enqueued,
) -> Result<Response, AppError> {
    if enqueued.created {
        tracing::debug!(task = %name, "enqueued");
    }
    let is_final = enqueued.view.state.is_final();
    let answer = Json(TaskResponse {
        view: enqueued.view,
        enqueued: Some(enqueued.created),
    });
    if is_final {
        return Ok(answer.into_response());
    }
    let location = format!(
        "/tasks/{}{}",
        path_segment(name.as_str()),
        target.link_query()
    );
    let location = HeaderValue::from_str(&location)
        .map_err(|_| AppError::BadRequest("task name cannot be used in a URL".into()))?;
    let retry_after = retry_after_secs(state).to_string();
    Ok((
        StatusCode::ACCEPTED,
        [
            (header::LOCATION, location),
            (
                header::RETRY_AFTER,
                HeaderValue::from_str(&retry_after).expect("digits"),
            ),
        ],
        answer,
    )
        .into_response())
}

/// Reads a task.
#[utoipa::path(
    get, path = "/tasks/{name}", tag = "tasks",
    security((), ("client_token" = []), ("admin_token" = [])),
    params(("name" = String, Path, description = "the task's name, percent-encoded as one path segment"), WaitParam, QueueParam),
    responses(
        (status = 200, description = "The task as it is now (with wait: once final, or when the time is up)", body = TaskResponse),
        (status = 400, description = "Invalid name, or a bad wait", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 404, description = "No task of that name (or its result expired), or no such queue", body = ErrorBody),
        (status = 503, description = "Redis is unavailable", body = ErrorBody),
    )
)]
pub async fn show(
    State(state): State<AppState>,
    target: Target,
    name: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Result<Json<TaskResponse>, AppError> {
    let name = path_name(name)?;
    let wait = query::wait(query.as_deref())?.min(state.long_poll_max);
    if wait.is_zero() {
        return read(&target, &name).await;
    }
    Ok(TaskResponse::of(
        until_final(&state, &target, &name, wait).await?,
    ))
}

async fn read(target: &Target, name: &TaskName) -> Result<Json<TaskResponse>, AppError> {
    Ok(TaskResponse::of(view(target, name).await?))
}

/// The task's view; 404 when there is none.
pub(super) async fn view(target: &Target, name: &TaskName) -> Result<TaskView, AppError> {
    target
        .queue()
        .get(name)
        .await?
        .ok_or_else(|| not_found(name))
}

/// Cancels a task: it leaves the queue, a worker still calling the API for it has its answer
/// refused, and the record stays, state `cancelled`, for `DEAD_TTL_SECS` (its name dedups
/// meanwhile).
#[utoipa::path(
    delete, path = "/tasks/{name}", tag = "tasks",
    security((), ("client_token" = []), ("admin_token" = [])),
    params(("name" = String, Path, description = "the task's name, percent-encoded as one path segment"), QueueParam),
    responses(
        (status = 200, description = "Cancelled (now or before)", body = TaskResponse),
        (status = 400, description = "Invalid name", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 404, description = "No task of that name, or no such queue", body = ErrorBody),
        (status = 409, description = "The task is done: nothing left to cancel", body = ErrorBody),
        (status = 503, description = "Redis is unavailable", body = ErrorBody),
    )
)]
pub async fn cancel(
    target: Target,
    name: Result<Path<String>, PathRejection>,
) -> Result<Json<TaskResponse>, AppError> {
    let name = path_name(name)?;
    match target.queue().cancel(&name).await? {
        Cancel::Cancelled(view) => {
            tracing::info!(task = %name, "cancelled");
            Ok(TaskResponse::of(view))
        }
        Cancel::AlreadyCancelled(view) => Ok(TaskResponse::of(view)),
        Cancel::Done(_) => Err(AppError::Conflict(format!(
            "task {:?} is done: nothing left to cancel",
            name.as_str()
        ))),
        Cancel::NotFound => Err(not_found(&name)),
    }
}

/// The task name of a `/tasks/{name}` path.
pub(super) fn path_name(name: Result<Path<String>, PathRejection>) -> Result<TaskName, AppError> {
    let Path(name) = name?;
    Ok(TaskName::parse(name)?)
}

pub(super) fn not_found(name: &TaskName) -> AppError {
    AppError::NotFound(format!("no task named {:?}", name.as_str()))
}

/// Percent-encodes everything but RFC 3986's unreserved characters, for one path segment.
fn path_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_escape_everything_but_unreserved_characters() {
        assert_eq!(path_segment("a-b_c.d~e"), "a-b_c.d~e");
        assert_eq!(path_segment("a/b c%"), "a%2Fb%20c%25");
        assert_eq!(path_segment("é"), "%C3%A9");
    }
}
