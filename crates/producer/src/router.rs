//! The producer's router: every route of [`crate::routes`] with its guard (which token it needs,
//! [`crate::tokens`]), its body limit, and `/openapi.json`. It sits above the handlers and the
//! OpenAPI document, which both know nothing of it.

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router, middleware};
use taskq::MAX_PAYLOAD_BYTES;

use crate::error::{AppError, ErrorBody};
use crate::openapi;
use crate::routes::{admin, auth, batch, hooks, ops, stream, tasks};
use crate::state::AppState;
use crate::tokens::Guard;

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
