//! The worker: claims due tasks in batches, runs any async [`Handler`] on each, concurrently,
//! and records each outcome.
//!
//! Speed comes from never waiting on a clock while work is due: the claim loop keeps up to
//! `concurrency` tasks in flight and a few more claimed ahead (a slot that frees starts its next
//! task without a round trip), claims up to a batch at once, and claims again as soon as a batch
//! came back full or a slot frees. Only when nothing is due does it sleep: until the
//! earliest due time Redis reported, the earliest retry it scheduled itself, a
//! [`WakeHandle::wake`] (the consumer's cron tick), or `idle_poll`.
//!
//! Safety comes from the lease: one background task renews every held lease each third of the
//! lease period in one call, so a slow call is never handed to a second worker while this one
//! still works on it; a worker that dies stops renewing, and its tasks come back when their
//! leases end. On shutdown the worker stops claiming, lets calls in flight finish within the
//! grace period, and hands back (due at once) whatever is left.
//!
//! Under a shared limit ([`WorkerConfig::limiter`]) the worker claims only as many tasks as it
//! holds permits for, and a call the API throttles with `Retry-After` pauses the limit for all.
//!
//! The rooms: `handler` (what a handler answers), `claims` (the claim loop and the calls),
//! `permits` (claiming under a limit), `record` (answers to Redis, in batches), `leases`
//! (renewal and hand-back).

mod claims;
mod handler;
mod leases;
mod permits;
mod record;

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio::time::{Instant, timeout};
use tracing::{info, warn};

use crate::backoff::Backoff;
use crate::limit::Limiter;
use crate::queue::Queue;
use crate::task::ClaimedTask;

pub use handler::{Failure, Handler, Outcome};

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Tasks in flight at most.
    pub concurrency: usize,
    /// Tasks claimed per round trip at most.
    pub batch_size: usize,
    /// The wait before calling again a task that answered "processing".
    pub poll_interval: Duration,
    /// Retry delays after failures.
    pub backoff: Backoff,
    /// How long in-flight calls may run on after shutdown is asked before their tasks are handed
    /// back.
    pub shutdown_grace: Duration,
    /// When idle, look for new tasks at least this often (`None`: only when woken).
    pub idle_poll: Option<Duration>,
    /// The shared limit on the API's calls, if any.
    pub limiter: Option<Arc<Limiter>>,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            concurrency: 64,
            batch_size: 64,
            poll_interval: Duration::from_secs(5),
            backoff: Backoff::default(),
            shutdown_grace: Duration::from_secs(30),
            idle_poll: Some(Duration::from_secs(1)),
            limiter: None,
        }
    }
}

/// Running totals of one worker (process memory; the queue-wide exact counters live in Redis).
#[derive(Debug, Default)]
pub struct WorkerStats {
    /// Tasks completed.
    pub done: AtomicU64,
    /// Answers refused because the lease had been lost.
    pub stale: AtomicU64,
    /// Tasks handed back at shutdown.
    pub released: AtomicU64,
    /// Redis calls that failed.
    pub redis_errors: AtomicU64,
}

impl WorkerStats {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// What one [`Worker::run_once`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// This many tasks were claimed, handled, and their outcomes recorded.
    Processed(usize),
    /// No task was due.
    Empty,
}

/// Wakes an idle worker so it looks for due tasks now (the consumer's cron tick uses it).
#[derive(Debug, Clone)]
pub struct WakeHandle(Arc<Notify>);

impl WakeHandle {
    /// Asks the worker to claim now; a wake while it is busy is kept for its next idle wait.
    pub fn wake(&self) {
        self.0.notify_one();
    }
}

/// A worker for one queue.
pub struct Worker<H> {
    shared: Arc<Shared<H>>,
}

struct Shared<H> {
    queue: Queue,
    handler: H,
    config: WorkerConfig,
    /// The leases held now, by token: what the renewer renews and shutdown hands back.
    held: Mutex<HashMap<String, ClaimedTask>>,
    /// The earliest time a task this worker rescheduled becomes due again.
    earliest_retry: Mutex<Option<Instant>>,
    /// Set when a task is rescheduled, so an idle loop recomputes its deadline.
    rescheduled: Notify,
    /// External wake-ups (the cron tick).
    wake: Arc<Notify>,
    stats: Arc<WorkerStats>,
}

