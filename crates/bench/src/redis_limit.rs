//! The Redis limit of enqueueing, measured the same way as W1b: Debian's `redis-benchmark`
//! against the bench's own `redis-server`, running the queue's real enqueue script by `EVALSHA`
//! on new task names, 64 clients.
//!
//! This is the limit of one enqueue per script call: `redis-benchmark` is a small C client, so
//! its figure is about as much as Redis serves on this machine for such calls. The library's
//! concurrent enqueues share calls (`taskq`'s `enqueue` module), which is how W1b passes it; the
//! ratio of the two shows what sharing is worth. The call is the library's own
//! (`Queue::enqueue_call`: its script's SHA, the queue's keys and the arguments an enqueue
//! sends); the run is checked through the library afterwards.
//!
//! `redis-benchmark` draws every `__rand_int__` apart, so a task's record key and the name it
//! queues carry different numbers; both are new, of the same length, so the script does the same
//! work as for a real new task. About one draw in a thousand repeats (200,000 among 10^8) and
//! takes the duplicate path.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;
use taskq::{EnqueueCall, Queue, TaskName};
use testkit::{RedisServer, Spent, Window};

use tokio::process::Command;
use tracing::info;

use crate::command::output_of;

/// Script calls per run.
pub const REQUESTS: u64 = 200_000;
/// Connections, as W1b's 64 enqueues in flight.
pub const CLIENTS: u32 = 64;
/// Range of the random numbers in names: wide enough that few repeat.
const RANDOM_RANGE: u64 = 100_000_000;

/// One `redis-benchmark` run.
#[derive(Debug, Clone)]
pub struct LimitRun {
    /// Script calls per second, as `redis-benchmark` measured them.
    pub requests_per_s: f64,
    /// What the run cost Redis and the machine.
    pub spent: Spent,
}

/// The library's call enqueueing a new task named `rb-__rand_int__` (`redis-benchmark` draws a
/// new number for each call), with its script loaded: Redis knows the SHA after one
/// `Queue::enqueue`. Leaves that one task in `queue` ([`run`] empties Redis first).
pub async fn loaded_call(conn: &mut MultiplexedConnection, queue: &Queue) -> Result<EnqueueCall> {
    let call = queue.enqueue_call(&TaskName::parse("rb-__rand_int__")?);
    queue.enqueue(&TaskName::parse("limit-probe")?).await?;
    if !script_exists(conn, &call.sha).await? {
        bail!(
            "after Queue::enqueue Redis does not know the enqueue call's SHA {}",
            call.sha
        );
    }
    Ok(call)
}

async fn script_exists(conn: &mut MultiplexedConnection, sha: &str) -> Result<bool> {
    let mut exists = redis::cmd("SCRIPT");
    exists.arg(&["EXISTS", sha]);
    let known: Vec<bool> = exists.query_async(conn).await?;
    Ok(known.first().copied().unwrap_or(false))
}

/// Empties Redis, then runs `program` (`redis-benchmark`) once with `pipeline` calls per client
/// in flight, each an `EVALSHA` of `sha` enqueueing a new task into `queue`; then checks through
/// the library that the tasks are there.
pub async fn run(
    redis: &RedisServer,
    program: &str,
    queue: &Queue,
    call: &EnqueueCall,
    pipeline: u32,
) -> Result<LimitRun> {
    redis.try_flush_all().await?;
    let window = Window::open(&[redis], None).await?;
    let stdout = output_of(
        Command::new(program)
            .args(["-h", "127.0.0.1", "-p", &redis.port().to_string()])
            .args(["-c", &CLIENTS.to_string(), "-n", &REQUESTS.to_string()])
            .args(["-r", &RANDOM_RANGE.to_string(), "-P", &pipeline.to_string()])
            .arg("--csv")
            .args(evalsha(call))
            .stderr(Stdio::piped()),
        Duration::from_secs(300),
        "Debian's redis-tools; scripts/setup installs it",
    )
    .await?;
    let spent = window.close().await?;
    let requests_per_s = csv_rps(&stdout)
        .with_context(|| format!("no requests/s in redis-benchmark's output:\n{stdout}"))?;
    check_written(&mut redis.try_async_connection().await?, queue, pipeline).await?;
    Ok(LimitRun {
        requests_per_s,
        spent,
    })
}

