//! W1b: enqueue through the library, without HTTP. One at a time with 64 in flight (64 tokio
//! tasks sharing one queue handle, so one multiplexed connection, as the anchors' 64 lanes do),
//! then `enqueue_many` in sequential chunks (the anchors' `addBulk`). Connection set-up is
//! outside the timing, as it is for the anchors.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result, bail};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{Bench, Metric, Workload, fill, metric, names};

const LANES: usize = 64;

/// One run of W1b.
///
/// # Errors
/// When Redis fails or a task was not created.
pub async fn run(bench: &Bench<'_>, run: u32) -> Result<Vec<Metric>> {
    let n = bench.settings.tasks(Workload::W1b);

    bench.redis.flush().await?;
    let queue = bench.queue("bench-w1b")?;
    queue.ping().await?;
    let all = Arc::new(names(&format!("w1b-r{run}"), 0..n)?);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut lanes: JoinSet<taskq::Result<u64>> = JoinSet::new();
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
    let mut created = 0;
    while let Some(lane) = lanes.join_next().await {
        created += lane.context("an enqueue lane failed")??;
    }
    let one_by_one = started.elapsed();
    if created != n {
        bail!("{created} of {n} tasks created");
    }

    bench.redis.flush().await?;
    let queue = bench.queue("bench-w1b-many")?;
    queue.ping().await?;
    let batched = fill(&queue, &format!("w1b-many-r{run}"), 0..n).await?;
    let due = queue.counts().await?.due;
    if due != n {
        bail!("{due} of {n} tasks due after enqueue_many");
    }

    Ok(vec![
        metric(
            "enqueue_tasks_per_s",
            "tasks/s",
            n as f64 / one_by_one.as_secs_f64(),
        ),
        metric(
            "enqueue_many_tasks_per_s",
            "tasks/s",
            n as f64 / batched.as_secs_f64(),
        ),
    ])
}
