//! producer: the HTTP front door. `GET /?task-name=NAME` (or `POST /tasks` with a payload)
//! enqueues the task (one live task per name) and answers at once with what is known: the stored
//! result when done, else the latest partial data, and the task's state. Nobody waits for the
//! third-party API. Operators get an admin API, Prometheus metrics and an OpenAPI document.
//!
//! # Layout
//! - [`config`]: settings from flags and environment.
//! - [`state`]: what every handler may use: the queues served ([`served`], which also picks a
//!   request's queue), the tokens ([`tokens`]: who may call what), the timings.
//! - [`query`]: the task name (and `delay_ms`) of `GET /?task-name=`, read strictly.
//! - [`schedule`]: a new task's `delay_ms` or `run_at_ms`, checked.
//! - [`payload`]: a task's payload, checked to be one the consumer can read.
//! - [`admission`]: enqueues refused before Redis is full (memory mark, `MAX_QUEUED`).
//! - [`hook_counts`]: the provider webhooks received, for `/metrics`.
//! - [`waiters`]: requests waiting on tasks (long-polls, event streams), woken by events.
//! - [`routes`]: the handlers: the client's side ([`routes::tasks`]), the operator's
//!   ([`routes::admin`]), health and metrics ([`routes::ops`]), the token check
//!   ([`routes::auth`]).
//! - [`openapi`]: the OpenAPI document, generated from the handlers.
//! - [`router`]: the router ([`router::app`]): the handlers with their guards and limits, and
//!   the document.
//! - [`error`]: [`error::AppError`], every failure as a JSON `{"error": ...}` answer.
//! - [`throughput`]: the last minute's rate, sampled from the queue's counters.
//! - [`parse_errors`]: JSON bodies for the errors hyper answers by itself (414, 431, 400).

pub mod admission;
pub mod config;
pub mod error;
pub mod hook_counts;
pub mod openapi;
pub mod parse_errors;
pub mod payload;
pub mod query;
pub mod router;
pub mod routes;
pub mod schedule;
pub mod served;
pub mod state;
pub mod throughput;
pub mod tokens;
pub mod waiters;

use std::future::Future;
use std::sync::Arc;

pub use config::Config;
pub use router::app;
pub use state::AppState;

/// Serves the producer on `listener` until `shutdown` resolves; requests in progress finish
/// (long-polls and event streams answer at once then). Connections are held to
/// `state.connections`' limits: header-read and keep-alive timeouts, and the cap. Samples every queue's throughput, watches
/// its Redis (memory, policy, persistence) and listens to its events meanwhile.
///
/// # Errors
/// When the server fails.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut samplers = tokio::task::JoinSet::new();
    for served in state.queues.iter() {
        let (throughput, queue) = (Arc::clone(&served.throughput), served.queue.clone());
        samplers.spawn(async move { throughput.sample(queue).await });
        let (watch, queue) = (Arc::clone(&served.admission.watch), served.queue.clone());
        let every = state.redis_check;
        samplers.spawn(async move { watch.run(queue, every).await });
    }
    let queues = state.queues.iter().map(|served| served.queue.clone());
    samplers.spawn(Arc::clone(&state.waiters).listen(queues.collect()));
    let waiters = Arc::clone(&state.waiters);
    let shutdown = async move {
        shutdown.await;
        waiters.close();
    };
    // One router shared by every connection (given a `Router`, `axum::serve` rebuilt its route
    // table for each one accepted: about 14 KB per connection, 137 MiB for 10,000 idle
    // long-polls); connections held to the timeouts and the cap (`service_kit::http_server`).
    let connections = Arc::clone(&state.connections);
    let served = service_kit::serve(
        parse_errors::Listener(listener),
        app(state),
        connections,
        shutdown,
    )
    .await;
    samplers.abort_all();
    served
}
