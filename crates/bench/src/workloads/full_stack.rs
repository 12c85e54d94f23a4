//! W2h and W3d (and their HTTPS twins): the release `consumer` against the release `mock-api`,
//! timed from the consumer's spawn, so its start-up and first connection count as a real
//! deployment's would. W2h reports costs per task, W3d per API call ("poll"): the two figures
//! the capacity maths of issue 5 rests on.
//!
//! W3d's ideal assumes each call takes the configured 20 ms. On a busy 2-core machine it takes
//! longer (a timer's lateness, the HTTP stack on both ends), and that excess is no fault of the
//! consumer. The mock is therefore also timed alone with a plain HTTP client at the same
//! concurrency, just before the drain and on an instance of its own (so that the drain's call
//! count stays exact), and the ideal is given again with the latency this machine delivers.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::fleet::{Consumers, Drained, mock_env};
use super::{Bench, Metric, drain_metrics, joined, metric, percentile};
use crate::probe::ScriptCosts;
use crate::workload::{POLL_INTERVAL_MS, Workload};

/// One full-stack drain.
struct Spec {
    /// The workload's id in lower case: logs, queue and task names.
    label: String,
    /// Whether the API is called over HTTPS.
    tls: bool,
    tasks: u64,
    delay_ms: u64,
    polls: u64,
    concurrency: u64,
}

impl Spec {
    /// W2h's drain (one call a task, answered "done" at once, 50 in flight) or W3d's (20 ms a
    /// call, "done" at the third, 100 in flight), of `tasks` tasks.
    fn new(workload: Workload, tasks: u64) -> Self {
        let w3d = matches!(workload, Workload::W3d | Workload::W3dTls);
        let (delay_ms, polls, concurrency) = if w3d { (20, 3, 100) } else { (0, 1, 50) };
        Self {
            label: workload.label(),
            tls: matches!(workload, Workload::W2hTls | Workload::W3dTls),
            tasks,
            delay_ms,
            polls,
            concurrency,
        }
    }
}

/// One run of W2h or W2h-tls; fails unless the API is called once a task.
pub async fn w2h(bench: &Bench<'_>, workload: Workload, run: u32) -> Result<Vec<Metric>> {
    let spec = Spec::new(workload, bench.settings.tasks(workload));
    let drained = drain(bench, &spec, run).await?;
    let (secs, cpu_s) = (drained.elapsed.as_secs_f64(), drained.consumer_cpu_s);
    let (rss_mib, spent) = (drained.consumer_rss_mib, &drained.spent);
    Ok(drain_metrics(
        "consumer", spec.tasks, secs, cpu_s, rss_mib, spent,
    ))
}

/// One run of W3d or W3d-tls; fails unless the API is called three times a task.
pub async fn w3d(bench: &Bench<'_>, workload: Workload, run: u32) -> Result<Vec<Metric>> {
    let spec = Spec::new(workload, bench.settings.tasks(workload));
    let api = api_alone(bench, &spec, run).await?;
    let drained = drain(bench, &spec, run).await?;
    let seen_ms = drained.api_seen_mean_ms;
    let seen_ms = seen_ms.context("the consumer's /metrics shows no API call")?;
    let (wall, spent) = (drained.elapsed.as_secs_f64(), &drained.spent);
    let ideal = ideal_s(&spec, spec.delay_ms as f64);
    let ideal_measured = ideal_s(&spec, api.mean_ms);
    let ideal_seen = ideal_s(&spec, seen_ms);
    let per_poll = |x: f64| x / (spec.tasks * spec.polls) as f64;
    let trips = per_poll(spent.redis.round_trips() as f64);
    let redis_us = per_poll(spent.redis.cpu_s * 1e6);
    let consumer_us = per_poll(drained.consumer_cpu_s * 1e6);
    Ok(vec![
        metric("wall_s", "s", wall),
        metric("ideal_s", "s", ideal),
        metric("x_ideal", "×", wall / ideal),
        metric("api_mean_ms", "ms", api.mean_ms),
        metric("api_p99_ms", "ms", api.p99_ms),
        metric("ideal_with_measured_api_s", "s", ideal_measured),
        metric("x_ideal_measured_api", "×", wall / ideal_measured),
        metric("consumer_seen_api_mean_ms", "ms", seen_ms),
        metric("x_ideal_consumer_seen_api", "×", wall / ideal_seen),
        metric("consumer_peak_rss_mib", "MiB", drained.consumer_rss_mib),
        metric("round_trips_per_poll", "round trips", trips),
        metric("redis_cpu_us_per_poll", "µs", redis_us),
        metric("consumer_cpu_us_per_poll", "µs", consumer_us),
        metric("machine_busy_cores", "cores", spent.machine_busy_cores),
    ])
}

