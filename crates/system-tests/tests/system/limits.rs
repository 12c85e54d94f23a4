//! Limits across the fleet and scheduled tasks, with the real binaries: consumers and queues
//! sharing one limit key never exceed the API's limit as the mock measures it; a consumer killed
//! while holding places in flight gives them back when their leases end; one consumer's 429
//! pauses the others; a task scheduled later is not called early, and is called on time.

use std::time::{Duration, Instant};

use serde_json::Value;
use testkit::{eventually, free_addr, get_text};

use crate::stack::{Stack, names};

/// The mock's `/stats` field `field`.
fn stat(stats: &Value, field: &str) -> u64 {
    stats[field]
        .as_u64()
        .unwrap_or_else(|| panic!("no {field} in {stats}"))
}

#[tokio::test]
async fn three_consumers_and_two_queues_sharing_a_limit_key_never_exceed_the_apis_limit() {
    let stack = Stack::start(&[
        ("MOCK_DELAY_MS", "50"),
        ("MOCK_POLLS_UNTIL_DONE", "1"),
        ("MOCK_RATE_LIMIT_PER_SEC", "40"),
        ("MOCK_MAX_IN_FLIGHT", "4"),
    ]);
    let other = format!("{}-b", stack.queue_name);
    let queues = format!("{},{other}", stack.queue_name);
    let limit = [
        ("QUEUES", queues.as_str()),
        ("API_LIMIT_KEY", "the-api"),
        ("API_RATE_PER_SEC", "40"),
        ("API_RATE_BURST", "4"),
        ("API_MAX_IN_FLIGHT", "4"),
        ("CONCURRENCY", "50"),
        ("POLL_INTERVAL_MS", "50"),
    ];
    let _consumers = [
        stack.consumer(&limit),
        stack.consumer(&limit),
        stack.consumer(&limit),
    ];
    let second = taskq::Queue::open(
        &stack.redis.url().parse().unwrap(),
        &Default::default(),
        &other,
    )
    .unwrap();
    let started = Instant::now();
    stack.enqueue_all(&names("a", 120)).await;
    let b: Vec<taskq::TaskName> = names("b", 120)
        .iter()
        .map(|n| taskq::TaskName::parse(n.clone()).unwrap())
        .collect();
    second.enqueue_many(&b).await.unwrap();

    stack.wait_done(120, Duration::from_secs(60)).await;
    eventually(Duration::from_secs(60), "the second queue done", || async {
        let done = second.stats().await.ok()?.totals.get("done").copied();
        (done == Some(120)).then_some(())
    })
    .await;
    let took = started.elapsed();
    let stats = stack.mock_stats().await;
    assert_eq!(stat(&stats, "calls"), 240, "{stats}");
    assert_eq!(
        stat(&stats, "throttled"),
        0,
        "the API never had to refuse: {stats}"
    );
    assert!(stat(&stats, "max_in_flight_seen") <= 4, "{stats}");
    // 240 calls at 40 a second (a burst of 4 first): six seconds at the least.
    assert!(took >= Duration::from_millis(5500), "{took:?}");
}

#[tokio::test]
async fn a_consumer_killed_holding_places_in_flight_gives_them_back_when_their_leases_end() {
    let stack = Stack::start(&[("MOCK_DELAY_MS", "600"), ("MOCK_POLLS_UNTIL_DONE", "1")]);
    let limit = [
        ("API_MAX_IN_FLIGHT", "3"),
        ("API_TIMEOUT_MS", "1000"),
        ("LEASE_MS", "3000"),
        ("CONCURRENCY", "10"),
    ];
    stack.enqueue_all(&names("k", 9)).await;
    let mut doomed = stack.consumer(&limit);
    eventually(Duration::from_secs(10), "three calls in flight", || async {
        (stat(&stack.mock_stats().await, "calls") >= 3).then_some(())
    })
    .await;
    doomed.kill();
    let killed = Instant::now();
    let survivor = stack.consumer(&limit);
    // Its places stay taken until their leases end: nobody calls before.
    eventually(Duration::from_secs(15), "calls again", || async {
        (stat(&stack.mock_stats().await, "calls") > 3).then_some(())
    })
    .await;
    let waited = killed.elapsed();
    assert!(
        waited >= Duration::from_millis(1800),
        "called again after {waited:?}"
    );
    stack.wait_done(9, Duration::from_secs(30)).await;
    assert!(stat(&stack.mock_stats().await, "max_in_flight_seen") <= 3);
    drop(survivor);
}