/// The `EVALSHA` command `redis-benchmark` repeats: `call`, by its script's SHA.
fn evalsha(call: &EnqueueCall) -> Vec<String> {
    let head = [
        "EVALSHA".to_owned(),
        call.sha.clone(),
        call.keys.len().to_string(),
    ];
    head.into_iter()
        .chain(call.keys.iter().cloned())
        .chain(call.args.iter().cloned())
        .collect()
}

/// Fails unless nearly every call created a task that the library sees, and logs a sample of
/// the records written.
async fn check_written(
    conn: &mut MultiplexedConnection,
    queue: &Queue,
    pipeline: u32,
) -> Result<()> {
    let stats = queue.stats().await?;
    let enqueued = stats.totals.get("enqueued").copied().unwrap_or(0);
    let least = REQUESTS * 99 / 100;
    if enqueued < least || stats.counts.due < least {
        bail!(
            "redis-benchmark made {REQUESTS} calls but the library counts {enqueued} enqueued and \
             {} due: the keys are not the queue's",
            stats.counts.due
        );
    }
    let pattern = format!("{}*", queue.keys().task_prefix());
    let mut scan = redis::cmd("SCAN");
    scan.arg(0).arg(&["MATCH", &pattern, "COUNT", "100"]);
    let (_, sample): (u64, Vec<String>) = scan.query_async(&mut *conn).await?;
    let first = sample.first().context("SCAN found no task record")?;
    let state: Option<String> = conn.hget(first, "state").await?;
    if state.as_deref() != Some("queued") {
        bail!("{first} holds state {state:?}, not queued");
    }
    info!(
        pipeline,
        enqueued,
        due = stats.counts.due,
        sample = ?sample.iter().take(3).collect::<Vec<_>>(),
        "redis-benchmark wrote task records where the library reads them"
    );
    Ok(())
}

/// The `rps` column of `redis-benchmark --csv`'s one result row.
fn csv_rps(csv: &str) -> Option<f64> {
    let mut rows = csv.lines().map(|l| {
        l.split("\",\"")
            .map(|f| f.trim_matches('"'))
            .collect::<Vec<_>>()
    });
    let header = rows.next()?;
    let column = header.iter().position(|&f| f == "rps")?;
    rows.find_map(|row| row.get(column)?.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_per_second_are_read_from_the_csv() {
        let csv = "\"test\",\"rps\",\"avg_latency_ms\",\"p99_latency_ms\"\n\
                   \"EVALSHA abc 3 {taskq:q}:task:rb-__rand_int__ x,y\",\
                   \"14084.51\",\"0.190\",\"3.8\"\n";
        assert_eq!(csv_rps(csv), Some(14_084.51));
        assert_eq!(csv_rps("\"test\",\"avg\"\n\"x\",\"1\"\n"), None);
    }

    /// The command `redis-benchmark` repeats is the library's enqueue of a new task: one call, its
    /// number drawn, leaves a queued task the library reads. (W1b once failed for months of
    /// commits when it built the call itself and the script's contract moved.)
    #[tokio::test]
    async fn the_benchmarked_call_is_the_library_enqueue_of_a_new_task() {
        let redis = RedisServer::start();
        let queue = crate::workloads::queue_on(&redis.url(), "limit-test").unwrap();
        let mut conn = redis.try_async_connection().await.unwrap();
        let call = loaded_call(&mut conn, &queue).await.unwrap();

        let drawn = evalsha(&call)
            .into_iter()
            .map(|arg| arg.replace("__rand_int__", "000000042"));
        let mut call = redis::cmd(&drawn.clone().next().unwrap());
        call.arg(drawn.skip(1).collect::<Vec<_>>());
        let _: redis::Value = call.query_async(&mut conn).await.unwrap();

        let name = TaskName::parse("rb-000000042").unwrap();
        let view = queue.get(&name).await.unwrap().expect("the task is there");
        assert_eq!(view.state, taskq::State::Queued);
        assert_eq!(
            queue.stats().await.unwrap().counts.due,
            2,
            "the probe and this one"
        );
    }
}
