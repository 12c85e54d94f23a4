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
//!
//! The claim loop, leases and shutdown drain are the library's [`taskq::Worker`].

pub mod api;
pub mod callbacks;
pub mod client;
pub mod config;
pub mod limits;
pub mod metrics;
pub mod poller;
pub mod server;
pub mod tick;
pub mod wake;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use callbacks::Courier;
pub use config::Config;
use poller::Poller;
use server::Served;
use taskq::Worker;
use taskq::server::Watch;

/// Why the consumer could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The queue could not be opened.
    #[error("opening the queue: {0}")]
    Queue(#[from] taskq::Error),
    /// The per-queue settings file could not be used.
    #[error(transparent)]
    QueuesFile(#[from] config::QueuesFileError),
    /// The shared limits could not be set up.
    #[error(transparent)]
    Limits(#[from] limits::LimitsError),
    /// The HTTP client could not be built.
    #[error("queue {queue}: {source}")]
    Client {
        /// The queue whose client it was.
        queue: String,
        /// Why.
        source: client::ClientError,
    },
    /// A profile gives providers hook URLs (`{{webhook_url}}`) and the settings to write them
    /// are missing or wrong.
    #[error("queue {queue}: {source}")]
    Hooks {
        /// The queue whose profile it is.
        queue: String,
        /// Why.
        source: webhooks::HookSettingsError,
    },
    /// The connection cap of `/metrics` does not fit the open-file limit.
    #[error(transparent)]
    Connections(#[from] service_kit::connections::LimitsError),
    /// The callback deliverer could not be built.
    #[error("callbacks: {0}")]
    Callbacks(#[from] webhooks::BuildError),
    /// The cron tick could not be scheduled.
    #[error("scheduling the tick {schedule:?}: {source}")]
    Tick {
        /// The schedule given.
        schedule: String,
        /// What the scheduler said.
        source: tokio_cron_scheduler::JobSchedulerError,
    },
}

/// The default cap of connections to `/metrics` and `/healthz`: scrapers and health checks need
/// a handful, and the process' other open files go to its calls to the APIs.
pub const METRICS_CONNECTIONS: u64 = 1024;

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
    let mut workers = Vec::new();
    let mut couriers = Vec::new();
    let mut ticked = Vec::new();
    let mut served = Vec::new();
    let redis_check = Duration::from_millis(config.redis.redis_check_ms);
    let mut limiters = limits::Limiters::default();
    let deliverer = webhooks::Deliverer::new(&config.callbacks)?;
    let connections = Arc::new(service_kit::Connections::new(
        config.connections.limits(METRICS_CONNECTIONS)?,
    ));
    for mut settings in config.queues()? {
        let queue = settings.open(&config)?;
        if let Some(shared) = &settings.limit {
            let connect = || {
                taskq::connect::connect(&config.redis.redis_url, &config.redis.connect_options()?)
            };
            let lease = settings.policy.lease;
            settings.worker.limiter =
                Some(limiters.for_queue(&settings.name, shared, connect, lease)?);
        }
        let calls = Arc::default();
        let http = client::build(&client::ClientSettings {
            timeout: settings.api_timeout,
            connections: settings.worker.concurrency,
            https: settings.api.is_https(),
            ca_files: config
                .api_ca_file
                .as_deref()
                .into_iter()
                .chain(settings.api.ca_file())
                .collect(),
        })
        .map_err(|source| StartError::Client {
            queue: settings.name.clone(),
            source,
        })?;
        let hooks = if settings.api.uses_webhook_url() {
            Some(config.hooks.urls().map_err(|source| StartError::Hooks {
                queue: settings.name.clone(),
                source,
            })?)
        } else {
            None
        };
        let poller = Poller::new(
            http,
            settings.api,
            &settings.name,
            config.api_max_body_bytes,
            Duration::from_secs(config.retry_after_max_secs),
            Arc::clone(&calls),
            hooks,
        );
        let lane = queue.callbacks().with_worker_policy(callbacks::lane_policy(
            &settings.policy,
            config.callbacks.callback_max_attempts,
        ));
        let courier = Courier::new(queue.clone(), deliverer.clone());
        let deliveries = Worker::new(
            lane.clone(),
            courier,
            callbacks::lane_worker(&settings.worker),
        );
        ticked.push((lane, deliveries.wake_handle()));
        couriers.push(deliveries);
        let worker = Worker::new(queue.clone(), poller, settings.worker);
        ticked.push((queue.clone(), worker.wake_handle()));
        served.push(Served {
            queue,
            calls,
            worker: worker.stats(),
            redis: Arc::new(Watch::default()),
        });
        workers.push(worker);
    }
    let waker = wake::spawn(ticked.clone());
    let mut scheduler =
        tick::start(&config.tick, ticked)
            .await
            .map_err(|source| StartError::Tick {
                schedule: config.tick.clone(),
                source,
            })?;
    // Every worker drains on the one shutdown signal; the server stays up until they are done.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut watching = tokio::task::JoinSet::new();
    for queue in &served {
        let (watch, queue) = (Arc::clone(&queue.redis), queue.queue.clone());
        watching.spawn(async move { watch.run(queue, redis_check).await });
    }
    let (server_stop, server_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(service_kit::serve(
        listener,
        server::app(served, limiters.all(), Arc::clone(&connections)),
        connections,
        async {
            let _ = server_stopped.await;
        },
    ));
    let mut running = tokio::task::JoinSet::new();
    let until_stopped = || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }
    };
    for worker in workers {
        running.spawn(worker.run(until_stopped()));
    }
    for courier in couriers {
        running.spawn(courier.run(until_stopped()));
    }
    shutdown.await;
    let _ = stop.send(true);
    while running.join_next().await.is_some() {}
    watching.abort_all();
    if let Some(waker) = waker {
        waker.abort();
    }
    let _ = server_stop.send(());
    if let Ok(Err(err)) = server.await {
        tracing::warn!(error = %err, "the metrics server failed");
    }
    if let Err(err) = scheduler.shutdown().await {
        tracing::warn!(error = %err, "stopping the tick");
    }
    Ok(())
}
