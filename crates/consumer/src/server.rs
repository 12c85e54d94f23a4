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
use service_kit::prometheus::{Exposition, Kind};
use taskq::server::Watch;
use taskq::{Limiter, Queue, WorkerStats};

use crate::api::auth::Credential;
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
    /// Its profile's credential, when it has an `auth` block.
    pub credential: Option<Arc<Credential>>,
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
    write_credentials(&mut page, served);
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
    let credentials: serde_json::Map<String, serde_json::Value> = credentials(served)
        .map(|(queue, credential)| {
            let problem = credential.problem();
            (
                queue.to_owned(),
                json!({"ok": problem.is_none(), "problem": problem}),
            )
        })
        .collect();
    // A failing credential is the queue's problem, said here; restarting the consumer would
    // not cure it, so the process still answers 200.
    (
        StatusCode::OK,
        Json(json!({"status": "ok", "redis": redis, "credentials": credentials})),
    )
}

/// Each queue with a credential, by name.
fn credentials(served: &[Served]) -> impl Iterator<Item = (&str, &Credential)> {
    served
        .iter()
        .filter_map(|queue| Some((queue.queue.keys().queue(), &**queue.credential.as_ref()?)))
}

/// `taskq_credentials_ok{queue}`: 1 while a queue's credential works, 0 while it fails.
fn write_credentials(page: &mut Exposition, served: &[Served]) {
    let mut credentials = credentials(served).peekable();
    if credentials.peek().is_none() {
        return;
    }
    let name = "taskq_credentials_ok";
    page.family(
        name,
        Kind::Gauge,
        "Whether the queue's credential (its profile's auth) works: 0 while its calls are held.",
    );
    for (queue, credential) in credentials {
        let ok = if credential.problem().is_none() {
            1.0
        } else {
            0.0
        };
        page.sample(name, &[("queue", queue)], ok);
    }
}

/// Each queue's name and the watch of its Redis.
fn watches(served: &[Served]) -> Vec<(&str, &Watch)> {
    served
        .iter()
        .map(|queue| (queue.queue.keys().queue(), &*queue.redis))
        .collect()
}
