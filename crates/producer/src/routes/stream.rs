//! `GET /tasks/{name}/events`: a task's life as server-sent events.
//!
//! The stream sends the task's view at once, then again at every change of its state or of its
//! partial data, woken by the task's events (see [`crate::waiters`]), and ends after a final state
//! (done, dead, cancelled). Each event is the whole view (`data`), named by the state (`event`),
//! with an id made of the record's `updated_at_ms` and its state. A client that reconnects with
//! `Last-Event-ID` is sent nothing it has already seen: the view only once it has changed since
//! that id; one that already saw the final view gets 204, which tells an `EventSource` to stop
//! reconnecting. Views are snapshots, so a client never needs the changes in between: two changes
//! within one wake-up show as the later one.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use taskq::{TaskName, TaskView};

use super::auth::Unauthorized;
use super::tasks::{path_name, view};
use crate::error::{AppError, ErrorBody};
use crate::served::{QueueParam, Target};
use crate::state::AppState;
use crate::waiters::{Interest, Watch};

/// A comment sent on an idle stream this often, so that proxies keep it open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// One event of the stream (the shape the OpenAPI document gives each event).
#[derive(utoipa::ToSchema)]
pub struct StreamEvent {
    /// The view's `updated_at_ms-state`, to send back as `Last-Event-ID`; none on `gone`.
    id: Option<String>,
    /// The task's state (queued, running, processing, done, dead, cancelled), or `gone` when the
    /// task was purged or expired.
    #[schema(value_type = String)]
    event: &'static str,
    /// The task's view (a TaskResponse) as JSON; on `gone`, why.
    data: String,
}

impl From<StreamEvent> for Event {
    fn from(event: StreamEvent) -> Self {
        let sse = Event::default().event(event.event).data(event.data);
        match event.id {
            Some(id) => sse.id(id),
            None => sse,
        }
    }
}

/// Streams a task's views as server-sent events until it is final.
#[utoipa::path(
    get, path = "/tasks/{name}/events", tag = "tasks",
    security((), ("client_token" = []), ("admin_token" = [])),
    params(
        ("name" = String, Path, description = "the task's name, percent-encoded as one path segment"),
        ("Last-Event-ID" = Option<String>, Header, description = "the id of the last event received: resume without repeating it"),
        QueueParam,
    ),
    responses(
        (status = 200, description = "text/event-stream: one event per state or partial data, each the task's view as JSON (event: the state; id: updated_at_ms-state), closed after done, dead or cancelled", content_type = "text/event-stream", body = StreamEvent),
        (status = 204, description = "Last-Event-ID names the task's final view: nothing more will come"),
        (status = 400, description = "Invalid name", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 404, description = "No task of that name, or no such queue", body = ErrorBody),
        (status = 503, description = "Redis is unavailable", body = ErrorBody),
    )
)]
pub async fn events(
    State(state): State<AppState>,
    target: Target,
    name: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let name = path_name(name)?;
    let seen = headers
        .get("last-event-id")
        .and_then(|id| id.to_str().ok())
        .and_then(EventId::parse);
    let watch = state
        .waiters
        .watch(target.served.name(), &name, Interest::Every);
    // The first read answers 404 before the stream starts.
    let first = view(&target, &name).await?;
    if first.state.is_final() && !EventId::of(&first).is_news_after(seen.as_ref()) {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let stream = Streamer {
        target,
        name,
        watch,
        seen,
        next: Some(first),
        ended: false,
    };
    Ok(sse(futures_util::stream::unfold(stream, Streamer::next_event)).into_response())
}

fn sse(
    events: impl Stream<Item = Result<Event, Infallible>> + Send + 'static,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
}

/// The id of an event: the record's `updated_at_ms` and its state.
#[derive(Debug, Clone, PartialEq, Eq)]
struct EventId {
    updated_at_ms: u64,
    state: String,
}

impl EventId {
    fn of(view: &TaskView) -> Self {
        Self {
            updated_at_ms: view.updated_at_ms,
            state: view.state.as_str().to_owned(),
        }
    }

    fn parse(text: &str) -> Option<Self> {
        let (ms, state) = text.split_once('-')?;
        Some(Self {
            updated_at_ms: ms.parse().ok()?,
            state: state.to_owned(),
        })
    }

    fn render(&self) -> String {
        format!("{}-{}", self.updated_at_ms, self.state)
    }

    /// Whether a view with this id is news to a client that has seen `seen`.
    fn is_news_after(&self, seen: Option<&Self>) -> bool {
        seen.is_none_or(|seen| {
            self.updated_at_ms > seen.updated_at_ms
                || (self.updated_at_ms == seen.updated_at_ms && self.state != seen.state)
        })
    }
}

struct Streamer {
    target: Target,
    name: TaskName,
    watch: Watch,
    /// The last event sent (or the client's `Last-Event-ID`).
    seen: Option<EventId>,
    /// A view read and not yet considered.
    next: Option<TaskView>,
    /// A final view was sent, or the task is gone: the stream ends.
    ended: bool,
}

impl Streamer {
    async fn next_event(mut self) -> Option<(Result<Event, Infallible>, Self)> {
        if self.ended {
            return None;
        }
        loop {
            let view = match self.next.take() {
                Some(view) => view,
                None => {
                    self.watch.changed().await;
                    match view(&self.target, &self.name).await {
                        Ok(view) => view,
                        // Gone (purged, expired): the stream says so and ends.
                        Err(AppError::NotFound(message)) => {
                            self.ended = true;
                            let gone = StreamEvent {
                                id: None,
                                event: "gone",
                                data: message,
                            };
                            return Some((Ok(gone.into()), self));
                        }
                        // Redis failing: the client reconnects with its Last-Event-ID.
                        Err(_) => return None,
                    }
                }
            };
            let id = EventId::of(&view);
            let is_final = view.state.is_final();
            if id.is_news_after(self.seen.as_ref()) {
                let event = match serde_json::to_string(&view) {
                    Ok(data) => StreamEvent {
                        id: Some(id.render()),
                        event: view.state.as_str(),
                        data,
                    }
                    .into(),
                    Err(_) => Event::default().comment("unserializable view"),
                };
                self.seen = Some(id);
                self.ended = is_final || self.watch.closing();
                return Some((Ok(event), self));
            }
            if is_final || self.watch.closing() {
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_is_news_only_after_what_the_client_saw() {
        let id = |ms, state: &str| EventId {
            updated_at_ms: ms,
            state: state.into(),
        };
        assert!(id(5, "running").is_news_after(None));
        assert!(id(6, "running").is_news_after(Some(&id(5, "running"))));
        assert!(id(5, "done").is_news_after(Some(&id(5, "running"))));
        assert!(!id(5, "running").is_news_after(Some(&id(5, "running"))));
        assert!(!id(4, "done").is_news_after(Some(&id(5, "running"))));
        assert_eq!(EventId::parse("17-processing"), Some(id(17, "processing")));
        assert_eq!(EventId::parse(&id(3, "done").render()), Some(id(3, "done")));
        assert_eq!(EventId::parse("x-done"), None);
        assert_eq!(EventId::parse("12"), None);
    }
}
