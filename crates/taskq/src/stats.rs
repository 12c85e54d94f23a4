//! Reading the queue's state at one moment: `stats.lua` (counts per set, the oldest due task,
//! the counters the scripts keep), for the admin API, `/metrics`, tests and tools. Only reads.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::error::Result;
use crate::queue::Queue;
use crate::scripts::{self, RunScript, millis};

/// How many tasks are where, and the queue-wide counters, read at one moment.
#[derive(Debug, Clone, Default, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueueStats {
    /// Redis server time of the reading (ms since the Unix epoch).
    pub server_time_ms: u64,
    /// Tasks per set.
    pub counts: StateCounts,
    /// How long the earliest due task has been due (ms); 0 when none is overdue. A growing value
    /// means the consumers do not keep up.
    pub oldest_due_age_ms: u64,
    /// The counters the scripts keep (ever since the queue began): enqueued, duplicates, claimed,
    /// done, snoozed, retried, dead, stale, reaped, released, revived, cancelled, purged.
    pub totals: BTreeMap<String, u64>,
}

/// Tasks per set. Queued and processing tasks share the due set (the state that tells them
/// apart lives in each record), so they are counted together.
#[derive(Debug, Clone, Default, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StateCounts {
    /// Waiting for a call: queued or processing.
    pub due: u64,
    /// Of those, due now (the rest wait for a retry or the next poll).
    pub due_now: u64,
    /// Leased to a consumer.
    pub running: u64,
    /// Dead and kept.
    pub dead: u64,
    /// Cancelled and kept.
    pub cancelled: u64,
}

impl Queue {
    /// Reads the queue's statistics in one round trip.
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis fails.
    pub async fn stats(&self) -> Result<QueueStats> {
        let keys = self.keys();
        type Reply = (u64, u64, u64, i64, u64, u64, u64, BTreeMap<String, u64>);
        let (now, due, due_now, first_due, running, dead, cancelled, totals): Reply =
            scripts::STATS
                .on(self.redis())
                .key(&keys.due)
                .key(&keys.leased)
                .key(&keys.dead)
                .key(&keys.cancelled)
                .key(&keys.stats)
                .arg(millis(self.dead_ttl()))
                .read(self.redis())
                .await?;
        Ok(QueueStats {
            server_time_ms: now,
            counts: StateCounts {
                due,
                due_now,
                running,
                dead,
                cancelled,
            },
            oldest_due_age_ms: u64::try_from(first_due).map_or(0, |at| now.saturating_sub(at)),
            totals,
        })
    }
}
