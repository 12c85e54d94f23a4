//! Sentinel failovers under load, with the real binaries: a master, two replicas and three
//! sentinels started by the test, clients enqueueing and a consumer working, then a fault:
//!
//! - the master is killed (SIGKILL) and a replica promoted;
//! - the master is cut off from its replicas and the sentinels while clients still reach it (a
//!   network partition), a replica is promoted, and the partition heals: the old master becomes
//!   a replica and drops what it took meanwhile. This is where asynchronous replication loses
//!   acknowledged writes.
//!
//! With `REDIS_WAIT_REPLICAS=1` no acknowledged task may be lost in either; without it, the
//! partition loses the tasks acknowledged during it (asserted, and the loss window measured),
//! and the system recovers by itself either way.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::stack::Stack;
use testkit::{RedisSentinel, eventually, get_json};
use tokio::task::JoinSet;

/// Clients enqueueing at once.
const LANES: usize = 8;

/// What happens to the master.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    /// Killed with SIGKILL.
    Kill,
    /// Cut off from replicas and sentinels, not from clients; healed after the promotion.
    Partition,
}

/// What one failover did.
#[derive(Debug)]
struct Report {
    /// Enqueues answered 2xx.
    acknowledged: usize,
    /// Acknowledged tasks the promoted master does not know.
    lost: usize,
    /// The span over which the lost tasks were acknowledged.
    loss_window: Option<Duration>,
    /// From the fault to the sentinels naming the promoted replica.
    promoted_after: Duration,
    /// From the fault to the first enqueue acknowledged by the promoted master.
    recovery: Duration,
    /// Enqueues refused (5xx) after the fault.
    refused: u64,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} acknowledged, {} lost (over {:?}), promoted after {:?}, enqueues acknowledged \
             again after {:?}, {} refused meanwhile",
            self.acknowledged,
            self.lost,
            self.loss_window.unwrap_or_default(),
            self.promoted_after,
            self.recovery,
            self.refused
        )
    }
}

/// Runs the scenario: load, the fault, load until the promoted master acknowledges enqueues and
/// a second more, then checks every acknowledged task.
async fn failover_under_load(fault: Fault, wait_replicas: &str) -> Report {
    let sentinel = RedisSentinel::start(2);
    let wait = [("REDIS_WAIT_REPLICAS", wait_replicas)];
    let mut stack = Stack::start_with_producer_env(
        sentinel,
        &[("MOCK_DELAY_MS", "20"), ("MOCK_POLLS_UNTIL_DONE", "1")],
        &wait,
    );
    let _consumer = stack.consumer(&[
        ("CONCURRENCY", "32"),
        ("POLL_INTERVAL_MS", "50"),
        ("REDIS_WAIT_REPLICAS", wait_replicas),
    ]);
    stack.wait_serving(Duration::from_secs(10)).await;

    let acked: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let refused = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut lanes = JoinSet::new();
    for lane in 0..LANES {
        let (client, producer) = (stack.client.clone(), stack.producer());
        let (acked, refused, stop) = (acked.clone(), refused.clone(), stop.clone());
        lanes.spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let name = format!("fo-{lane}-{n}");
                n += 1;
                let (status, _) =
                    get_json(&client, crate::stack::enqueue_url(producer, &name)).await;
                if status.is_success() {
                    acked.lock().unwrap().push((name, Instant::now()));
                } else {
                    assert!(status.is_server_error(), "{name}: {status}");
                    refused.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        });
    }
    // Under load: tasks are being enqueued, claimed and finished when the master dies.
    let queue = stack.queue();
    eventually(
        Duration::from_secs(20),
        "tasks done before the kill",
        || async {
            let stats = queue.stats().await.ok()?;
            (stats.totals.get("done").copied().unwrap_or(0) >= 200).then_some(())
        },
    )
    .await;
    let acked_before = acked.lock().unwrap().len();
    refused.store(0, Ordering::Relaxed);
    let old_master = stack.queue_server().port();
    let fault_at = Instant::now();
    match fault {
        Fault::Kill => stack.queue_server_mut().kill(),
        Fault::Partition => assert_eq!(stack.redis.partition_master(), old_master),
    }
    let promoted_after = eventually(Duration::from_secs(30), "a replica promoted", || async {
        let promoted = stack
            .redis
            .master_port()
            .is_some_and(|port| port != old_master);
        promoted.then(|| fault_at.elapsed())
    })
    .await;
    if fault == Fault::Partition {
        stack.redis.heal(old_master);
    }
    // Acknowledged by the promoted master: an enqueue acknowledged after the promotion that the
    // promoted master knows.
    let new_master = stack.redis.master().unwrap().port();
    let recovery = eventually(
        Duration::from_secs(60),
        "enqueues acknowledged again",
        || {
            let acked = acked.clone();
            let stack = &stack;
            async move {
                let latest = acked.lock().unwrap().last().cloned();
                let (name, at) = latest.filter(|(_, at)| *at > fault_at + promoted_after)?;
                let (status, _) = stack.task(&name).await;
                (status.is_success() && stack.redis.master_port() == Some(new_master))
                    .then(|| at - fault_at)
            }
        },
    )
    .await;
    let refused = refused.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    while let Some(lane) = lanes.join_next().await {
        lane.unwrap();
    }
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    assert!(
        acked.len() > acked_before,
        "enqueues after the failover were acknowledged"
    );

    // Every acknowledged task the promoted master knows must finish; the others are lost.
    let mut lost: Vec<Instant> = Vec::new();
    let mut pending = Vec::new();
    for (name, at) in &acked {
        let (status, _) = stack.task(name).await;
        if status == reqwest::StatusCode::NOT_FOUND {
            lost.push(*at);
        } else {
            assert!(status.is_success(), "{name}: {status}");
            pending.push(name.clone());
        }
    }
    let deadline = Instant::now() + Duration::from_secs(90);
    while !pending.is_empty() {
        let mut still = Vec::new();
        for name in pending {
            let (_, body) = stack.task(&name).await;
            if body["state"] != "done" {
                still.push(name);
            }
        }
        pending = still;
        assert!(
            Instant::now() < deadline,
            "{} surviving tasks not done: {:?}",
            pending.len(),
            &pending[..pending.len().min(5)]
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let loss_window = lost
        .iter()
        .min()
        .zip(lost.iter().max())
        .map(|(first, last)| *last - *first);
    Report {
        acknowledged: acked.len(),
        lost: lost.len(),
        loss_window,
        promoted_after,
        recovery,
        refused,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_master_loses_no_acknowledged_task_with_wait_replicas() {
    let report = failover_under_load(Fault::Kill, "1").await;
    eprintln!("kill, REDIS_WAIT_REPLICAS=1: {report}");
    assert_eq!(report.lost, 0, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_master_is_replaced_by_itself_without_waiting() {
    let report = failover_under_load(Fault::Kill, "0").await;
    eprintln!("kill, no wait: {report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_master_loses_no_acknowledged_task_with_wait_replicas() {
    let report = failover_under_load(Fault::Partition, "1").await;
    eprintln!("partition, REDIS_WAIT_REPLICAS=1: {report}");
    assert_eq!(report.lost, 0, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_master_loses_what_it_acknowledged_without_waiting() {
    let report = failover_under_load(Fault::Partition, "0").await;
    eprintln!("partition, no wait: {report}");
    assert!(
        report.lost > 0,
        "the partition's acknowledgements are lost: {report:?}"
    );
}
