//! W7: provider webhooks, timed from the moment the mock sent one (the start of the POST that
//! was answered, which the mock records per job and shows at `GET /webhooks`) to the task's
//! `done_at_ms`: the producer's hook route, the hurry script, the consumer's wake-up, its claim,
//! its one poll of the API and the finish. The queue polls every 60 s, so a task whose webhook
//! was lost would be claimed a third time or finish late: every task must be claimed exactly
//! twice (its submit, then the poll the webhook asked for) and done well within the 60 s.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use taskq::TaskView;
use testkit::{Stack, try_get_ok_json};
use tokio::time::Instant;

use super::fleet::{check_calls, mock_env};
use super::spread::schedule_spread;
use super::{Bench, Metric, distribution, metric, names};
use crate::drain::until_done;
use crate::workload::{
    NOTIFY_API_DELAY_MS, NOTIFY_CONCURRENCY, W7_JOB_MS, W7_POLL_INTERVAL_MS, W7_SPREAD_MS, W7_TASKS,
};

const W7_QUEUE: &str = "bench-w7";
/// The variable that hands W7's API key to the consumer's profile (`${...}` in its headers).
const W7_KEY_VAR: &str = "BENCH_W7_API_KEY";
/// W7's API key: the mock's `MOCK_API_KEY`.
const W7_KEY: &str = "bench-w7-api-key";
/// The secret of W7's hook URLs, the same on the producer and the consumer (16 bytes at least).
const HOOK_SECRET: &str = "bench-w7-hook-secret";

/// One run of W7; fails unless every task is done in time, claimed exactly twice and had its
/// webhook sent, and the API is called twice a task.
pub async fn w7(bench: &Bench<'_>, run: u32) -> Result<Vec<Metric>> {
    let label = format!("w7-r{run}");
    bench.redis.try_flush_all().await?;
    let mut stack = stack(bench, &label)?;
    let queue = bench.queue(W7_QUEUE)?;
    let names = names(&label, 0..W7_TASKS)?;
    let due = schedule_spread(&queue, &names, run, 0, W7_SPREAD_MS).await?;
    // Half the poll interval after the last submit: a task that needed its poll is not done.
    let within = Duration::from_millis(W7_SPREAD_MS + W7_POLL_INTERVAL_MS / 2);
    let (every, started) = (Duration::from_millis(10), Instant::now());
    let (queues, running) = (std::slice::from_ref(&queue), || Ok(stack.check_running()?));
    until_done(queues, W7_TASKS, (started, within), every, running).await?;
    let sent = try_get_ok_json(&bench.http, &format!("{}/webhooks", stack.mock.base())).await?;
    let stats = stack.mock.try_stats(&bench.http).await?;
    let mut views = Vec::with_capacity(names.len());
    for name in &names {
        let view = queue.get(name).await?;
        views.push(view.with_context(|| format!("no task {}", name.as_str()))?);
    }
    stack.try_stop()?;

    check_calls(&stats, 2 * W7_TASKS)?;
    let not_twice: Vec<String> = views
        .iter()
        .filter(|view| view.claims != 2)
        .map(|view| format!("{} ({} claims)", view.task, view.claims))
        .collect();
    if !not_twice.is_empty() {
        let n = not_twice.len();
        bail!("{n} tasks not claimed exactly twice: {not_twice:?}");
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

/// W7's stack: Replicate's shape, each job done [`W7_JOB_MS`] after its submit and calling the
/// webhook its submit named, which is the producer's hook URL for the task; the consumer's queue
/// asks for that webhook ([`queues_file`]).
fn stack(bench: &Bench<'_>, label: &str) -> Result<Stack> {
    let shape = [
        ("MOCK_SHAPE", "replicate".to_owned()),
        ("MOCK_WEBHOOKS", "1".to_owned()),
        ("MOCK_JOB_MS", W7_JOB_MS.to_string()),
        ("MOCK_API_KEY", W7_KEY.to_owned()),
    ];
    let api = mock_env(NOTIFY_API_DELAY_MS, 1, &shape);
    let secret = ("HOOK_SECRET", HOOK_SECRET.to_owned());
    let mut stack = bench.stack(label, W7_QUEUE, api, vec![secret.clone()])?;
    let profile = queues_file(&stack.mock.base()).to_string();
    let file = bench.write_raw(&format!("{label}-queues.json"), profile)?;
    let consumer = [
        ("CONCURRENCY", NOTIFY_CONCURRENCY.to_string()),
        ("QUEUES_FILE", file.display().to_string()),
        (W7_KEY_VAR, W7_KEY.to_owned()),
        ("PUBLIC_URL", format!("http://{}", stack.producer_addr)),
        secret,
    ];
    stack.try_add_consumer(&consumer, "consumer")?;
    Ok(stack)
}

/// W7's `QUEUES_FILE`: its queue calls the mock at `base` through testkit's Replicate profile,
/// whose submit asks for a webhook, and polls every 60 s.
fn queues_file(base: &str) -> Value {
    let mut api = testkit::replicate_profile(base, W7_KEY_VAR);
    api["submit"]["body"]["webhook"] = json!("{{webhook_url}}");
    json!({ W7_QUEUE: {"poll_interval_ms": W7_POLL_INTERVAL_MS, "api": api} })
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

#[cfg(test)]
mod tests {
    use super::*;

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
