//! producer: the HTTP front door. `GET /?task-name=NAME` enqueues the task (one live task per
//! name) and answers at once with what is known: the stored result when done, else the latest
//! partial data, and the task's state. Nobody waits for the third-party API.
//!
//! # Layout
//! - [`config`]: settings from flags and environment.
//! - [`routes`]: the handlers and the router ([`routes::app`]).
//! - [`error`]: [`error::AppError`], every failure as a JSON `{"error": ...}` answer.

pub mod config;
pub mod error;
pub mod routes;

use std::future::Future;

pub use config::Config;
pub use routes::app;
use taskq::Queue;

/// Serves the producer on `listener` until `shutdown` resolves; requests in progress finish.
///
/// # Errors
/// When the server fails.
pub async fn serve(
    listener: tokio::net::TcpListener,
    queue: Queue,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app(queue))
        .with_graceful_shutdown(shutdown)
        .await
}
