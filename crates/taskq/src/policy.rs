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

/// What the enqueuing side decides: how long results are kept (stored in each record at
/// enqueue), and how much the queue may hold before enqueues are refused ([`crate::Full`],
/// applied by the enqueue script).
#[derive(Debug, Clone)]
pub struct EnqueuePolicy {
    /// How long a done task's result is kept (and answers requests) before the name may be
    /// enqueued again.
    pub result_ttl: Duration,
    /// The share of Redis' `maxmemory` past which a new task is refused, so that the workers
    /// keep the rest to finish what was accepted; `None` (or 1 and more): no mark. No effect on
    /// a Redis without `maxmemory`.
    pub memory_high_water: Option<f64>,
    /// The most tasks the queue may hold, due and leased, before a new task is refused; `None`:
    /// no limit.
    pub max_queued: Option<u64>,
}

impl Default for EnqueuePolicy {
    fn default() -> Self {
        Self {
            result_ttl: Duration::from_secs(3600),
            memory_high_water: Some(0.85),
            max_queued: None,
        }
    }
}

impl EnqueuePolicy {
    /// The memory mark as the enqueue script takes it: millionths of `maxmemory`, 0 for none.
    pub(crate) fn high_water_ppm(&self) -> u64 {
        match self.memory_high_water {
            // In (0, 1): the product is in (0, 1e6), exact enough, and never negative.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            Some(share) if share > 0.0 && share < 1.0 => (share * 1e6).round() as u64,
            _ => 0,
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
