//! What the Redis holding each queue says about itself (see `taskq::server`), as both services
//! show it: per queue on `/healthz`, and as gauges on `/metrics`.

use service_kit::prometheus::{Exposition, Kind};
use taskq::server::{ServerReport, Watch};

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
/// limit, whether the eviction policy is safe (labelled with the policy), the replicas online
/// against those every change waits for, and whether persistence is on (left out when unknown).
/// Queues whose Redis has not answered yet are left out.
pub fn write_server_reports(page: &mut Exposition, watches: &[(&str, &Watch)]) {
    let reports = latest_reports(watches);
    let known = || reports.iter().map(|(queue, report)| (*queue, report));
    let mut gauge = |name: &str, help: &str, value: fn(&ServerReport) -> u64| {
        page.family(name, Kind::Gauge, help);
        for (queue, report) in known() {
            page.sample(name, &[("queue", queue)], value(report));
        }
    };
    gauge(
        "taskq_redis_memory_used_bytes",
        "Memory in use by the Redis holding the queue (INFO used_memory).",
        |report| report.used_memory,
    );
    gauge(
        "taskq_redis_memory_max_bytes",
        "maxmemory of the Redis holding the queue; 0 when it has none.",
        |report| report.maxmemory,
    );
    gauge(
        "taskq_redis_replicas_online",
        "Replicas online of the master holding the queue: those that acknowledge writes.",
        |report| report.replicas.into(),
    );
    gauge(
        "taskq_redis_wait_replicas",
        "Replicas every change waits for (REDIS_WAIT_REPLICAS); with fewer online, every enqueue \
         is refused and no task is run.",
        |report| report.wait_replicas.into(),
    );
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

    /// A Redis at 850 of 1,000 bytes, without AOF.
    fn report(policy: &str, rdb: Option<bool>) -> ServerReport {
        let (used_memory, maxmemory, policy) = (850, 1000, policy.into());
        let (aof, queued) = (false, 3);
        ServerReport {
            used_memory,
            maxmemory,
            policy,
            aof,
            rdb,
            queued,
            replicas: 0,
            wait_replicas: 0,
        }
    }

    #[test]
    fn the_series_carry_the_policy_and_leave_unknown_persistence_out() {
        let (lru, unknown) = (
            report("allkeys-lru", Some(false)),
            report("noeviction", None),
        );
        let watches = [Watch::default(), Watch::default(), Watch::default()];
        watches[0].record(lru);
        watches[1].record(unknown);
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
