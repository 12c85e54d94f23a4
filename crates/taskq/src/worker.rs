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

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::FutureExt;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep, sleep_until, timeout};
use tracing::{debug, error, info, warn};

use crate::backoff::Backoff;
use crate::finish::{Ack, Finish};
use crate::queue::Queue;
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
    /// The API accepted the task's job and named it `remote_id`: store it with `data` (JSON
    /// text, the submit's answer) as partial data, and poll after `poll_in` (default: the poll
    /// interval). Not a failed attempt.
    Submitted {
        /// The API's id for the job, which every later call of the task polls.
        remote_id: String,
        /// The submit's answer, JSON text.
        data: String,
        /// When to poll first, when the API said (`Retry-After`).
        poll_in: Option<Duration>,
    },
    /// The API asked to slow down (HTTP 429 or 503): call again after `retry_after` (default:
    /// the backoff, growing with the task's throttled answers). Not a failed attempt.
    Throttled {
        /// What the API answered, kept as the task's last error.
        message: String,
        /// When the API asked to be called again.
        retry_after: Option<Duration>,
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
    /// "processing" answers and submits recorded.
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

/// Answers recorded per Redis call at most.
const RECORD_BATCH: usize = 256;

/// How many claimed tasks may wait for a slot: a quarter of the slots (at least one, at most a
/// batch), enough to cover a claim round trip while a wave of calls ends, few enough that one
/// consumer does not sit on tasks another could start.
fn claim_ahead(config: &WorkerConfig) -> usize {
    (config.concurrency / 4).clamp(1, config.batch_size.max(1))
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
        let claimed = shared.queue.claim(limit).await?.tasks;
        if claimed.is_empty() {
            return Ok(Step::Empty);
        }
        let calls = claimed.into_iter().map(|task| async move {
            WorkerStats::bump(&shared.stats.claimed);
            let outcome = shared.call(&task).await;
            Answer { task, outcome }
        });
        let answers = futures_util::future::join_all(calls).await;
        shared.record(&answers).await;
        Ok(Step::Processed(answers.len()))
    }

    /// Runs until `shutdown` resolves, then drains: calls in flight get the grace period to
    /// finish, and the tasks of those that do not are handed back, due at once.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) {
        let shared = self.shared;
        let renewer = tokio::spawn(Arc::clone(&shared).renew_leases());
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
    }
}

/// How long shutdown waits for the answers already given to be recorded.
const RECORD_ON_SHUTDOWN: Duration = Duration::from_secs(5);

/// A call's outcome on its way to Redis.
struct Answer {
    task: ClaimedTask,
    outcome: Outcome,
}

impl<H: Handler> Shared<H> {
    /// Claims and starts tasks forever; the caller stops it by dropping it.
    ///
    /// Up to [`claim_ahead`] claimed tasks wait here for a free slot, so a slot that frees starts
    /// its next task at once, and the claim that refills the buffer runs while calls are in
    /// flight instead of while slots stand empty. (Without it, calls started together end
    /// together, and every slot of such a wave waited out a whole claim round trip: a tenth of
    /// the slots' time on a 20 ms API.) Waiting tasks are held leases like running ones: renewed,
    /// and handed back at shutdown.
    async fn claim_loop(
        self: Arc<Self>,
        slots: &Arc<Semaphore>,
        in_flight: &mut JoinSet<()>,
        answers: &mpsc::Sender<Answer>,
    ) {
        let ahead = claim_ahead(&self.config);
        let mut ready: VecDeque<ClaimedTask> = VecDeque::new();
        let mut redis_backoff = Duration::ZERO;
        loop {
            while in_flight.try_join_next().is_some() {}
            self.start_ready(&mut ready, slots, in_flight, answers);
            let want = (slots.available_permits() + ahead)
                .saturating_sub(ready.len())
                .min(self.config.batch_size.max(1));
            if want == 0 {
                // Slots and buffer are full: the next free slot is the next thing to do.
                drop(slots.acquire().await);
                continue;
            }
            let claim = self.queue.claim(want);
            tokio::pin!(claim);
            // Keep starting buffered tasks while the claim is on its way.
            let claim = loop {
                tokio::select! {
                    claim = &mut claim => break claim,
                    Ok(permit) = Arc::clone(slots).acquire_owned(), if !ready.is_empty() => {
                        self.start(ready.pop_front().expect("not empty"), permit, in_flight, answers);
                    }
                }
            };
            let claim = match claim {
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
                self.held_map().insert(task.token.clone(), task.clone());
                WorkerStats::bump(&self.stats.claimed);
                ready.push_back(task);
            }
            if claimed < want {
                // Fewer tasks are due than there is room for: start what was claimed, then wait
                // until more may be due.
                let due_at = claim.next_due_in.map(|due_in| Instant::now() + due_in);
                while let Some(task) = ready.pop_front() {
                    // The semaphore is never closed; were it, the held lease would be handed
                    // back at shutdown.
                    let Ok(permit) = Arc::clone(slots).acquire_owned().await else {
                        return;
                    };
                    self.start(task, permit, in_flight, answers);
                }
                self.idle(due_at).await;
            }
        }
    }

