//! S1: does throughput grow with consumer processes? Against a mock API whose every call takes
//! 200 ms, a consumer with 50 calls in flight finishes at most 250 tasks/s whatever the machine:
//! the API's latency bounds it, not Redis or CPU (the situation taskq is for). More consumers
//! add calls in flight, so N of them should finish close to N times as many (the target:
//! at least 0.8·N). Each N gets N times the tasks, so that each runs about as long, and the ratios
//! are taken within one run, so that the machine's drift between runs cancels out.

use anyhow::{Context, Result};

use super::fleet::{Consumers, mock_env};
use super::{Bench, Metric, metric};
use crate::workload::{S_CONCURRENCY, S1_BOUND_TASKS_PER_S, S1_CONSUMERS, S1_DELAY_MS};

const QUEUE: &str = "bench-s1";

/// One run of S1.
pub async fn run(bench: &Bench<'_>, run: u32) -> Result<Vec<Metric>> {
    let mut metrics = Vec::new();
    let (mut one, mut all_tasks, mut all_cpu_s) = (0.0, 0, 0.0);
    for n in S1_CONSUMERS {
        let tasks = bench.settings.s1_tasks_per_consumer * n;
        let (tasks_per_s, consumer_cpu_s) = leg(bench, run, n, tasks).await?;
        (all_tasks, all_cpu_s) = (all_tasks + tasks, all_cpu_s + consumer_cpu_s);
        let of_bound = tasks_per_s / (S1_BOUND_TASKS_PER_S * n as f64);
        metrics.push(metric(format!("n{n}_tasks_per_s"), "tasks/s", tasks_per_s));
        metrics.push(metric(format!("n{n}_of_bound"), "×", of_bound));
        if n == 1 {
            one = tasks_per_s;
        } else {
            let over = tasks_per_s / one;
            metrics.push(metric(format!("n{n}_over_n1"), "×", over));
            metrics.push(metric(format!("n{n}_efficiency"), "×", over / n as f64));
        }
    }
    let cpu_us = all_cpu_s * 1e6 / all_tasks.max(1) as f64;
    metrics.push(metric("consumer_cpu_us_per_task", "µs", cpu_us));
    Ok(metrics)
}

/// Drains `tasks` with `n` consumers; answers tasks/s and the consumers' CPU seconds.
async fn leg(bench: &Bench<'_>, run: u32, n: u64, tasks: u64) -> Result<(f64, f64)> {
    let label = format!("s1-r{run}-n{n}");
    let queue = bench.filled(QUEUE, &label, tasks).await?;
    let consumers = Consumers {
        count: n,
        mock: mock_env(S1_DELAY_MS, 1, &[]),
        ..Consumers::of(bench, &label, queue, tasks, S_CONCURRENCY)
    };
    let drained = bench.drain_by_consumers(&consumers).await;
    let drained = drained.with_context(|| format!("N={n}"))?;
    let tasks_per_s = tasks as f64 / drained.elapsed.as_secs_f64();
    Ok((tasks_per_s, drained.consumer_cpu_s))
}
