//! The operator's side: list tasks by state, statistics, retry dead tasks (and failed callbacks),
//! purge finished records. Every route here requires `Authorization: Bearer <ADMIN_TOKEN>` when
//! the token is set (see [`crate::tokens`]).

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query};
use serde::{Deserialize, Serialize};
use taskq::State as TaskState;
use taskq::{CallbackState, FinalState, MAX_PAGE_SIZE, Page, QueueStats};

use super::auth::Unauthorized;
use super::tasks::{TaskResponse, not_found, path_name};
use crate::admission::AdmissionView;
use crate::error::{AppError, ErrorBody};
use crate::served::{QueueParam, Target};
use crate::throughput::Rate;

/// The query of `GET /tasks`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// The state to list.
    pub state: TaskState,
    /// Where to resume: a `next_cursor` of the previous page of the same state.
    pub cursor: Option<String>,
    /// Tasks per page (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<usize>,
}

/// Lists the tasks in one state, oldest first, a page at a time.
#[utoipa::path(
    get, path = "/tasks", tag = "admin",
    params(ListQuery, QueueParam),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "One page; a short page may still have a next_cursor", body = Page),
        (status = 400, description = "Unknown state, bad cursor or limit", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 404, description = "No such queue", body = ErrorBody),
        (status = 503, description = "Redis is unavailable", body = ErrorBody),
    )
)]
pub async fn list(
    target: Target,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Page>, AppError> {
    let Query(query) = query?;
    let limit = query.limit.unwrap_or(50);
    if !(1..=MAX_PAGE_SIZE).contains(&limit) {
        return Err(AppError::BadRequest(format!(
            "limit must be 1 to {MAX_PAGE_SIZE}"
        )));
    }
    let page = target
        .queue()
        .list(query.state, query.cursor.as_deref(), limit)
        .await?;
    Ok(Json(page))
}

/// The answer of `GET /stats`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Stats {
    /// The queue's name.
    pub queue: String,
    /// Counts per set, oldest due age and counters, read at one moment.
    #[serde(flatten)]
    pub stats: QueueStats,
    /// Tasks enqueued and done over the last minute; `null` in the producer's first second.
    pub throughput: Option<Rate>,
    /// Redis' memory against the high-water mark, and the enqueues refused.
    pub admission: AdmissionView,
}

/// The queue's statistics.
#[utoipa::path(
    get, path = "/stats", tag = "admin",
    params(QueueParam),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "Statistics", body = Stats),
        (status = 401, response = Unauthorized),
        (status = 404, description = "No such queue", body = ErrorBody),
        (status = 503, description = "Redis is unavailable", body = ErrorBody),
    )
)]
pub async fn stats(target: Target) -> Result<Json<Stats>, AppError> {
    let stats = target.queue().stats().await?;
    Ok(Json(Stats {
        queue: target.served.name().to_owned(),
        stats,
        throughput: target.served.throughput.rate(),
        admission: target.served.admission.view(),
    }))
}

/// Brings a dead task back: due at once with a fresh attempt budget.
#[utoipa::path(
    post, path = "/tasks/{name}/retry", tag = "admin",
    params(("name" = String, Path, description = "the task's name, percent-encoded as one path segment"), QueueParam),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "Requeued", body = TaskResponse),
        (status = 400, description = "Invalid name", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 404, description = "No task of that name, or no such queue", body = ErrorBody),
        (status = 409, description = "The task is not dead", body = ErrorBody),
        (status = 503, description = "Redis is unavailable", body = ErrorBody),
    )
)]
pub async fn retry(
    target: Target,
    name: Result<Path<String>, PathRejection>,
) -> Result<Json<TaskResponse>, AppError> {
    let name = path_name(name)?;
    let queue = target.queue();
    let revived = queue.retry_dead(&name).await?;
    let view = queue.get(&name).await?.ok_or_else(|| not_found(&name))?;
    if !revived {
        return Err(AppError::Conflict(format!(
            "task {:?} is {}, not dead",
            name.as_str(),
            view.state
        )));
    }
    tracing::info!(task = %name, "retried by an operator");
    Ok(Json(TaskResponse {
        view,
        enqueued: None,
    }))
}

