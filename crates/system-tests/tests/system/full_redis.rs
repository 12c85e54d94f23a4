//! A Redis with little memory, with the real binaries: bursts of large payloads stop at the
//! high-water mark and every acknowledged task still finishes; a Redis filled behind taskq's back
//! still drains, refuses only what adds data, and takes enqueues again by itself once there is
//! room.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use testkit::{RedisServer, eventually, get_json, replicate_profile};
use tokio::task::JoinSet;

use crate::real_apis::{KEY_VAR, SECRET, TempFile};
use crate::stack::Stack;

/// A field of `INFO memory` of `redis`.
fn memory_field(redis: &RedisServer, field: &str) -> u64 {
    let value = redis.info("memory", field);
    value
        .parse()
        .unwrap_or_else(|_| panic!("{field} in INFO: {value}"))
}

/// Samples `used_memory` of `redis` every 10 ms until dropped; answers the highest seen.
struct MemorySampler {
    stop: Arc<std::sync::atomic::AtomicBool>,
    sampler: std::thread::JoinHandle<u64>,
}

impl MemorySampler {
    fn start(redis: &RedisServer) -> Self {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut conn = redis.connection();
        let stopped = Arc::clone(&stop);
        let sampler = std::thread::spawn(move || {
            let mut highest = 0;
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                let info: String = redis::cmd("INFO").arg("memory").query(&mut conn).unwrap();
                let used = info
                    .lines()
                    .find_map(|line| line.strip_prefix("used_memory:"))
                    .and_then(|n| n.trim().parse().ok())
                    .unwrap_or(0);
                highest = highest.max(used);
                std::thread::sleep(Duration::from_millis(10));
            }
            highest
        });
        Self { stop, sampler }
    }

    /// The highest `used_memory` seen.
    fn highest(self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.sampler.join().unwrap()
    }
}

/// A Redis of `maxmemory` bytes that never evicts.
fn small_redis(maxmemory: u64) -> RedisServer {
    RedisServer::start_with(&[
        "--maxmemory",
        &maxmemory.to_string(),
        "--maxmemory-policy",
        "noeviction",
    ])
}

/// One answer of the producer: its status, `Retry-After`, body and how long it took.
struct Answer {
    status: StatusCode,
    retry_after: Option<String>,
    body: Value,
    took: Duration,
}

async fn post(stack: &Stack, path: &str, body: &Value) -> Answer {
    let started = Instant::now();
    let response = stack
        .client
        .post(format!("http://{}{path}", stack.producer()))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|value| value.to_str().unwrap().to_owned());
    let body = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    Answer {
        status,
        retry_after,
        body,
        took: started.elapsed(),
    }
}

