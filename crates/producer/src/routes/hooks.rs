//! `POST /hooks/{queue}/{name}?sig=...`: a provider's webhook says a task's job moved.
//!
//! The URL is the one the consumer wrote into the task's submit (`{{webhook_url}}`, see
//! [`webhooks::hook`]); its `sig` is the only credential, since a provider sends no token of
//! ours, and it covers the run of the task the URL was written for (`run`, its submit token).
//! A good `sig` makes that run due at once ([`taskq::Queue::hurry`]) and wakes an idle consumer.
//! A JSON body (up to `HOOK_MAX_BODY_BYTES`) is kept with the task for that consumer's call: a queue whose
//! profile reads webhooks (`hook`) takes its answer from it, any other polls the provider for its
//! authoritative answer; a body that is not JSON is read and dropped. A bad or missing `sig` is
//! 401 and changes nothing; an
//! unknown task is 404; a finished run is 200 and changes nothing, so a provider's retries and
//! replays are harmless; another run of the name (the hook's was purged or retried, or the new
//! one is not yet submitted) is 410 and changes nothing, so an old URL never moves a new task
//! ahead of its time.

use std::sync::atomic::Ordering;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use serde::Serialize;
use taskq::{Hurry, TaskName};

use crate::error::{AppError, ErrorBody};
use crate::query;
use crate::state::AppState;

/// The largest webhook body read unless `HOOK_MAX_BODY_BYTES` says otherwise.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// What a webhook did.
#[derive(Serialize, utoipa::ToSchema)]
pub struct HookAnswer {
    /// The task.
    pub task: String,
    /// Whether the task was made due at once (false: it was already finished).
    pub hurried: bool,
}

/// A provider's webhook for one task.
#[utoipa::path(
    post, path = "/hooks/{queue}/{name}", tag = "hooks",
    params(
        ("queue" = String, Path, description = "the task's queue"),
        ("name" = String, Path, description = "the task's name, percent-encoded as one path segment"),
        ("run" = String, Query, description = "the run of the task the URL was written for (its submit token), as the consumer wrote it"),
        ("sig" = String, Query, description = "the URL's signature, as the consumer wrote it"),
    ),
    request_body(content = String, description = "anything the provider sends (at most HOOK_MAX_BODY_BYTES, 1 MiB by default); a JSON body is kept for the task's next call (a profile with hook reads it as the provider's answer), any other is dropped", content_type = "*/*"),
    responses(
        (status = 202, description = "The task is due at once: a consumer polls the provider now", body = HookAnswer),
        (status = 200, description = "The task is already done, dead or cancelled: nothing changed", body = HookAnswer),
        (status = 401, description = "The sig is missing or wrong: nothing changed", body = ErrorBody),
        (status = 404, description = "No such task, no such queue, or hooks are off (no HOOK_SECRET)", body = ErrorBody),
        (status = 410, description = "The task is another run of the name than the URL's (that run was purged or retried, or this one is not yet submitted): nothing changed", body = ErrorBody),
        (status = 413, description = "Body over HOOK_MAX_BODY_BYTES (1 MiB by default)", body = ErrorBody),
        (status = 503, description = "Redis is unavailable; the provider's retry is welcome", body = ErrorBody),
    )
)]
pub async fn hook(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<HookAnswer>), AppError> {
    // Read up to HOOK_MAX_BODY_BYTES; a larger body is a JSON 413 like every other error.
    let body = body.map_err(|refused| AppError::Rejected(refused.status(), refused.body_text()))?;
    let Path((queue, name)) = path?;
    let Some(secret) = &state.hook_secret else {
        return Err(AppError::NotFound(
            "hooks are off here (no HOOK_SECRET)".into(),
        ));
    };
    let served = state
        .queues
        .get(&queue)
        .ok_or_else(|| AppError::NotFound(format!("no queue named {queue:?} is served here")))?;
    let run = query::hook_param(query.as_deref(), "run")?.unwrap_or_default();
    let signed = query::hook_param(query.as_deref(), "sig")?
        .is_some_and(|sig| secret.verify(&queue, &name, &run, &sig));
    if !signed {
        state.hooks.refused.fetch_add(1, Ordering::Relaxed);
        return Err(AppError::BadSignature);
    }
    let task = TaskName::parse(name)?;
    let kept = json_text(&body);
    let (status, hurried, count) = match served.queue.hurry(&task, &run, kept).await? {
        Hurry::Hurried => (StatusCode::ACCEPTED, true, &state.hooks.hurried),
        Hurry::Finished => (StatusCode::OK, false, &state.hooks.finished),
        Hurry::NotFound => {
            state.hooks.unknown.fetch_add(1, Ordering::Relaxed);
            return Err(super::tasks::not_found(&task));
        }
        Hurry::Replaced => {
            state.hooks.replaced.fetch_add(1, Ordering::Relaxed);
            return Err(AppError::Rejected(
                StatusCode::GONE,
                format!(
                    "this hook URL was written for an earlier run of task {:?} (ended, then \
                     purged or retried): nothing changed",
                    task.as_str()
                ),
            ));
        }
    };
    count.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(queue, task = %task, hurried, "provider webhook");
    Ok((
        status,
        Json(HookAnswer {
            task: task.as_str().to_owned(),
            hurried,
        }),
    ))
}

/// The body as JSON text, when it is JSON (what a profile that reads webhooks can read).
fn json_text(body: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(body).ok()?;
    serde_json::from_str::<serde::de::IgnoredAny>(text)
        .is_ok()
        .then_some(text)
}
