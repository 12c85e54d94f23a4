//! The sweep: `reap.lua` takes back expired leases (a worker died or stalled) and prunes dead
//! records by age and count, each bounded per call. Any process may run it at any time.

use crate::error::Result;
use crate::policy::SWEEP_LIMIT;
use crate::queue::Queue;
use crate::scripts::{self, RunScript, millis};

/// What one sweep of the reaper did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sweep {
    /// Expired leases taken back.
    pub reaped: u64,
    /// Dead records pruned by age or count.
    pub pruned: u64,
}

impl Queue {
    /// One sweep: takes back expired leases and prunes old dead records (each bounded by
    /// [`SWEEP_LIMIT`] per call). Any process may run it at any time.
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis fails.
    pub async fn sweep(&self) -> Result<Sweep> {
        let (leased, dead): (Vec<String>, Vec<String>) = self
            .earliest(&[
                (&self.keys().leased, SWEEP_LIMIT),
                (&self.keys().dead, SWEEP_LIMIT),
            ])
            .await?;
        let mut invocation = scripts::REAP.on(self.redis()).key(&self.keys().leased);
        invocation
            .key(&self.keys().due)
            .key(&self.keys().dead)
            .key(&self.keys().stats)
            .key(&self.keys().events)
            .key(&self.keys().callback_due)
            .key(&self.keys().callback_wake);
        for name in &leased {
            invocation.key(self.keys().task_raw(name));
        }
        for name in &leased {
            invocation.key(self.keys().callback_of(name));
        }
        for name in &dead {
            invocation.key(self.keys().task_raw(name));
        }
        let (reaped, pruned): (u64, u64) = invocation
            .arg(self.keys().task_prefix())
            .arg(leased.len())
            .arg(self.worker_policy().max_attempts)
            .arg(millis(self.dead_ttl()))
            .arg(self.worker_policy().dead_max)
            .run(self.redis())
            .await?;
        Ok(Sweep { reaped, pruned })
    }
}
