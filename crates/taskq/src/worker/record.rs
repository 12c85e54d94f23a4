//! Recording answers: whatever arrived while the previous call was on its way goes in the next
//! one, retried while Redis fails for up to a lease period.

use std::sync::{Arc, PoisonError};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{Instant, sleep};
use tracing::{error, info, warn};

use super::handler::{Handler, Outcome};
use super::{Shared, WorkerStats};
use crate::finish::{Ack, Finish, WAIT_FOR_ROOM};
use crate::task::ClaimedTask;

/// Answers recorded per Redis call at most.
const RECORD_BATCH: usize = 256;

/// A call's outcome on its way to Redis.
pub(super) struct CallOutcome {
    pub(super) task: ClaimedTask,
    pub(super) outcome: Outcome,
}

impl<H: Handler> Shared<H> {
    /// Records answers in batches: whatever arrived while the previous batch was on its way
    /// goes in the next call, so batches grow with the load and cost nothing when it is low.
    pub(super) async fn record_answers(
        self: Arc<Self>,
        mut to_record: mpsc::Receiver<CallOutcome>,
    ) {
        let mut batch = Vec::with_capacity(RECORD_BATCH);
        while to_record.recv_many(&mut batch, RECORD_BATCH).await > 0 {
            self.record(&batch).await;
            batch.clear();
        }
    }

    /// Records a batch of answers, retrying while Redis fails (the script is safe to repeat)
    /// for up to one lease period; after that the leases end and the tasks come back by
    /// themselves.
    pub(super) async fn record(&self, batch: &[CallOutcome]) {
        let finishes: Vec<(&ClaimedTask, Finish<'_>)> = batch
            .iter()
            .map(|answer| (&answer.task, self.finish(answer)))
            .collect();
        let give_up = Instant::now() + self.queue.worker_policy().lease;
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
        for ((answer, ack), (_, finish)) in batch.iter().zip(acks).zip(&finishes) {
            self.log(answer, ack);
            let due_again = match ack {
                Ack::Applied => finish.due_again_in(),
                Ack::Deferred => Some(WAIT_FOR_ROOM),
                Ack::Dead | Ack::Stale => None,
            };
            if let Some(delay) = due_again {
                let at = Instant::now() + delay;
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

    /// What to record for one call: the handler's outcome, with the delay of its next call
    /// worked out (the handler's own, else the poll interval or the backoff).
    fn finish<'a>(&self, answer: &'a CallOutcome) -> Finish<'a> {
        let backoff = |attempt: u32| self.config.backoff.delay(attempt);
        match &answer.outcome {
            Outcome::Done(data) => Finish::Done(data),
            Outcome::Processing { data, poll_in } => Finish::Processing {
                data,
                delay: poll_in.unwrap_or(self.config.poll_interval),
            },
            Outcome::Submitted {
                remote_id,
                data,
                kept,
                poll_in,
            } => Finish::Submitted {
                remote_id,
                data,
                kept: kept.as_deref().unwrap_or(""),
                delay: poll_in.unwrap_or(self.config.poll_interval),
            },
            Outcome::Waiting { reason, poll_in } => Finish::Waiting {
                reason,
                delay: poll_in.unwrap_or(self.config.poll_interval),
            },
            Outcome::Throttled {
                message,
                retry_after,
            } => Finish::Throttled {
                message,
                delay: retry_after
                    .unwrap_or_else(|| backoff(answer.task.throttled.saturating_add(1))),
            },
            Outcome::Failed(failure) => Finish::Failed {
                error: &failure.message,
                delay: failure
                    .retry_after
                    .unwrap_or_else(|| backoff(answer.task.attempts + 1)),
                permanent: failure.permanent,
            },
        }
    }

    /// Logs one recorded answer, and counts what this process's callers read (done, stale);
    /// every line names the task and its attempt. (The queue-wide counts are kept by the
    /// scripts.)
    fn log(&self, answer: &CallOutcome, ack: Ack) {
        let (task, attempt) = (&answer.task.name, answer.task.attempts + 1);
        match (&answer.outcome, ack) {
            (_, Ack::Stale) => {
                warn!(%task, attempt, "lease lost before the answer was recorded; answer dropped");
                WorkerStats::bump(&self.stats.stale);
            }
            (outcome, Ack::Dead) => warn!(%task, attempt, ?outcome, "task is dead"),
            (_, Ack::Deferred) => warn!(
                %task,
                attempt,
                retry_in = ?WAIT_FOR_ROOM,
                "redis is at maxmemory and the result does not fit: the task waits for room"
            ),
            (Outcome::Throttled { message, .. }, Ack::Applied) => {
                info!(%task, attempt, answer = %message, "throttled; will call again");
            }
            (Outcome::Failed(failure), Ack::Applied) => {
                info!(%task, attempt, error = %failure.message, "call failed; will retry");
            }
            (Outcome::Done(_), Ack::Applied) => WorkerStats::bump(&self.stats.done),
            (
                Outcome::Processing { .. } | Outcome::Submitted { .. } | Outcome::Waiting { .. },
                Ack::Applied,
            ) => {}
        }
    }

    /// Drops recorded (or abandoned) tasks from the held leases.
    fn forget(&self, batch: &[CallOutcome]) {
        let mut held = self.held_map();
        for answer in batch {
            held.remove(&answer.task.token);
        }
    }
}
