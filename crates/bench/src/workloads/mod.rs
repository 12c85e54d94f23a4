//! The workloads of issues 4 (W*) and 5 (S*), a module each, one function per run; a run answers
//! named metrics, and fails (counting no figure) when a check of what it did does not hold.
//!
//! Every run starts from an empty Redis (`FLUSHALL`) and fresh processes, except W4's later runs,
//! which top the deep queue back up instead of enqueueing a million tasks again (see
//! `library_drain`). S2 starts a three-master cluster of its own in every run.

mod cluster;
mod enqueue;
mod fleet;
mod full_stack;
mod http_enqueue;
mod library_drain;
mod rate_limit;
mod scaling;
mod spread;
mod steps;
mod waiting;
mod webhooks;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use taskq::{ConnectOptions, Queue, RedisUrl, TaskName};
use testkit::{Binaries, Process, RedisServer, Spent, Stack, StackSettings, Usage, free_addr};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::probe::ScriptCosts;
use crate::workload::{CHUNK, Settings, Workload};

/// One run of `workload`.
///
/// # Errors
/// When a process, Redis or a check of the run fails, or it does not end in time.
pub async fn run(bench: &Bench<'_>, workload: Workload, run: u32) -> Result<Vec<Metric>> {
    match workload {
        Workload::W1 => http_enqueue::run(bench, run).await,
        Workload::W1b => enqueue::run(bench, run).await,
        Workload::W2 => library_drain::w2(bench, run).await,
        Workload::W2h | Workload::W2hTls => full_stack::w2h(bench, workload, run).await,
        Workload::W3d | Workload::W3dTls => full_stack::w3d(bench, workload, run).await,
        Workload::W4 => library_drain::w4(bench, run).await,
        Workload::S1 => scaling::run(bench, run).await,
        Workload::S2 => cluster::run(bench, run).await,
        Workload::W5 => rate_limit::run(bench, run).await,
        Workload::W6 => waiting::w6(bench, run).await,
        Workload::W7 => webhooks::w7(bench, run).await,
        Workload::W8 | Workload::W8Sigv4 => steps::w8(bench, workload, run).await,
    }
}

/// One measured figure of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    /// What it is (`tasks_per_s`, `p99_ms`, ...): the name docs/performance.md and the notes quote.
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
    /// The release binaries (each workload's were checked to be there), each logging to
    /// `<raw>/<label>.log`.
    pub binaries: Binaries,
    /// Where child logs, Redis profiles and wrk's script go (git-ignored).
    pub raw: PathBuf,
    /// Sizes and knobs.
    pub settings: Settings,
    /// For the services' HTTP endpoints (`/healthz`, `/metrics`).
    pub http: reqwest::Client,
}

