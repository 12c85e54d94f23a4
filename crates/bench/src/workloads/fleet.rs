//! Release consumers draining queues filled beforehand, against a release mock-api (W2h, W3d, W8,
//! S1, S2, W5): one function for all of them ([`Bench::drain_by_consumers`]), each workload
//! saying what differs ([`Consumers`]) and computing its figures from what the drain measured
//! ([`Drained`]). The consumers are timed from the first one's spawn until every queue counts its
//! tasks done, and Redis and the machine are measured meanwhile; then the mock's call count is
//! checked ([`check_calls`]), since a call made twice or never would make every figure wrong.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;
use taskq::Queue;
use testkit::{RedisServer, Spent, Window, cpu_seconds, free_addr};
use tokio::time::{Instant, sleep};

use super::{Bench, metrics_page, mib, series_total, write_profile};
use crate::drain::until_done;
use crate::workload::POLL_INTERVAL_MS;

impl Bench<'_> {
    /// Starts a release mock-api and the release consumers `c` asks for, and waits until each of
    /// `c.queues` counts `c.each` tasks done (read every 5 ms), measuring `c.servers` meanwhile;
    /// then reads what the consumers and the mock did, stops them, and fails unless the mock
    /// answered `c.calls_per_task` calls a task. The logs are `<raw>/<label>-mock-api.log` and
    /// `<raw>/<label>-consumer<i>.log`, Redis' profile `<raw>/<label>-redis-profile.json`.
    pub async fn drain_by_consumers(&self, c: &Consumers<'_>) -> Result<Drained> {
        let mock_label = format!("{}-mock-api", c.label);
        let mut mock = self.binaries.try_mock_api(&c.mock, c.https, &mock_label)?;
        let urls: Vec<String> = c.servers.iter().map(|server| server.url()).collect();
        let mut shared = vec![
            ("REDIS_URL", urls.join(",")),
            ("CONCURRENCY", c.concurrency.to_string()),
            ("POLL_INTERVAL_MS", POLL_INTERVAL_MS.to_string()),
        ];
        shared.extend_from_slice(&c.env);
        shared.extend(mock.consumer_env());
        if let Some(queues_file) = c.queues_file {
            let file = format!("{}-queues.json", c.label);
            let file = self.write_raw(&file, queues_file(&mock.base()).to_string())?;
            shared.push(("QUEUES_FILE", file.display().to_string()));
        }
        let window = Window::open(&c.servers, None).await?;
        let started = Instant::now();
        let mut consumers = Vec::new();
        for i in 0..c.count {
            let addr = free_addr();
            let mut env = vec![("CONSUMER_ADDR", addr.to_string())];
            env.extend_from_slice(&shared);
            let label = format!("{}-consumer{i}", c.label);
            consumers.push((self.binaries.try_spawn("consumer", &env, &label)?, addr));
        }
        let every = Duration::from_millis(5);
        let elapsed = until_done(&c.queues, c.each, (started, c.within), every, || Ok(())).await?;
        let mut consumer_cpu_s = 0.0;
        for (consumer, _) in &mut consumers {
            consumer.check_running()?;
            consumer_cpu_s += cpu_seconds(consumer.pid()).context("a consumer's CPU time")?;
        }
        let spent = window.close().await?;
        let tasks = c.each * c.queues.len() as u64;
        write_profile(self, &c.label, &spent.redis, tasks)?;
        let (first, first_addr) = &consumers[0];
        let consumer_rss_kib = first.peak_rss_kib().context("no consumer peak RSS")?;
        let page = metrics_page(&self.http, *first_addr).await?;
        let api_calls = series_total(&page, "taskq_api_call_duration_seconds_count");
        let api_seen_s = series_total(&page, "taskq_api_call_duration_seconds_sum");
        // Counted 300 ms after the drain ended, so that a late duplicate call would show.
        sleep(Duration::from_millis(300)).await;
        let mock_stats = mock.try_stats(&mock.client_builder()?.build()?).await?;
        for (consumer, _) in &mut consumers {
            consumer.try_stop()?;
        }
        mock.process.try_stop()?;
        check_calls(&mock_stats, tasks * c.calls_per_task)?;
        Ok(Drained {
            elapsed,
            consumer_cpu_s,
            consumer_rss_mib: mib(consumer_rss_kib),
            api_seen_mean_ms: (api_calls > 0.0).then(|| api_seen_s / api_calls * 1000.0),
            mock_stats,
            spent,
        })
    }
}

