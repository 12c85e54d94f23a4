//! The library under Sentinel, on real processes (a master, replicas, three sentinels): the
//! master is found through the sentinels and found again after a failover, whether the old
//! master died or was cut off and demoted; `WAIT` refuses a change no replica holds.

use std::time::Duration;

use taskq::{ConnectOptions, Error, Queue, TaskName, WaitForReplicas};
use testkit::{RedisSentinel, eventually, unique_queue};

fn name(s: &str) -> TaskName {
    TaskName::parse(s).unwrap()
}

fn open(sentinel: &RedisSentinel, wait: Option<WaitForReplicas>) -> Queue {
    let options = ConnectOptions {
        wait_for_replicas: wait,
        // Above the wait, which a loaded machine may need in full.
        response_timeout: Duration::from_secs(3),
        ..ConnectOptions::default()
    };
    let url = sentinel.url().parse().unwrap();
    Queue::open(&url, &options, &unique_queue("s")).unwrap()
}

#[tokio::test]
async fn a_demoted_master_is_left_for_the_one_the_sentinels_promoted() {
    let sentinel = RedisSentinel::start(1);
    let queue = open(&sentinel, None);
    assert!(queue.enqueue(&name("before")).await.unwrap().created);
    // Replication is asynchronous: the replica holds the first task before the partition.
    let before_key = queue.keys().task(&name("before"));
    let master_port = sentinel.master_port().unwrap();
    let replica = sentinel
        .servers()
        .iter()
        .find(|s| s.port() != master_port)
        .unwrap();
    let mut replica_conn =
        replica.connection_as(testkit::sentinel::USER, testkit::sentinel::PASSWORD);
    eventually(
        Duration::from_secs(10),
        "the replica to hold the first task",
        || {
            let held: bool = redis::cmd("EXISTS")
                .arg(&before_key)
                .query(&mut replica_conn)
                .unwrap();
            async move { held.then_some(()) }
        },
    )
    .await;
    let old = sentinel.partition_master();
    // Cut off from its replica, the old master still takes writes (they will be lost).
    assert!(queue.enqueue(&name("during")).await.unwrap().created);
    eventually(Duration::from_secs(30), "a replica promoted", || async {
        (sentinel.master_port().is_some_and(|port| port != old)).then_some(())
    })
    .await;
    sentinel.heal(old);
    // The first write may meet the demoted master (READONLY); the ones after go to the new one.
    let created = eventually(
        Duration::from_secs(10),
        "an enqueue on the new master",
        || async { queue.enqueue(&name("after")).await.ok() },
    )
    .await;
    assert!(created.created);
    let promoted = sentinel.master().unwrap();
    let mut conn = promoted.connection_as(testkit::sentinel::USER, testkit::sentinel::PASSWORD);
    let key = queue.keys().task(&name("during"));
    let during: bool = redis::cmd("EXISTS").arg(key).query(&mut conn).unwrap();
    assert!(!during, "what the cut-off master took is gone");
    let before: bool = redis::cmd("EXISTS")
        .arg(&before_key)
        .query(&mut conn)
        .unwrap();
    assert!(before, "what the replica held survives");
}

#[tokio::test]
async fn a_change_no_replica_holds_is_refused_with_wait_replicas() {
    let sentinel = RedisSentinel::start(1);
    let wait = WaitForReplicas {
        replicas: 1,
        timeout: Duration::from_secs(1),
    };
    let queue = open(&sentinel, Some(wait));
    assert!(queue.enqueue(&name("held")).await.unwrap().created);
    let too_many = open(
        &sentinel,
        Some(WaitForReplicas {
            replicas: 2,
            ..wait
        }),
    );
    match too_many.enqueue(&name("unheld")).await {
        Err(Error::NotReplicated {
            wanted: 2,
            acknowledged: 1,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
}