impl Bench<'_> {
    /// [`queue_on`] the private Redis.
    pub fn queue(&self, name: &str) -> Result<Queue> {
        queue_on(&self.redis.url(), name)
    }

    /// Empties the private Redis and [`fill`]s queue `name` with `tasks` tasks named after
    /// `label`.
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn filled(&self, name: &str, label: &str, tasks: u64) -> Result<Queue> {
        self.redis.try_flush_all().await?;
        let queue = self.queue(name)?;
        fill(&queue, label, 0..tasks).await?;
        Ok(queue)
    }

    /// Writes `contents` to `<raw>/<name>`; answers its path.
    ///
    /// # Errors
    /// When it cannot be written.
    pub fn write_raw(&self, name: &str, contents: impl AsRef<[u8]>) -> Result<PathBuf> {
        let path = self.raw.join(name);
        std::fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }

    /// Starts the release producer of `queue` on the private Redis, on a free port, and waits
    /// until it listens; answers it and its address. It logs as `label`.
    ///
    /// # Errors
    /// When it cannot start or does not listen.
    pub fn producer(&self, queue: &str, label: &str) -> Result<(Process, SocketAddr)> {
        let addr = free_addr();
        let env = [
            ("REDIS_URL", self.redis.url()),
            ("QUEUE_NAME", queue.to_owned()),
            ("PRODUCER_ADDR", addr.to_string()),
        ];
        Ok((
            self.binaries.try_serve("producer", addr, &env, label)?,
            addr,
        ))
    }

    /// testkit's stack on the private Redis: the release mock-api with `mock`, and a producer of
    /// `queue` with `producer` on top; each logs as `<label>-...`.
    ///
    /// # Errors
    /// When one cannot start or does not listen.
    pub fn stack(
        &self,
        label: &str,
        queue: &str,
        mock: Vec<(&'static str, String)>,
        producer: Vec<(&'static str, String)>,
    ) -> Result<Stack> {
        Ok(Stack::try_start(StackSettings {
            binaries: self.binaries.clone(),
            label,
            env: vec![
                ("REDIS_URL", self.redis.url()),
                ("QUEUE_NAME", queue.to_owned()),
            ],
            mock,
            https: false,
            producer,
        })?)
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

/// The `/metrics` page of the service at `addr`.
///
/// # Errors
/// When the request fails or the status is not 2xx.
pub async fn metrics_page(client: &reqwest::Client, addr: SocketAddr) -> Result<String> {
    match testkit::try_get_text(client, format!("http://{addr}/metrics")).await? {
        (status, page) if status.is_success() => Ok(page),
        (status, _) => bail!("GET http://{addr}/metrics: {status}"),
    }
}

/// The sum of every sample of `series` (all its labels) on a `/metrics` page; 0 when absent.
pub fn series_total(page: &str, series: &str) -> f64 {
    page.lines()
        .filter(|line| line.starts_with(series))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The `pct`-th percentile of `sorted` (ascending, not empty) by nearest rank: the value at or
/// above which `100 - pct` % of them lie.
pub fn percentile<T: Copy>(sorted: &[T], pct: usize) -> T {
    let rank = (sorted.len() * pct).div_ceil(100).max(1);
    sorted[rank - 1]
}

/// The median, 99th percentile and maximum of `values` (ms), as `<prefix>_p50_ms`,
/// `<prefix>_p99_ms` and `<prefix>_max_ms`.
///
/// # Errors
/// When there are none.
pub fn distribution(prefix: &str, mut values: Vec<f64>) -> Result<Vec<Metric>> {
    if values.is_empty() {
        bail!("{prefix}: nothing was timed");
    }
    values.sort_by(f64::total_cmp);
    let at = |pct| percentile(&values, pct);
    Ok(vec![
        metric(format!("{prefix}_p50_ms"), "ms", at(50)),
        metric(format!("{prefix}_p99_ms"), "ms", at(99)),
        metric(format!("{prefix}_max_ms"), "ms", at(100)),
    ])
}

/// Task names `<prefix>-<i>` for `i` in `range`.
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
    for from in range.clone().step_by(CHUNK as usize) {
        let to = (from + CHUNK).min(range.end);
        let created = queue.enqueue_many(&names(prefix, from..to)?).await?;
        if created.iter().any(|c| !c) {
            bail!("{prefix}: some of {from}..{to} were already queued");
        }
    }
    Ok(started.elapsed())
}

/// A drain's figures: tasks per second; the peak RSS, CPU per task and share of a core of `who`
/// (the `worker` or `consumer` that drained, over `secs`); the machine's busy cores; then Redis'
/// cost: round trips (script calls plus one candidate read per claim), script calls, socket
/// reads and tasks per claim, and Redis CPU per task and as a share of one core.
pub fn drain_metrics(
    who: &str,
    tasks: u64,
    secs: f64,
    cpu_s: f64,
    rss_mib: f64,
    spent: &Spent,
) -> Vec<Metric> {
    let name = |what: &str| format!("{who}_{what}");
    let (usage, per_task) = (&spent.redis, |x: f64| x / tasks.max(1) as f64);
    let claims = usage.claims().max(1) as f64;
    vec![
        metric("tasks_per_s", "tasks/s", tasks as f64 / secs),
        metric(name("peak_rss_mib"), "MiB", rss_mib),
        metric(name("cpu_us_per_task"), "µs", cpu_s * 1e6 / tasks as f64),
        metric(name("cpu_share"), "cores", cpu_s / secs),
        metric("machine_busy_cores", "cores", spent.machine_busy_cores),
        metric(
            "round_trips_per_task",
            "round trips",
            per_task(usage.round_trips() as f64),
        ),
        metric(
            "script_calls_per_task",
            "calls",
            per_task(usage.script_calls() as f64),
        ),
        metric(
            "socket_reads_per_task",
            "reads",
            per_task(usage.reads as f64),
        ),
        metric("tasks_per_claim", "tasks", tasks as f64 / claims),
        metric("redis_cpu_us_per_task", "µs", per_task(usage.cpu_s * 1e6)),
        metric("redis_cpu_share", "cores", spent.share(usage.cpu_s)),
    ]
}

/// Writes Redis' per-command profile of `tasks` tasks to `<raw>/<label>-redis-profile.json`.
pub fn write_profile(bench: &Bench<'_>, label: &str, usage: &Usage, tasks: u64) -> Result<()> {
    let json = serde_json::to_string_pretty(&usage.profile_per_task(tasks))?;
    bench.write_raw(&format!("{label}-redis-profile.json"), json + "\n")?;
    Ok(())
}

/// Every task's answer, or the first failure.
///
/// # Errors
/// When a task failed or panicked.
pub async fn joined<T: 'static>(mut tasks: JoinSet<Result<T>>) -> Result<Vec<T>> {
    let mut answers = Vec::with_capacity(tasks.len());
    while let Some(answer) = tasks.join_next().await {
        answers.push(answer.context("a task panicked")??);
    }
    Ok(answers)
}

/// KiB to MiB.
pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_are_summed_over_their_labels() {
        let page = "# HELP taskq_x What.\n# TYPE taskq_x gauge\ntaskq_x{queue=\"a\"} 2\n\
                    taskq_x{queue=\"b\"} 3.5\ntaskq_xy 100\n";
        assert_eq!(series_total(page, "taskq_x{"), 5.5);
        assert_eq!(series_total(page, "taskq_z"), 0.0);
    }

    #[test]
    fn percentiles_are_by_nearest_rank() {
        let values: Vec<u32> = (1..=200).collect();
        assert_eq!(percentile(&values, 50), 100);
        assert_eq!(percentile(&values, 99), 198);
        assert_eq!(percentile(&values, 100), 200);
        assert_eq!(percentile(&[7], 1), 7);
    }

    #[test]
    fn a_distribution_is_its_median_p99_and_max_and_needs_a_value() {
        assert!(distribution("x", Vec::new()).is_err());
        let metrics = distribution("x", vec![3.0, 1.0, 2.0]).expect("three values");
        let values: Vec<(&str, f64)> = metrics.iter().map(|m| (m.name.as_str(), m.value)).collect();
        assert_eq!(
            values,
            [("x_p50_ms", 2.0), ("x_p99_ms", 3.0), ("x_max_ms", 3.0)]
        );
    }

    #[test]
    fn names_are_numbered_within_the_range() -> Result<()> {
        let names = names("w2", 3..5)?;
        let names: Vec<&str> = names.iter().map(TaskName::as_str).collect();
        assert_eq!(names, ["w2-3", "w2-4"]);
        Ok(())
    }
}