/// Drains `spec`'s tasks with one consumer.
async fn drain(bench: &Bench<'_>, spec: &Spec, run: u32) -> Result<Drained> {
    let (tasks, label) = (spec.tasks, format!("{}-r{run}", spec.label));
    let queue = bench
        .filled(&format!("bench-{}", spec.label), &label, tasks)
        .await?;
    let consumers = Consumers {
        mock: mock_env(spec.delay_ms, spec.polls, &[]),
        https: spec.tls,
        calls_per_task: spec.polls,
        ..Consumers::of(bench, &label, queue, tasks, spec.concurrency)
    };
    bench.drain_by_consumers(&consumers).await
}

/// The lower bound of a polling drain when each call takes `call_ms`: one task's own path
/// (every call plus the waits between polls), or all calls spread over the consumer's
/// concurrency.
fn ideal_s(spec: &Spec, call_ms: f64) -> f64 {
    let polls = spec.polls as f64;
    let one_task = polls * call_ms + (polls - 1.0) * POLL_INTERVAL_MS as f64;
    let throughput = spec.tasks as f64 * polls * call_ms / spec.concurrency as f64;
    one_task.max(throughput) / 1000.0
}

/// Latency of the mock's calls, in ms.
struct Latency {
    mean_ms: f64,
    p99_ms: f64,
}

/// The mock's latency alone: `spec.concurrency` calls of `GET /?task-name=...` in flight for a
/// second, each with a task name of its own (a fresh name is a "processing" answer, as most of
/// W3d's are). Each lane's first call opens its connection and is not timed. The client is set
/// up as the consumer's is (idle pool as large as the concurrency, `TCP_NODELAY`, the mock's
/// authority trusted when it serves HTTPS).
async fn api_alone(bench: &Bench<'_>, spec: &Spec, run: u32) -> Result<Latency> {
    let label = format!("{}-r{run}-alone-mock-api", spec.label);
    let env = mock_env(spec.delay_ms, spec.polls, &[]);
    let mut mock = bench.binaries.try_mock_api(&env, spec.tls, &label)?;
    let concurrency = usize::try_from(spec.concurrency)?;
    let client = mock
        .client_builder()?
        .pool_max_idle_per_host(concurrency)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(10))
        .build()?;
    let (base, started) = (format!("{}/", mock.base()), Instant::now());
    let mut lanes: JoinSet<Result<Vec<Duration>>> = JoinSet::new();
    for lane in 0..concurrency {
        let (client, base) = (client.clone(), base.clone());
        lanes.spawn(async move {
            let mut times = Vec::new();
            for i in 0_u64.. {
                let url = format!("{base}?task-name=latency-{lane}-{i}");
                let call = Instant::now();
                let response = client.get(url).send().await?;
                response.error_for_status()?.bytes().await?;
                if i > 0 {
                    times.push(call.elapsed());
                }
                if started.elapsed() >= Duration::from_secs(1) {
                    break;
                }
            }
            Ok(times)
        });
    }
    let times = joined(lanes).await;
    mock.process.try_stop()?;
    latency(times?.concat())
}

/// The mean and 99th percentile of `times`.
fn latency(mut times: Vec<Duration>) -> Result<Latency> {
    if times.is_empty() {
        bail!("no call was timed");
    }
    times.sort_unstable();
    let n = times.len();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let p99 = percentile(&times, 99);
    Ok(Latency {
        mean_ms: times.iter().map(|&d| ms(d)).sum::<f64>() / n as f64,
        p99_ms: ms(p99),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_w3d_ideal_is_the_api_latency_spread_over_the_concurrency() {
        let spec = Spec::new(Workload::W3d, 2000);
        assert!((ideal_s(&spec, 20.0) - 1.2).abs() < 1e-9);
        assert!((ideal_s(&spec, 25.0) - 1.5).abs() < 1e-9);
        let few = Spec::new(Workload::W3dTls, 10);
        assert!((ideal_s(&few, 20.0) - 0.26).abs() < 1e-9);
    }

    #[test]
    fn the_p99_is_the_call_at_or_above_which_one_percent_were_slower() -> Result<()> {
        let times: Vec<Duration> = (1..=200).rev().map(Duration::from_millis).collect();
        let latency = latency(times)?;
        assert!((latency.mean_ms - 100.5).abs() < 1e-9);
        assert!((latency.p99_ms - 198.0).abs() < 1e-9);
        Ok(())
    }

    #[test]
    fn no_calls_is_an_error() {
        assert!(latency(Vec::new()).is_err());
    }
}
