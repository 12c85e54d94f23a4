//! W2 and W4: the library worker with a no-op handler, in a child process (see [`crate::drain`]).
//! W4 asks whether depth costs speed: the claim takes the earliest due tasks from a sorted set,
//! O(log N) per claim, so a million queued tasks should drain about as fast as twenty thousand.
//! Filling a million takes a while, so only the first run fills the queue; later runs top it
//! back up, untimed, with new names.

use anyhow::{Result, bail};
use testkit::Window;

use super::{Bench, Metric, drain_metrics, fill, metric, mib, write_profile};
use crate::drain::{DrainArgs, in_child};
use crate::workload::Workload;

const W4_QUEUE: &str = "bench-w4";

/// One run of W2.
pub async fn w2(bench: &Bench<'_>, run: u32) -> Result<Vec<Metric>> {
    let (n, label) = (bench.settings.tasks(Workload::W2), format!("w2-r{run}"));
    bench.filled("bench-w2", &label, n).await?;
    drain(bench, "bench-w2", n, &label).await
}

/// One run of W4.
pub async fn w4(bench: &Bench<'_>, run: u32) -> Result<Vec<Metric>> {
    let (depth, measure) = (bench.settings.w4_depth, bench.settings.w4_measure);
    if measure > depth {
        bail!("W4 cannot time {measure} completions of {depth} queued tasks");
    }
    let queue = bench.queue(W4_QUEUE)?;
    let mut fill_metrics = Vec::new();
    if run == 1 {
        bench.redis.try_flush_all().await?;
        let took = fill(&queue, "w4-fill", 0..depth).await?.as_secs_f64();
        let memory = bench.redis.try_info("memory", "used_memory")?;
        let memory: f64 = memory.parse()?;
        fill_metrics = vec![
            metric("fill_s", "s", took),
            metric("fill_tasks_per_s", "tasks/s", depth as f64 / took),
            metric("redis_memory_mib", "MiB", memory / (1024.0 * 1024.0)),
        ];
    } else {
        let due = queue.stats().await?.counts.due;
        let top_up = 0..depth.saturating_sub(due);
        fill(&queue, &format!("w4-top-r{run}"), top_up).await?;
    }
    let due = queue.stats().await?.counts.due;
    if due != depth {
        bail!("{due} tasks queued instead of {depth}");
    }
    let mut metrics = drain(bench, W4_QUEUE, measure, &format!("w4-r{run}")).await?;
    metrics.extend(fill_metrics);
    Ok(metrics)
}

/// Drains `tasks` of `queue` in the child; Redis' per-command profile of the drain goes to
/// `<raw>/<label>-redis-profile.json`.
async fn drain(bench: &Bench<'_>, queue: &str, tasks: u64, label: &str) -> Result<Vec<Metric>> {
    let window = Window::open(&[bench.redis], None).await?;
    let args = DrainArgs {
        redis_url: bench.redis.url(),
        queue: queue.into(),
        tasks,
        concurrency: bench.settings.w2_concurrency,
        batch_size: bench.settings.w2_batch_size,
        timeout_s: 120,
    };
    let report = in_child(&args).await?;
    let spent = window.close().await?;
    write_profile(bench, label, &spent.redis, tasks)?;
    let (stale, errors) = (report.stale, report.redis_errors);
    if stale > 0 || errors > 0 {
        bail!("the worker saw {stale} stale answers and {errors} Redis errors");
    }
    let (secs, cpu_s, rss_mib) = (report.elapsed_s, report.cpu_s, mib(report.peak_rss_kib));
    let metrics = drain_metrics("worker", tasks, secs, cpu_s, rss_mib, &spent);
    Ok(metrics)
}
