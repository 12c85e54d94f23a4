//! The consumer's life in three steps, as [`crate::run`] takes it: [`Application::build`] makes
//! everything from the settings (each queue's workers, the limits they share, the metrics
//! server's connection limits) and fails before anything runs; [`Application::serve`] starts it
//! all (the tick, the wake channels, each queue's Redis watch, the metrics server, the workers);
//! [`Running::drain`] stops it on the shutdown signal.
//!
//! The drain's order is the point: every worker stops claiming at once and finishes or hands
//! back its tasks (see [`taskq::Worker::run`]) while `/metrics` and `/healthz` stay up, so an
//! orchestrator still sees a healthy process while it drains; only then do the watches, the wake
//! channels, the server and the tick stop.

use std::sync::Arc;
use std::time::Duration;

use service_kit::Connections;
use taskq::{Queue, WakeHandle};
use tokio::sync::{oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio_cron_scheduler::JobScheduler;

use crate::config::Config;
use crate::error::StartError;
use crate::limits::Limiters;
use crate::queue_workers::QueueWorkers;
use crate::{server, tick, wake};

/// The default cap of connections to `/metrics` and `/healthz`: scrapers and health checks need
/// a handful, and the process' other open files go to its calls to the APIs.
pub const METRICS_CONNECTIONS: u64 = 1024;

/// The consumer, built and not yet running.
pub struct Application {
    /// Every queue's workers, in the order of the settings.
    queues: Vec<QueueWorkers>,
    /// The limiters the queues share, one per limit key (for `/metrics`).
    limiters: Limiters,
    /// The metrics server's connections, held to their limits.
    connections: Arc<Connections>,
    /// The cron schedule of the tick.
    tick: String,
    /// How often each queue's Redis is read for its report.
    redis_check: Duration,
}

/// The consumer, running until [`Running::drain`].
pub struct Running {
    /// Every worker and courier, each running until `stop` says.
    workers: JoinSet<()>,
    /// Tells every worker to drain.
    stop: watch::Sender<bool>,
    /// Each queue's Redis watch.
    watching: JoinSet<()>,
    /// The wake channels' subscription (none without queues).
    waker: Option<JoinHandle<()>>,
    /// Stops the metrics server.
    server_stop: oneshot::Sender<()>,
    /// The metrics server.
    server: JoinHandle<std::io::Result<()>>,
    /// The tick.
    scheduler: JobScheduler,
}

impl Application {
    /// Builds every queue of `config` and what they share.
    ///
    /// # Errors
    /// [`StartError`] when a setting or a queue cannot be used.
    pub fn build(config: &Config) -> Result<Self, StartError> {
        let mut limiters = Limiters::default();
        let deliverer = webhooks::Deliverer::new(&config.callbacks)?;
        let connections = Arc::new(Connections::new(
            config.connections.limits(METRICS_CONNECTIONS)?,
        ));
        let queues = config
            .queues()?
            .into_iter()
            .map(|settings| QueueWorkers::build(settings, config, &mut limiters, &deliverer))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            queues,
            limiters,
            connections,
            tick: config.tick.clone(),
            redis_check: Duration::from_millis(config.redis.redis_check_ms),
        })
    }

    /// Starts the tick and the wake channels, each queue's Redis watch, the metrics server on
    /// `listener`, then the workers.
    ///
    /// # Errors
    /// [`StartError::Tick`] when the tick cannot be scheduled.
    pub async fn serve(self, listener: tokio::net::TcpListener) -> Result<Running, StartError> {
        let woken: Vec<(Queue, WakeHandle)> = self
            .queues
            .iter()
            .flat_map(|queue| queue.woken.iter().cloned())
            .collect();
        let waker = wake::spawn(woken.clone());
        let scheduler =
            tick::start(&self.tick, woken)
                .await
                .map_err(|reason| StartError::Tick {
                    schedule: self.tick,
                    reason,
                })?;
        let (stop, stopped) = watch::channel(false);
        let mut watching = JoinSet::new();
        let (mut workers, mut couriers, mut served) = (Vec::new(), Vec::new(), Vec::new());
        for queue in self.queues {
            let (watch, on) = (Arc::clone(&queue.served.redis), queue.served.queue.clone());
            let every = self.redis_check;
            watching.spawn(async move { watch.run(on, every).await });
            workers.push(queue.worker);
            couriers.push(queue.courier);
            served.push(queue.served);
        }
        let (server_stop, server_stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(service_kit::serve(
            listener,
            server::app(served, self.limiters.all(), Arc::clone(&self.connections)),
            self.connections,
            async {
                let _ = server_stopped.await;
            },
        ));
        let until_stopped = || {
            let mut stopped = stopped.clone();
            async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            }
        };
        let mut running = JoinSet::new();
        for worker in workers {
            running.spawn(worker.run(until_stopped()));
        }
        for courier in couriers {
            running.spawn(courier.run(until_stopped()));
        }
        Ok(Running {
            workers: running,
            stop,
            watching,
            waker,
            server_stop,
            server,
            scheduler,
        })
    }
}

impl Running {
    /// Drains every worker (see [`taskq::Worker::run`]) with the server still up, then stops
    /// the rest.
    pub async fn drain(mut self) {
        let _ = self.stop.send(true);
        while self.workers.join_next().await.is_some() {}
        self.watching.abort_all();
        if let Some(waker) = self.waker {
            waker.abort();
        }
        let _ = self.server_stop.send(());
        if let Ok(Err(err)) = self.server.await {
            tracing::warn!(error = %err, "the metrics server failed");
        }
        if let Err(err) = self.scheduler.shutdown().await {
            tracing::warn!(error = %err, "stopping the tick");
        }
    }
}
