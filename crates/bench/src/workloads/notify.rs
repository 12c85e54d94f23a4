//! W6 and W7: results pushed to whoever waits for them, rather than polled for.
//!
//! W6 asks what a long-poll buys a client. One client per task waits with
//! `GET /tasks/NAME?wait=60` while the tasks finish at random over ten seconds. A client's
//! lateness is its answer's arrival by the system clock minus the task's `done_at_ms`, which Redis
//! stamps with its `TIME`: the same clock on the same machine, both in whole milliseconds. So it
//! counts the script's pub/sub message, the producer's wake-up, its read of the task and the
//! answer, and nothing of the task's own work. The same clients then read once a second, as a
//! client without long-polls must: the baseline, in requests per task and lateness. Last, what a
//! waiting request costs the producer while it waits: ten thousand held at once on raw
//! connections (an HTTP client per connection would load the bench, not the producer), its
//! resident memory read once its `taskq_waiting_requests` counts them all.
//!
//! Every client must be waiting before the first task is done, or its lateness would count its
//! own start: the tasks fall due two seconds after they are enqueued at the earliest, and the
//! long-poll leg fails unless the producer counts every client waiting by then. The moments are
//! pseudo-random but fixed per run ([`mix`]), so a rerun repeats them.
//!
//! W7 times a provider webhook from the moment the mock sent it (the start of the POST that was
//! answered, which the mock records per job and shows at `GET /webhooks`) to the task's
//! `done_at_ms`: the producer's hook route, the hurry script, the consumer's wake-up, its claim,
//! its one poll of the API and the finish. The queue polls every 60 s, so a task whose webhook
//! was lost would be claimed a third time or finish late: every task must be claimed exactly
//! twice (its submit, then the poll the webhook asked for) and done well within the 60 s.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use taskq::{NewTask, Queue, RunAt, TaskName, TaskView};
use testkit::{MockApi, Process};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::process::Command;
use tokio::task::JoinSet;
use tokio::time::{Instant, Interval, MissedTickBehavior, interval_at, sleep, timeout};
use tracing::info;

use super::{
    Bench, Metric, fill, get_json, metric, metrics_page, mib, names, percentile, series_total, stop,
};
use crate::command::output_of;
use crate::redis_admin;
use crate::workload::{
    NOTIFY_API_DELAY_MS, NOTIFY_CONCURRENCY, POLL_INTERVAL_MS, W6_IDLE, W6_LEAD_MS,
    W6_POLL_EVERY_MS, W6_SPREAD_MS, W6_TASKS, W6_WAIT_S, W7_JOB_MS, W7_POLL_INTERVAL_MS,
    W7_SPREAD_MS, W7_TASKS,
};

const W6_QUEUE: &str = "bench-w6";
const W7_QUEUE: &str = "bench-w7";
/// The variable that hands W7's API key to the consumer's profile (`${...}` in its headers).
const W7_KEY_VAR: &str = "BENCH_W7_API_KEY";
/// W7's API key: the mock's `MOCK_API_KEY`.
const W7_KEY: &str = "bench-w7-api-key";
/// The secret of W7's hook URLs, the same on the producer and the consumer (16 bytes at least).
const HOOK_SECRET: &str = "bench-w7-hook-secret";
/// Open files the bench needs beside W6's idle long-polls: its other connections, Redis, logs.
const OTHER_FILES: u64 = 1_024;

/// One run of W6: the long-poll leg, the polling leg, then the idle long-polls.
///
/// # Errors
/// When a process or Redis fails, a client is not waiting in time, or a task does not end done.
pub async fn w6(bench: &Bench<'_>, run: u32) -> Result<Vec<Metric>> {
    open_files_at_least(W6_IDLE + OTHER_FILES).await?;
    let mut metrics = follow(bench, run, Reads::LongPoll).await?;
    let every = Duration::from_millis(W6_POLL_EVERY_MS);
    metrics.extend(follow(bench, run, Reads::Every(every)).await?);
    metrics.extend(idle(bench, run).await?);
    Ok(metrics)
}