    /// Starts buffered tasks while slots are free.
    fn start_ready(
        self: &Arc<Self>,
        ready: &mut VecDeque<ClaimedTask>,
        slots: &Arc<Semaphore>,
        in_flight: &mut JoinSet<()>,
        answers: &mpsc::Sender<Answer>,
    ) {
        while !ready.is_empty() {
            let Ok(permit) = Arc::clone(slots).try_acquire_owned() else {
                return;
            };
            self.start(
                ready.pop_front().expect("not empty"),
                permit,
                in_flight,
                answers,
            );
        }
    }

    /// Runs `task` in the slot `permit` holds.
    fn start(
        self: &Arc<Self>,
        task: ClaimedTask,
        permit: OwnedSemaphorePermit,
        in_flight: &mut JoinSet<()>,
        answers: &mpsc::Sender<Answer>,
    ) {
        in_flight.spawn(Arc::clone(self).run_task(task, permit, answers.clone()));
    }

    /// Waits until something may be due: Redis' earliest due time, this worker's earliest
    /// retry, a wake-up, or the idle poll.
    async fn idle(&self, due_at: Option<Instant>) {
        let started = Instant::now();
        loop {
            let mut deadline = self.config.idle_poll.map(|d| started + d);
            let mut sooner = |at: Instant| deadline = Some(deadline.map_or(at, |d| d.min(at)));
            if let Some(due_at) = due_at {
                sooner(due_at);
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

    async fn run_task(
        self: Arc<Self>,
        task: ClaimedTask,
        slot: OwnedSemaphorePermit,
        answers: mpsc::Sender<Answer>,
    ) {
        let outcome = self.call(&task).await;
        // The slot frees once the answer is queued for recording, so the next claim need not
        // wait for Redis to record this one. The recorder only stops after the last sender is
        // dropped, so this cannot fail.
        let _ = answers.send(Answer { task, outcome }).await;
        drop(slot);
    }

    /// Runs the handler on `task`; a panic is a retryable failure.
    async fn call(&self, task: &ClaimedTask) -> Outcome {
        let outcome = AssertUnwindSafe(self.handler.handle(task))
            .catch_unwind()
            .await
            .unwrap_or_else(|_| Outcome::Failed(Failure::retryable("the handler panicked")));
        debug!(task = %task.name, attempt = task.attempts + 1, ?outcome, "called");
        outcome
    }

    /// Records answers in batches: whatever arrived while the previous batch was on its way
    /// goes in the next call, so batches grow with the load and cost nothing when it is low.
    async fn record_answers(self: Arc<Self>, mut to_record: mpsc::Receiver<Answer>) {
        let mut batch = Vec::with_capacity(RECORD_BATCH);
        while to_record.recv_many(&mut batch, RECORD_BATCH).await > 0 {
            self.record(&batch).await;
            batch.clear();
        }
    }

    /// Records a batch of answers, retrying while Redis fails (the script is safe to repeat)
    /// for up to one lease period; after that the leases end and the tasks come back by
    /// themselves.
    async fn record(&self, batch: &[Answer]) {
        let delays: Vec<Option<Duration>> = batch
            .iter()
            .map(|answer| match &answer.outcome {
                Outcome::Done(_) => None,
                Outcome::Processing { poll_in, .. } | Outcome::Submitted { poll_in, .. } => {
                    Some(poll_in.unwrap_or(self.config.poll_interval))
                }
                Outcome::Throttled { retry_after, .. } => Some(retry_after.unwrap_or_else(|| {
                    self.config
                        .backoff
                        .delay(answer.task.throttled.saturating_add(1))
                })),
                Outcome::Failed(failure) => Some(
                    failure
                        .retry_after
                        .unwrap_or_else(|| self.config.backoff.delay(answer.task.attempts + 1)),
                ),
            })
            .collect();
        let finishes: Vec<(&ClaimedTask, Finish<'_>)> = batch
            .iter()
            .zip(&delays)
            .map(|(answer, delay)| {
                let delay = delay.unwrap_or_default();
                let finish = match &answer.outcome {
                    Outcome::Done(data) => Finish::Done(data),
                    Outcome::Processing { data, .. } => Finish::Processing { data, delay },
                    Outcome::Submitted {
                        remote_id, data, ..
                    } => Finish::Submitted {
                        remote_id,
                        data,
                        delay,
                    },
                    Outcome::Throttled { message, .. } => Finish::Throttled { message, delay },
                    Outcome::Failed(failure) => Finish::Failed {
                        error: &failure.message,
                        delay,
                        permanent: failure.permanent,
                    },
                };
                (&answer.task, finish)
            })
            .collect();
        let give_up = Instant::now() + self.queue.policy().lease;
        let mut pause = Duration::from_millis(50);
        let acks = loop {
            match self.queue.finish_many(&finishes).await {
                Ok(acks) => break acks,
                Err(err) => {
                    WorkerStats::bump(&self.stats.redis_errors);
                    if Instant::now() + pause > give_up {
                        error!(error = %err, tasks = batch.len(), "could not record outcomes; the leases will expire and the tasks come back");
                        self.forget(batch);
                        return;
                    }
                    warn!(error = %err, retry_in = ?pause, tasks = batch.len(), "recording outcomes failed");
                    sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
            }
        };
        let mut earliest: Option<Instant> = None;
        for ((answer, ack), delay) in batch.iter().zip(acks).zip(&delays) {
            self.count(answer, ack);
            if let (Some(delay), Ack::Applied) = (delay, ack) {
                let at = Instant::now() + *delay;
                earliest = Some(earliest.map_or(at, |e| e.min(at)));
            }
        }
        self.forget(batch);
        if let Some(at) = earliest {
            let mut retry = self
                .earliest_retry
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if retry.is_none_or(|e| at < e) {
                *retry = Some(at);
                drop(retry);
                self.rescheduled.notify_one();
            }
        }
    }

    /// Counts and logs one recorded answer; every line names the task and its attempt. (The
    /// queue-wide counts, throttled answers among them, are kept by the scripts.)
    fn count(&self, answer: &Answer, ack: Ack) {
        let (task, attempt) = (&answer.task.name, answer.task.attempts + 1);
        let counter = match (&answer.outcome, ack) {
            (_, Ack::Stale) => {
                warn!(%task, attempt, "lease lost before the answer was recorded; answer dropped");
                &self.stats.stale
            }
            (outcome, Ack::Dead) => {
                warn!(%task, attempt, ?outcome, "task is dead");
                &self.stats.dead
            }
            (Outcome::Done(_), Ack::Applied) => &self.stats.done,
            (Outcome::Processing { .. } | Outcome::Submitted { .. }, Ack::Applied) => {
                &self.stats.snoozed
            }
            (Outcome::Throttled { message, .. }, Ack::Applied) => {
                info!(%task, attempt, answer = %message, "throttled; will call again");
                return;
            }
            (Outcome::Failed(failure), Ack::Applied) => {
                info!(%task, attempt, error = %failure.message, "call failed; will retry");
                &self.stats.retried
            }
        };
        WorkerStats::bump(counter);
    }

    /// Drops recorded (or abandoned) tasks from the held leases.
    fn forget(&self, batch: &[Answer]) {
        let mut held = self.held_map();
        for answer in batch {
            held.remove(&answer.task.token);
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
                            warn!(task = %task.name, attempt = task.attempts + 1, "lease lost; another worker may run the task");
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
