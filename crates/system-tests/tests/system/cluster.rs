//! What only a Redis Cluster has: a slot that moves between masters while tasks flow, and queues
//! on different shards. (Every end-to-end and fault scenario also runs on a cluster: see
//! `end_to_end.rs` and `faults.rs`.)

use std::time::{Duration, Instant};

use crate::stack::{Stack, names};
use testkit::{RedisCluster, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_the_busy_queues_slot_to_another_master_loses_nothing_and_runs_nothing_twice() {
    let stack = Stack::start_on(
        RedisCluster::start(),
        &[("MOCK_DELAY_MS", "5"), ("MOCK_POLLS_UNTIL_DONE", "2")],
    );
    let _consumers = [
        stack.consumer(&[("POLL_INTERVAL_MS", "20"), ("CONCURRENCY", "50")]),
        stack.consumer(&[("POLL_INTERVAL_MS", "20"), ("CONCURRENCY", "50")]),
    ];
    stack.enqueue_all(&names("moving", 3000)).await;
    let queue = stack.queue();
    eventually(Duration::from_secs(20), "work under way", || async {
        let done = queue
            .stats()
            .await
            .ok()?
            .totals
            .get("done")
            .copied()
            .unwrap_or(0);
        (done >= 100).then_some(())
    })
    .await;

    let due_key = queue.keys().due_key().to_owned();
    let owner = stack.redis.node_for(&due_key).port();
    let target = stack
        .redis
        .nodes()
        .iter()
        .find(|n| n.port() != owner)
        .unwrap();
    let started = Instant::now();
    let moved = stack.redis.migrate_slot_of(&due_key, target);
    let migration = started.elapsed();

    let stats = stack.wait_done(3000, Duration::from_secs(60)).await;
    assert_eq!(
        stack.redis.node_for(&due_key).port(),
        target.port(),
        "the slot moved"
    );
    assert_eq!(
        (stats.counts.due, stats.counts.running, stats.counts.dead),
        (0, 0, 0)
    );
    assert_eq!(stack.mock_calls().await, 6000, "exactly one call per poll");
    assert!(!stats.totals.contains_key("stale"), "{:?}", stats.totals);
    eprintln!(
        "FIGURES cluster-migration: tasks=3000 keys-moved={moved} migration={migration:?} calls=6000 lost=0 duplicated=0"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_consumer_serves_three_queues_on_three_shards() {
    let stack = Stack::start_on(
        RedisCluster::start(),
        &[("MOCK_DELAY_MS", "5"), ("MOCK_POLLS_UNTIL_DONE", "2")],
    );
    // Three queue names whose hash tags land on three different masters.
    let mut owners = std::collections::HashMap::new();
    for i in 0.. {
        let name = format!("shard-{i}");
        let owner = stack
            .redis
            .node_for(&format!("{{taskq:{name}}}:due"))
            .port();
        owners.entry(owner).or_insert(name);
        if owners.len() == 3 {
            break;
        }
    }
    let queue_names: Vec<String> = owners.into_values().collect();
    let url = stack.redis.url().parse().unwrap();
    let queues: Vec<taskq::Queue> = queue_names
        .iter()
        .map(|q| taskq::Queue::open(&url, &taskq::ConnectOptions::default(), q).unwrap())
        .collect();
    // Distinct names per queue: the mock counts polls per name.
    for (queue, name) in queues.iter().zip(&queue_names) {
        let tasks: Vec<taskq::TaskName> = (0..300)
            .map(|i| taskq::TaskName::parse(format!("{name}-t{i}")).unwrap())
            .collect();
        queue.enqueue_many(&tasks).await.unwrap();
    }

    let list = queue_names.join(",");
    let _consumer = stack.consumer(&[("QUEUES", list.as_str()), ("POLL_INTERVAL_MS", "20")]);

    for queue in &queues {
        eventually(Duration::from_secs(30), "every queue drained", || async {
            (queue.stats().await.ok()?.totals.get("done") == Some(&300)).then_some(())
        })
        .await;
    }
    assert_eq!(stack.mock_calls().await, 3 * 300 * 2);
}
