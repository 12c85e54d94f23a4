//! The workloads of issues 4 (W*) and 5 (S*), one function per run of each; a run answers named
//! metrics.
//!
//! Every run starts from an empty Redis (`FLUSHALL`) and fresh processes, except W4's later runs,
//! which top the deep queue back up instead of enqueueing a million tasks again (see
//! [`library_drain`]). S2 starts a three-master cluster of its own in every run.

pub mod cluster;
pub mod enqueue;
pub mod full_stack;
pub mod http_enqueue;
pub mod library_drain;
pub mod scaling;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use taskq::{ConnectOptions, Queue, RedisUrl, TaskName};
use testkit::{MockApi, Process, RedisServer};
use tokio::time::{Instant, sleep};

use crate::probe::Usage;
use crate::window::cpu_seconds;
use crate::workload::{CHUNK, Settings};

/// One measured figure of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    /// What it is (`tasks_per_s`, `p99_ms`, ...).
    pub name: &'static str,
    /// Its unit, for the tables.
    pub unit: &'static str,
    /// The value.
    pub value: f64,
}

/// A metric of one run.
pub fn metric(name: &'static str, unit: &'static str, value: f64) -> Metric {
    Metric { name, unit, value }
}

/// What every workload uses.
pub struct Bench<'a> {
    /// The private Redis.
    pub redis: &'a RedisServer,
    /// Where the release binaries are (each workload's were checked to be there).
    pub bin_dir: PathBuf,
    /// This executable, for the `drain` child.
    pub exe: PathBuf,
    /// Where child logs and wrk's script go (git-ignored).
    pub raw: PathBuf,
    /// Sizes and knobs.
    pub settings: Settings,
    /// For the services' HTTP endpoints (`/healthz`, `/stats`).
    pub http: reqwest::Client,
}

impl Bench<'_> {
    /// A handle on queue `name` of the private Redis, with a patient response timeout: the
    /// benchmark's own bulk calls must not fail because the machine is busy.
    ///
    /// # Errors
    /// When the name or URL is unusable.
    pub fn queue(&self, name: &str) -> Result<Queue> {
        queue_on(&self.redis.url(), name)
    }

    /// The release binary `name`.
    pub fn binary(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }

    /// Where the log of the process `label` goes.
    pub fn log(&self, label: &str) -> PathBuf {
        self.raw.join(format!("{label}.log"))
    }

    /// Starts the release mock-api with `delay_ms` per call, answering "done" at the
    /// `polls`-th call of a task (over HTTPS when `https`); its log is `<raw>/<label>.log`.
    ///
    /// # Errors
    /// When it cannot start or does not listen.
    pub fn mock_api(&self, delay_ms: u64, polls: u64, https: bool, label: &str) -> Result<MockApi> {
        let env = [
            ("MOCK_DELAY_MS", delay_ms.to_string()),
            ("MOCK_POLLS_UNTIL_DONE", polls.to_string()),
        ];
        Ok(MockApi::try_start(
            &self.binary("mock-api"),
            &env,
            https,
            Some(&self.log(label)),
        )?)
    }

    /// Spawns `consumers.count` release consumers on `consumers.redis_url` calling `mock`, and
    /// waits until each of `consumers.queues` counts `consumers.each` tasks done; their logs are
    /// `<raw>/<label>-consumer<i>.log`.
    ///
    /// # Errors
    /// When a consumer cannot start or exits, Redis fails, or `consumers.within` passes first.
    pub async fn drain_by_consumers(
        &self,
        consumers: &Consumers<'_>,
        mock: MockApi,
    ) -> Result<ConsumerDrain> {
        let started = Instant::now();
        let mut running = Vec::new();
        for i in 0..consumers.count {
            let addr = testkit::free_addr();
            let mut env = vec![
                ("REDIS_URL", consumers.redis_url.to_owned()),
                ("CONSUMER_ADDR", addr.to_string()),
            ];
            env.extend(mock.consumer_env());
            env.extend_from_slice(&consumers.settings);
            let log = self.log(&format!("{}-consumer{i}", consumers.label));
            running.push((
                Process::try_spawn(&self.binary("consumer"), &env, Some(&log))?,
                addr,
            ));
        }
        let elapsed =
            wait_done(consumers.queues, consumers.each, started, consumers.within).await?;
        let mut consumer_cpu_s = 0.0;
        for (consumer, _) in &mut running {
            consumer.check_running()?;
            consumer_cpu_s += cpu_seconds(consumer.pid())?;
        }
        Ok(ConsumerDrain {
            consumers: running,
            mock,
            elapsed,
            consumer_cpu_s,
        })
    }

    /// A GET answering JSON.
    ///
    /// # Errors
    /// When the request fails or the answer is not JSON.
    pub async fn get_json(&self, url: &str) -> Result<serde_json::Value> {
        let response = self.http.get(url).send().await?.error_for_status()?;
        Ok(serde_json::from_slice(&response.bytes().await?)?)
    }
}

