//! The consumer's own small HTTP server on `CONSUMER_ADDR`: `/metrics` for Prometheus and
//! `/healthz` for orchestrators. A consumer has no other HTTP surface; this one lets it be
//! watched and restarted like the producer.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use queue_kit::write_queue_stats;
use queue_kit::{health_of, write_server_reports};
use serde_json::json;
use service_kit::Connections;
use service_kit::prometheus::Exposition;
use taskq::server::Watch;
use taskq::{Limiter, Queue, WorkerStats};

use crate::limits::write_limits;
use crate::metrics::{CallMetrics, write_calls};

/// One queue this consumer serves, as the server shows it.
#[derive(Clone)]
pub struct Served {
    /// The queue (for its counters and health).
    pub queue: Queue,
    /// Its third-party calls.
    pub calls: Arc<CallMetrics>,
    /// Its worker's running totals.
    pub worker: Arc<WorkerStats>,
    /// Its Redis' latest report (memory, eviction policy, persistence).
    pub redis: Arc<Watch>,
}

/// What the server shows: the queues served, the limits they share, its own connections.
struct Shown {
    queues: Vec<Served>,
    limiters: Vec<Arc<Limiter>>,
    connections: Arc<Connections>,
}

/// The server's routes.
pub fn app(
    served: Vec<Served>,
    limiters: Vec<Arc<Limiter>>,
    connections: Arc<Connections>,
) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(health))
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                Json(json!({"error": "no such route: /metrics and /healthz only"})),
            )
        })
        .with_state(Arc::new(Shown {
            queues: served,
            limiters,
            connections,
        }))
}

async fn metrics(State(shown): State<Arc<Shown>>) -> impl IntoResponse {
    let served = &shown.queues;
    let queues: Vec<&Queue> = served.iter().map(|served| &served.queue).collect();
    let calls: Vec<_> = served
        .iter()
        .map(|queue| (queue.queue.keys().queue(), &*queue.calls, &*queue.worker))
        .collect();
    let mut page = Exposition::new();
    write_queue_stats(&mut page, &queues).await;
    write_calls(&mut page, &calls);
    write_server_reports(&mut page, &watches(served));
    write_limits(&mut page, &shown.limiters);
    shown.connections.write_metrics(&mut page);
    (
        [(header::CONTENT_TYPE, Exposition::CONTENT_TYPE)],
        page.finish(),
    )
}

/// 200 when Redis answers for every queue served, with what each queue's Redis said of itself at
/// the last check (policy, persistence, memory, problems); 503 naming the first that does not
/// answer.
async fn health(State(shown): State<Arc<Shown>>) -> impl IntoResponse {
    let served = &shown.queues;
    for queue in served.iter() {
        if let Err(err) = queue.queue.ping().await {
            tracing::warn!(queue = queue.queue.keys().queue(), error = %err, "healthz: redis unavailable");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(
                    json!({"error": format!("redis does not answer for queue {}", queue.queue.keys().queue())}),
                ),
            );
        }
    }
    let redis = health_of(&watches(served));
    (
        StatusCode::OK,
        Json(json!({"status": "ok", "redis": redis})),
    )
}

/// Each queue's name and the watch of its Redis.
fn watches(served: &[Served]) -> Vec<(&str, &Watch)> {
    served
        .iter()
        .map(|queue| (queue.queue.keys().queue(), &*queue.redis))
        .collect()
}