impl<H: Handler> Worker<H> {
    /// A worker that runs `handler` on the tasks of `queue`.
    pub fn new(queue: Queue, handler: H, config: WorkerConfig) -> Self {
        Self {
            shared: Arc::new(Shared {
                queue,
                handler,
                config,
                held: Mutex::default(),
                earliest_retry: Mutex::default(),
                rescheduled: Notify::new(),
                wake: Arc::new(Notify::new()),
                stats: Arc::default(),
            }),
        }
    }

    /// A handle that wakes this worker when it idles.
    pub fn wake_handle(&self) -> WakeHandle {
        WakeHandle(Arc::clone(&self.shared.wake))
    }

    /// This worker's running totals.
    pub fn stats(&self) -> Arc<WorkerStats> {
        Arc::clone(&self.shared.stats)
    }

    /// One step, without the loop: claims up to a batch of due tasks, runs the handler on each
    /// (all at once), records every outcome, and answers what it did. For tests and batch jobs
    /// that drain a queue (`while worker.run_once().await? != Step::Empty {}`) without waiting
    /// on a clock. Leases are not renewed meanwhile, so each call must end within the lease.
    ///
    /// # Errors
    /// When the claim fails. A failed recording is retried as [`Worker::run`] retries it; if
    /// Redis stays down, those tasks come back when their leases end.
    pub async fn run_once(&self) -> crate::Result<Step> {
        let shared = &self.shared;
        let limit = shared
            .config
            .batch_size
            .min(shared.config.concurrency)
            .max(1);
        let (claim, permits) = shared.claim_with_permits(limit).await?;
        let mut permits = permits.into_iter();
        let claimed: Vec<_> = claim
            .tasks
            .into_iter()
            .map(|task| (task, permits.next().flatten()))
            .collect();
        let step = match claimed.len() {
            0 => Step::Empty,
            _ => Step::Processed(shared.run_all(claimed).await),
        };
        // One step leaves no permit behind: the unused and those of ended calls go back now.
        if let Some(limiter) = &shared.config.limiter {
            limiter.give_back_pending().await?;
        }
        Ok(step)
    }

    /// Runs until `shutdown` resolves, then drains: calls in flight get the grace period to
    /// finish, and the tasks of those that do not are handed back, due at once.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) {
        let shared = self.shared;
        let renewer = tokio::spawn(Arc::clone(&shared).renew_leases());
        let giver = shared
            .config
            .limiter
            .clone()
            .map(|limiter| tokio::spawn(limiter.give_back_in_background()));
        // As many answers may wait to be recorded as there are slots; a call whose answer finds
        // the queue full keeps its slot until there is room, so claims never run more than one
        // round of answers ahead of Redis.
        let (answers, to_record) = mpsc::channel(shared.config.concurrency.max(1));
        let recorder = tokio::spawn(Arc::clone(&shared).record_answers(to_record));
        let slots = Arc::new(Semaphore::new(shared.config.concurrency.max(1)));
        let mut in_flight = JoinSet::new();
        tokio::pin!(shutdown);
        tokio::select! {
            () = &mut shutdown => {}
            () = Arc::clone(&shared).claim_loop(&slots, &mut in_flight, &answers) => {}
        }
        info!(in_flight = in_flight.len(), "stopping: no more claims");
        let drained = timeout(shared.config.shutdown_grace, async {
            while in_flight.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            warn!(
                in_flight = in_flight.len(),
                "shutdown grace period over: handing back the tasks still running"
            );
            in_flight.shutdown().await;
        }
        // Every answer given is recorded before anything is handed back: the recorder ends once
        // the last sender is gone and the channel is empty.
        drop(answers);
        if timeout(RECORD_ON_SHUTDOWN, recorder).await.is_err() {
            warn!(
                "could not record every answer before stopping; those tasks return when their leases end"
            );
        }
        shared.hand_back_held().await;
        renewer.abort();
        if let Some(giver) = giver {
            giver.abort();
        }
        if let Some(limiter) = &shared.config.limiter
            && let Err(err) = limiter.give_back_pending().await
        {
            warn!(error = %err, "could not give back the permits of ended calls; they return with their leases");
        }
    }
}

/// How long shutdown waits for the answers already given to be recorded.
const RECORD_ON_SHUTDOWN: Duration = Duration::from_secs(5);