/// Asserts that `answer` is a refusal because the queue is full: 503, JSON, `Retry-After`.
fn assert_full(answer: &Answer) {
    assert_eq!(
        answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        answer.body
    );
    let error = answer.body["error"].as_str().unwrap_or_default();
    assert!(error.contains("the queue is full"), "{}", answer.body);
    assert!(
        answer.retry_after.is_some(),
        "a refusal says when to come back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursts_of_large_payloads_stop_at_the_mark_and_every_acknowledged_task_finishes() {
    const MAXMEMORY: u64 = 16 << 20;
    let stack = Stack::start_on(
        small_redis(MAXMEMORY),
        &[
            ("MOCK_SHAPE", "replicate"),
            ("MOCK_API_KEY", SECRET),
            ("MOCK_DELAY_MS", "300"),
            ("MOCK_POLLS_UNTIL_DONE", "2"),
        ],
    );
    // The Replicate shape echoes each 50 KB input in its submit answer: partial data as large as
    // the payload, which the consumers write in the headroom above the mark, and past it.
    let file = TempFile::write(
        &format!("{}.json", stack.queue_name),
        &json!({ &stack.queue_name: {"poll_interval_ms": 100, "api": replicate_profile(&stack.services.mock.base(), KEY_VAR)} })
            .to_string(),
    );
    let _consumer = stack.consumer(&[
        ("QUEUES_FILE", &file.path()),
        (KEY_VAR, SECRET),
        ("CONCURRENCY", "16"),
    ]);
    stack.wait_serving(Duration::from_secs(10)).await;

    // Four clients at once, each 40 single enqueues and 4 batches of 10, of 50 KB each: 16 MB,
    // while about 11 MB fit under the mark.
    let stack = Arc::new(stack);
    let prompt = "p".repeat(50_000);
    let mut clients = JoinSet::new();
    for c in 0..4 {
        let (stack, prompt) = (Arc::clone(&stack), prompt.clone());
        clients.spawn(async move {
            let mut answers = Vec::new();
            for i in 0..40 {
                let name = format!("one-{c}-{i}");
                let body = json!({"name": name, "payload": {"prompt": prompt}});
                answers.push((vec![name], post(&stack, "/tasks", &body).await));
                if i % 10 == 9 {
                    let names: Vec<String> =
                        (0..10).map(|j| format!("batch-{c}-{i}-{j}")).collect();
                    let tasks: Vec<Value> = names
                        .iter()
                        .map(|name| json!({"name": name, "payload": {"prompt": prompt}}))
                        .collect();
                    let body = json!({ "tasks": tasks });
                    answers.push((names, post(&stack, "/tasks/batch", &body).await));
                }
            }
            answers
        });
    }
    let (mut acknowledged, mut refusals) = (Vec::new(), Vec::new());
    while let Some(answers) = clients.join_next().await {
        for (names, answer) in answers.unwrap() {
            match (answer.status, names.len()) {
                (StatusCode::ACCEPTED, 1) => acknowledged.extend(names),
                (StatusCode::OK, _) => {
                    let entries = answer.body["tasks"].as_array().unwrap();
                    for (name, entry) in names.into_iter().zip(entries) {
                        if entry["enqueued"] == true {
                            acknowledged.push(name);
                        } else {
                            let error = entry["error"].as_str().unwrap();
                            assert!(error.contains("the queue is full"), "{entry}");
                        }
                    }
                }
                _ => {
                    assert_full(&answer);
                    refusals.push(answer.took);
                }
            }
        }
    }
    refusals.sort_unstable();
    let slowest = refusals.last().copied().unwrap_or_default();
    eprintln!(
        "FIGURES full_redis burst: {} acknowledged, {} requests refused (503), slowest refusal \
         {slowest:?}, median {:?}",
        acknowledged.len(),
        refusals.len(),
        refusals
            .get(refusals.len() / 2)
            .copied()
            .unwrap_or_default()
    );
    assert!(
        !refusals.is_empty(),
        "12 MB were offered to a Redis of 16 MB"
    );
    assert!(
        acknowledged.len() > 100,
        "only {} acknowledged",
        acknowledged.len()
    );
    assert!(
        slowest < Duration::from_secs(2),
        "a refusal took {slowest:?}"
    );

    // Every acknowledged task finishes, without any operator action.
    let done = acknowledged.len() as u64;
    stack.wait_done(done, Duration::from_secs(120)).await;
    for name in &acknowledged {
        let (_, view) = stack.task(name).await;
        assert_eq!(view["state"], "done", "{view}");
    }
    let peak = memory_field(&stack.redis, "used_memory_peak");
    eprintln!(
        "FIGURES full_redis burst: Redis peaked at {peak} bytes for a maxmemory of {MAXMEMORY} \
         ({} KB over)",
        peak.saturating_sub(MAXMEMORY) / 1024
    );
    // docs/operations.md ("Running Redis in production"): past maxmemory only by the requests on their way.
    assert!(
        peak <= MAXMEMORY + (4 << 20),
        "Redis peaked at {peak} bytes, past maxmemory by more than the requests on their way"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_filled_behind_taskqs_back_drains_and_takes_enqueues_again_by_itself() {
    const MAXMEMORY: u64 = 8 << 20;
    let stack = Stack::start_on(
        small_redis(MAXMEMORY),
        &[("MOCK_DELAY_MS", "400"), ("MOCK_POLLS_UNTIL_DONE", "2")],
    );
    let _consumer = stack.consumer(&[("CONCURRENCY", "8"), ("POLL_INTERVAL_MS", "200")]);
    stack.wait_serving(Duration::from_secs(10)).await;
    // Tasks with a payload, whose results take its place if they must, and tasks without one,
    // whose results, larger than their partial data, find no room while Redis is full.
    let with_payload: Vec<String> = (0..24).map(|i| format!("carried-{i}")).collect();
    for name in &with_payload {
        let (status, view) = stack.submit(name, &json!({"note": "x".repeat(300)})).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{view}");
    }
    let bare: Vec<String> = (0..3).map(|i| format!("bare-{i}")).collect();
    for name in &bare {
        let (status, view) = stack.enqueue(name).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{view}");
    }
    // Once every bare task holds partial data (so a call of each is in flight or done), fill
    // Redis behind taskq's back until it refuses.
    eventually(
        Duration::from_secs(20),
        "the bare tasks to be processing",
        || async {
            let mut processing = 0;
            for name in &bare {
                processing += usize::from(stack.task(name).await.1["polls"] == 1);
            }
            (processing == bare.len()).then_some(())
        },
    )
    .await;
    let mut filler = stack.redis.connection();
    // Small blocks: Redis refuses a write once it is past maxmemory, so the last one passes it.
    let block = "f".repeat(4 << 10);
    let mut blocks = 0;
    while redis::cmd("SET")
        .arg(format!("filler-{blocks}"))
        .arg(&block)
        .query::<()>(&mut filler)
        .is_ok()
    {
        blocks += 1;
    }
    let full_at = memory_field(&stack.redis, "used_memory");
    assert!(full_at > MAXMEMORY, "{full_at}");
    // Held there: what the queue frees while it drains (payloads, buffers) must not make room.
    let held_at = full_at - (256 << 10);
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(held_at)
        .query(&mut filler)
        .unwrap();
    let sampler = MemorySampler::start(&stack.redis);

    // New tasks are refused (from the next reading of Redis' memory, at most 100 ms old); a task
    // already there is answered.
    let mut accepted_before_the_reading = Vec::new();
    let refused = eventually(Duration::from_secs(2), "a refusal", || {
        let name = format!("while-full-{}", accepted_before_the_reading.len());
        accepted_before_the_reading.push(name.clone());
        let stack = &stack;
        async move {
            let answer = post(stack, "/tasks", &json!({ "name": name })).await;
            (answer.status != StatusCode::ACCEPTED).then_some(answer)
        }
    })
    .await;
    assert_full(&refused);
    accepted_before_the_reading.pop();
    assert!(
        accepted_before_the_reading.len() <= 1,
        "{accepted_before_the_reading:?}"
    );
    let (status, view) = stack.enqueue(&with_payload[0]).await;
    assert!(status.is_success(), "{status}: {view}");
    // The queue drains what it holds: every task with a payload ends done.
    for name in &with_payload {
        let view = stack.wait_final(name, Duration::from_secs(30)).await;
        assert_eq!(view["state"], "done", "{view}");
    }
    // The bare tasks wait for room, alive, no attempt used.
    let queue = stack.queue();
    eventually(
        Duration::from_secs(10),
        "a result to wait for room",
        || async {
            let stats = queue.stats().await.ok()?;
            (stats.totals.get("results_deferred").copied().unwrap_or(0) >= 1).then_some(())
        },
    )
    .await;
    for name in &bare {
        let (_, view) = stack.task(name).await;
        assert_ne!(view["state"], "done", "{view}");
        assert_ne!(view["state"], "dead", "{view}");
        assert_eq!(view["attempts"], 0, "{view}");
    }
    let peak = sampler.highest();
    eprintln!(
        "FIGURES full_redis filled: {blocks} blocks of 4 KB filled Redis to {full_at} bytes, \
         maxmemory then held 256 KB below; it used at most {peak} while the queue drained ({} \
         KB more); {} enqueues acknowledged before the next reading of memory",
        peak.saturating_sub(full_at) / 1024,
        accepted_before_the_reading.len()
    );
    // README: the draining scripts still write fixed-size fields, about a KB a task (27 here).
    assert!(
        peak <= full_at + (128 << 10),
        "draining took Redis from {full_at} to {peak} bytes"
    );
    let (_, metrics) = testkit::get_text(
        &stack.client,
        format!("http://{}/metrics", stack.producer()),
    )
    .await;
    assert!(
        metrics.lines().any(|line| line.starts_with(&format!(
            "taskq_enqueue_refused_total{{queue=\"{}\",reason=\"memory\"}} ",
            stack.queue_name
        )) && !line.ends_with(" 0")),
        "{metrics}"
    );

    // Memory freed behind taskq's back too: the waiting results are stored, enqueues resume.
    for block in 0..blocks {
        let () = redis::cmd("DEL")
            .arg(format!("filler-{block}"))
            .query(&mut filler)
            .unwrap();
    }
    for name in bare.iter().chain(&accepted_before_the_reading) {
        let view = stack.wait_final(name, Duration::from_secs(30)).await;
        assert_eq!(view["state"], "done", "{view}");
    }
    let resumed = Instant::now();
    eventually(Duration::from_secs(10), "enqueues to resume", || async {
        let (status, _) = stack.submit("after-the-room", &json!(1)).await;
        (status == StatusCode::ACCEPTED).then_some(())
    })
    .await;
    eprintln!(
        "FIGURES full_redis filled: enqueues accepted again {:?} after the room came back",
        resumed.elapsed()
    );
    let (_, stats) = get_json(&stack.client, format!("http://{}/stats", stack.producer())).await;
    assert!(
        stats["admission"]["refused_memory"].as_u64().unwrap() >= 1,
        "{stats}"
    );
}
