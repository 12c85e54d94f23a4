//! W5: a fleet sharing one API that sells a hard quota, the reason a limit must hold across
//! processes. Four release consumers, far more eager than the API allows (800 slots), drain one
//! queue against a release mock-api that admits 500 calls in any second and 50 in flight and
//! answers 429 beyond. Once with the queue's limit set to the API's quota (the limiter in Redis
//! shared by the four), once without (each consumer only backs the refused task off): the
//! difference is what the limit saves. The anchors' `w5` step runs BullMQ's global rate limiter
//! on the same procedure.

use std::time::Duration;

use anyhow::Result;

use super::fleet::Consumers;
use super::{Bench, Metric, fill, metric};
use crate::workload::{W5_CONCURRENCY, W5_CONSUMERS, W5_DELAY_MS, W5_IN_FLIGHT, W5_RATE};

const QUEUE: &str = "bench-w5";

/// One run of W5: the limited leg, then the unlimited one.
///
/// # Errors
/// When a process or Redis fails, or the API was not called once per task.
pub async fn run(bench: &Bench<'_>, run: u32) -> Result<Vec<Metric>> {
    let tasks = bench.settings.tasks(crate::workload::Workload::W5);
    let mut metrics = leg(bench, run, tasks, true).await?;
    metrics.extend(leg(bench, run, tasks, false).await?);
    Ok(metrics)
}

/// Drains `tasks` with the four consumers, `limited` by the API's quota or not.
async fn leg(bench: &Bench<'_>, run: u32, tasks: u64, limited: bool) -> Result<Vec<Metric>> {
    let prefix = if limited { "limited" } else { "unlimited" };
    let label = format!("w5-r{run}-{prefix}");
    bench.redis.try_flush_all().await?;
    let queue = bench.queue(QUEUE)?;
    fill(&queue, &label, 0..tasks).await?;
    let mut env = vec![("QUEUE_NAME", QUEUE.to_owned())];
    if limited {
        env.extend([
            ("API_RATE_PER_SEC", W5_RATE.to_string()),
            ("API_RATE_BURST", W5_IN_FLIGHT.to_string()),
            ("API_MAX_IN_FLIGHT", W5_IN_FLIGHT.to_string()),
        ]);
    }
    let consumers = Consumers {
        label,
        count: W5_CONSUMERS,
        servers: vec![bench.redis],
        env,
        concurrency: W5_CONCURRENCY,
        api: (W5_DELAY_MS, 1, false),
        api_limits: vec![
            ("MOCK_RATE_LIMIT_PER_SEC", W5_RATE.to_string()),
            ("MOCK_MAX_IN_FLIGHT", W5_IN_FLIGHT.to_string()),
        ],
        queues: std::slice::from_ref(&queue),
        each: tasks,
        within: Duration::from_secs(120),
    };
    let mut drained = bench.drain_by_consumers(&consumers).await?;
    let stats = drained.mock.try_stats(&bench.http).await?;
    drained.finish(tasks).await?;
    let field = |name: &str| stats[name].as_f64().unwrap_or(0.0);
    let (calls, throttled) = (field("calls"), field("throttled"));
    let secs = drained.elapsed.as_secs_f64();
    let name = |what: &str| format!("{prefix}_{what}");
    Ok(vec![
        metric(name("calls_per_s"), "calls/s", calls / secs),
        metric(name("of_quota"), "×", calls / secs / W5_RATE as f64),
        metric(
            name("throttled_share"),
            "%",
            100.0 * throttled / (calls + throttled),
        ),
        metric(
            name("max_in_flight_seen"),
            "calls",
            field("max_in_flight_seen"),
        ),
        metric(
            name("redis_cpu_us_per_call"),
            "µs",
            drained.spent.redis.cpu_s * 1e6 / calls,
        ),
        metric(
            name("consumer_cpu_us_per_call"),
            "µs",
            drained.consumer_cpu_s * 1e6 / calls,
        ),
    ])
}
