//! Redis configured the ways production Redis often is, with the real binaries: at `maxmemory`,
//! and with an evicting policy and no persistence.

use std::time::Duration;

use crate::stack::Stack;
use reqwest::StatusCode;
use serde_json::{Value, json};
use testkit::{eventually, get_json, get_text};

/// `INFO memory`'s `used_memory` of the stack's Redis.
fn used_memory(stack: &Stack) -> u64 {
    let used = stack.queue_server().info("memory", "used_memory");
    used.parse().expect("used_memory in INFO")
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

    // Enqueue at a steady pace until refused.
    let mut accepted = Vec::new();
    let (status, retry_after, body, refused_name) = loop {
        let name = format!("full-{}", accepted.len());
        let response = stack
            .client
            .post(format!("http://{}/tasks", stack.producer()))
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
    let (_, stats) = get_json(&stack.client, format!("http://{}/stats", stack.producer())).await;
    assert!(
        stats["admission"]["refused_memory"].as_u64().unwrap() >= 1,
        "{stats}"
    );
    assert_eq!(
        stats["admission"]["high_water_bytes"].as_u64().unwrap(),
        maxmemory * 85 / 100,
        "{stats}"
    );
    let (_, metrics) = get_text(
        &stack.client,
        format!("http://{}/metrics", stack.producer()),
    )
    .await;
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
    let purge = format!("http://{}/purge?state=done", stack.producer());
    let response = stack.client.post(purge).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    eventually(Duration::from_secs(10), "enqueues to resume", || async {
        let (status, _) = stack.submit("after-the-purge", &json!(1)).await;
        (status == StatusCode::ACCEPTED).then_some(())
    })
    .await;
}

/// Asserts that the producer's `/metrics` and the consumer's (at `consumer`) serve every line.
async fn assert_served(stack: &Stack, consumer: std::net::SocketAddr, lines: &[String]) {
    for metrics in [
        format!("http://{}/metrics", stack.producer()),
        format!("http://{consumer}/metrics"),
    ] {
        let (_, text) = get_text(&stack.client, metrics).await;
        for line in lines {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }
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
        format!("http://{}/healthz", stack.producer()),
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
    assert_served(
        &stack,
        metrics_addr,
        &[
            format!("taskq_redis_eviction_policy_ok{{queue=\"{queue}\",policy=\"allkeys-lru\"}} 0"),
            format!("taskq_redis_persistence_enabled{{queue=\"{queue}\"}} 0"),
        ],
    )
    .await;
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
    let health = format!("http://{}/healthz", stack.producer());
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

/// The number of `OOM` errors Redis has answered (`INFO errorstats`).
fn oom_errors(stack: &Stack) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("errorstats")
        .query(&mut stack.queue_server().connection())
        .unwrap();
    info.lines()
        .find_map(|line| line.strip_prefix("errorstat_OOM:count="))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// Every task record's state agrees with the sets it is in: queued and processing tasks are due
/// only, running ones leased only, dead ones in the dead set only, done ones in none; every set
/// member has a record. Answers the states seen. The sets and the records are read in one script
/// call, so that what is compared is one moment of the queue while the consumer runs.
fn consistent_states(stack: &Stack) -> Vec<String> {
    const SNAPSHOT: &str = r"
        local sets = {}
        for i, set in ipairs({'due', 'leased', 'dead'}) do
            sets[i] = redis.call('ZRANGE', ARGV[1] .. ':' .. set, 0, -1)
        end
        local records = redis.call('KEYS', ARGV[2])
        local states = {}
        for i, record in ipairs(records) do
            states[i] = redis.call('HGET', record, 'state')
        end
        return {sets[1], sets[2], sets[3], records, states}
    ";
    let queue = stack.queue();
    let keys = queue.keys();
    let tag = keys.due_key().trim_end_matches(":due").to_owned();
    let pattern = format!(
        "{}*",
        keys.task_prefix().replace('{', "\\{").replace('}', "\\}")
    );
    let [due, leased, dead, records, record_states]: [Vec<String>; 5] = redis::cmd("EVAL")
        .arg(SNAPSHOT)
        .arg(0)
        .arg(&tag)
        .arg(pattern)
        .query(&mut stack.queue_server().connection())
        .unwrap();
    let sets = [due, leased, dead];
    let mut states = Vec::new();
    for (record, state) in records.iter().zip(record_states) {
        let name = record.strip_prefix(keys.task_prefix()).unwrap();
        let within = sets
            .each_ref()
            .map(|members| members.iter().any(|m| m == name));
        let expected = match state.as_str() {
            "queued" | "processing" => [true, false, false],
            "running" => [false, true, false],
            "dead" => [false, false, true],
            "done" => [false, false, false],
            other => panic!("{name}: unexpected state {other}"),
        };
        assert_eq!(
            within, expected,
            "{name} is {state} but in (due, leased, dead) {within:?}"
        );
        states.push(state);
    }
    for members in &sets {
        for member in members {
            assert!(
                records
                    .iter()
                    .any(|r| r.ends_with(&format!(":task:{member}"))),
                "{member} is in a set without a record"
            );
        }
    }
    states
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_over_maxmemory_keeps_every_task_consistent_and_finishes_them_once_there_is_room() {
    let stack = Stack::start(&[("MOCK_DELAY_MS", "100"), ("MOCK_POLLS_UNTIL_DONE", "2")]);
    let mut consumer = stack.consumer(&[
        ("CONCURRENCY", "8"),
        ("POLL_INTERVAL_MS", "50"),
        ("LEASE_MS", "1000"),
    ]);
    stack.wait_serving(Duration::from_secs(10)).await;
    let names = crate::stack::names("oom", 60);
    stack.enqueue_all(&names).await;
    stack.wait_done(5, Duration::from_secs(30)).await;

    // Redis over maxmemory (noeviction): Redis refuses every script that adds data (the first
    // form of each finish), and the queue drains on in the draining form, where the results
    // (larger than the partial data they replace) wait for room, their tasks due again later.
    config_set(&stack, "maxmemory", "1");
    let refused_before = oom_errors(&stack);
    let queue = stack.queue();
    eventually(
        Duration::from_secs(20),
        "results to wait for room",
        || async {
            let deferred = queue
                .stats()
                .await
                .ok()?
                .totals
                .get("results_deferred")
                .copied();
            (deferred >= Some(3) && oom_errors(&stack) >= refused_before + 3).then_some(())
        },
    )
    .await;
    let states = consistent_states(&stack);
    assert_eq!(states.len(), names.len(), "{states:?}");
    assert!(
        states.iter().any(|s| s != "done"),
        "some tasks were still unfinished when Redis filled: {states:?}"
    );

    // Memory back: the consumer resumes by itself and every task finishes.
    config_set(&stack, "maxmemory", "0");
    stack
        .wait_done(names.len() as u64, Duration::from_secs(60))
        .await;
    let states = consistent_states(&stack);
    assert!(states.iter().all(|s| s == "done"), "{states:?}");
    assert!(consumer.running(), "the consumer lived through it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fewer_replicas_than_redis_wait_replicas_is_a_warning_in_logs_healthz_and_metrics() {
    let wait = [("REDIS_WAIT_REPLICAS", "1")];
    let stack = Stack::start_with_producer_env(
        testkit::RedisServer::start(),
        &[("MOCK_DELAY_MS", "0")],
        &wait,
    );
    let log = stack.queue_server().dir().join("consumer.log");
    let metrics_addr = testkit::free_addr();
    let _consumer = stack.consumer_logged(
        &[
            ("CONSUMER_ADDR", &metrics_addr.to_string()),
            ("REDIS_WAIT_REPLICAS", "1"),
        ],
        &log,
    );
    let queue = stack.queue_name.clone();
    let warned = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("WARN") && l.contains("REDIS_WAIT_REPLICAS is 1"))
            .count()
    };
    // What each binary says about the replicas: the problem on /healthz, if any.
    let replica_problem = |health: String| {
        let client = stack.client.clone();
        let queue = queue.clone();
        async move {
            // The consumer serves /healthz once it is up: until then, no answer.
            let response = client.get(health).send().await.ok()?;
            let body: Value = serde_json::from_slice(&response.bytes().await.ok()?).ok()?;
            let problems = body["redis"][&queue]["problems"].as_array()?.clone();
            Some(
                problems
                    .iter()
                    .any(|p| p.as_str().unwrap().contains("REDIS_WAIT_REPLICAS")),
            )
        }
    };
    let healths = [
        format!("http://{}/healthz", stack.producer()),
        format!("http://{metrics_addr}/healthz"),
    ];
    for health in &healths {
        eventually(Duration::from_secs(10), "the warning on /healthz", || {
            let problem = replica_problem(health.clone());
            async move { (problem.await == Some(true)).then_some(()) }
        })
        .await;
    }
    assert_served(
        &stack,
        metrics_addr,
        &[
            format!("taskq_redis_replicas_online{{queue=\"{queue}\"}} 0"),
            format!("taskq_redis_wait_replicas{{queue=\"{queue}\"}} 1"),
        ],
    )
    .await;
    eventually(
        Duration::from_secs(10),
        "the warning in the log",
        || async { (warned() == 1).then_some(()) },
    )
    .await;
    // No change is acknowledged meanwhile: an enqueue is refused, and says to come back.
    let (status, body) = stack.enqueue("unreplicated").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");

    // A replica comes: the warning clears; it goes: the warning is back, logged again.
    let port = stack.queue_server().port().to_string();
    let mut replica = testkit::RedisServer::start_with(&["--replicaof", "127.0.0.1", &port]);
    for health in &healths {
        eventually(Duration::from_secs(10), "the warning to clear", || {
            let problem = replica_problem(health.clone());
            async move { (problem.await == Some(false)).then_some(()) }
        })
        .await;
    }
    eventually(Duration::from_secs(10), "enqueues acknowledged", || async {
        (stack.enqueue("replicated").await.0 == StatusCode::ACCEPTED).then_some(())
    })
    .await;
    replica.kill();
    eventually(
        Duration::from_secs(10),
        "the warning logged again",
        || async { (warned() == 2).then_some(()) },
    )
    .await;
}