/// A handle on queue `name` of the Redis (or cluster: comma-separated node URLs) at `url`, with
/// a patient response timeout: the benchmark's own bulk calls must not fail because the machine
/// is busy.
///
/// # Errors
/// When the name or URL is unusable.
pub fn queue_on(url: &str, name: &str) -> Result<Queue> {
    let url: RedisUrl = url.parse()?;
    let options = ConnectOptions {
        response_timeout: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(2),
        ..ConnectOptions::default()
    };
    Ok(Queue::open(&url, &options, name)?)
}

/// Task names `<prefix>-<i>` for `i` in `range`.
///
/// # Errors
/// When a name is invalid (never for the prefixes used here).
pub fn names(prefix: &str, range: std::ops::Range<u64>) -> Result<Vec<TaskName>> {
    range
        .map(|i| TaskName::parse(format!("{prefix}-{i}")).map_err(Into::into))
        .collect()
}

/// Enqueues `<prefix>-<i>` for `i` in `range` in sequential `enqueue_many` chunks of [`CHUNK`];
/// answers how long it took. Every name must be new.
///
/// # Errors
/// When Redis fails or a name was already there.
pub async fn fill(queue: &Queue, prefix: &str, range: std::ops::Range<u64>) -> Result<Duration> {
    let started = Instant::now();
    let mut from = range.start;
    while from < range.end {
        let to = (from + CHUNK).min(range.end);
        let batch = names(prefix, from..to)?;
        let created = queue.enqueue_many(&batch).await?;
        if created.iter().any(|c| !c) {
            bail!("{prefix}: some of {from}..{to} were already queued");
        }
        from = to;
    }
    Ok(started.elapsed())
}

/// Waits until every queue's `done` counter reaches `each` (read every 5 ms); answers the time
/// since `since`.
///
/// # Errors
/// When Redis fails or `within` passes first.
pub async fn wait_done(
    queues: &[Queue],
    each: u64,
    since: Instant,
    within: Duration,
) -> Result<Duration> {
    loop {
        let mut done = Vec::with_capacity(queues.len());
        for queue in queues {
            done.push(crate::drain::done(queue).await?);
        }
        if done.iter().all(|&d| d >= each) {
            return Ok(since.elapsed());
        }
        if since.elapsed() > within {
            bail!("done per queue {done:?} of {each} after {within:?}");
        }
        sleep(Duration::from_millis(5)).await;
    }
}

/// The release consumers a drain starts, and when it is over.
pub struct Consumers<'a> {
    /// How many.
    pub count: u64,
    /// The Redis (or cluster) they use.
    pub redis_url: &'a str,
    /// Their queues, `CONCURRENCY` and `POLL_INTERVAL_MS`.
    pub settings: Vec<(&'static str, String)>,
    /// Their logs' prefix.
    pub label: String,
    /// The queues they drain.
    pub queues: &'a [Queue],
    /// Tasks done in each queue when the drain is over.
    pub each: u64,
    /// How long the drain may take.
    pub within: Duration,
}