/// Delivers a task's failed callback again: its delivery due at once with a fresh attempt
/// budget (`CALLBACK_MAX_ATTEMPTS`), for after a receiver that was down or refusing is fixed.
#[utoipa::path(
    post, path = "/tasks/{name}/callback/retry", tag = "admin",
    params(("name" = String, Path, description = "the task's name, percent-encoded as one path segment"), QueueParam),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The callback is pending again: the task's view", body = TaskResponse),
        (status = 400, description = "Invalid name", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 404, description = "No task of that name, or no such queue", body = ErrorBody),
        (status = 409, description = "The task has no callback, or its callback has not failed", body = ErrorBody),
        (status = 503, description = "Redis is unavailable", body = ErrorBody),
    )
)]
pub async fn retry_callback(
    target: Target,
    name: Result<Path<String>, PathRejection>,
) -> Result<Json<TaskResponse>, AppError> {
    let name = path_name(name)?;
    let queue = target.queue();
    let view = queue.get(&name).await?.ok_or_else(|| not_found(&name))?;
    let failed = view
        .callback
        .as_ref()
        .is_some_and(|callback| callback.state == CallbackState::Failed);
    // The lane's script revives only a delivery that is dead: one that changed meanwhile stays.
    if !failed || !queue.callbacks().retry_dead(&name).await? {
        let callback = view.callback.map_or("no callback".to_owned(), |callback| {
            format!("a callback that is {:?}", callback.state).to_lowercase()
        });
        return Err(AppError::Conflict(format!(
            "task {:?} has {callback}, not a failed one",
            name.as_str()
        )));
    }
    let view = queue.get(&name).await?.ok_or_else(|| not_found(&name))?;
    tracing::info!(task = %name, "callback retried by an operator");
    Ok(Json(TaskResponse {
        view,
        enqueued: None,
    }))
}

/// How many tasks an admin action changed.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Changed {
    /// Tasks requeued (retry) or records deleted (purge).
    pub count: u64,
}

/// Brings every dead task back.
#[utoipa::path(
    post, path = "/dead/retry", tag = "admin",
    params(QueueParam),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "How many dead tasks were requeued", body = Changed),
        (status = 401, response = Unauthorized),
        (status = 404, description = "No such queue", body = ErrorBody),
        (status = 503, description = "Redis is unavailable (the batches before stay applied)", body = ErrorBody),
    )
)]
pub async fn retry_dead(target: Target) -> Result<Json<Changed>, AppError> {
    let count = target.queue().retry_all_dead().await?;
    tracing::info!(count, "dead tasks retried by an operator");
    Ok(Json(Changed { count }))
}

/// The query of `POST /purge`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PurgeQuery {
    /// The finished state whose records go.
    pub state: FinalState,
}

/// Deletes the records of every done, dead or cancelled task; their names may then be enqueued
/// anew.
#[utoipa::path(
    post, path = "/purge", tag = "admin",
    params(PurgeQuery, QueueParam),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "How many records were deleted", body = Changed),
        (status = 400, description = "Not a finished state", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 404, description = "No such queue", body = ErrorBody),
        (status = 503, description = "Redis is unavailable (the batches before stay applied)", body = ErrorBody),
    )
)]
pub async fn purge(
    target: Target,
    query: Result<Query<PurgeQuery>, QueryRejection>,
) -> Result<Json<Changed>, AppError> {
    let Query(PurgeQuery { state }) = query?;
    let count = target.queue().purge(state).await?;
    tracing::info!(count, ?state, "records purged by an operator");
    Ok(Json(Changed { count }))
}
