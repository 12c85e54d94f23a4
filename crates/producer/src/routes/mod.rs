//! The producer's routes.
//!
//! | route | answer |
//! |---|---|
//! | `GET /?task-name=NAME` | enqueue unless live or done; 202 + `Location` + `Retry-After` while not done, 200 with the result when done |
//! | `POST /tasks` `{"name", "payload", "delay_ms" \| "run_at_ms"}` | the same, with a JSON payload kept in the record, due now or later |
//! | `POST /tasks/batch` `{"tasks": [...]}` | up to 1,000 enqueues; one answer (or error) per task, in order |
//! | `GET /tasks/{name}` | the task's view; 404 for a name never seen |
//! | `GET /?task-name=NAME&wait=SECS`, `GET /tasks/{name}?wait=SECS` | long-poll: held until the task is final or the time is up |
//! | `GET /tasks/{name}/events` | server-sent events: the view at once and at every change, until final |
//! | `POST /hooks/{queue}/{name}?sig=` | a provider's webhook: the task is polled at once (signed URL, no token) |
//! | `DELETE /tasks/{name}` | cancel: the task is never called again |
//! | `HEAD /?task-name=NAME` | the status a read of the task would answer; never enqueues |
//! | `GET /tasks?state=&cursor=&limit=` | admin: one page of the tasks in a state |
//! | `GET /stats` | admin: counts per set, oldest due age, throughput, counters |
//! | `POST /tasks/{name}/retry`, `POST /dead/retry` | admin: bring back one or every dead task |
//! | `POST /tasks/{name}/callback/retry` | admin: deliver a failed callback again |
//! | `POST /purge?state=` | admin: delete the done, dead or cancelled records |
//! | `GET /metrics` | Prometheus metrics |
//! | `GET /openapi.json` | the OpenAPI document of all of the above |
//! | `GET /ui` | the dashboard (embedded; uses the routes above) |
//! | `GET /queues` | the queues served, the default first |
//! | `GET /healthz` | 200 when Redis answers, 503 when it does not |
//!
//! Every route about tasks takes `?queue=NAME` to pick one of the queues served (`QUEUES`); without
//! it, the first. Which routes need which bearer token: see [`auth`].

pub mod admin;
pub mod auth;
pub mod batch;
pub mod hooks;
pub mod ops;
pub mod served;
pub mod stream;
pub mod tasks;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router, middleware};
use taskq::MAX_PAYLOAD_BYTES;

use crate::error::{AppError, ErrorBody};
use crate::openapi;
use crate::state::AppState;
use auth::Guard;

/// The producer's router.
pub fn app(state: AppState) -> Router {
    let admin = Router::new()
        .route("/tasks", get(admin::list))
        .route("/stats", get(admin::stats))
        .route("/tasks/{name}/retry", post(admin::retry))
        .route("/tasks/{name}/callback/retry", post(admin::retry_callback))
        .route("/dead/retry", post(admin::retry_dead))
        .route("/purge", post(admin::purge))
        .route_layer(middleware::from_fn_with_state(
            (state.tokens.clone(), Guard::Admin),
            auth::require,
        ));
    let client = Router::new()
        .route("/", get(tasks::enqueue).head(tasks::peek))
        .route("/tasks", post(tasks::submit))
        .route(
            "/tasks/batch",
            post(batch::submit_batch).layer(DefaultBodyLimit::max(batch::MAX_BATCH_BODY_BYTES)),
        )
        .route("/tasks/{name}", get(tasks::show))
        .route("/tasks/{name}/events", get(stream::events))
        .route_layer(middleware::from_fn_with_state(
            (state.tokens.clone(), Guard::Client),
            auth::require,
        ));
    let cancel = Router::new()
        .route("/tasks/{name}", delete(tasks::cancel))
        .route_layer(middleware::from_fn_with_state(
            (state.tokens.clone(), Guard::Cancel),
            auth::require,
        ));
    Router::new()
        .merge(client)
        .merge(cancel)
        .route(
            "/hooks/{queue}/{name}",
            post(hooks::hook).layer(DefaultBodyLimit::max(state.hook_max_body_bytes)),
        )
        .route("/queues", get(ops::queues))
        .route("/healthz", get(ops::health))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(openapi::serve))
        .route("/ui", get(ops::dashboard))
        .merge(admin)
        // Room for the largest payload and a name, percent-encoded or escaped.
        .layer(DefaultBodyLimit::max(MAX_PAYLOAD_BYTES + 4096))
        .fallback(|| async { AppError::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|| async {
            (
                StatusCode::METHOD_NOT_ALLOWED,
                Json(ErrorBody {
                    error: "method not allowed".into(),
                }),
            )
        })
        .with_state(state)
}