/// Release consumers that drained queues against a mock-api, still running.
pub struct ConsumerDrain {
    /// The consumers, each with where it serves `/metrics`.
    pub consumers: Vec<(Process, SocketAddr)>,
    /// The API they called.
    pub mock: MockApi,
    /// From the first consumer's spawn until every queue had its tasks done.
    pub elapsed: Duration,
    /// The consumers' CPU seconds until then.
    pub consumer_cpu_s: f64,
}

impl ConsumerDrain {
    /// Stops the consumers and the mock, and fails unless the mock answered `expected` calls,
    /// counted 300 ms after the drain ended so that a late duplicate call would show.
    ///
    /// # Errors
    /// When the mock's `/stats` cannot be read, a process is gone, or the count is off.
    pub async fn finish(self, expected: u64) -> Result<()> {
        sleep(Duration::from_millis(300)).await;
        let stats = self
            .mock
            .client_builder()?
            .build()?
            .get(format!("{}/stats", self.mock.base()))
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
        let stats: serde_json::Value = serde_json::from_slice(&stats)?;
        for (consumer, _) in self.consumers {
            stop(consumer)?;
        }
        stop(self.mock.process)?;
        let calls = stats["calls"]
            .as_u64()
            .context("no calls in the mock's /stats")?;
        if calls != expected {
            bail!("the API was called {calls} times instead of {expected}");
        }
        Ok(())
    }
}

/// Asks `process` to stop (SIGTERM, so it drains as in production) and waits 10 s; dropping it
/// then kills it if it still runs.
///
/// # Errors
/// When it cannot be signalled (it is gone).
pub fn stop(mut process: Process) -> Result<()> {
    process.try_terminate(Duration::from_secs(10))?;
    Ok(())
}

/// Redis' cost of `tasks` tasks, as metrics: round trips (script calls plus one candidate read
/// per claim), script calls, socket reads and tasks per claim, and Redis CPU per task and as a
/// share of one core over `window`.
pub fn redis_metrics(usage: &Usage, tasks: u64, window: Duration) -> Vec<Metric> {
    let per_task = |x: f64| x / tasks.max(1) as f64;
    vec![
        metric(
            "round_trips_per_task",
            "round trips",
            per_task(usage.round_trips() as f64),
        ),
        metric(
            "script_calls_per_task",
            "calls",
            per_task(usage.evalsha as f64),
        ),
        metric(
            "socket_reads_per_task",
            "reads",
            per_task(usage.reads as f64),
        ),
        metric(
            "tasks_per_claim",
            "tasks",
            tasks as f64 / usage.claims.max(1) as f64,
        ),
        metric("redis_cpu_us_per_task", "µs", per_task(usage.cpu_s * 1e6)),
        metric(
            "redis_cpu_share",
            "cores",
            usage.cpu_s / window.as_secs_f64().max(1e-9),
        ),
    ]
}

/// Writes Redis' per-command profile of `tasks` tasks to `<raw>/<label>-redis-profile.json`.
///
/// # Errors
/// When the file cannot be written.
pub fn write_profile(bench: &Bench<'_>, label: &str, usage: &Usage, tasks: u64) -> Result<()> {
    let path = bench.raw.join(format!("{label}-redis-profile.json"));
    let json = serde_json::to_string_pretty(&usage.profile_per_task(tasks))?;
    std::fs::write(&path, json + "\n")?;
    Ok(())
}

/// KiB to MiB.
pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_numbered_within_the_range() -> Result<()> {
        let names = names("w2", 3..5)?;
        let names: Vec<&str> = names.iter().map(TaskName::as_str).collect();
        assert_eq!(names, ["w2-3", "w2-4"]);
        Ok(())
    }
}
