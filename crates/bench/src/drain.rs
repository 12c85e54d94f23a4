//! The library worker draining a queue with a no-op handler (W2, W4).
//!
//! It runs in a child process (`bench drain`, hidden) that the benchmark starts after filling
//! the queue: the child's peak RSS is then the worker's alone, without the parent's enqueue
//! buffers, as a real consumer process would be. The child times from just before the worker
//! starts (its Redis connection is made inside the timing, as a fresh consumer's is) until the
//! queue's `done` counter has grown by the number of tasks asked for, read every 5 ms on a
//! connection of its own; then it stops the worker and prints one `DRAIN {json}` line. Its
//! orders come as JSON too, the one argument of `bench drain`. That wait ([`until_done`]) is
//! also how the release consumers' drains and W7 know they are over.

use std::future::Future;
use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use taskq::{ClaimedTask, ConnectOptions, Handler, Outcome, Queue, RedisUrl, Worker, WorkerConfig};
use tokio::process::Command;
use tokio::sync::oneshot;
use tokio::time::{Instant, sleep};

use crate::command::output_of;

/// The CPU seconds this process has used.
fn cpu_s(pid: u32) -> Result<f64> {
    testkit::cpu_seconds(pid).context("no CPU time of this process")
}

/// How often the queue's counters are read while waiting for the drain to end.
const POLL: Duration = Duration::from_millis(5);

/// Answers every task "done" at once: the queue's own cost is all that remains.
struct NoopHandler;

impl Handler for NoopHandler {
    fn handle(&self, _task: &ClaimedTask) -> impl Future<Output = Outcome> + Send {
        std::future::ready(Outcome::Done("null".into()))
    }
}

/// What the child is asked to do.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DrainArgs {
    /// Redis to use.
    pub redis_url: String,
    /// The queue to drain.
    pub queue: String,
    /// Stop timing once this many more tasks are done than when the child started.
    pub tasks: u64,
    /// Worker concurrency.
    pub concurrency: usize,
    /// Worker batch size (tasks per claim at most).
    pub batch_size: usize,
    /// Give up after this many seconds.
    pub timeout_s: u64,
}

/// What the child measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DrainReport {
    /// Seconds from worker start until they were done.
    pub elapsed_s: f64,
    /// The child's peak RSS (KiB) at the end, the worker having run.
    pub peak_rss_kib: u64,
    /// CPU seconds the child used while timed (worker and counter polling).
    pub cpu_s: f64,
    /// Answers the queue refused as stale (must be 0: one worker, no lease expiry).
    pub stale: u64,
    /// Redis calls of the worker that failed.
    pub redis_errors: u64,
}

const MARK: &str = "DRAIN ";

/// The child's side: drains as `args` (a [`DrainArgs`] in JSON) says, then prints the report on
/// stdout.
///
/// # Errors
/// When the orders are unreadable, Redis fails or the drain does not end in time.
pub async fn run_child(args: &str) -> Result<()> {
    let report = drain(&serde_json::from_str(args).context("reading the drain's orders")?).await?;
    println!("{MARK}{}", serde_json::to_string(&report)?);
    Ok(())
}

async fn drain(args: &DrainArgs) -> Result<DrainReport> {
    let url: RedisUrl = args.redis_url.parse()?;
    let open = || Queue::open(&url, &ConnectOptions::default(), &args.queue);
    let (queue, watch) = (open()?, open()?);
    let target = done(&watch).await? + args.tasks;
    let config = WorkerConfig {
        concurrency: args.concurrency,
        batch_size: args.batch_size,
        idle_poll: Some(Duration::from_millis(100)),
        ..WorkerConfig::default()
    };
    let worker = Worker::new(queue, NoopHandler, config);
    let stats = worker.stats();
    let (stop, stopped) = oneshot::channel::<()>();
    let give_up = Duration::from_secs(args.timeout_s);
    let me = std::process::id();
    let cpu_before = cpu_s(me)?;
    let started = Instant::now();
    let running = tokio::spawn(worker.run(async {
        let _ = stopped.await;
    }));
    let watched = std::slice::from_ref(&watch);
    let reached = until_done(watched, target, (started, give_up), POLL, || Ok(())).await;
    let cpu_after = cpu_s(me)?;
    let _ = stop.send(());
    running.await.context("the worker task failed")?;
    let so_far = stats.done.load(Ordering::Relaxed);
    let elapsed = reached.with_context(|| format!("this worker did {so_far}"))?;
    Ok(DrainReport {
        elapsed_s: elapsed.as_secs_f64(),
        peak_rss_kib: testkit::peak_rss_kib(me).context("no peak RSS of this process")?,
        cpu_s: cpu_after - cpu_before,
        stale: stats.stale.load(Ordering::Relaxed),
        redis_errors: stats.redis_errors.load(Ordering::Relaxed),
    })
}

/// The queue's `done` counter.
pub async fn done(queue: &Queue) -> Result<u64> {
    let totals = queue.stats().await?.totals;
    Ok(totals.get("done").copied().unwrap_or(0))
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
        let mut done_now = Vec::with_capacity(queues.len());
        for queue in queues {
            done_now.push(done(queue).await?);
        }
        if done_now.iter().all(|&d| d >= each) {
            return Ok(started.elapsed());
        }
        check()?;
        if started.elapsed() > within {
            bail!("done per queue {done_now:?} of {each} after {within:?}");
        }
        sleep(every).await;
    }
}

/// The parent's side: runs `bench drain` (this executable) and reads its report; the child
/// logs to the parent's stderr.
///
/// # Errors
/// When the child fails or prints no report.
pub async fn in_child(args: &DrainArgs) -> Result<DrainReport> {
    let mut child = Command::new(std::env::current_exe().context("finding this executable")?);
    child.arg("drain").arg(serde_json::to_string(args)?);
    child.env("RUST_LOG", "warn").stderr(Stdio::inherit());
    let within = Duration::from_secs(args.timeout_s + 30);
    let stdout = output_of(&mut child, within, "this executable's hidden subcommand").await?;
    let line = stdout
        .lines()
        .find_map(|line| line.strip_prefix(MARK))
        .context("the drain child printed no report")?;
    Ok(serde_json::from_str(line)?)
}
