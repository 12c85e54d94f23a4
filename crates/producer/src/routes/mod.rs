//! The producer's routes.
//!
//! | route | answer |
//! |---|---|
//! | `GET /?task-name=NAME` | enqueue unless live or done; 202 + `Location` while not done, 200 with the result when done |
//! | `GET /tasks/{name}` | the task's view; 404 for a name never seen |
//! | `GET /healthz` | 200 when Redis answers, 503 when it does not |

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::json;
use taskq::{Queue, State as TaskState, TaskName, TaskView};

use crate::error::AppError;

/// The producer's router.
pub fn app(queue: Queue) -> Router {
    Router::new()
        .route("/", get(enqueue))
        .route("/tasks/{name}", get(show))
        .route("/healthz", get(health))
        .fallback(|| async { AppError::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|| async {
            (
                StatusCode::METHOD_NOT_ALLOWED,
                Json(json!({"error": "method not allowed"})),
            )
        })
        .with_state(queue)
}

/// A task's view as answered to clients.
#[derive(Serialize)]
struct Answer<'a> {
    #[serde(flatten)]
    view: &'a TaskView,
    /// Whether this request created the task (only on enqueue).
    #[serde(skip_serializing_if = "Option::is_none")]
    enqueued: Option<bool>,
}

async fn enqueue(
    State(queue): State<Queue>,
    RawQuery(query): RawQuery,
) -> Result<Response, AppError> {
    let name = TaskName::from_query(query.as_deref())?;
    let enqueued = queue.enqueue(&name).await?;
    if enqueued.created {
        tracing::debug!(task = %name, "enqueued");
    }
    let answer = Answer {
        view: &enqueued.view,
        enqueued: Some(enqueued.created),
    };
    if enqueued.view.state == TaskState::Done {
        return Ok(Json(answer).into_response());
    }
    let location = HeaderValue::from_str(&format!("/tasks/{}", path_segment(name.as_str())))
        .map_err(|_| AppError::BadRequest("task name cannot be used in a URL".into()))?;
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(answer),
    )
        .into_response())
}

async fn show(
    State(queue): State<Queue>,
    name: Result<Path<String>, PathRejection>,
) -> Result<Response, AppError> {
    let Path(name) = name.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let name = TaskName::parse(name)?;
    match queue.get(&name).await? {
        Some(view) => Ok(Json(Answer {
            view: &view,
            enqueued: None,
        })
        .into_response()),
        None => Err(AppError::NotFound(format!(
            "no task named {:?}",
            name.as_str()
        ))),
    }
}

async fn health(State(queue): State<Queue>) -> Result<Json<serde_json::Value>, AppError> {
    queue.ping().await?;
    Ok(Json(json!({"status": "ok"})))
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
