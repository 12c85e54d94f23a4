//! `POST /tasks/batch`: up to [`MAX_BATCH`] enqueues in one request, written in as few script
//! calls as the library's [`taskq::Queue::submit_many`] allows. Each task gets its own answer, in
//! order: its view and whether this request created it, or its own error; one bad task fails
//! nobody else. Only what concerns the whole request (not JSON, no tasks, too many, Redis down)
//! fails it whole, and then nothing is written. When the queue fills up part-way, the tasks
//! written are answered and the rest refused each with its error; when it was full from the
//! start, the whole request is refused (503 with `Retry-After`), as a single enqueue is.

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use taskq::{NewTask, TaskName};

use super::auth::Unauthorized;
use super::tasks::{Submit, TaskResponse, callback_url, refused};
use crate::error::{AppError, ErrorBody};
use crate::payload::Payload;
use crate::schedule;
use crate::served::{QueueParam, Target};
use crate::state::AppState;

/// The most tasks one batch carries.
pub const MAX_BATCH: usize = 1000;

/// The largest batch body: a thousand tasks with names and modest payloads (a payload may
/// still be up to 64 KiB; fewer such tasks fit in one batch).
pub const MAX_BATCH_BODY_BYTES: usize = 8 << 20;

/// The body of `POST /tasks/batch`.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct Batch {
    /// 1 to 1,000 tasks, each as the body of `POST /tasks` (`{"name", "payload", "delay_ms" |
    /// "run_at_ms"}`). Any JSON is accepted here: an entry that is not such a task gets its own
    /// `{"error"}` in the answer and fails nobody else.
    #[schema(value_type = Vec<serde_json::Value>, min_items = 1, max_items = 1000)]
    pub tasks: Vec<Box<RawValue>>,
}

/// One task's answer in a batch: the task (with `enqueued`), or why it was refused.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum BatchEntry {
    /// The task as it is now, and whether this request created it.
    Task(Box<TaskResponse>),
    /// Why this task was refused (nothing written for it).
    Refused(ErrorBody),
}

/// The answer to `POST /tasks/batch`: one entry per task, in the request's order.
#[derive(Serialize, utoipa::ToSchema)]
pub struct BatchResponse {
    /// The answers, in order.
    pub tasks: Vec<BatchEntry>,
}

/// Enqueues many tasks at once.
#[utoipa::path(
    post, path = "/tasks/batch", tag = "tasks",
    security((), ("client_token" = []), ("admin_token" = [])),
    params(QueueParam),
    request_body = Batch,
    responses(
        (status = 200, description = "One answer per task, in order: the task's view with enqueued (true when this request created it; a name given twice is created once), or {\"error\"} for a task that was refused", body = BatchResponse),
        (status = 400, description = "No tasks, more than 1,000, or malformed JSON", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 404, description = "No such queue", body = ErrorBody),
        (status = 413, description = "Body over 8 MiB", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 422, description = "JSON of the wrong shape (tasks is not an array)", body = ErrorBody),
        (status = 503, description = "Redis is unavailable, or the queue is full: try again after Retry-After. A batch over about 1 MiB of payload is written in several calls: those before a failure stay written, and sending the whole batch again is safe (names dedup)", body = ErrorBody, headers(
            ("Retry-After" = u64, description = "seconds to wait when the queue is full"),
        )),
    )
)]
pub async fn submit_batch(
    State(state): State<AppState>,
    target: Target,
    body: Result<Json<Batch>, JsonRejection>,
) -> Result<Json<BatchResponse>, AppError> {
    let Json(batch) = body?;
    if batch.tasks.is_empty() || batch.tasks.len() > MAX_BATCH {
        return Err(AppError::BadRequest(format!(
            "a batch holds 1 to {MAX_BATCH} tasks, not {}",
            batch.tasks.len()
        )));
    }
    let (accepted, invalid): (Vec<_>, Vec<_>) = batch
        .tasks
        .iter()
        .map(|raw| new_task(&state, raw))
        .enumerate()
        .partition(|(_, parsed)| parsed.is_ok());
    let tasks: Vec<NewTask> = accepted
        .into_iter()
        .filter_map(|(_, parsed)| parsed.ok())
        .collect();
    let answers = target.queue().submit_many(&tasks).await?;
    let nothing_written = !answers.is_empty() && answers.iter().all(Result::is_err);
    let mut full = None;
    let mut answers = answers.into_iter();
    let mut invalid = invalid.into_iter().peekable();
    let entries = (0..batch.tasks.len())
        .map(|i| match invalid.next_if(|(at, _)| *at == i) {
            Some((_, Err(error))) => BatchEntry::Refused(ErrorBody { error }),
            _ => match answers.next() {
                Some(Ok(enqueued)) => BatchEntry::Task(Box::new(TaskResponse {
                    view: enqueued.view,
                    enqueued: Some(enqueued.created),
                })),
                Some(Err(refusal)) => {
                    let error = refusal.to_string();
                    full = Some(refused(&state, &target, refusal));
                    BatchEntry::Refused(ErrorBody { error })
                }
                None => BatchEntry::Refused(ErrorBody {
                    error: "no answer for this task".into(),
                }),
            },
        })
        .collect();
    // Nothing written because the queue is full: the whole request is refused, as one enqueue is.
    if let (true, Some(full)) = (nothing_written, full) {
        return Err(full);
    }
    Ok(Json(BatchResponse { tasks: entries }))
}

/// One entry of a batch as a task to add, or why not.
fn new_task(state: &AppState, raw: &RawValue) -> Result<NewTask, String> {
    let submit: Submit = serde_json::from_str(raw.get()).map_err(|e| e.to_string())?;
    let name = TaskName::parse(submit.name).map_err(|e| e.to_string())?;
    taskq::check_payload(submit.payload.as_ref().map(Payload::raw)).map_err(|e| e.to_string())?;
    let run_at = schedule::run_at(submit.delay_ms, submit.run_at_ms).map_err(|e| e.to_string())?;
    let callback_url = callback_url(state, submit.callback_url).map_err(|e| e.to_string())?;
    Ok(NewTask {
        name,
        payload: submit.payload.map(Payload::into_raw),
        run_at,
        callback_url,
    })
}
