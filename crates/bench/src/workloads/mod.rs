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
    /// What it is (`tasks_per_s`, `p99_ms`, ...): the name README and the notes quote.
    pub name: String,
    /// Its unit, for the tables.
    pub unit: &'static str,
    /// The figure.
    pub value: f64,
}

/// A metric of one run.
pub fn metric(name: impl Into<String>, unit: &'static str, value: f64) -> Metric {
    let name = name.into();
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
    /// For the services' HTTP endpoints (`/healthz`, `/metrics`).
    pub http: reqwest::Client,
}

impl Bench<'_> {
    /// [`queue_on`] the private Redis.
    ///
    /// # Errors
    /// When the name is unusable.
    pub(crate) fn queue(&self, name: &str) -> Result<Queue> {
        queue_on(&self.redis.url(), name)
    }

    /// The release binary `name`.
    pub(crate) fn binary(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }

    /// Where the log of the process `label` goes.
    pub(crate) fn log(&self, label: &str) -> PathBuf {
        self.raw.join(format!("{label}.log"))
    }

    /// Starts the release mock-api with `delay_ms` per call, answering "done" at the
    /// `polls`-th call of a task (over HTTPS when `https`); its log is `<raw>/<label>.log`.
    ///
    /// # Errors
    /// When it cannot start or does not listen.
    pub(crate) fn mock_api(
        &self,
        delay_ms: u64,
        polls: u64,
        https: bool,
        label: &str,
    ) -> Result<MockApi> {
        let env = [
            ("MOCK_DELAY_MS", delay_ms.to_string()),
            ("MOCK_POLLS_UNTIL_DONE", polls.to_string()),
        ];
        let log = self.log(label);
        Ok(MockApi::try_start(
            &self.binary("mock-api"),
            &env,
            https,
            Some(&log),
        )?)
    }

    /// Spawns the release consumers `c` asks for, calling `mock`, and waits until each of
    /// `c.queues` counts `c.each` tasks done; their logs are `<raw>/<label>-consumer<i>.log`.
    ///
    /// # Errors
    /// When a consumer cannot start or exits, Redis fails, or `c.within` passes first.
    pub(crate) async fn drain_by_consumers(
        &self,
        c: &Consumers<'_>,
        mock: MockApi,
    ) -> Result<Drained> {
        let started = Instant::now();
        let mut consumers = Vec::new();
        for i in 0..c.count {
            let addr = testkit::free_addr();
            let mut env = vec![
                ("REDIS_URL", c.redis_url.to_owned()),
                ("CONSUMER_ADDR", addr.to_string()),
            ];
            env.extend(mock.consumer_env());
            env.extend_from_slice(&c.settings);
            let log = self.log(&format!("{}-consumer{i}", c.label));
            let process = Process::try_spawn(&self.binary("consumer"), &env, Some(&log))?;
            consumers.push((process, addr));
        }
        let elapsed = wait_done(c.queues, c.each, started, c.within).await?;
        let mut consumer_cpu_s = 0.0;
        for (consumer, _) in &mut consumers {
            consumer.check_running()?;
            consumer_cpu_s += cpu_seconds(consumer.pid())?;
        }
        Ok(Drained {
            consumers,
            mock,
            elapsed,
            consumer_cpu_s,
        })
    }
}

/// A handle on queue `name` of the Redis (or cluster: comma-separated node URLs) at `url`, with
/// a patient response timeout: the benchmark's own bulk calls must not fail because the machine
/// is busy.
///
/// # Errors
/// When the name or URL is unusable.
pub(crate) fn queue_on(url: &str, name: &str) -> Result<Queue> {
    let url: RedisUrl = url.parse()?;
    let options = ConnectOptions {
        response_timeout: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(2),
        ..ConnectOptions::default()
    };
    Ok(Queue::open(&url, &options, name)?)
}

/// A GET answering JSON.
///
/// # Errors
/// When the request fails or the answer is not JSON.
pub(crate) async fn get_json(client: &reqwest::Client, url: &str) -> Result<serde_json::Value> {
    let response = client.get(url).send().await?.error_for_status()?;
    Ok(serde_json::from_slice(&response.bytes().await?)?)
}

