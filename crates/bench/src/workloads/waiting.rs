//! W6: results pushed to whoever waits for them, rather than polled for: what a long-poll buys a
//! client against reading once a second, and what a waiting request costs the producer.
//!
//! Lateness is a client's answer's arrival by the system clock minus the task's `done_at_ms`,
//! which Redis stamps with its `TIME`: the same clock on the same machine, so it counts the
//! script's pub/sub message, the producer's wake-up, its read and its answer, and nothing of the
//! task's own work. Every client must be waiting before the first task falls due, or its lateness
//! would count its own start: hence the lead, and the check that the producer counts them all
//! waiting by then. The idle long-polls are held on raw connections: an HTTP client per
//! connection would load the bench, not the producer.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use taskq::TaskName;
use testkit::{epoch_ms, try_get_ok_json};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::{Instant, Interval, MissedTickBehavior, interval_at, sleep, timeout};
use tracing::info;

use super::fleet::mock_env;
use super::spread::schedule_spread;
use super::{Bench, Metric, distribution, joined, metric, metrics_page, mib, names, series_total};
use crate::workload::{
    NOTIFY_API_DELAY_MS, NOTIFY_CONCURRENCY, POLL_INTERVAL_MS, W6_IDLE, W6_LEAD_MS,
    W6_POLL_EVERY_MS, W6_SPREAD_MS, W6_TASKS, W6_WAIT_S,
};

const W6_QUEUE: &str = "bench-w6";
/// Open files the bench needs beside W6's idle long-polls: its other connections, Redis, logs.
const OTHER_FILES: u64 = 1_024;

/// One run of W6: the long-poll leg, the polling leg, then the idle long-polls.
pub async fn w6(bench: &Bench<'_>, run: u32) -> Result<Vec<Metric>> {
    let need = W6_IDLE + OTHER_FILES;
    let files = service_kit::open_files::raise_to_hard_limit().context("the open-file limit")?;
    if files < need {
        bail!("{need} open files are needed, and the hard limit is {files} (ulimit -Hn)");
    }
    let mut metrics = follow(bench, run, Reads::LongPoll).await?;
    let every = Duration::from_millis(W6_POLL_EVERY_MS);
    metrics.extend(follow(bench, run, Reads::Every(every)).await?);
    metrics.extend(idle(bench, run).await?);
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
    bench.redis.try_flush_all().await?;
    let api = mock_env(NOTIFY_API_DELAY_MS, 1, &[]);
    let mut stack = bench.stack(&label, W6_QUEUE, api, Vec::new())?;
    let consumer = [
        ("CONCURRENCY", NOTIFY_CONCURRENCY.to_string()),
        ("POLL_INTERVAL_MS", POLL_INTERVAL_MS.to_string()),
    ];
    stack.try_add_consumer(&consumer, "consumer")?;
    let queue = bench.queue(W6_QUEUE)?;
    let names = names(&label, 0..W6_TASKS)?;
    let enqueued = Instant::now();
    schedule_spread(&queue, &names, run, W6_LEAD_MS, W6_SPREAD_MS).await?;
    let clients = clients(stack.producer_addr, &names, reads)?;
    if let Reads::LongPoll = reads {
        let first_due = enqueued + Duration::from_millis(W6_LEAD_MS);
        all_waiting(bench, stack.producer_addr, W6_TASKS, first_due).await?;
    }
    let within = Duration::from_millis(W6_LEAD_MS + W6_SPREAD_MS) + Duration::from_secs(30);
    let followed = timeout(within, joined(clients))
        .await
        .with_context(|| format!("the clients were not all answered within {within:?}"))??;
    stack.try_stop()?;
    let requests: u64 = followed.iter().map(|f| f.requests).sum();
    let (prefix, per_task) = (reads.label(), requests as f64 / W6_TASKS as f64);
    let mut metrics = vec![metric(
        format!("{prefix}_requests_per_task"),
        "requests",
        per_task,
    )];
    let late = followed.iter().map(|f| f.late_ms).collect();
    metrics.extend(distribution(&format!("{prefix}_late"), late)?);
    Ok(metrics)
}

/// W6's idle long-polls: a fresh producer alone with [`W6_IDLE`] queued tasks (nobody runs
/// them), its resident memory before and while it holds a long-poll of each.
async fn idle(bench: &Bench<'_>, run: u32) -> Result<Vec<Metric>> {
    let label = format!("w6-r{run}-idle");
    bench.filled(W6_QUEUE, &label, W6_IDLE).await?;
    let (mut producer, addr) = bench.producer(W6_QUEUE, &format!("{label}-producer"))?;
    // One request served first, so that "before" is a producer that has answered one.
    metrics_page(&bench.http, addr).await?;
    let rss_kib = || producer.rss_kib().context("no VmRSS of the producer");
    let before = rss_kib()?;
    let names = names(&label, 0..W6_IDLE)?;
    let opened = Instant::now();
    let mut held = Vec::with_capacity(names.len());
    for name in &names {
        held.push(hold(addr, name).await?);
    }
    // Well within the wait, so that none of them has been answered yet.
    let deadline = opened + Duration::from_secs(W6_WAIT_S) * 3 / 4;
    all_waiting(bench, addr, W6_IDLE, deadline).await?;
    let (waiting, took_ms) = (rss_kib()?, opened.elapsed().as_millis());
    info!(requests = W6_IDLE, took_ms, "idle long-polls held");
    drop(held);
    producer.try_stop()?;
    let per_request = waiting.saturating_sub(before) as f64 / W6_IDLE as f64;
    Ok(vec![
        metric("idle_rss_before_mib", "MiB", mib(before)),
        metric("idle_rss_mib", "MiB", mib(waiting)),
        metric("idle_kib_per_waiting_request", "KiB", per_request),
    ])
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
        let (client, url) = (client.clone(), reads.url(addr, name));
        let pace = reads.pace(started, i, n);
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
        let view = try_get_ok_json(client, url).await?;
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
