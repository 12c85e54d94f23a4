//! What the Redis holding a queue says about itself: memory in use against `maxmemory`, the
//! eviction policy, persistence, the replicas online, and how many tasks the queue holds.
//!
//! taskq keeps its promises only on a Redis that never drops keys by itself: with
//! `maxmemory-policy allkeys-lru` (a cache's setting, the default of some managed offers) Redis
//! silently evicts task records and set entries. With `REDIS_WAIT_REPLICAS`, a master with fewer
//! replicas online than that (after a failover, say) acknowledges no change: every enqueue is
//! refused and no claim is acted on. So every binary reads this report at start and then
//! periodically: it logs an error for an evicting policy, a warning for too few replicas or
//! persistence off, and shows them on `/healthz` and `/metrics`. Each reading is also stored for
//! the enqueue script's admission control (see `enqueue.lua`).
//!
//! Memory, policy, AOF and replicas come from `INFO` inside a script (so they come from the master
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
    /// Replicas online, those that acknowledge writes (`WAIT` counts them).
    pub replicas: u32,
    /// Replicas every change waits for (`REDIS_WAIT_REPLICAS`); 0: none.
    pub wait_replicas: u32,
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

    /// Whether enough replicas are online for every change to be acknowledged: fewer than
    /// `wait_replicas` means every enqueue is refused and no claim is acted on.
    pub fn replicas_suffice(&self) -> bool {
        self.replicas >= self.wait_replicas
    }

    /// What is wrong with this Redis for a queue, worst first: an evicting policy (an error),
    /// fewer replicas online than every change waits for and persistence off (warnings: the
    /// first stops the queue until a replica is back, the second some deployments accept).
    pub fn problems(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        if self.evicts() {
            problems.push(Problem::Evicts(self.policy.clone()));
        }
        if !self.replicas_suffice() {
            problems.push(Problem::TooFewReplicas {
                online: self.replicas,
                wanted: self.wait_replicas,
            });
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
                Problem::TooFewReplicas { .. } | Problem::NoPersistence => {
                    tracing::warn!(queue, "{problem}");
                }
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
            "replicas_online": self.replicas,
            "wait_replicas": self.wait_replicas,
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
    /// Fewer replicas are online than every change waits for (`REDIS_WAIT_REPLICAS`): no change
    /// is acknowledged, so every enqueue is refused and no claim is acted on, until one is back.
    #[error(
        "{online} replicas are online and REDIS_WAIT_REPLICAS is {wanted}: no change can be \
         acknowledged, so every enqueue is refused and no task is run until enough replicas are \
         back (after a failover, the new master needs {wanted} replicas of its own: run at least \
         one more replica than REDIS_WAIT_REPLICAS)"
    )]
    TooFewReplicas {
        /// Replicas online.
        online: u32,
        /// Replicas every change waits for.
        wanted: u32,
    },
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
        let (used_memory, maxmemory, policy, aof, queued, replicas): (
            u64,
            u64,
            String,
            u8,
            u64,
            u32,
        ) = SERVER
            .on(self.redis())
            .key(&self.keys().due)
            .key(&self.keys().leased)
            .key(self.keys().memory(self.redis().is_cluster()))
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
            replicas,
            wait_replicas: self
                .redis()
                .wait_for_replicas()
                .map_or(0, |wait| wait.replicas),
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
            replicas: 1,
            wait_replicas: 1,
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
        let alone = ServerReport {
            replicas: 0,
            ..report("noeviction", true, None)
        };
        assert_eq!(
            alone.problems(),
            vec![Problem::TooFewReplicas {
                online: 0,
                wanted: 1
            }]
        );
    }
}
