//! Release consumers draining queues filled beforehand, against a release mock-api (W2h, W3d, S1,
//! S2, W5): the consumers are timed from the first one's spawn until every queue counts its
//! tasks done, and Redis and the machine are measured meanwhile; then the mock's call count is
//! checked ([`check_calls`]), since a call made twice or never would make every figure wrong.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use taskq::Queue;
use testkit::{MockApi, Process, RedisServer, Spent, Window, cpu_seconds, free_addr};
use tokio::time::{Instant, sleep};

use super::Bench;
use crate::workload::POLL_INTERVAL_MS;

impl Bench<'_> {
    /// Starts a release mock-api and the release consumers `c` asks for, and waits until each of
    /// `c.queues` counts `c.each` tasks done (read every 5 ms), measuring `c.servers` meanwhile;
    /// the logs are `<raw>/<label>-mock-api.log` and `<raw>/<label>-consumer<i>.log`.
    pub async fn drain_by_consumers(&self, c: &Consumers<'_>) -> Result<Drained> {
        let mock_label = format!("{}-mock-api", c.label);
        let mock = self.binaries.try_mock_api(&c.mock, c.https, &mock_label)?;
        let urls: Vec<String> = c.servers.iter().map(|server| server.url()).collect();
        let redis_url = urls.join(",");
        let window = Window::open(&c.servers, None).await?;
        let started = Instant::now();
        let mut consumers = Vec::new();
        for i in 0..c.count {
            let addr = free_addr();
            let mut env = vec![
                ("REDIS_URL", redis_url.clone()),
                ("CONSUMER_ADDR", addr.to_string()),
                ("CONCURRENCY", c.concurrency.to_string()),
                ("POLL_INTERVAL_MS", POLL_INTERVAL_MS.to_string()),
            ];
            env.extend_from_slice(&c.env);
            env.extend(mock.consumer_env());
            let label = format!("{}-consumer{i}", c.label);
            consumers.push((self.binaries.try_spawn("consumer", &env, &label)?, addr));
        }
        let every = Duration::from_millis(5);
        let elapsed = until_done(c.queues, c.each, (started, c.within), every, || Ok(())).await?;
        let mut consumer_cpu_s = 0.0;
        for (consumer, _) in &mut consumers {
            consumer.check_running()?;
            consumer_cpu_s += cpu_seconds(consumer.pid()).context("a consumer's CPU time")?;
        }
        let spent = window.close().await?;
        Ok(Drained {
            consumers,
            mock,
            elapsed,
            consumer_cpu_s,
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

/// Waits until each of `queues` counts `each` tasks done, read every `every`, `check` (that the
/// processes doing the work still run) passing meanwhile; answers the time since `started`, or
/// fails once `within` of it has passed.
pub async fn until_done(
    queues: &[Queue],
    each: u64,
    (started, within): (Instant, Duration),
    every: Duration,
    mut check: impl FnMut() -> Result<()>,
) -> Result<Duration> {
    loop {
        let mut done = Vec::with_capacity(queues.len());
        for queue in queues {
            done.push(crate::drain::done(queue).await?);
        }
        if done.iter().all(|&d| d >= each) {
            return Ok(started.elapsed());
        }
        check()?;
        if started.elapsed() > within {
            bail!("done per queue {done:?} of {each} after {within:?}");
        }
        sleep(every).await;
    }
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
    /// The mock-api's settings ([`mock_env`]).
    pub mock: Vec<(&'static str, String)>,
    /// Whether the mock-api serves HTTPS.
    pub https: bool,
    /// The queues they drain.
    pub queues: &'a [Queue],
    /// Tasks done in each queue when the drain is over.
    pub each: u64,
    /// How long the drain may take.
    pub within: Duration,
}

impl<'a> Consumers<'a> {
    /// One consumer with `concurrency` of `queue` on the private Redis, to count its `tasks` done
    /// within 120 s, against a mock-api over HTTP that answers every call "done" at once.
    pub fn of(
        bench: &Bench<'a>,
        label: &str,
        queue: &'a Queue,
        tasks: u64,
        concurrency: u64,
    ) -> Self {
        Self {
            label: label.to_owned(),
            count: 1,
            servers: vec![bench.redis],
            env: vec![("QUEUE_NAME", queue.keys().queue().to_owned())],
            concurrency,
            mock: mock_env(0, 1, &[]),
            https: false,
            queues: std::slice::from_ref(queue),
            each: tasks,
            within: Duration::from_secs(120),
        }
    }
}

/// Release consumers that drained queues against a mock-api, running until [`Drained::finish`].
pub struct Drained {
    /// The consumers, each with where it serves `/metrics`.
    pub consumers: Vec<(Process, SocketAddr)>,
    /// The API they called.
    pub mock: MockApi,
    /// From the first consumer's spawn until every queue had its tasks done.
    pub elapsed: Duration,
    /// The consumers' CPU seconds until then.
    pub consumer_cpu_s: f64,
    /// What Redis and the machine spent meanwhile.
    pub spent: Spent,
}

impl Drained {
    /// Stops the consumers and the mock, and fails unless the mock answered `expected` calls,
    /// counted 300 ms after the drain ended so that a late duplicate call would show.
    pub async fn finish(&mut self, expected: u64) -> Result<()> {
        sleep(Duration::from_millis(300)).await;
        let stats = self
            .mock
            .try_stats(&self.mock.client_builder()?.build()?)
            .await?;
        for (consumer, _) in &mut self.consumers {
            consumer.try_stop()?;
        }
        self.mock.process.try_stop()?;
        check_calls(&stats, expected)
    }
}

/// Fails unless the mock's `/stats` counts `expected` calls.
pub fn check_calls(stats: &serde_json::Value, expected: u64) -> Result<()> {
    let calls = stats["calls"].as_u64().context("no calls in /stats")?;
    if calls != expected {
        bail!("the API was called {calls} times instead of {expected}");
    }
    Ok(())
}
