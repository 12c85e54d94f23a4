//! W8 and W8-sigv4: the whole stack through a profile of three steps, as a user's profile of a
//! queue API makes them: fal.ai's queue shape, each task a submit, a status poll that says done
//! and a fetch of the result by the URL the submit answered. W8-sigv4 signs every call with AWS
//! Signature Version 4, which the mock verifies; the two side by side give what signing costs
//! the consumer per call. Timed, like W2h, from the consumer's spawn.

use std::time::Duration;

use anyhow::Result;
use serde_json::{Value, json};

use super::fleet::{Consumers, mock_env};
use super::{Bench, Metric, metric};
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
    let queues_file = |base: &str| queues_file(base, signed);
    let mut consumers = Consumers {
        queues_file: Some(&queues_file),
        mock: mock_env(0, 1, &shape),
        calls_per_task: CALLS_PER_TASK,
        within: Duration::from_secs(300),
        ..Consumers::of(bench, &label, queue, tasks, CONCURRENCY)
    };
    consumers.env.extend([
        (KEY_VAR, KEY.to_owned()),
        ("BENCH_W8_AWS_KEY_ID", AWS_KEY_ID.to_owned()),
        ("BENCH_W8_AWS_SECRET", AWS_SECRET.to_owned()),
    ]);
    let drained = bench.drain_by_consumers(&consumers).await?;
    let (secs, cpu_s) = (drained.elapsed.as_secs_f64(), drained.consumer_cpu_s);
    let calls = (CALLS_PER_TASK * tasks) as f64;
    Ok(vec![
        metric("tasks_per_s", "tasks/s", tasks as f64 / secs),
        metric("calls_per_s", "calls/s", calls / secs),
        metric("consumer_cpu_us_per_call", "µs", cpu_s * 1e6 / calls),
        metric("consumer_cpu_us_per_task", "µs", cpu_s * 1e6 / tasks as f64),
        metric("consumer_peak_rss_mib", "MiB", drained.consumer_rss_mib),
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
