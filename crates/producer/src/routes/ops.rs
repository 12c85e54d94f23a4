//! For operators and their tools: the dashboard, health, Prometheus metrics, the OpenAPI
//! document.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde::Serialize;
use taskq::Queue;
use taskq::metrics::{Exposition, write_queues};

use crate::error::{AppError, ErrorBody};

/// The answer of a healthy `/healthz`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: String,
}

/// Whether Redis answers.
#[utoipa::path(
    get, path = "/healthz", tag = "ops",
    responses(
        (status = 200, description = "Redis answers", body = Health),
        (status = 503, description = "Redis does not answer", body = ErrorBody),
    )
)]
pub async fn health(State(queue): State<Queue>) -> Result<Json<Health>, AppError> {
    queue.ping().await?;
    Ok(Json(Health {
        status: "ok".into(),
    }))
}

/// Prometheus metrics: the queue-wide counters and set sizes, read from Redis at each scrape.
#[utoipa::path(
    get, path = "/metrics", tag = "ops",
    responses(
        (status = 200, description = "Prometheus text format; taskq_redis_up is 0 (and the queue's series are missing) when Redis did not answer", body = String, content_type = "text/plain"),
    )
)]
pub async fn metrics(State(queue): State<Queue>) -> impl IntoResponse {
    let stats = queue.stats().await;
    if let Err(err) = &stats {
        tracing::warn!(error = %err, "metrics: redis unavailable");
    }
    let mut page = Exposition::new();
    write_queues(&mut page, &[(queue.keys().queue(), stats.as_ref().ok())]);
    (
        [(header::CONTENT_TYPE, Exposition::CONTENT_TYPE)],
        page.finish(),
    )
}

/// The dashboard: one HTML file (inline style and script, no build step) embedded in the binary.
/// It reads and acts only through the API above, with the admin token the user enters.
pub async fn dashboard() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'",
            ),
        ],
        include_str!("../ui/index.html"),
    )
}

/// The OpenAPI document of the producer's API.
pub async fn openapi() -> impl IntoResponse {
    Json(crate::openapi::document())
}
