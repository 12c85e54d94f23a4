//! For operators and their tools: the dashboard, health, Prometheus metrics, the OpenAPI
//! document.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use queue_kit::write_queue_stats;
use queue_kit::{health_of, write_server_reports};
use serde::Serialize;
use service_kit::prometheus::Exposition;
use taskq::Queue;
use taskq::server::Watch;

use crate::admission;
use crate::error::{AppError, ErrorBody};
use crate::state::AppState;

/// The answer of a healthy `/healthz`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: String,
    /// Per queue, what its Redis said of itself at the last check: `maxmemory_policy`,
    /// `eviction_safe`, `persistence` (`null`: unknown), memory, and `problems` (an evicting
    /// policy, persistence off), each said in words with its fix. Empty before the first check.
    #[schema(value_type = Object)]
    pub redis: serde_json::Map<String, serde_json::Value>,
}

/// Whether Redis answers.
#[utoipa::path(
    get, path = "/healthz", tag = "ops",
    responses(
        (status = 200, description = "Redis answers", body = Health),
        (status = 503, description = "Redis does not answer", body = ErrorBody),
    )
)]
pub async fn health(State(state): State<AppState>) -> Result<Json<Health>, AppError> {
    // Every queue shares one connection: one ping answers for all.
    state.queues.default().queue.ping().await?;
    let redis = health_of(&watches(&state));
    Ok(Json(Health {
        status: "ok".into(),
        redis,
    }))
}

/// The answer of `GET /queues`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct QueueList {
    /// The queues this producer serves (`?queue=` takes one of them); the first is the default.
    pub queues: Vec<String>,
}

/// The queues served.
#[utoipa::path(
    get, path = "/queues", tag = "tasks",
    responses((status = 200, description = "The queues served, the default first", body = QueueList))
)]
pub async fn queues(State(state): State<AppState>) -> Json<QueueList> {
    Json(QueueList {
        queues: state.queues.iter().map(|s| s.name().to_owned()).collect(),
    })
}

/// Prometheus metrics: every served queue's counters and set sizes, read from Redis at each
/// scrape.
#[utoipa::path(
    get, path = "/metrics", tag = "ops",
    responses(
        (status = 200, description = "Prometheus text format; taskq_redis_up is 0 (and the queues' series are missing) when Redis did not answer", body = String, content_type = "text/plain"),
    )
)]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let queues: Vec<&Queue> = state.queues.iter().map(|served| &served.queue).collect();
    let mut page = Exposition::new();
    write_queue_stats(&mut page, &queues).await;
    write_server_reports(&mut page, &watches(&state));
    let admissions: Vec<_> = state
        .queues
        .iter()
        .map(|served| (served.name(), &*served.admission))
        .collect();
    admission::write_metrics(&mut page, &admissions);
    state.waiters.write_metrics(&mut page);
    state.hooks.write_metrics(&mut page);
    state.connections.write_metrics(&mut page);
    (
        [(header::CONTENT_TYPE, Exposition::CONTENT_TYPE)],
        page.finish(),
    )
}

/// Each served queue's name and the watch of its Redis.
fn watches(state: &AppState) -> Vec<(&str, &Watch)> {
    state
        .queues
        .iter()
        .map(|served| (served.name(), &*served.admission.watch))
        .collect()
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
