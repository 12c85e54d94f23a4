//! The claim loop: claims due tasks in batches (a few ahead of the free slots), starts each
//! call in a slot, and sleeps only when nothing is due.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use futures_util::FutureExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep, sleep_until};
use tracing::{debug, warn};

use super::handler::{Failure, Handler, Outcome};
use super::record::CallOutcome;
use super::{Shared, WorkerConfig, WorkerStats};
use crate::limit::Permit;
use crate::task::ClaimedTask;

/// A claimed task and, under a limit, the permit to call it.
type Ready = (ClaimedTask, Option<Permit>);

/// How many claimed tasks may wait for a slot: a quarter of the slots (at least one, at most a
/// batch), enough to cover a claim round trip while a wave of calls ends, few enough that one
/// consumer does not sit on tasks another could start.
fn claim_ahead(config: &WorkerConfig) -> usize {
    (config.concurrency / 4).clamp(1, config.batch_size.max(1))
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
    pub(super) async fn claim_loop(
        self: Arc<Self>,
        slots: &Arc<Semaphore>,
        in_flight: &mut JoinSet<()>,
        answers: &mpsc::Sender<CallOutcome>,
    ) {
        let ahead = claim_ahead(&self.config);
        let mut ready: VecDeque<Ready> = VecDeque::new();
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
            self.handler.ready().await;
            let claim = self.claim_with_permits(want);
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
                Ok(claimed) => {
                    redis_backoff = Duration::ZERO;
                    claimed
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
            let (claim, permits) = claim;
            let claimed = claim.tasks.len();
            let mut permits = permits.into_iter();
            for task in claim.tasks {
                self.held_map().insert(task.token.clone(), task.clone());
                ready.push_back((task, permits.next().flatten()));
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
        ready: &mut VecDeque<Ready>,
        slots: &Arc<Semaphore>,
        in_flight: &mut JoinSet<()>,
        answers: &mpsc::Sender<CallOutcome>,
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

    /// Runs `task` in the slot `slot` holds.
    fn start(
        self: &Arc<Self>,
        task: Ready,
        slot: OwnedSemaphorePermit,
        in_flight: &mut JoinSet<()>,
        answers: &mpsc::Sender<CallOutcome>,
    ) {
        in_flight.spawn(Arc::clone(self).run_task(task, slot, answers.clone()));
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
        (task, permit): Ready,
        slot: OwnedSemaphorePermit,
        answers: mpsc::Sender<CallOutcome>,
    ) {
        let outcome = self.call(&task).await;
        // The call has ended: its place in flight goes back.
        drop(permit);
        // The slot frees once the answer is queued for recording, so the next claim need not
        // wait for Redis to record this one. The recorder only stops after the last sender is
        // dropped, so this cannot fail.
        let _ = answers.send(CallOutcome { task, outcome }).await;
        drop(slot);
    }

    /// Runs the handler on `task`; a panic is a retryable failure.
    async fn call(&self, task: &ClaimedTask) -> Outcome {
        let outcome = AssertUnwindSafe(self.handler.handle(task))
            .catch_unwind()
            .await
            .unwrap_or_else(|_| Outcome::Failed(Failure::retryable("the handler panicked")))
            .printable();
        debug!(task = %task.name, attempt = task.attempts + 1, ?outcome, "called");
        self.pause_if_asked(&outcome).await;
        outcome
    }

    /// Runs the handler on every task at once and records every outcome in one batch; answers
    /// how many ran ([`super::Worker::run_once`]).
    pub(super) async fn run_all(&self, tasks: Vec<Ready>) -> usize {
        let calls = tasks.into_iter().map(|(task, permit)| async move {
            let outcome = self.call(&task).await;
            drop(permit);
            CallOutcome { task, outcome }
        });
        let outcomes = futures_util::future::join_all(calls).await;
        self.record(&outcomes).await;
        outcomes.len()
    }
}
