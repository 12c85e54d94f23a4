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
use crate::metrics::{Exposition, Kind};
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
                    *self.latest.write().unwrap_or_else(PoisonError::into_inner) = Some(report);
                }
                Err(err) => tracing::debug!(queue = %name, error = %err, "reading Redis' report"),
            }
            tokio::time::sleep(every).await;
        }
    }
}

/// Each queue's latest report, for the queues whose Redis has answered.
fn latest_reports<'a>(watches: &[(&'a str, &Watch)]) -> Vec<(&'a str, ServerReport)> {
    watches
        .iter()
        .filter_map(|(queue, watch)| Some((*queue, watch.latest()?)))
        .collect()
}

/// The `/healthz` section of every binary: each queue's latest [`ServerReport::health`], keyed
/// by queue (queues whose Redis has not answered yet are left out).
pub fn health_of(watches: &[(&str, &Watch)]) -> serde_json::Map<String, serde_json::Value> {
    latest_reports(watches)
        .into_iter()
        .map(|(queue, report)| (queue.to_owned(), report.health()))
        .collect()
}

/// Writes the configuration and memory series of each queue's Redis: memory in use and its
/// limit, whether the eviction policy is safe (labelled with the policy), and whether
/// persistence is on (left out when unknown). Queues whose Redis has not answered yet are left
/// out.
pub fn write_server_reports(page: &mut Exposition, watches: &[(&str, &Watch)]) {
    let reports = latest_reports(watches);
    let known = || reports.iter().map(|(queue, report)| (*queue, report));
    page.family(
        "taskq_redis_memory_used_bytes",
        Kind::Gauge,
        "Memory in use by the Redis holding the queue (INFO used_memory).",
    );
    for (queue, report) in known() {
        page.sample(
            "taskq_redis_memory_used_bytes",
            &[("queue", queue)],
            report.used_memory,
        );
    }
    page.family(
        "taskq_redis_memory_max_bytes",
        Kind::Gauge,
        "maxmemory of the Redis holding the queue; 0 when it has none.",
    );
    for (queue, report) in known() {
        page.sample(
            "taskq_redis_memory_max_bytes",
            &[("queue", queue)],
            report.maxmemory,
        );
    }
    page.family(
        "taskq_redis_eviction_policy_ok",
        Kind::Gauge,
        "1 when maxmemory-policy is noeviction; 0 when Redis may evict the queue's keys.",
    );
    for (queue, report) in known() {
        page.sample(
            "taskq_redis_eviction_policy_ok",
            &[("queue", queue), ("policy", &report.policy)],
            u8::from(!report.evicts()),
        );
    }
    page.family(
        "taskq_redis_persistence_enabled",
        Kind::Gauge,
        "1 when AOF or RDB snapshots are on, 0 when both are off (absent when CONFIG is refused \
         and AOF is off).",
    );
    for (queue, report) in known() {
        if let Some(on) = report.persistence() {
            page.sample(
                "taskq_redis_persistence_enabled",
                &[("queue", queue)],
                u8::from(on),
            );
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

    #[test]
    fn the_series_carry_the_policy_and_leave_unknown_persistence_out() {
        let (lru, unknown) = (
            report("allkeys-lru", false, Some(false)),
            report("noeviction", false, None),
        );
        let watches = [Watch::default(), Watch::default(), Watch::default()];
        *watches[0].latest.write().unwrap() = Some(lru);
        *watches[1].latest.write().unwrap() = Some(unknown);
        let mut page = Exposition::new();
        write_server_reports(
            &mut page,
            &[("a", &watches[0]), ("b", &watches[1]), ("c", &watches[2])],
        );
        assert_eq!(
            health_of(&[("a", &watches[0]), ("c", &watches[2])])
                .keys()
                .collect::<Vec<_>>(),
            ["a"]
        );
        let text = page.finish();
        for line in [
            "taskq_redis_memory_used_bytes{queue=\"a\"} 850",
            "taskq_redis_memory_max_bytes{queue=\"b\"} 1000",
            "taskq_redis_eviction_policy_ok{queue=\"a\",policy=\"allkeys-lru\"} 0",
            "taskq_redis_eviction_policy_ok{queue=\"b\",policy=\"noeviction\"} 1",
            "taskq_redis_persistence_enabled{queue=\"a\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        assert!(!text.contains("persistence_enabled{queue=\"b\"}"));
        assert!(!text.contains("queue=\"c\""));
    }
}