#[tokio::test]
async fn one_consumers_429_with_retry_after_pauses_every_consumer_of_the_key() {
    let stack = Stack::start(&[
        ("MOCK_DELAY_MS", "0"),
        ("MOCK_FAILURE_RATE", "1.0"),
        ("MOCK_FAILURE_STATUS", "429"),
        ("MOCK_RETRY_AFTER_SECS", "2"),
    ]);
    let addrs = [free_addr(), free_addr()];
    let _consumers = addrs.map(|addr| {
        let addr = addr.to_string();
        stack.consumer(&[
            ("API_LIMIT_KEY", "paused-api"),
            ("CONCURRENCY", "3"),
            ("CONSUMER_ADDR", &addr),
        ])
    });
    // One task: one consumer calls, meets the 429, and pauses the key; the other sits idle.
    stack.enqueue("first").await;
    let paused = eventually(Duration::from_secs(10), "a first 429", || async {
        (stat(&stack.mock_stats().await, "failures") > 0).then_some(Instant::now())
    })
    .await;
    let before = stat(&stack.mock_stats().await, "calls");
    // Work for both arrives during the pause: neither calls until it ends (the idle one would
    // call within its next tick, a second, if the pause were the other's alone).
    stack.enqueue_all(&names("p", 20)).await;
    tokio::time::sleep_until((paused + Duration::from_millis(1700)).into()).await;
    let during = stat(&stack.mock_stats().await, "calls");
    assert_eq!(during, before, "calls during the pause");
    eventually(Duration::from_secs(5), "calls after the pause", || async {
        (stat(&stack.mock_stats().await, "calls") > during).then_some(())
    })
    .await;
    // Each consumer's /metrics shows its share of the limit: together, the pauses they started
    // and the permits they were granted.
    let mut pauses = 0.0;
    for addr in addrs {
        let (_, page) = get_text(&stack.client, format!("http://{addr}/metrics")).await;
        pauses += sample(&page, "taskq_limit_pauses_total{limit_key=\"paused-api\"}");
        assert!(
            page.contains("taskq_limit_permits_granted_total{limit_key=\"paused-api\"}"),
            "{page}"
        );
    }
    assert!(pauses >= 1.0, "pauses started: {pauses}");
}

/// The value of the series `series` on a Prometheus page.
fn sample(page: &str, series: &str) -> f64 {
    page.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in {page}"))
}

#[tokio::test]
async fn a_task_scheduled_later_is_not_called_before_its_time_and_is_called_on_time() {
    let stack = Stack::start(&[("MOCK_DELAY_MS", "0"), ("MOCK_POLLS_UNTIL_DONE", "1")]);
    let _consumer = stack.consumer(&[]);
    let url = format!("http://{}/?task-name=later&delay_ms=2000", stack.producer());
    let (status, view) = testkit::get_json(&stack.client, url).await;
    assert!(status.is_success(), "{view}");
    let run_at = view["run_at_ms"].as_u64().unwrap();
    assert_eq!(run_at, view["created_at_ms"].as_u64().unwrap() + 2000);

    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(stack.mock_calls().await, 0, "called early");
    let done = stack.wait_final("later", Duration::from_secs(10)).await;
    assert_eq!(done["state"], "done");
    let done_at = done["done_at_ms"].as_u64().unwrap();
    assert!(done_at >= run_at, "done at {done_at}, due at {run_at}");
    // The consumer sleeps until the earliest due time Redis reported: on time, not a tick late.
    assert!(
        done_at - run_at < 500,
        "done {} ms after its time",
        done_at - run_at
    );
}
