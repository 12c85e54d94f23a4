//! What the Redis holding a queue says about itself: memory in use against `maxmemory`, the
//! eviction policy, persistence, and how many tasks the queue holds.
//!
//! taskq keeps its promises only on a Redis that never drops keys by itself: with
//! `maxmemory-policy allkeys-lru` (a cache's setting, the default of some managed offers) Redis
//! silently evicts task records and set entries. And a Redis at `maxmemory` with `noeviction`
//! refuses every script that writes, the consumer's too, so nothing drains. So both binaries read
//! this report at start and then periodically: they log an error for an evicting policy, a
//! warning for persistence off, and show both on `/healthz` and `/metrics`; the producer also
//! refuses enqueues above a high-water mark of `maxmemory`, so the consumers keep the headroom
//! to finish what was accepted.
//!
//! Memory, policy and AOF come from `INFO` inside a read-only script (so they come from the master
//! holding the queue, on a cluster too, and still answer at `maxmemory`); RDB snapshots from
//! `CONFIG GET save`, which a managed Redis may forbid: then persistence is unknown unless AOF is
//! on.

use std::sync::{PoisonError, RwLock};
use std::time::{Duration, Instant};

use crate::error::Result;
use crate::queue::Queue;
use crate::scripts::RunScript;
use crate::scripts::SERVER;

/// The one eviction policy under which Redis never drops a queue's keys by itself.
pub const SAFE_POLICY: &str = "noeviction";

/// What the Redis holding a queue says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerReport {
    /// Bytes in use (`used_memory`).
    pub used_memory: u64,
    /// The memory limit (`maxmemory`); 0 when there is none.
    pub maxmemory: u64,
    /// `maxmemory-policy`.
    pub policy: String,
    /// Whether the append-only file is on.
    pub aof: bool,
    /// Whether RDB snapshots are configured (`save` not empty); `None` when `CONFIG` is refused.
    pub rdb: Option<bool>,
    /// Tasks waiting for a call or in one (due and leased).
    pub queued: u64,
}

impl ServerReport {
    /// Whether Redis may drop keys by itself: any policy but `noeviction`.
    pub fn evicts(&self) -> bool {
        self.policy != SAFE_POLICY
    }

    /// Whether the data survives a restart: AOF or RDB on; `None` when unknown.
    pub fn persistence(&self) -> Option<bool> {
        if self.aof { Some(true) } else { self.rdb }
    }

    /// What is wrong with this Redis for a queue, worst first: an evicting policy (an error) and
    /// persistence off (a warning, since some deployments accept it).
    pub fn problems(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        if self.evicts() {
            problems.push(Problem::Evicts(self.policy.clone()));
        }
        if self.persistence() == Some(false) {
            problems.push(Problem::NoPersistence);
        }
        problems
    }

    /// Logs each of [`ServerReport::problems`] for `queue`: an error for eviction, a warning for
    /// persistence.
    pub fn log_problems(&self, queue: &str) {
        for problem in self.problems() {
            match problem {
                Problem::Evicts(_) => tracing::error!(queue, "{problem}"),
                Problem::NoPersistence => tracing::warn!(queue, "{problem}"),
            }
        }
    }

    /// The report as a JSON object for `/healthz`.
    pub fn health(&self) -> serde_json::Value {
        serde_json::json!({
            "maxmemory_policy": self.policy,
            "eviction_safe": !self.evicts(),
            "persistence": self.persistence(),
            "used_memory_bytes": self.used_memory,
            "maxmemory_bytes": self.maxmemory,
            "problems": self.problems().iter().map(ToString::to_string).collect::<Vec<_>>(),
        })
    }
}

