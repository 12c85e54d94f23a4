//! Recording what a call did: `finish.lua` (done, processing, submitted, throttled, failed;
//! many tasks per call), `release.lua` (handed back unrun) and `extend.lua` (leases renewed).
//! Each checks the claim token, so a worker whose lease was taken back gets [`Ack::Stale`] and
//! its answer is dropped.
//!
//! One call's outcome passes through three types, one per party: a handler answers an
//! [`crate::Outcome`] (owned, in its own terms: "call again when you like", a `Retry-After`
//! if the API gave one); the worker turns it into a [`Finish`] (what to write, borrowed, every
//! delay decided: the poll interval, the backoff for this attempt); the script answers an
//! [`Ack`] (what it did, which only Redis knows: recorded, buried, refused as stale, or
//! waiting for room). Folding any two would make a handler decide the worker's policy, or the
//! worker guess what the script did.
//!
//! Release and extend only move tasks, so they run whatever Redis' memory. Recording outcomes
//! adds data (results, partial data), so Redis refuses `finish.lua` at `maxmemory`; the queue must
//! still drain there, so a refused batch is sent again in the script's draining form, which
//! moves every task on and writes no text larger than what it replaces: a result that does not
//! fit waits for room ([`Ack::Deferred`]), called again after [`WAIT_FOR_ROOM`].

use std::time::Duration;

use tracing::instrument;

use crate::error::{Error, Full, Result};
use crate::queue::Queue;
use crate::scripts::{self, RunScript, millis};
use crate::task::ClaimedTask;

/// How long a task whose result found no room in a full Redis waits before it is called again:
/// long enough not to spin on a Redis that stays full, short enough to take the room freed by
/// expiring results and finishing tasks soon.
pub const WAIT_FOR_ROOM: Duration = Duration::from_secs(5);

/// What a finishing call (complete, snooze, fail, release) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ack {
    /// Recorded as asked.
    Applied,
    /// Recorded, and the task is now dead (attempt limit, permanent error or poll deadline).
    Dead,
    /// Refused: the token no longer owns the task (its lease was reaped). Counted as `stale`.
    Stale,
    /// Redis is at `maxmemory` and the result did not fit in what it replaces: the task waits,
    /// due again after [`WAIT_FOR_ROOM`], its data as before; no attempt is used. Counted as
    /// `results_deferred`.
    Deferred,
}

impl Ack {
    fn from_code(code: i64) -> Result<Self> {
        match code {
            0 => Ok(Self::Stale),
            1 => Ok(Self::Applied),
            2 => Ok(Self::Dead),
            3 => Ok(Self::Deferred),
            other => Err(Error::UnexpectedReply(format!("ack code {other}"))),
        }
    }
}

/// The outcome of one call, as recorded by [`Queue::finish_many`]: what to write, borrowed, with
/// the delay of the next call decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish<'a> {
    /// Done: store the final data (JSON text).
    Done(&'a str),
    /// Still processing: store the partial data (JSON text), due again after `delay`.
    Processing {
        /// Partial data, JSON text.
        data: &'a str,
        /// When to poll again.
        delay: Duration,
    },
    /// Submitted: store the remote id of the job the API made and its first answer (JSON
    /// text) as partial data; polled after `delay`. Not a failed attempt, not a poll.
    Submitted {
        /// The API's id for the job.
        remote_id: &'a str,
        /// The submit's answer, JSON text.
        data: &'a str,
        /// The values of the answer the later calls name, a JSON object ("" for none).
        kept: &'a str,
        /// When to poll first.
        delay: Duration,
    },
    /// Nothing was called: the task waits for a provider's webhook, due again after `delay`, no
    /// attempt or poll counted; past the poll deadline, dead with `reason`.
    Waiting {
        /// Why it would die.
        reason: &'a str,
        /// When to look again.
        delay: Duration,
    },
    /// The API asked to slow down (429, 503): due again after `delay`, no attempt used; dead
    /// past the poll deadline.
    Throttled {
        /// What the API said, kept as the task's last error.
        message: &'a str,
        /// When to call again.
        delay: Duration,
    },
    /// Failed: retry after `delay`, or bury at the attempt limit or when `permanent`.
    Failed {
        /// What went wrong.
        error: &'a str,
        /// When to retry.
        delay: Duration,
        /// Whether retrying cannot help.
        permanent: bool,
    },
}

impl Finish<'_> {
    /// How long until the task is due again once this is recorded as asked; `None` when it
    /// leaves the queue (done) or a failure may bury it (the script decides).
    pub(crate) fn due_again_in(&self) -> Option<Duration> {
        match *self {
            Finish::Done(_) => None,
            Finish::Processing { delay, .. }
            | Finish::Submitted { delay, .. }
            | Finish::Waiting { delay, .. }
            | Finish::Throttled { delay, .. }
            | Finish::Failed { delay, .. } => Some(delay),
        }
    }
}

impl Queue {
    /// Stores the final result: the task is done and leaves the queue.
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis fails; safe to call again with the same arguments.
    #[instrument(level = "debug", skip(self, task, data), fields(task = %task.name))]
    pub async fn complete(&self, task: &ClaimedTask, data: &str) -> Result<Ack> {
        self.finish_one(task, Finish::Done(data)).await
    }

    /// Stores partial data and makes the task due again after `delay`; not a failed attempt.
    /// Past the poll deadline the task is dead instead ([`Ack::Dead`]).
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis fails; safe to call again with the same arguments.
    #[instrument(level = "debug", skip(self, task, data), fields(task = %task.name))]
    pub async fn snooze(&self, task: &ClaimedTask, data: &str, delay: Duration) -> Result<Ack> {
        self.finish_one(task, Finish::Processing { data, delay })
            .await
    }