/// Task names `<prefix>-<i>` for `i` in `range`.
///
/// # Errors
/// When a name is invalid (never for the prefixes used here).
pub(crate) fn names(prefix: &str, range: std::ops::Range<u64>) -> Result<Vec<TaskName>> {
    range
        .map(|i| TaskName::parse(format!("{prefix}-{i}")).map_err(Into::into))
        .collect()
}

/// Enqueues `<prefix>-<i>` for `i` in `range` in sequential `enqueue_many` chunks of [`CHUNK`];
/// answers how long it took. Every name must be new.
///
/// # Errors
/// When Redis fails or a name was already there.
pub(crate) async fn fill(
    queue: &Queue,
    prefix: &str,
    range: std::ops::Range<u64>,
) -> Result<Duration> {
    let started = Instant::now();
    for from in range.clone().step_by(CHUNK as usize) {
        let to = (from + CHUNK).min(range.end);
        let created = queue.enqueue_many(&names(prefix, from..to)?).await?;
        if created.iter().any(|c| !c) {
            bail!("{prefix}: some of {from}..{to} were already queued");
        }
    }
    Ok(started.elapsed())
}

/// Waits until every queue's `done` counter reaches `each` (read every 5 ms); answers the time
/// since `since`.
async fn wait_done(
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
pub(crate) struct Consumers<'a> {
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
pub(crate) struct Drained {
    /// The consumers, each with where it serves `/metrics`.
    pub consumers: Vec<(Process, SocketAddr)>,
    /// The API they called.
    pub mock: MockApi,
    /// From the first consumer's spawn until every queue had its tasks done.
    pub elapsed: Duration,
    /// The consumers' CPU seconds until then.
    pub consumer_cpu_s: f64,
}

impl Drained {
    /// Stops the consumers and the mock, and fails unless the mock answered `expected` calls,
    /// counted 300 ms after the drain ended so that a late duplicate call would show.
    ///
    /// # Errors
    /// When the mock's `/stats` cannot be read, a process is gone, or the count is off.
    pub(crate) async fn finish(self, expected: u64) -> Result<()> {
        sleep(Duration::from_millis(300)).await;
        let client = self.mock.client_builder()?.build()?;
        let stats = get_json(&client, &format!("{}/stats", self.mock.base())).await?;
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
pub(crate) fn stop(mut process: Process) -> Result<()> {
    process.try_terminate(Duration::from_secs(10))?;
    Ok(())
}

/// Redis' cost of `tasks` tasks, as metrics: round trips (script calls plus one candidate read
/// per claim), script calls, socket reads and tasks per claim, and Redis CPU per task and as a
/// share of one core over `window`.
pub(crate) fn redis_metrics(usage: &Usage, tasks: u64, window: Duration) -> Vec<Metric> {
    let per_task = |x: u64| x as f64 / tasks.max(1) as f64;
    let claims = usage.claims().max(1) as f64;
    let cpu_us = usage.cpu_s * 1e6 / tasks.max(1) as f64;
    let share = usage.cpu_s / window.as_secs_f64().max(1e-9);
    vec![
        metric(
            "round_trips_per_task",
            "round trips",
            per_task(usage.round_trips()),
        ),
        metric(
            "script_calls_per_task",
            "calls",
            per_task(usage.script_calls()),
        ),
        metric("socket_reads_per_task", "reads", per_task(usage.reads)),
        metric("tasks_per_claim", "tasks", tasks as f64 / claims),
        metric("redis_cpu_us_per_task", "µs", cpu_us),
        metric("redis_cpu_share", "cores", share),
    ]
}

/// Writes Redis' per-command profile of `tasks` tasks to `<raw>/<label>-redis-profile.json`.
///
/// # Errors
/// When the file cannot be written.
pub(crate) fn write_profile(
    bench: &Bench<'_>,
    label: &str,
    usage: &Usage,
    tasks: u64,
) -> Result<()> {
    let path = bench.raw.join(format!("{label}-redis-profile.json"));
    let json = serde_json::to_string_pretty(&usage.profile_per_task(tasks))?;
    std::fs::write(&path, json + "\n")?;
    Ok(())
}

/// KiB to MiB.
pub(crate) fn mib(kib: u64) -> f64 {
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
