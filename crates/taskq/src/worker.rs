//! The worker: claims due tasks in batches, runs any async [`Handler`] on each, concurrently,
//! and records each outcome.
//!
//! Speed comes from never waiting on a clock while work is due: the claim loop keeps up to
//! `concurrency` tasks in flight, claims `min(free slots, batch)` at once and claims again as soon
//! as a batch came back full or a slot frees. Only when nothing is due does it sleep: until the
//! earliest due time Redis reported, the earliest retry it scheduled itself, a
//! [`WakeHandle::wake`] (the consumer's cron tick), or `idle_poll`.
//!
//! Safety comes from the lease: one background task renews every held lease each third of the
//! lease period in one call, so a slow call is never handed to a second worker while this one
//! still works on it; a worker that dies stops renewing, and its tasks come back when their
//! leases end. On shutdown the worker stops claiming, lets calls in flight finish within the
//! grace period, and hands back (due at once) whatever is left.

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::FutureExt;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep, sleep_until, timeout};
use tracing::{Instrument, debug, error, error_span, info, warn};

use crate::backoff::Backoff;
use crate::error::Result;
use crate::queue::{Ack, Queue};
use crate::task::ClaimedTask;

/// What a handler concluded about one call for a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Finished: store `data` (JSON text) as the final result.
    Done(String),
    /// Not finished yet: store `data` (JSON text) as partial data and call again after
    /// `poll_in` (default: the worker's poll interval). Not a failed attempt.
    Processing {
        /// Partial data, JSON text.
        data: String,
        /// When to call again, when the handler knows better than the poll interval.
        poll_in: Option<Duration>,
    },
    /// The call failed.
    Failed(Failure),
}

/// A failed call, typed by what should follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// What went wrong; kept in the task's record.
    pub message: String,
    /// A failure that retrying cannot fix (the task dies without using its other attempts).
    pub permanent: bool,
    /// When the other side asked to be called again (`Retry-After`); otherwise the backoff.
    pub retry_after: Option<Duration>,
}

impl Failure {
    /// A failure worth retrying after a backoff.
    pub fn retryable(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            permanent: false,
            retry_after: None,
        }
    }

    /// A failure no retry can fix.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            permanent: true,
            retry_after: None,
        }
    }
}

/// The work done for one task. The consumer's third-party poller is one; a benchmark's no-op is
/// another.
pub trait Handler: Send + Sync + 'static {
    /// Makes one call for `task` and says how it went. A panic is caught and counts as a
    /// retryable failure.
    fn handle(&self, task: &ClaimedTask) -> impl Future<Output = Outcome> + Send;
}

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
        }
    }
}

/// Running totals of one worker (process memory; the queue-wide exact counters live in Redis).
#[derive(Debug, Default)]
pub struct WorkerStats {
    /// Tasks claimed.
    pub claimed: AtomicU64,
    /// Tasks completed.
    pub done: AtomicU64,
    /// "processing" answers recorded.
    pub snoozed: AtomicU64,
    /// Failures recorded for a retry.
    pub retried: AtomicU64,
    /// Tasks that died here.
    pub dead: AtomicU64,
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

    /// Runs until `shutdown` resolves, then drains: calls in flight get the grace period to
    /// finish, and the tasks of those that do not are handed back, due at once.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) {
        let shared = self.shared;
        let renewer = tokio::spawn(Arc::clone(&shared).renew_leases());
        let slots = Arc::new(Semaphore::new(shared.config.concurrency.max(1)));
        let mut in_flight = JoinSet::new();
        tokio::pin!(shutdown);
        tokio::select! {
            () = &mut shutdown => {}
            () = Arc::clone(&shared).claim_loop(&slots, &mut in_flight) => {}
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
        shared.hand_back_held().await;
        renewer.abort();
    }
}

impl<H: Handler> Shared<H> {
    /// Claims and starts tasks forever; the caller stops it by dropping it.
    async fn claim_loop(self: Arc<Self>, slots: &Arc<Semaphore>, in_flight: &mut JoinSet<()>) {
        let mut redis_backoff = Duration::ZERO;
        loop {
            while in_flight.try_join_next().is_some() {}
            if slots.available_permits() == 0 {
                // All slots busy: a free one is the next moment anything can start.
                drop(slots.acquire().await);
                continue;
            }
            let want = slots.available_permits().min(self.config.batch_size.max(1));
            let Ok(mut permits) = Arc::clone(slots).acquire_many_owned(want as u32).await else {
                return;
            };
            let claim = match self.queue.claim(want).await {
                Ok(claim) => {
                    redis_backoff = Duration::ZERO;
                    claim
                }
                Err(err) => {
                    WorkerStats::bump(&self.stats.redis_errors);
                    redis_backoff = (redis_backoff * 2)
                        .clamp(Duration::from_millis(100), Duration::from_secs(5));
                    warn!(error = %err, retry_in = ?redis_backoff, "claim failed");
                    sleep(redis_backoff).await;
                    continue;
                }
            };
            let claimed = claim.tasks.len();
            for task in claim.tasks {
                // A claim returns at most `want` tasks, so a permit is always there.
                let Some(permit) = permits.split(1) else {
                    break;
                };
                self.held_map().insert(task.token.clone(), task.clone());
                WorkerStats::bump(&self.stats.claimed);
                in_flight.spawn(Arc::clone(&self).run_task(task, permit));
            }
            if claimed < want {
                let due_in = claim.next_due_in;
                self.idle(due_in).await;
            }
        }
    }

