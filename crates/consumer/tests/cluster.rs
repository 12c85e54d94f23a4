//! The same system on a local three-master Redis Cluster: the queue's keys share one hash tag,
//! every script declares its keys, and the client follows MOVED and ASK when a slot moves.

mod common;

use std::time::{Duration, Instant};

use common::{Stack, names};
use testkit::{RedisCluster, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_tasks_finish_on_a_cluster_with_exactly_three_calls_each() {
    let stack = Stack::start_on(
        RedisCluster::start(),
        &[("MOCK_DELAY_MS", "20"), ("MOCK_POLLS_UNTIL_DONE", "3")],
    );
    let _consumer = stack.consumer(&[("CONCURRENCY", "100"), ("POLL_INTERVAL_MS", "100")]);
    let all = names("cluster", 1000);
    stack.enqueue_all(&all).await;
    stack.enqueue_all(&all).await;

    let counts = stack.wait_done(1000, Duration::from_secs(30)).await;

    assert_eq!((counts.due, counts.running, counts.dead), (0, 0, 0));
    assert_eq!(counts.totals["duplicates"], 1000);
    assert_eq!(stack.mock_calls().await, 3000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_killed_on_a_cluster_loses_nothing() {
    let stack = Stack::start_on(
        RedisCluster::start(),
        &[("MOCK_DELAY_MS", "1500"), ("MOCK_POLLS_UNTIL_DONE", "1")],
    );
    let env = [("CONCURRENCY", "200"), ("LEASE_MS", "1000")];
    let mut first = stack.consumer(&env);
    stack.enqueue_all(&names("crash", 200)).await;
    eventually(Duration::from_secs(15), "200 calls in flight", || async {
        (stack.mock_calls().await >= 200).then_some(())
    })
    .await;

    first.kill();
    let _second = stack.consumer(&env);

    let counts = stack.wait_done(200, Duration::from_secs(30)).await;
    assert_eq!(counts.totals["reaped"], 200);
    assert!(stack.mock_calls().await <= 400);
}

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
            .counts()
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

    let counts = stack.wait_done(3000, Duration::from_secs(60)).await;
    assert_eq!(
        stack.redis.node_for(&due_key).port(),
        target.port(),
        "the slot moved"
    );
    assert_eq!((counts.due, counts.running, counts.dead), (0, 0, 0));
    assert_eq!(stack.mock_calls().await, 6000, "exactly one call per poll");
    assert!(!counts.totals.contains_key("stale"), "{:?}", counts.totals);
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
        .map(|q| {
            taskq::Queue::open(
                &url,
                &taskq::ConnectOptions::default(),
                q,
                taskq::Policy::default(),
            )
            .unwrap()
        })
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
            (queue.counts().await.ok()?.totals.get("done") == Some(&300)).then_some(())
        })
        .await;
    }
    assert_eq!(stack.mock_calls().await, 3 * 300 * 2);
}
