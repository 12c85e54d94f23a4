//! Redis configured the ways production Redis often is, with the real binaries: at `maxmemory`,
//! and with an evicting policy and no persistence.

mod common;

use std::time::Duration;

use common::{Stack, get_json, get_text};
use reqwest::StatusCode;
use serde_json::{Value, json};
use testkit::eventually;

/// `INFO memory`'s `used_memory` of the stack's Redis.
fn used_memory(stack: &Stack) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query(&mut stack.queue_server().connection())
        .unwrap();
    info.lines()
        .find_map(|line| line.strip_prefix("used_memory:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("used_memory in INFO")
}

fn config_set(stack: &Stack, name: &str, value: &str) {
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg(name)
        .arg(value)
        .query(&mut stack.queue_server().connection())
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_redis_refuses_enqueues_and_every_acknowledged_task_still_finishes() {
    let stack = Stack::start(&[("MOCK_DELAY_MS", "300"), ("MOCK_POLLS_UNTIL_DONE", "1")]);
    // The consumer runs from the start (its connection and scripts are in Redis' memory before
    // the mark is set), draining more slowly than the test enqueues.
    let _consumer = stack.consumer(&[("CONCURRENCY", "20"), ("POLL_INTERVAL_MS", "50")]);
    stack.wait_serving(Duration::from_secs(10)).await;
    stack.enqueue("warm-up").await;
    stack.wait_done(1, Duration::from_secs(10)).await;
    // A mark (0.85 of maxmemory, the default) 100 KB above what Redis uses now; the headroom
    // above it (about 200 KB) must hold what finishing the accepted tasks adds (their results).
    let before = used_memory(&stack);
    let maxmemory = (before + 100_000) * 100 / 85;
    config_set(&stack, "maxmemory", &maxmemory.to_string());

    // Enqueue at a steady pace (the producer reads Redis' memory every 250 ms) until refused.
    let mut accepted = Vec::new();
    let (status, retry_after, body, refused_name) = loop {
        let name = format!("full-{}", accepted.len());
        let response = stack
            .client
            .post(format!("http://{}/tasks", stack.producer))
            .header("content-type", "application/json")
            .body(json!({"name": name, "payload": {"n": accepted.len()}}).to_string())
            .send()
            .await
            .unwrap();
        let status = response.status();
        if status == StatusCode::ACCEPTED {
            accepted.push(name);
            assert!(accepted.len() < 20_000, "never refused");
            tokio::time::sleep(Duration::from_millis(2)).await;
            continue;
        }
        let retry_after = response.headers().get("retry-after").cloned();
        let body: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
        break (status, retry_after, body, name);
    };
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("the queue is full"),
        "{body}"
    );
    assert!(retry_after.is_some(), "a full queue says when to come back");
    assert!(accepted.len() > 50, "only {} accepted", accepted.len());
    let (status, _) = stack.task(&refused_name).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a refused task is not written"
    );
    let (_, stats) = get_json(&stack.client, format!("http://{}/stats", stack.producer)).await;
    assert!(
        stats["admission"]["refused_memory"].as_u64().unwrap() >= 1,
        "{stats}"
    );
    assert!(
        stats["admission"]["used_memory_bytes"].as_u64().unwrap()
            >= stats["admission"]["high_water_bytes"].as_u64().unwrap(),
        "{stats}"
    );
    let (_, metrics) = get_text(&stack.client, format!("http://{}/metrics", stack.producer)).await;
    let refused = format!(
        "taskq_enqueue_refused_total{{queue=\"{}\",reason=\"memory\"}} ",
        stack.queue_name
    );
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with(&refused) && !l.ends_with(" 0")),
        "{metrics}"
    );

    let queued = used_memory(&stack);
    // Every acknowledged task finishes in the headroom above the mark.
    stack
        .wait_done(accepted.len() as u64 + 1, Duration::from_secs(60))
        .await;
    for name in [&accepted[0], accepted.last().unwrap()] {
        let (_, view) = stack.task(name).await;
        assert_eq!(view["state"], "done", "{view}");
    }
    let done = used_memory(&stack);
    let n = accepted.len() as u64;
    println!(
        "FIGURES redis_full: accepted {n} tasks (maxmemory {maxmemory} B); {} B per queued task, \
         {} B more per task once done",
        queued.saturating_sub(before) / n,
        done.saturating_sub(queued) / n
    );

    // Memory freed (the results purged), enqueues resume by themselves.
    let purge = format!("http://{}/purge?state=done", stack.producer);
    let response = stack.client.post(purge).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    eventually(Duration::from_secs(10), "enqueues to resume", || async {
        let (status, _) = stack.submit("after-the-purge", &json!(1)).await;
        (status == StatusCode::ACCEPTED).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evicting_redis_without_persistence_is_named_in_logs_healthz_and_metrics() {
    let stack = Stack::start(&[("MOCK_DELAY_MS", "0")]);
    // The test's Redis runs without AOF or snapshots; now it evicts too.
    config_set(&stack, "maxmemory-policy", "allkeys-lru");
    let log = stack.queue_server().dir().join("consumer.log");
    let metrics_addr = testkit::free_addr();
    let _consumer = stack.consumer_logged(&[("CONSUMER_ADDR", &metrics_addr.to_string())], &log);
    let queue = stack.queue_name.clone();

    for health in [
        format!("http://{}/healthz", stack.producer),
        format!("http://{metrics_addr}/healthz"),
    ] {
        let report = eventually(
            Duration::from_secs(10),
            "the policy on /healthz",
            || async {
                let (status, body) = get_json(&stack.client, health.clone()).await;
                (status == StatusCode::OK
                    && body["redis"][&queue]["maxmemory_policy"] == "allkeys-lru")
                    .then_some(body["redis"][&queue].clone())
            },
        )
        .await;
        assert_eq!(report["eviction_safe"], false, "{report}");
        assert_eq!(report["persistence"], false, "{report}");
        let problems = report["problems"].to_string();
        assert!(
            problems.contains("maxmemory-policy noeviction"),
            "{problems}"
        );
        assert!(problems.contains("appendonly yes"), "{problems}");
    }
    for metrics in [
        format!("http://{}/metrics", stack.producer),
        format!("http://{metrics_addr}/metrics"),
    ] {
        let (_, text) = get_text(&stack.client, metrics).await;
        for line in [
            format!("taskq_redis_eviction_policy_ok{{queue=\"{queue}\",policy=\"allkeys-lru\"}} 0"),
            format!("taskq_redis_persistence_enabled{{queue=\"{queue}\"}} 0"),
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }
    eventually(
        Duration::from_secs(10),
        "the error in the consumer's log",
        || async {
            let logged = std::fs::read_to_string(&log).unwrap();
            logged
                .lines()
                .any(|l| l.contains("ERROR") && l.contains("maxmemory-policy is allkeys-lru"))
                .then_some(())
        },
    )
    .await;

    // Fixed, the next check says so.
    config_set(&stack, "maxmemory-policy", "noeviction");
    config_set(&stack, "appendonly", "yes");
    let health = format!("http://{}/healthz", stack.producer);
    eventually(Duration::from_secs(10), "the fix on /healthz", || async {
        let (_, body) = get_json(&stack.client, health.clone()).await;
        let report = &body["redis"][&queue];
        (report["eviction_safe"] == true
            && report["persistence"] == true
            && report["problems"] == json!([]))
        .then_some(())
    })
    .await;
}