    /// Waits until something may be due: Redis' earliest due time, this worker's earliest
    /// retry, a wake-up, or the idle poll.
    async fn idle(&self, due_in: Option<Duration>) {
        let started = Instant::now();
        loop {
            let mut deadline = self.config.idle_poll.map(|d| started + d);
            let mut sooner = |at: Instant| deadline = Some(deadline.map_or(at, |d| d.min(at)));
            if let Some(due_in) = due_in {
                sooner(started + due_in);
            }
            if let Some(retry_at) = *self
                .earliest_retry
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
            {
                sooner(retry_at);
            }
            let until_deadline = async {
                match deadline {
                    Some(at) => sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = until_deadline => break,
                () = self.wake.notified() => break,
                () = self.rescheduled.notified() => {}
            }
        }
        *self
            .earliest_retry
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
    }

    async fn run_task(self: Arc<Self>, task: ClaimedTask, permit: OwnedSemaphorePermit) {
        // At error level so that every line about a task names it, whatever the log filter.
        let span = error_span!("task", task = %task.name, attempt = task.attempts + 1, poll = task.polls + 1);
        async {
            let outcome = AssertUnwindSafe(self.handler.handle(&task))
                .catch_unwind()
                .await
                .unwrap_or_else(|_| Outcome::Failed(Failure::retryable("the handler panicked")));
            debug!(?outcome, "called");
            self.record(&task, outcome).await;
            self.held_map().remove(&task.token);
            drop(permit);
        }
        .instrument(span)
        .await;
    }

    /// Records an outcome, retrying while Redis fails (every script is safe to repeat) for up to
    /// one lease period; after that the lease ends and the task comes back by itself.
    async fn record(&self, task: &ClaimedTask, outcome: Outcome) {
        let give_up = Instant::now() + self.queue.policy().lease;
        let mut pause = Duration::from_millis(50);
        let (reschedule_in, result) = loop {
            let (delay, result) = self.record_once(task, &outcome).await;
            match result {
                Ok(ack) => break (delay, ack),
                Err(err) => {
                    WorkerStats::bump(&self.stats.redis_errors);
                    if Instant::now() + pause > give_up {
                        error!(error = %err, "could not record the outcome; the lease will expire and the task come back");
                        return;
                    }
                    warn!(error = %err, retry_in = ?pause, "recording the outcome failed");
                    sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
            }
        };
        let counter = match (&outcome, result) {
            (_, Ack::Stale) => {
                warn!("lease lost before the answer was recorded; answer dropped");
                &self.stats.stale
            }
            (_, Ack::Dead) => {
                warn!(outcome = ?outcome, "task is dead");
                &self.stats.dead
            }
            (Outcome::Done(_), Ack::Applied) => &self.stats.done,
            (Outcome::Processing { .. }, Ack::Applied) => &self.stats.snoozed,
            (Outcome::Failed(failure), Ack::Applied) => {
                info!(error = %failure.message, "call failed; will retry");
                &self.stats.retried
            }
        };
        WorkerStats::bump(counter);
        if let (Some(delay), Ack::Applied) = (reschedule_in, result) {
            let at = Instant::now() + delay;
            let mut earliest = self
                .earliest_retry
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if earliest.is_none_or(|e| at < e) {
                *earliest = Some(at);
                drop(earliest);
                self.rescheduled.notify_one();
            }
        }
    }

    /// One attempt at recording; also answers after how long the task is due again, if it is.
    async fn record_once(
        &self,
        task: &ClaimedTask,
        outcome: &Outcome,
    ) -> (Option<Duration>, Result<Ack>) {
        match outcome {
            Outcome::Done(data) => (None, self.queue.complete(task, data).await),
            Outcome::Processing { data, poll_in } => {
                let delay = poll_in.unwrap_or(self.config.poll_interval);
                (Some(delay), self.queue.snooze(task, data, delay).await)
            }
            Outcome::Failed(failure) => {
                let delay = failure
                    .retry_after
                    .unwrap_or_else(|| self.config.backoff.delay(task.attempts + 1));
                let result = self
                    .queue
                    .fail(task, &failure.message, delay, failure.permanent)
                    .await;
                (Some(delay), result)
            }
        }
    }

    /// Renews every held lease each third of the lease period, in one call per 500 tasks.
    async fn renew_leases(self: Arc<Self>) {
        let every = self.queue.policy().lease / 3;
        loop {
            sleep(every).await;
            let held: Vec<ClaimedTask> = self.held_map().values().cloned().collect();
            for chunk in held.chunks(500) {
                match self.queue.extend(chunk).await {
                    Ok(lost) => {
                        for position in lost {
                            let task = &chunk[position];
                            warn!(task = %task.name, "lease lost; another worker may run the task");
                            self.held_map().remove(&task.token);
                        }
                    }
                    Err(err) => {
                        WorkerStats::bump(&self.stats.redis_errors);
                        warn!(error = %err, "renewing leases failed");
                    }
                }
            }
        }
    }

    /// Hands back every task still held (shutdown): due at once, no attempt counted.
    async fn hand_back_held(&self) {
        let held: Vec<ClaimedTask> = self.held_map().drain().map(|(_, task)| task).collect();
        if held.is_empty() {
            return;
        }
        let mut releases = JoinSet::new();
        for task in held {
            let queue = self.queue.clone();
            releases.spawn(async move { (queue.release(&task).await, task) });
        }
        while let Some(Ok((result, task))) = releases.join_next().await {
            match result {
                Ok(_) => WorkerStats::bump(&self.stats.released),
                Err(err) => {
                    error!(task = %task.name, error = %err, "could not hand the task back; it returns when its lease ends")
                }
            }
        }
        info!(
            released = self.stats.released.load(Ordering::Relaxed),
            "handed back unfinished tasks"
        );
    }

    fn held_map(&self) -> std::sync::MutexGuard<'_, HashMap<String, ClaimedTask>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