/// The mock-api's settings: `delay_ms` per call, "done" at the `polls`-th call of a task, then
/// `extra` (limits, shape, webhooks).
pub fn mock_env(
    delay_ms: u64,
    polls: u64,
    extra: &[(&'static str, String)],
) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("MOCK_DELAY_MS", delay_ms.to_string()),
        ("MOCK_POLLS_UNTIL_DONE", polls.to_string()),
    ];
    env.extend_from_slice(extra);
    env
}

/// A drain by release consumers of tasks already queued.
pub struct Consumers<'a> {
    /// Their logs' prefix.
    pub label: String,
    /// How many consumers.
    pub count: u64,
    /// The Redis server their queues live on, or a cluster's masters, measured during the drain.
    pub servers: Vec<&'a RedisServer>,
    /// Their queue or queues (`QUEUE_NAME` or `QUEUES`), and any other setting.
    pub env: Vec<(&'static str, String)>,
    /// Their `CONCURRENCY` (per queue).
    pub concurrency: u64,
    /// Their `QUEUES_FILE`, made for the mock's base URL; none: the queues call `API_URL`.
    pub queues_file: Option<&'a dyn Fn(&str) -> Value>,
    /// The mock-api's settings ([`mock_env`]).
    pub mock: Vec<(&'static str, String)>,
    /// Whether the mock-api serves HTTPS.
    pub https: bool,
    /// The queues they drain.
    pub queues: Vec<Queue>,
    /// Tasks done in each queue when the drain is over.
    pub each: u64,
    /// The API calls each task makes, which the mock must count.
    pub calls_per_task: u64,
    /// How long the drain may take.
    pub within: Duration,
}

impl<'a> Consumers<'a> {
    /// One consumer with `concurrency` of `queue` on the private Redis, to count its `tasks` done
    /// within 120 s, against a mock-api over HTTP that answers every call "done" at once.
    pub fn of(bench: &Bench<'a>, label: &str, queue: Queue, tasks: u64, concurrency: u64) -> Self {
        Self {
            label: label.to_owned(),
            count: 1,
            servers: vec![bench.redis],
            env: vec![("QUEUE_NAME", queue.keys().queue().to_owned())],
            concurrency,
            queues_file: None,
            mock: mock_env(0, 1, &[]),
            https: false,
            queues: vec![queue],
            each: tasks,
            calls_per_task: 1,
            within: Duration::from_secs(120),
        }
    }
}

/// What a drain by release consumers measured, the processes stopped and the calls checked.
pub struct Drained {
    /// From the first consumer's spawn until every queue had its tasks done.
    pub elapsed: Duration,
    /// The consumers' CPU seconds until then.
    pub consumer_cpu_s: f64,
    /// The first consumer's peak RSS (MiB).
    pub consumer_rss_mib: f64,
    /// The mean API call latency the first consumer measured itself (its `/metrics` histogram,
    /// ms), when it timed any call.
    pub api_seen_mean_ms: Option<f64>,
    /// The mock's `GET /stats` (calls, throttled, ...) once the drain was over.
    pub mock_stats: Value,
    /// What Redis and the machine spent meanwhile.
    pub spent: Spent,
}

/// Fails unless the mock's `/stats` counts `expected` calls.
pub fn check_calls(stats: &Value, expected: u64) -> Result<()> {
    let calls = stats["calls"].as_u64().context("no calls in /stats")?;
    if calls != expected {
        bail!("the API was called {calls} times instead of {expected}");
    }
    Ok(())
}
