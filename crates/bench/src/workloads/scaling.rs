//! S1: does throughput grow with consumer processes? 1, 2 and 4 release `consumer` processes
//! drain one queue against one release `mock-api` whose every call takes 200 ms. A consumer with
//! 50 calls in flight then finishes at most 50 / 0.2 s = 250 tasks/s, whatever the machine: the
//! API's latency bounds it, not Redis or CPU (the situation taskq is for). Adding consumers adds
//! calls in flight, so N consumers should finish close to N times as many; the target is
//! at least 0.8·N times one consumer's rate.
//!
//! Each N starts from an empty Redis, a fresh mock and fresh consumers, with `tasks × N` tasks
//! pre-enqueued (so each N runs about as long), timed from the first consumer's spawn until the
//! queue's `done` counter reaches them all. The ratios are taken within one run, so the machine's
//! drift between runs cancels out. The mock's call counter, read 300 ms after the end, proves
//! each task was called exactly once (no two consumers ran one task).

use std::time::Duration;

use anyhow::{Context, Result};

use super::{Bench, Consumers, Metric, fill, metric};
use crate::redis_admin;
use crate::workload::{S_CONCURRENCY, S1_CONSUMERS, S1_DELAY_MS, bound_tasks_per_s};

const QUEUE: &str = "bench-s1";

/// What one N measured.
struct Leg {
    tasks_per_s: f64,
    consumer_cpu_s: f64,
}

/// One run of S1.
///
/// # Errors
/// When a process or Redis fails, or the API was not called once per task.
pub async fn run(bench: &Bench<'_>, run: u32) -> Result<Vec<Metric>> {
    let per_consumer = bench.settings.s1_tasks_per_consumer;
    let mut legs = Vec::with_capacity(S1_CONSUMERS.len());
    for n in S1_CONSUMERS {
        legs.push(leg(bench, run, n, per_consumer * n).await?);
    }
    let one = legs[0].tasks_per_s;
    let bound = bound_tasks_per_s(S_CONCURRENCY, S1_DELAY_MS);
    let total_tasks: u64 = S1_CONSUMERS.iter().map(|n| per_consumer * n).sum();
    let total_cpu: f64 = legs.iter().map(|l| l.consumer_cpu_s).sum();
    let mut metrics = Vec::new();
    for ((n, leg), [tasks, over_bound, ratio, efficiency]) in
        S1_CONSUMERS.into_iter().zip(&legs).zip(NAMES)
    {
        metrics.push(metric(tasks, "tasks/s", leg.tasks_per_s));
        metrics.push(metric(
            over_bound,
            "×",
            leg.tasks_per_s / (bound * n as f64),
        ));
        if n > 1 {
            let r = leg.tasks_per_s / one;
            metrics.push(metric(ratio, "×", r));
            metrics.push(metric(efficiency, "×", r / n as f64));
        }
    }
    metrics.push(metric(
        "consumer_cpu_us_per_task",
        "µs",
        total_cpu * 1e6 / total_tasks.max(1) as f64,
    ));
    Ok(metrics)
}

/// Metric names of each N of [`S1_CONSUMERS`]: tasks/s, that against the API bound, against
/// N=1, and that ratio over N (none of the last two for N=1).
const NAMES: [[&str; 4]; 3] = [
    ["n1_tasks_per_s", "n1_of_bound", "", ""],
    [
        "n2_tasks_per_s",
        "n2_of_bound",
        "n2_over_n1",
        "n2_efficiency",
    ],
    [
        "n4_tasks_per_s",
        "n4_of_bound",
        "n4_over_n1",
        "n4_efficiency",
    ],
];

async fn leg(bench: &Bench<'_>, run: u32, n: u64, tasks: u64) -> Result<Leg> {
    let label = format!("s1-r{run}-n{n}");
    redis_admin::flush(bench.redis).await?;
    let queue = bench.queue(QUEUE)?;
    fill(&queue, &label, 0..tasks).await?;

    let mock = bench.mock_api(S1_DELAY_MS, 1, false, &format!("{label}-mock-api"))?;
    let consumers = Consumers {
        count: n,
        redis_url: &bench.redis.url(),
        settings: vec![
            ("QUEUE_NAME", QUEUE.to_owned()),
            ("CONCURRENCY", S_CONCURRENCY.to_string()),
            ("POLL_INTERVAL_MS", "100".to_owned()),
        ],
        label,
        queues: std::slice::from_ref(&queue),
        each: tasks,
        within: Duration::from_secs(120),
    };
    let drained = bench.drain_by_consumers(&consumers, mock).await?;
    let leg = Leg {
        tasks_per_s: tasks as f64 / drained.elapsed.as_secs_f64(),
        consumer_cpu_s: drained.consumer_cpu_s,
    };
    drained
        .finish(tasks)
        .await
        .with_context(|| format!("N={n}"))?;
    Ok(leg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_consumer_count_has_its_own_metric_names() {
        for (n, names) in S1_CONSUMERS.into_iter().zip(NAMES) {
            assert!(names[0].starts_with(&format!("n{n}_")));
            assert_eq!(names[2].is_empty(), n == 1);
        }
    }
}