/// One run of W7.
///
/// # Errors
/// When a process or Redis fails, a task is not done in time, was not claimed exactly twice or
/// had no webhook sent, or the API was not called twice per task.
pub async fn w7(bench: &Bench<'_>, run: u32) -> Result<Vec<Metric>> {
    let label = format!("w7-r{run}");
    redis_admin::flush(bench.redis).await?;
    let mut stack = Stack::w7(bench, &label)?;
    let queue = bench.queue(W7_QUEUE)?;
    let names = names(&label, 0..W7_TASKS)?;
    let due = schedule_spread(&queue, &names, run, 0, W7_SPREAD_MS).await?;
    // Half the poll interval after the last submit: a task that needed its poll is not done.
    let within = Duration::from_millis(W7_SPREAD_MS + W7_POLL_INTERVAL_MS / 2);
    all_done(&queue, W7_TASKS, &mut stack, within).await?;
    let base = stack.mock.base();
    let sent = get_json(&bench.http, &format!("{base}/webhooks")).await?;
    let stats = get_json(&bench.http, &format!("{base}/stats")).await?;
    let mut views = Vec::with_capacity(names.len());
    for name in &names {
        let view = queue.get(name).await?;
        views.push(view.with_context(|| format!("no task {}", name.as_str()))?);
    }
    stack.stop()?;

    let calls = stats["calls"].as_u64().context("no calls in /stats")?;
    if calls != 2 * W7_TASKS {
        bail!(
            "the API was called {calls} times instead of {}",
            2 * W7_TASKS
        );
    }
    let not_twice: Vec<String> = views
        .iter()
        .filter(|view| view.claims != 2)
        .map(|view| format!("{} ({} claims)", view.task, view.claims))
        .collect();
    if !not_twice.is_empty() {
        bail!(
            "{} tasks not claimed exactly twice: {not_twice:?}",
            not_twice.len()
        );
    }
    let mut hook_to_done = Vec::with_capacity(views.len());
    let mut slowest_ms = 0;
    for (view, due) in views.iter().zip(due) {
        let done = done_at_ms(view)?;
        hook_to_done.push(done as f64 - webhook_sent_ms(&sent, view)? as f64);
        slowest_ms = slowest_ms.max(done.saturating_sub(due));
    }
    let mut metrics = distribution("hook_to_done", hook_to_done)?;
    metrics.push(metric("slowest_task_ms", "ms", slowest_ms as f64));
    Ok(metrics)
}

/// How W6's clients read their task.
#[derive(Debug, Clone, Copy)]
enum Reads {
    /// A long-poll, asked again while the task is not final.
    LongPoll,
    /// A plain read at this interval.
    Every(Duration),
}

impl Reads {
    /// Its metrics' prefix, also in its logs' and tasks' names.
    fn label(self) -> &'static str {
        match self {
            Self::LongPoll => "long_poll",
            Self::Every(_) => "poll",
        }
    }

    /// The URL a client reads task `name` at, on the producer at `addr`.
    fn url(self, addr: SocketAddr, name: &TaskName) -> String {
        let name = name.as_str();
        match self {
            Self::LongPoll => format!("http://{addr}/tasks/{name}?wait={W6_WAIT_S}"),
            Self::Every(_) => format!("http://{addr}/tasks/{name}"),
        }
    }

    /// The pace of client `i` of `n`: none for a long-poll (it asks again at once), else its
    /// interval, the first reads spread evenly over the first one as independent clients' are.
    fn pace(self, started: Instant, i: usize, n: usize) -> Option<Interval> {
        let Self::Every(every) = self else {
            return None;
        };
        let first = started + every.mul_f64(i as f64 / n as f64);
        let mut pace = interval_at(first, every);
        pace.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Some(pace)
    }
}

/// What one W6 client saw.
struct Followed {
    /// The requests it made.
    requests: u64,
    /// Its last answer's arrival minus the task's `done_at_ms` (both whole ms).
    late_ms: f64,
}

