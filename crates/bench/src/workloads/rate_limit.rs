//! W5: a fleet sharing one API that sells a hard quota, the reason a limit must hold across
//! processes. Four release consumers, far more eager than the API allows (800 slots), drain one
//! queue against a release mock-api that admits 500 calls in any second and 50 in flight and
//! answers 429 beyond. Once with the queue's limit set to the API's quota (the limiter in Redis
//! shared by the four), once without (each consumer only backs the refused task off): the
//! difference is what the limit saves. The anchors' `w5` step runs BullMQ's global rate limiter
//! on the same procedure.

use anyhow::Result;

use super::fleet::{Consumers, mock_env};
use super::{Bench, Metric, metric};
use crate::workload::{W5_CONCURRENCY, W5_CONSUMERS, W5_DELAY_MS, W5_IN_FLIGHT, W5_RATE};

const QUEUE: &str = "bench-w5";

/// One run of W5: the limited leg, then the unlimited one.
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
    let queue = bench.filled(QUEUE, &label, tasks).await?;
    let api_limits = [
        ("MOCK_RATE_LIMIT_PER_SEC", W5_RATE.to_string()),
        ("MOCK_MAX_IN_FLIGHT", W5_IN_FLIGHT.to_string()),
    ];
    let mut consumers = Consumers {
        count: W5_CONSUMERS,
        mock: mock_env(W5_DELAY_MS, 1, &api_limits),
        ..Consumers::of(bench, &label, queue, tasks, W5_CONCURRENCY)
    };
    if limited {
        consumers.env.extend([
            ("API_RATE_PER_SEC", W5_RATE.to_string()),
            ("API_RATE_BURST", W5_IN_FLIGHT.to_string()),
            ("API_MAX_IN_FLIGHT", W5_IN_FLIGHT.to_string()),
        ]);
    }
    let drained = bench.drain_by_consumers(&consumers).await?;
    let field = |name: &str| drained.mock_stats[name].as_f64().unwrap_or(0.0);
    let (calls, throttled) = (field("calls"), field("throttled"));
    let (secs, most_in_flight) = (drained.elapsed.as_secs_f64(), field("max_in_flight_seen"));
    let throttled_pct = 100.0 * throttled / (calls + throttled);
    let per_call = |cpu_s: f64| cpu_s * 1e6 / calls;
    let (redis_us, consumer_us) = (
        per_call(drained.spent.redis.cpu_s),
        per_call(drained.consumer_cpu_s),
    );
    let name = |what: &str| format!("{prefix}_{what}");
    Ok(vec![
        metric(name("calls_per_s"), "calls/s", calls / secs),
        metric(name("of_quota"), "×", calls / secs / W5_RATE as f64),
        metric(name("throttled_share"), "%", throttled_pct),
        metric(name("max_in_flight_seen"), "calls", most_in_flight),
        metric(name("redis_cpu_us_per_call"), "µs", redis_us),
        metric(name("consumer_cpu_us_per_call"), "µs", consumer_us),
    ])
}
