//! consumer: claims due tasks, calls the third-party API for each, concurrently, and records
//! each answer: "done" stores the result, "processing" the partial data and a later poll, an
//! error a retry with backoff or, at the limit, a dead task.
//!
//! # Layout
//! - [`config`]: settings from flags and environment, and per queue from `QUEUES_FILE`.
//! - [`api`]: the API a queue calls (the original shape, or a profile: submit then poll, any
//!   status mapping, credentials) and what its answers mean.
//! - [`client`]: the HTTPS client (rustls, system roots plus configured authorities).
//! - [`poller`]: the call per task, bounded in time and size ([`taskq::Handler`]).
//! - [`tick`]: the cron tick that wakes the claim loop and sweeps expired leases.
//! - [`callbacks`]: the callbacks of tasks that ended, delivered from each queue's callback
//!   lane.
//! - [`wake`]: the queues' wake channels, which wake the claim loop the moment work is due.
//! - [`limits`]: the provider's limits the queues share, one limiter per limit key.
//! - [`metrics`]: what this process measures of its calls (latency, status codes, in flight).
//! - [`server`]: `/metrics` and `/healthz` on `CONSUMER_ADDR`.
//! - [`queue_workers`]: what runs for one queue (its worker, its callback lane's), built from its
//!   settings.
//! - [`app`]: the consumer built, served and drained ([`run`] in three steps).
//! - [`error`]: why it could not start.
//!
//! The claim loop, leases and shutdown drain are the library's [`taskq::Worker`].

pub mod api;
pub mod app;
pub mod callbacks;
pub mod client;
pub mod config;
pub mod error;
pub mod limits;
pub mod metrics;
pub mod poller;
pub mod queue_workers;
pub mod server;
pub mod tick;
pub mod wake;

use std::future::Future;

use app::Application;
pub use config::Config;
pub use error::StartError;

/// Runs the consumer, serving `/metrics` and `/healthz` on `listener`, until `shutdown`
/// resolves, then drains (see [`taskq::Worker::run`]). The caller binds the listener (`main`
/// binds `CONSUMER_ADDR`), as the producer's does, so that an embedder or a test can bind port 0
/// and learn the port before the consumer runs.
///
/// # Errors
/// [`StartError`] when it cannot start; once running it survives Redis and API failures.
pub async fn run(
    config: Config,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), StartError> {
    let running = Application::build(&config)?.serve(listener).await?;
    shutdown.await;
    running.drain().await;
    Ok(())
}