/// Something about a Redis that puts a queue's promises at risk.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// Redis drops keys under memory pressure.
    #[error(
        "maxmemory-policy is {0}: Redis may evict task records and queue entries, losing tasks \
         without a trace; set `maxmemory-policy noeviction` (CONFIG SET maxmemory-policy \
         noeviction, and in redis.conf) and size maxmemory for the queue"
    )]
    Evicts(String),
    /// Neither AOF nor RDB snapshots are on.
    #[error(
        "persistence is off (no AOF, no RDB snapshots): a Redis restart loses every task; turn \
         on `appendonly yes` unless losing the queue on a restart is acceptable"
    )]
    NoPersistence,
}

impl Queue {
    /// What the Redis holding this queue says about itself (one script call, plus `CONFIG GET
    /// save`, whose refusal is tolerated).
    ///
    /// # Errors
    /// [`crate::Error::Redis`] when Redis does not answer the script.
    pub async fn server_report(&self) -> Result<ServerReport> {
        let (used_memory, maxmemory, policy, aof, queued): (u64, u64, String, u8, u64) = SERVER
            .on(self.redis())
            .key(&self.keys().due)
            .key(&self.keys().leased)
            .read(&self.conn())
            .await?;
        let save: redis::RedisResult<Vec<String>> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("save")
            .query_async(&mut self.conn())
            .await;
        // ["save", "<rules>"]: empty rules, no snapshots.
        let rdb = save
            .ok()
            .and_then(|reply| reply.get(1).map(|rules| !rules.trim().is_empty()));
        Ok(ServerReport {
            used_memory,
            maxmemory,
            policy,
            aof: aof == 1,
            rdb,
            queued,
        })
    }
}

/// How often problems that persist are logged again.
const LOG_AGAIN_AFTER: Duration = Duration::from_secs(600);

/// The latest [`ServerReport`] of a queue's Redis, refreshed in the background by
/// [`Watch::run`]; readers never wait on Redis.
#[derive(Debug, Default)]
pub struct Watch {
    latest: RwLock<Option<ServerReport>>,
}

impl Watch {
    /// The latest report; `None` until Redis first answered.
    pub fn latest(&self) -> Option<ServerReport> {
        self.latest
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Keeps `report` as the latest.
    pub fn record(&self, report: ServerReport) {
        *self.latest.write().unwrap_or_else(PoisonError::into_inner) = Some(report);
    }

    /// Reads `queue`'s report every `every`, forever: logs its problems when first seen, when
    /// they change, and every ten minutes while they last. A failed read keeps the last report
    /// (Redis being down is reported elsewhere).
    pub async fn run(&self, queue: Queue, every: Duration) {
        let name = queue.keys().queue().to_owned();
        let mut logged: Option<(Vec<Problem>, Instant)> = None;
        loop {
            match queue.server_report().await {
                Ok(report) => {
                    let problems = report.problems();
                    let stale = logged.as_ref().is_none_or(|(seen, at)| {
                        *seen != problems || at.elapsed() >= LOG_AGAIN_AFTER
                    });
                    if stale {
                        report.log_problems(&name);
                        logged = Some((problems, Instant::now()));
                    }
                    self.record(report);
                }
                Err(err) => tracing::debug!(queue = %name, error = %err, "reading Redis' report"),
            }
            tokio::time::sleep(every).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(policy: &str, aof: bool, rdb: Option<bool>) -> ServerReport {
        ServerReport {
            used_memory: 850,
            maxmemory: 1000,
            policy: policy.into(),
            aof,
            rdb,
            queued: 3,
        }
    }

    #[test]
    fn only_noeviction_is_safe_and_persistence_is_known_when_it_can_be() {
        assert!(report("noeviction", true, None).problems().is_empty());
        assert_eq!(
            report("allkeys-lru", false, Some(true)).problems(),
            vec![Problem::Evicts("allkeys-lru".into())]
        );
        assert_eq!(
            report("noeviction", false, Some(false)).problems(),
            vec![Problem::NoPersistence]
        );
        assert_eq!(report("noeviction", false, None).persistence(), None);
    }
}
