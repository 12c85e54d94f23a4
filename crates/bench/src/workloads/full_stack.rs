//! W2h and W3d: the release `consumer` against the release `mock-api`, tasks pre-enqueued with
//! `enqueue_many` (untimed), timed from the consumer's spawn (its start-up and first connection
//! count, as a real deployment's would) until the queue's `done` counter reaches the task count.
//! The mock's own call counter then proves every task was called exactly as often as it should
//! be, read again 300 ms later so a late duplicate call would show.
//!
//! Both report Redis' cost (round trips, CPU) and the consumer's CPU: W2h per task (one call
//! each, answered "done"), W3d per API call ("poll": two answered "processing", then "done"), the
//! two figures the capacity maths of issue 5 rests on.

use std::time::Duration;

use anyhow::{Result, bail};
use tokio::time::{Instant, sleep};

use super::{Bench, Metric, Workload, fill, metric, mib, redis_metrics, wait_done, write_profile};
use crate::probe::{Snapshot, Usage};
use crate::process::{Service, cpu_s, free_addr};

/// One full-stack drain.
struct Spec {
    label: &'static str,
    tasks: u64,
    delay_ms: u64,
    polls: u64,
    concurrency: u64,
    poll_interval_ms: u64,
}

struct Outcome {
    elapsed: Duration,
    consumer_rss_kib: u64,
    /// The consumer's CPU seconds from its spawn until the tasks were done.
    consumer_cpu_s: f64,
    usage: Usage,
    window: Duration,
}

/// One run of W2h.
///
/// # Errors
/// When a process or Redis fails, or the API was not called once per task.
pub async fn w2h(bench: &Bench<'_>, run: u32) -> Result<Vec<Metric>> {
    let spec = Spec {
        label: "w2h",
        tasks: bench.settings.tasks(Workload::W2h),
        delay_ms: 0,
        polls: 1,
        concurrency: 50,
        poll_interval_ms: 100,
    };
    let out = drain(bench, &spec, run).await?;
    let secs = out.elapsed.as_secs_f64();
    let mut metrics = vec![
        metric("tasks_per_s", "tasks/s", spec.tasks as f64 / secs),
        metric("consumer_peak_rss_mib", "MiB", mib(out.consumer_rss_kib)),
        metric(
            "consumer_cpu_us_per_task",
            "µs",
            out.consumer_cpu_s * 1e6 / spec.tasks as f64,
        ),
        metric("consumer_cpu_share", "cores", out.consumer_cpu_s / secs),
    ];
    metrics.extend(redis_metrics(&out.usage, spec.tasks, out.window));
    Ok(metrics)
}

/// One run of W3d.
///
/// # Errors
/// When a process or Redis fails, or the API was not called three times per task.
pub async fn w3d(bench: &Bench<'_>, run: u32) -> Result<Vec<Metric>> {
    let spec = Spec {
        label: "w3d",
        tasks: bench.settings.tasks(Workload::W3d),
        delay_ms: 20,
        polls: 3,
        concurrency: 100,
        poll_interval_ms: 100,
    };
    let out = drain(bench, &spec, run).await?;
    let wall = out.elapsed.as_secs_f64();
    let ideal = ideal_s(&spec);
    let polls = (spec.tasks * spec.polls) as f64;
    Ok(vec![
        metric("wall_s", "s", wall),
        metric("ideal_s", "s", ideal),
        metric("x_ideal", "×", wall / ideal),
        metric("consumer_peak_rss_mib", "MiB", mib(out.consumer_rss_kib)),
        metric(
            "round_trips_per_poll",
            "round trips",
            out.usage.round_trips() as f64 / polls,
        ),
        metric("redis_cpu_us_per_poll", "µs", out.usage.cpu_s * 1e6 / polls),
        metric(
            "consumer_cpu_us_per_poll",
            "µs",
            out.consumer_cpu_s * 1e6 / polls,
        ),
    ])
}

/// The lower bound of a polling drain: one task's own path (every call's delay plus the waits
/// between polls), or the API's latency spread over the consumer's concurrency.
fn ideal_s(spec: &Spec) -> f64 {
    let one_task = spec.polls * spec.delay_ms + (spec.polls - 1) * spec.poll_interval_ms;
    let throughput = (spec.tasks * spec.polls * spec.delay_ms) as f64 / spec.concurrency as f64;
    (one_task as f64).max(throughput) / 1000.0
}

async fn drain(bench: &Bench<'_>, spec: &Spec, run: u32) -> Result<Outcome> {
    let Spec { label, tasks, .. } = *spec;
    bench.redis.flush().await?;
    let queue_name = format!("bench-{label}");
    let queue = bench.queue(&queue_name)?;
    fill(&queue, &format!("{label}-r{run}"), 0..tasks).await?;

    let api = free_addr()?;
    let mock = Service::serve(
        &bench.bins.path("mock-api"),
        &[
            ("MOCK_API_ADDR", api.to_string()),
            ("MOCK_DELAY_MS", spec.delay_ms.to_string()),
            ("MOCK_POLLS_UNTIL_DONE", spec.polls.to_string()),
        ],
        api,
        &bench.raw.join(format!("{label}-r{run}-mock-api.log")),
    )
    .await?;

    let mut conn = bench.redis.connect().await?;
    let before = Snapshot::take(&mut conn).await?;
    let started = Instant::now();
    let mut consumer = Service::spawn(
        &bench.bins.path("consumer"),
        &[
            ("REDIS_URL", bench.redis.url()),
            ("CONSUMER_ADDR", free_addr()?.to_string()),
            ("QUEUE_NAME", queue_name.clone()),
            ("API_URL", format!("http://{api}/")),
            ("CONCURRENCY", spec.concurrency.to_string()),
            ("POLL_INTERVAL_MS", spec.poll_interval_ms.to_string()),
        ],
        &bench.raw.join(format!("{label}-r{run}-consumer.log")),
    )?;
    let elapsed = wait_done(&queue, tasks, started, Duration::from_secs(120)).await?;
    consumer.check_running()?;
    let consumer_cpu_s = cpu_s(&consumer.pid()?.to_string())?;
    let window = started.elapsed();
    let usage = before.until(&Snapshot::take(&mut conn).await?);
    write_profile(bench, &format!("{label}-r{run}"), &usage, tasks)?;

    sleep(Duration::from_millis(300)).await;
    let stats = bench.get_json(&format!("http://{api}/stats")).await?;
    let consumer_rss_kib = consumer.peak_rss_kib()?;
    consumer.stop().await?;
    mock.stop().await?;
    let calls = stats["calls"].as_u64().unwrap_or(0);
    if calls != tasks * spec.polls {
        bail!(
            "the API was called {calls} times for {tasks} tasks instead of {}",
            tasks * spec.polls
        );
    }
    Ok(Outcome {
        elapsed,
        consumer_rss_kib,
        consumer_cpu_s,
        usage,
        window,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_w3d_ideal_is_the_api_latency_spread_over_the_concurrency() {
        let spec = Spec {
            label: "w3d",
            tasks: 2000,
            delay_ms: 20,
            polls: 3,
            concurrency: 100,
            poll_interval_ms: 100,
        };
        assert!((ideal_s(&spec) - 1.2).abs() < 1e-9);
        let few = Spec { tasks: 10, ..spec };
        assert!((ideal_s(&few) - 0.26).abs() < 1e-9);
    }
}