    /// Records a failed attempt: due again after `delay`, or dead when the attempt limit is
    /// reached or `permanent` is set.
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis fails; safe to call again with the same arguments.
    #[instrument(level = "debug", skip(self, task), fields(task = %task.name))]
    pub async fn fail(
        &self,
        task: &ClaimedTask,
        error: &str,
        delay: Duration,
        permanent: bool,
    ) -> Result<Ack> {
        self.finish_one(
            task,
            Finish::Failed {
                error,
                delay,
                permanent,
            },
        )
        .await
    }

    async fn finish_one(&self, task: &ClaimedTask, finish: Finish<'_>) -> Result<Ack> {
        let mut acks = self.finish_many(&[(task, finish)]).await?;
        acks.pop()
            .ok_or_else(|| Error::UnexpectedReply("finish: no ack".into()))
    }

    /// Records the outcomes of many calls in one round trip (the worker's path: one script call
    /// costs Redis more than the work inside it). Answers one ack per task, in order. At
    /// `maxmemory` the batch is recorded in the draining form (see the module doc).
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis fails; the batch is then either wholly recorded or not at
    /// all, and safe to send again.
    pub async fn finish_many(&self, batch: &[(&ClaimedTask, Finish<'_>)]) -> Result<Vec<Ack>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let codes: Vec<i64> = match self.finishing(batch, false).run(self.redis()).await {
            Err(Error::Full(Full::MaxMemory)) => {
                tracing::debug!(
                    tasks = batch.len(),
                    "redis is at maxmemory: recording as it drains"
                );
                self.finishing(batch, true).run(self.redis()).await?
            }
            codes => codes?,
        };
        if codes.len() != batch.len() {
            return Err(Error::UnexpectedReply(format!(
                "finish: {} acks for {} tasks",
                codes.len(),
                batch.len()
            )));
        }
        codes.into_iter().map(Ack::from_code).collect()
    }

    /// The `finish.lua` call for `batch`, in its `draining` form or not.
    fn finishing(
        &self,
        batch: &[(&ClaimedTask, Finish<'_>)],
        draining: bool,
    ) -> redis::ScriptInvocation<'static> {
        let script = if draining {
            &scripts::FINISH_DRAINING
        } else {
            &scripts::FINISH
        };
        let mut invocation = script.on(self.redis()).key(&self.keys().leased);
        invocation
            .key(&self.keys().due)
            .key(&self.keys().dead)
            .key(&self.keys().stats)
            .key(&self.keys().events)
            .key(&self.keys().callback_due)
            .key(&self.keys().callback_wake)
            .arg(self.keys().task_prefix())
            .arg(self.worker_policy().max_poll.map_or(0, millis))
            .arg(self.worker_policy().max_attempts)
            .arg(millis(self.dead_ttl()))
            .arg(batch.len())
            .arg(u8::from(draining))
            .arg(millis(WAIT_FOR_ROOM));
        // The callback lane records follow the tasks' records: KEYS[7 + N + 1], ...
        let mut lane_keys = 7 + batch.len();
        for (task, _) in batch {
            invocation.key(self.keys().task(&task.name));
        }
        for (task, finish) in batch {
            let (kind, text, delay, permanent, (remote_id, kept)) = match *finish {
                Finish::Done(data) => ("done", data, Duration::ZERO, false, ("", "")),
                Finish::Processing { data, delay } => ("processing", data, delay, false, ("", "")),
                Finish::Submitted {
                    remote_id,
                    data,
                    kept,
                    delay,
                } => ("submitted", data, delay, false, (remote_id, kept)),
                Finish::Waiting { reason, delay } => ("waiting", reason, delay, false, ("", "")),
                Finish::Throttled { message, delay } => {
                    ("throttled", message, delay, false, ("", ""))
                }
                Finish::Failed {
                    error,
                    delay,
                    permanent,
                } => ("failed", error, delay, permanent, ("", "")),
            };
            invocation
                .arg(kind)
                .arg(&task.token)
                .arg(text)
                .arg(millis(delay))
                .arg(u8::from(permanent))
                .arg(remote_id);
            if task.has_callback {
                lane_keys += 1;
                invocation
                    .key(self.keys().callback_of(task.name.as_str()))
                    .arg(lane_keys);
            } else {
                invocation.arg(0);
            }
            invocation.arg(kept);
        }
        invocation
    }

    /// Hands a task back unrun: due at once, no attempt counted.
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis fails; safe to call again.
    pub async fn release(&self, task: &ClaimedTask) -> Result<Ack> {
        let code: i64 = scripts::RELEASE
            .on(self.redis())
            .key(self.keys().task(&task.name))
            .key(&self.keys().leased)
            .key(&self.keys().due)
            .key(&self.keys().stats)
            .key(&self.keys().events)
            .arg(self.keys().task_prefix())
            .arg(&task.token)
            .run(self.redis())
            .await?;
        Ack::from_code(code)
    }

    /// Renews the leases of `tasks` for another lease period; answers the positions (in
    /// `tasks`) of those whose lease was lost.
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis fails.
    pub async fn extend(&self, tasks: &[ClaimedTask]) -> Result<Vec<usize>> {
        if tasks.is_empty() {
            return Ok(Vec::new());
        }
        let mut invocation = scripts::EXTEND.on(self.redis()).key(&self.keys().leased);
        invocation
            .arg(millis(self.worker_policy().lease))
            .arg(self.keys().task_prefix());
        for task in tasks {
            invocation
                .key(self.keys().task(&task.name))
                .arg(&task.token);
        }
        let lost: Vec<usize> = invocation.run(self.redis()).await?;
        Ok(lost.into_iter().map(|position| position - 1).collect())
    }
}