/// A W6 leg: a fresh stack, [`W6_TASKS`] tasks spread over time, one client per task reading it
/// as `reads` says until it is done; answers the requests per task and the lateness.
async fn follow(bench: &Bench<'_>, run: u32, reads: Reads) -> Result<Vec<Metric>> {
    let label = format!("w6-r{run}-{}", reads.label());
    redis_admin::flush(bench.redis).await?;
    let mut stack = Stack::w6(bench, &label)?;
    let queue = bench.queue(W6_QUEUE)?;
    let names = names(&label, 0..W6_TASKS)?;
    let enqueued = Instant::now();
    schedule_spread(&queue, &names, run, W6_LEAD_MS, W6_SPREAD_MS).await?;
    let clients = clients(stack.addr, &names, reads)?;
    if let Reads::LongPoll = reads {
        let first_due = enqueued + Duration::from_millis(W6_LEAD_MS);
        all_waiting(bench, stack.addr, W6_TASKS, first_due).await?;
    }
    let within = Duration::from_millis(W6_LEAD_MS + W6_SPREAD_MS) + Duration::from_secs(30);
    let followed = timeout(within, joined(clients))
        .await
        .with_context(|| format!("the clients were not all answered within {within:?}"))??;
    stack.stop()?;
    let requests: u64 = followed.iter().map(|f| f.requests).sum();
    let prefix = reads.label();
    let mut metrics = vec![metric(
        format!("{prefix}_requests_per_task"),
        "requests",
        requests as f64 / W6_TASKS as f64,
    )];
    let late = followed.iter().map(|f| f.late_ms).collect();
    metrics.extend(distribution(&format!("{prefix}_late"), late)?);
    Ok(metrics)
}

/// W6's idle long-polls: a fresh producer alone with [`W6_IDLE`] queued tasks (nobody runs
/// them), its resident memory before and while it holds a long-poll of each.
async fn idle(bench: &Bench<'_>, run: u32) -> Result<Vec<Metric>> {
    let label = format!("w6-r{run}-idle");
    redis_admin::flush(bench.redis).await?;
    let queue = bench.queue(W6_QUEUE)?;
    fill(&queue, &label, 0..W6_IDLE).await?;
    let (mut producer, addr) = bench.producer(W6_QUEUE, &[], &format!("{label}-producer"))?;
    // One request served first, so that "before" is a producer that has answered one.
    metrics_page(&bench.http, addr).await?;
    let before = rss_kib(&producer)?;
    let names = names(&label, 0..W6_IDLE)?;
    let opened = Instant::now();
    let mut held = Vec::with_capacity(names.len());
    for name in &names {
        held.push(hold(addr, name).await?);
    }
    // Well within the wait, so that none of them has been answered yet.
    let deadline = opened + Duration::from_secs(W6_WAIT_S) * 3 / 4;
    all_waiting(bench, addr, W6_IDLE, deadline).await?;
    let waiting = rss_kib(&producer)?;
    info!(
        requests = W6_IDLE,
        took_ms = opened.elapsed().as_millis(),
        "idle long-polls held"
    );
    drop(held);
    stop(&mut producer)?;
    let per_request = waiting.saturating_sub(before) as f64 / W6_IDLE as f64;
    Ok(vec![
        metric("idle_rss_before_mib", "MiB", mib(before)),
        metric("idle_rss_mib", "MiB", mib(waiting)),
        metric("idle_kib_per_waiting_request", "KiB", per_request),
    ])
}

/// A producer, a consumer and the mock-api it calls, each killed if dropped before
/// [`Stack::stop`].
struct Stack {
    mock: MockApi,
    producer: Process,
    /// Where the producer serves.
    addr: SocketAddr,
    consumer: Process,
}

