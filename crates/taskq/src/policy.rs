//! The rules a queue's scripts apply, split by who decides them.
//!
//! - The enqueuing side (the producer) decides how long a result is kept: [`EnqueuePolicy`],
//!   written into each record when it is enqueued, so every worker honours it.
//! - The workers (the consumer) decide how long a claim lasts, how many attempts a task gets, how
//!   long it may keep answering "processing" and how many dead records are kept:
//!   [`WorkerPolicy`], applied by the scripts that claim, finish and sweep.
//! - How long dead and cancelled records are kept is one setting with one meaning,
//!   `DEAD_TTL_SECS` in both binaries: the producer applies it when it cancels, the consumer when
//!   it buries a failed task ([`crate::Queue::with_dead_ttl`]).

use std::time::Duration;

/// Expired leases, dead records and cancelled entries handled per script call at most, so that
/// no call holds Redis long; the rest are handled by the next call.
pub(crate) const SWEEP_LIMIT: usize = 100;

/// How long dead and cancelled records are kept unless a binary says otherwise.
pub(crate) const DEFAULT_DEAD_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// What the enqueuing side decides; stored in each record at enqueue.
#[derive(Debug, Clone)]
pub struct EnqueuePolicy {
    /// How long a done task's result is kept (and answers requests) before the name may be
    /// enqueued again.
    pub result_ttl: Duration,
}

impl Default for EnqueuePolicy {
    fn default() -> Self {
        Self {
            result_ttl: Duration::from_secs(3600),
        }
    }
}

/// What the workers decide; the same in every consumer of one queue.
#[derive(Debug, Clone)]
pub struct WorkerPolicy {
    /// How long a claim is valid without renewal. Workers renew held leases well before they end.
    pub lease: Duration,
    /// Failed attempts (errors and expired leases) after which a task is dead.
    pub max_attempts: u32,
    /// How long after its creation a task may keep answering "processing" before it is dead.
    pub max_poll: Option<Duration>,
    /// How many dead records are kept at most; the oldest go first.
    pub dead_max: u64,
    /// Whether the queue's calls start with a submit (an API profile with `submit`): then each
    /// claimed task that has no remote id yet carries a submit token, fixed for the task's life,
    /// from which its submit's idempotency key is made ([`crate::ClaimedTask::submit_token`]).
    pub submit_keys: bool,
}

impl Default for WorkerPolicy {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(30),
            max_attempts: 5,
            max_poll: Some(Duration::from_secs(24 * 3600)),
            dead_max: 10_000,
            submit_keys: false,
        }
    }
}
