//! W8 and W8-sigv4: the whole stack through a profile of three steps, as a user's profile of a
//! queue API makes them: fal.ai's queue shape, each task a submit, a status poll that says done
//! and a fetch of the result by the URL the submit answered. W8-sigv4 signs every call with AWS
//! Signature Version 4, which the mock verifies; the two side by side give what signing costs
//! the consumer per call. Timed, like W2h, from the consumer's spawn.

use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{Value, json};
use testkit::cpu_seconds;
use tokio::time::Instant;

use super::fleet::{check_calls, mock_env, until_done};
use super::{Bench, Metric, metric, mib};
use crate::workload::Workload;

const W8_QUEUE: &str = "bench-w8";
/// The variable that hands W8's API key to the consumer's profile.
const KEY_VAR: &str = "BENCH_W8_API_KEY";
/// W8's API key: the mock's `MOCK_API_KEY`.
const KEY: &str = "bench-w8-api-key";
/// W8-sigv4's AWS keys (made up: the mock checks signatures with the same).
const AWS_KEY_ID: &str = "AKIDBENCHW8";
const AWS_SECRET: &str = "bench-w8-aws-secret-access-key";
/// Calls per task: submit, status, result.
const CALLS_PER_TASK: u64 = 3;
/// Tasks in flight, as W2h.
const CONCURRENCY: u64 = 50;

/// One run of W8 or W8-sigv4; fails unless the API is called three times a task.
pub async fn w8(bench: &Bench<'_>, workload: Workload, run: u32) -> Result<Vec<Metric>> {
    let signed = workload == Workload::W8Sigv4;
    let tasks = bench.settings.tasks(workload);
    let label = format!("{}-r{run}", workload.label());
    let queue = bench.filled(W8_QUEUE, &label, tasks).await?;
    let mut shape = vec![
        ("MOCK_SHAPE", "fal".to_owned()),
        ("MOCK_API_KEY", KEY.to_owned()),
    ];
    if signed {
        shape.extend([
            ("MOCK_AWS_ACCESS_KEY_ID", AWS_KEY_ID.to_owned()),
            ("MOCK_AWS_SECRET_ACCESS_KEY", AWS_SECRET.to_owned()),
            ("MOCK_AWS_SERVICE", "bench".to_owned()),
        ]);
    }
    let mut stack = bench.stack(&label, W8_QUEUE, mock_env(0, 1, &shape), Vec::new())?;
    let profile = queues_file(&stack.mock.base(), signed).to_string();
    let file = bench.write_raw(&format!("{label}-queues.json"), profile)?;
    let consumer = [
        ("CONCURRENCY", CONCURRENCY.to_string()),
        ("QUEUES_FILE", file.display().to_string()),
        (KEY_VAR, KEY.to_owned()),
        ("BENCH_W8_AWS_KEY_ID", AWS_KEY_ID.to_owned()),
        ("BENCH_W8_AWS_SECRET", AWS_SECRET.to_owned()),
    ];
    let started = Instant::now();
    stack.try_add_consumer(&consumer, "consumer")?;
    let (queues, running) = (std::slice::from_ref(&queue), || Ok(stack.check_running()?));
    let (within, every) = (
        (started, Duration::from_secs(300)),
        Duration::from_millis(5),
    );
    let elapsed = until_done(queues, tasks, within, every, running).await?;
    let consumer = &stack.consumers[0];
    let cpu_s = cpu_seconds(consumer.pid()).context("the consumer's CPU time")?;
    let rss_kib = consumer.peak_rss_kib().context("no consumer peak RSS")?;
    let stats = stack.mock.try_stats(&bench.http).await?;
    stack.try_stop()?;
    let calls = CALLS_PER_TASK * tasks;
    check_calls(&stats, calls)?;
    let (secs, calls) = (elapsed.as_secs_f64(), calls as f64);
    Ok(vec![
        metric("tasks_per_s", "tasks/s", tasks as f64 / secs),
        metric("calls_per_s", "calls/s", calls / secs),
        metric("consumer_cpu_us_per_call", "µs", cpu_s * 1e6 / calls),
        metric("consumer_cpu_us_per_task", "µs", cpu_s * 1e6 / tasks as f64),
        metric("consumer_peak_rss_mib", "MiB", mib(rss_kib)),
    ])
}

/// W8's `QUEUES_FILE`: fal.ai's queue steps against the mock at `base` (the task's name as its
/// input), polling every 100 ms; signed with SigV4 when `signed`.
fn queues_file(base: &str, signed: bool) -> Value {
    let mut api = json!({
        "base_url": base,
        "headers": {"Authorization": format!("Key ${{{KEY_VAR}}}")},
        "submit": {"path": "/fal-ai/bench", "body": {"prompt": "{{name}}"}, "id": "/request_id"},
        "poll": {"url": "{{submit.status_url}}"},
        "status": {"pointer": "/status", "processing": ["IN_QUEUE", "IN_PROGRESS"], "done": ["COMPLETED"]},
        "fetch": {"url": "{{submit.response_url}}"},
    });
    if signed {
        api["headers"] = json!({});
        api["auth"] = json!({"aws_sigv4": {"region": "us-east-1", "service": "bench",
            "access_key_id": "${BENCH_W8_AWS_KEY_ID}", "secret_access_key": "${BENCH_W8_AWS_SECRET}"}});
    }
    json!({ W8_QUEUE: {"poll_interval_ms": 100, "api": api} })
}