impl Stack {
    /// The stack of `mock` and a producer, completed by a consumer with `env`.
    fn with_consumer(
        bench: &Bench<'_>,
        label: &str,
        mock: MockApi,
        (producer, addr): (Process, SocketAddr),
        env: &[(&'static str, String)],
    ) -> Result<Self> {
        let redis = bench.redis.url();
        let (consumer, _) = bench.consumer(&redis, env, &format!("{label}-consumer"))?;
        Ok(Self {
            mock,
            producer,
            addr,
            consumer,
        })
    }

    /// W6's: the original API shape, answering "done" at the first call after its delay.
    fn w6(bench: &Bench<'_>, label: &str) -> Result<Self> {
        let api = (NOTIFY_API_DELAY_MS, 1, false);
        let mock = bench.mock_api(api, &[], &format!("{label}-mock-api"))?;
        let (producer, addr) = bench.producer(W6_QUEUE, &[], &format!("{label}-producer"))?;
        let mut env = vec![
            ("QUEUE_NAME", W6_QUEUE.to_owned()),
            ("CONCURRENCY", NOTIFY_CONCURRENCY.to_string()),
            ("POLL_INTERVAL_MS", POLL_INTERVAL_MS.to_string()),
        ];
        env.extend(mock.consumer_env());
        Self::with_consumer(bench, label, mock, (producer, addr), &env)
    }

    /// W7's: Replicate's shape, each job done [`W7_JOB_MS`] after its submit and calling the
    /// webhook its submit named, which is the producer's hook URL for the task.
    fn w7(bench: &Bench<'_>, label: &str) -> Result<Self> {
        let api = (NOTIFY_API_DELAY_MS, 1, false);
        let shape = [
            ("MOCK_SHAPE", "replicate".to_owned()),
            ("MOCK_WEBHOOKS", "1".to_owned()),
            ("MOCK_JOB_MS", W7_JOB_MS.to_string()),
            ("MOCK_API_KEY", W7_KEY.to_owned()),
        ];
        let mock = bench.mock_api(api, &shape, &format!("{label}-mock-api"))?;
        let secret = [("HOOK_SECRET", HOOK_SECRET.to_owned())];
        let (producer, addr) = bench.producer(W7_QUEUE, &secret, &format!("{label}-producer"))?;
        let file = bench.raw.join(format!("{label}-queues.json"));
        std::fs::write(&file, queues_file(&mock.base()).to_string())
            .with_context(|| format!("writing {}", file.display()))?;
        let env = [
            ("QUEUE_NAME", W7_QUEUE.to_owned()),
            ("CONCURRENCY", NOTIFY_CONCURRENCY.to_string()),
            ("QUEUES_FILE", file.display().to_string()),
            (W7_KEY_VAR, W7_KEY.to_owned()),
            ("PUBLIC_URL", format!("http://{addr}")),
            ("HOOK_SECRET", HOOK_SECRET.to_owned()),
        ];
        Self::with_consumer(bench, label, mock, (producer, addr), &env)
    }

    /// Fails when one of them has exited.
    fn check_running(&mut self) -> Result<()> {
        self.consumer.check_running()?;
        self.producer.check_running()?;
        Ok(self.mock.process.check_running()?)
    }

    /// Stops them, the consumer first.
    fn stop(&mut self) -> Result<()> {
        stop(&mut self.consumer)?;
        stop(&mut self.producer)?;
        stop(&mut self.mock.process)
    }
}

/// W7's `QUEUES_FILE`: its queue calls the mock at `base` through a Replicate profile (the
/// system tests' `replicate_profile`) whose submit asks for a webhook, and polls every 60 s.
fn queues_file(base: &str) -> Value {
    json!({ W7_QUEUE: {
        "poll_interval_ms": W7_POLL_INTERVAL_MS,
        "api": {
            "base_url": base,
            "headers": {"Authorization": format!("Bearer ${{{W7_KEY_VAR}}}")},
            "submit": {
                "path": "/v1/predictions",
                "body": {"version": "v1", "input": "{{payload}}", "webhook": "{{webhook_url}}"},
                "id": "/id",
            },
            "poll": {"path": "/v1/predictions/{{id}}"},
            "status": {
                "pointer": "/status",
                "processing": ["starting", "processing"],
                "done": ["succeeded"],
                "failed": ["failed", "canceled"],
            },
            "result": "/output",
            "error": "/error",
        },
    }})
}

/// Enqueues `names` in one go, the i-th due `lead_ms` plus a pseudo-random share of
/// `spread_ms` later ([`mix`] of `seed` and i); answers each task's due time (`run_at_ms`,
/// Redis time).
async fn schedule_spread(
    queue: &Queue,
    names: &[TaskName],
    seed: u32,
    lead_ms: u64,
    spread_ms: u64,
) -> Result<Vec<u64>> {
    let tasks: Vec<NewTask> = names
        .iter()
        .zip(0_u64..)
        .map(|(name, i)| NewTask {
            name: name.clone(),
            payload: None,
            run_at: RunAt::After(Duration::from_millis(
                lead_ms + mix(seed.into(), i) % spread_ms,
            )),
            callback_url: None,
        })
        .collect();
    let enqueued = queue.submit_many(&tasks).await?;
    enqueued
        .into_iter()
        .map(|enqueued| {
            let enqueued = enqueued?;
            let task = &enqueued.view.task;
            if !enqueued.created {
                bail!("{task} was already queued");
            }
            enqueued
                .view
                .run_at_ms
                .with_context(|| format!("{task} has no run_at_ms"))
        })
        .collect()
}

/// A pseudo-random number made of `seed` and `i` (SplitMix64's mixing): the same pair gives the
/// same number, and consecutive `i` give numbers spread evenly over the u64s.
fn mix(seed: u64, i: u64) -> u64 {
    let mut z = ((seed << 32) ^ i)
        .wrapping_add(1)
        .wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// One client per task in `names`, each reading its task at the producer `addr` as `reads` says
/// until it is done (each with a connection of its own while they wait).
fn clients(
    addr: SocketAddr,
    names: &[TaskName],
    reads: Reads,
) -> Result<JoinSet<Result<Followed>>> {
    let client = testkit::http_client_builder()
        .pool_max_idle_per_host(names.len())
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(W6_WAIT_S + 15))
        .build()?;
    let (started, n) = (Instant::now(), names.len());
    let mut clients = JoinSet::new();
    for (i, name) in names.iter().enumerate() {
        let (client, url, pace) = (
            client.clone(),
            reads.url(addr, name),
            reads.pace(started, i, n),
        );
        clients.spawn(async move {
            let followed = read_until_done(&client, &url, pace).await;
            followed.with_context(|| format!("reading {url}"))
        });
    }
    Ok(clients)
}

/// Reads the task at `url` (each time `pace` ticks, or at once again without one) until it is
/// done; answers the requests made and how late the last answer came.
async fn read_until_done(
    client: &reqwest::Client,
    url: &str,
    mut pace: Option<Interval>,
) -> Result<Followed> {
    let mut requests = 0;
    loop {
        if let Some(pace) = &mut pace {
            pace.tick().await;
        }
        requests += 1;
        let view = get_json(client, url).await?;
        let answered_ms = epoch_ms();
        match view["state"].as_str() {
            Some("done") => {
                let done = view["done_at_ms"].as_u64().context("done, no done_at_ms")?;
                let late_ms = answered_ms as f64 - done as f64;
                return Ok(Followed { requests, late_ms });
            }
            Some("queued" | "running" | "processing") => {}
            _ => bail!("the task did not end done: {view}"),
        }
    }
}

/// Every client's answer, or the first failure.
async fn joined<T: 'static>(mut clients: JoinSet<Result<T>>) -> Result<Vec<T>> {
    let mut answers = Vec::with_capacity(clients.len());
    while let Some(answer) = clients.join_next().await {
        answers.push(answer.context("a client panicked")??);
    }
    Ok(answers)
}

/// Waits until the producer at `addr` counts `n` waiting requests (`taskq_waiting_requests`,
/// read every 10 ms); fails at `deadline`.
async fn all_waiting(bench: &Bench<'_>, addr: SocketAddr, n: u64, deadline: Instant) -> Result<()> {
    loop {
        let page = metrics_page(&bench.http, addr).await?;
        let waiting = series_total(&page, "taskq_waiting_requests");
        if waiting >= n as f64 {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("{waiting} of {n} requests were waiting by the deadline");
        }
        sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until `queue` counts `n` tasks done (read every 10 ms), `stack` still running; fails
/// after `within`.
async fn all_done(queue: &Queue, n: u64, stack: &mut Stack, within: Duration) -> Result<()> {
    let started = Instant::now();
    loop {
        let done = crate::drain::done(queue).await?;
        if done >= n {
            return Ok(());
        }
        stack.check_running()?;
        if started.elapsed() > within {
            bail!("{done} of {n} tasks done after {within:?}");
        }
        sleep(Duration::from_millis(10)).await;
    }
}

/// Opens a connection to the producer at `addr` and sends a long-poll of `name` on it (a bare
/// HTTP/1.1 request), whose answer is never read.
async fn hold(addr: SocketAddr, name: &TaskName) -> Result<TcpStream> {
    let mut stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    let path = format!("/tasks/{}?wait={W6_WAIT_S}", name.as_str());
    let request = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    Ok(stream)
}

/// A done task's `done_at_ms`.
fn done_at_ms(view: &TaskView) -> Result<u64> {
    view.done_at_ms
        .with_context(|| format!("{} is {}, not done", view.task, view.state))
}

/// When the mock sent the webhook of the task `view`'s job, from its `GET /webhooks` answer.
fn webhook_sent_ms(sent: &Value, view: &TaskView) -> Result<u64> {
    let job = view.remote_id.as_deref();
    let job = job.with_context(|| format!("{} has no remote id", view.task))?;
    let ms = sent["sent_at_ms"][job].as_u64();
    ms.with_context(|| format!("no webhook was sent for {} (job {job})", view.task))
}

/// The median, 99th percentile and maximum of `values` (ms), as `<prefix>_p50_ms`,
/// `<prefix>_p99_ms` and `<prefix>_max_ms`.
fn distribution(prefix: &str, mut values: Vec<f64>) -> Result<Vec<Metric>> {
    if values.is_empty() {
        bail!("{prefix}: nothing was timed");
    }
    values.sort_by(f64::total_cmp);
    Ok([50, 99, 100]
        .into_iter()
        .zip(["p50", "p99", "max"])
        .map(|(pct, name)| {
            metric(
                format!("{prefix}_{name}_ms"),
                "ms",
                percentile(&values, pct),
            )
        })
        .collect())
}

/// Now by the system clock, in whole ms since the Unix epoch, as Redis' `TIME` gives it to the
/// scripts.
fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}

/// The resident memory (`VmRSS`) of `process` now, in KiB.
fn rss_kib(process: &Process) -> Result<u64> {
    process
        .rss_kib()
        .with_context(|| format!("no VmRSS for process {}", process.pid()))
}

/// Makes sure this process may open `need` files, raising its soft limit to its hard one if it
/// must; the processes it starts from then on inherit the limit. With `prlimit` (util-linux),
/// since the workspace forbids the unsafe code `setrlimit` takes.
async fn open_files_at_least(need: u64) -> Result<()> {
    let limits =
        std::fs::read_to_string("/proc/self/limits").context("reading /proc/self/limits")?;
    let (soft, hard) = open_files(&limits).context("no Max open files in /proc/self/limits")?;
    if soft >= need {
        return Ok(());
    }
    if hard < need {
        bail!("{need} open files are needed, and the hard limit is {hard} (ulimit -Hn)");
    }
    let mut prlimit = Command::new("prlimit");
    prlimit
        .arg(format!("--pid={}", std::process::id()))
        .arg(format!("--nofile={hard}:{hard}"));
    output_of(&mut prlimit, Duration::from_secs(10), "Debian's util-linux").await?;
    info!(from = soft, to = hard, "raised the open-files limit");
    Ok(())
}

/// The soft and hard limits of open files in a `/proc/<pid>/limits` text.
fn open_files(limits: &str) -> Option<(u64, u64)> {
    let values = limits
        .lines()
        .find_map(|line| line.strip_prefix("Max open files"))?;
    let mut limits = values.split_whitespace().map(|value| match value {
        "unlimited" => Some(u64::MAX),
        value => value.parse().ok(),
    });
    Some((limits.next()??, limits.next()??))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixed_numbers_repeat_per_seed_and_spread_evenly() {
        assert_eq!(mix(3, 7), mix(3, 7));
        assert_ne!(mix(3, 7), mix(4, 7));
        let mut buckets = [0_u32; 10];
        for i in 0..10_000 {
            buckets[usize::try_from(mix(1, i) % 10).expect("a digit")] += 1;
        }
        assert!(
            buckets.iter().all(|&n| (900..1100).contains(&n)),
            "{buckets:?}"
        );
    }

    #[test]
    fn the_open_files_limits_are_read_from_proc_limits() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max processes             95044                95044                processes \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(open_files(limits), Some((1024, 524_288)));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(open_files(unlimited), Some((u64::MAX, u64::MAX)));
        assert_eq!(open_files("Max processes 1 1 processes\n"), None);
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
    fn the_queues_file_asks_for_a_webhook_and_polls_every_minute() {
        let file = queues_file("http://127.0.0.1:1");
        let queue = &file[W7_QUEUE];
        assert_eq!(queue["poll_interval_ms"], 60_000);
        assert_eq!(queue["api"]["submit"]["body"]["webhook"], "{{webhook_url}}");
        assert_eq!(
            queue["api"]["headers"]["Authorization"],
            "Bearer ${BENCH_W7_API_KEY}"
        );
    }
}
