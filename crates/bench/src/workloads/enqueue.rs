//! W1b: enqueue through the library, without HTTP: one at a time with 64 in flight on one queue
//! handle (one multiplexed connection, as the anchors' 64 lanes), then `enqueue_many` in chunks
//! (the anchors' `addBulk`); connection set-up is untimed, as for the anchors. With Redis' own
//! limit for the same script (`redis_limit`) and where the CPU went, the figures say whether the
//! library, Redis or the machine bounds them.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Result, bail};
use testkit::{Spent, Window};
use tokio::task::JoinSet;

use super::{Bench, Metric, fill, joined, metric, names};
use crate::redis_limit::{self, REQUESTS};
use crate::workload::Workload;

const LANES: usize = 64;

/// One run of W1b; fails when a task was not created or `redis-benchmark` fails.
pub async fn run(bench: &Bench<'_>, run: u32) -> Result<Vec<Metric>> {
    let n = bench.settings.tasks(Workload::W1b);
    let me = Some(std::process::id());
    bench.redis.try_flush_all().await?;
    let queue = bench.queue("bench-w1b")?;
    queue.ping().await?;
    let all = Arc::new(names(&format!("w1b-r{run}"), 0..n)?);
    let next = Arc::new(AtomicUsize::new(0));
    let window = Window::open(&[bench.redis], me).await?;
    let mut lanes: JoinSet<Result<u64>> = JoinSet::new();
    for _ in 0..LANES {
        let (queue, all, next) = (queue.clone(), Arc::clone(&all), Arc::clone(&next));
        lanes.spawn(async move {
            let mut created = 0_u64;
            while let Some(name) = all.get(next.fetch_add(1, Ordering::Relaxed)) {
                created += u64::from(queue.enqueue(name).await?.created);
            }
            Ok(created)
        });
    }
    let created: u64 = joined(lanes).await?.into_iter().sum();
    let one_by_one = window.close().await?;
    if created != n {
        bail!("{created} of {n} tasks created");
    }

    bench.redis.try_flush_all().await?;
    let queue = bench.queue("bench-w1b-many")?;
    queue.ping().await?;
    let window = Window::open(&[bench.redis], me).await?;
    fill(&queue, &format!("w1b-many-r{run}"), 0..n).await?;
    let batched = window.close().await?;
    let due = queue.stats().await?.counts.due;
    if due != n {
        bail!("{due} of {n} tasks due after enqueue_many");
    }

    let queue = bench.queue("bench-w1b-limit")?;
    let mut conn = bench.redis.try_async_connection().await?;
    let call = redis_limit::loaded_call(&mut conn, &queue).await?;
    let program = &bench.settings.redis_benchmark;
    let limit = redis_limit::run(bench.redis, program, &queue, &call, 1).await?;
    let pipelined = redis_limit::run(bench.redis, program, &queue, &call, 16).await?;

    let enqueue_per_s = n as f64 / one_by_one.elapsed.as_secs_f64();
    let many_per_s = n as f64 / batched.elapsed.as_secs_f64();
    let (limit_per_s, piped) = (limit.requests_per_s, pipelined.requests_per_s);
    let piped_us = pipelined.spent.redis.cpu_s * 1e6 / REQUESTS as f64;
    let of_piped = enqueue_per_s / piped;
    let mut metrics = vec![
        metric("enqueue_tasks_per_s", "tasks/s", enqueue_per_s),
        metric("enqueue_many_tasks_per_s", "tasks/s", many_per_s),
    ];
    metrics.extend(cpu_metrics("enqueue", &one_by_one, n, true));
    metrics.extend(cpu_metrics("enqueue_many", &batched, n, true));
    metrics.push(metric("redis_limit_enqueue_per_s", "tasks/s", limit_per_s));
    metrics.extend(cpu_metrics("redis_limit", &limit.spent, REQUESTS, false));
    metrics.extend([
        metric("enqueue_of_redis_limit", "×", enqueue_per_s / limit_per_s),
        metric("redis_limit_enqueue_pipelined_per_s", "tasks/s", piped),
        metric(
            "redis_limit_pipelined_redis_cpu_us_per_task",
            "µs",
            piped_us,
        ),
        metric("enqueue_of_pipelined_redis_limit", "×", of_piped),
    ]);
    Ok(metrics)
}

/// Redis' CPU per task and share of a core, the machine's busy cores, and with `bench` this
/// process' share of a core (the window watched it), each named `<phase>_...`.
fn cpu_metrics(phase: &str, spent: &Spent, tasks: u64, bench: bool) -> Vec<Metric> {
    let name = |what: &str| format!("{phase}_{what}");
    let (redis_cpu_s, busy) = (spent.redis.cpu_s, spent.machine_busy_cores);
    let cpu_us = redis_cpu_s * 1e6 / tasks.max(1) as f64;
    let mut metrics = vec![
        metric(name("redis_cpu_us_per_task"), "µs", cpu_us),
        metric(name("redis_cpu_share"), "cores", spent.share(redis_cpu_s)),
        metric(name("machine_busy_cores"), "cores", busy),
    ];
    if bench {
        let share = spent.share(spent.process_cpu_s);
        metrics.push(metric(name("bench_cpu_share"), "cores", share));
    }
    metrics
}
