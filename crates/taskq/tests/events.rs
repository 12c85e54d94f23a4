//! Events against a real redis-server and a real Redis Cluster: every script that changes a task
//! tells its subscribers, work due now wakes them, a hurried task is due at once, and a lost
//! subscription says so and comes back live after Redis restarts.

mod support;

use std::time::Duration;

use support::{name, open};
use taskq::events::{self, Signal};
use taskq::{ConnectOptions, Hurry, Queue, State, WorkerPolicy};
use testkit::{RedisCluster, RedisServer, unique_queue};
use tokio::sync::mpsc::Receiver;
use tokio::time::timeout;

const PATIENCE: Duration = Duration::from_secs(10);

async fn next(signals: &mut Receiver<Signal>) -> Signal {
    timeout(PATIENCE, signals.recv())
        .await
        .expect("a signal within the deadline")
        .expect("the subscription lives")
}

/// The next message, skipping nothing else: a test that expects a message fails on a signal.
async fn message(signals: &mut Receiver<Signal>) -> (usize, String) {
    match next(signals).await {
        Signal::Message { channel, payload } => (channel, payload),
        other => panic!("expected a message, got {other:?}"),
    }
}

fn changes(payload: &str) -> Vec<(String, State)> {
    events::changes(payload)
        .map(|change| (change.name.to_owned(), change.state))
        .collect()
}

async fn subscribed(queue: &Queue) -> Receiver<Signal> {
    let mut signals = events::subscribe(
        queue.redis_connection(),
        vec![
            queue.keys().events_channel().to_owned(),
            queue.keys().wake_channel().to_owned(),
        ],
    );
    assert_eq!(next(&mut signals).await, Signal::Live);
    signals
}

const EVENTS: usize = 0;
const WAKE: usize = 1;

/// The queue as a consumer whose calls start with a submit claims it: each run of a task gets a
/// submit token, which a hook names.
fn submitting(queue: &Queue) -> Queue {
    queue.clone().with_worker_policy(WorkerPolicy {
        submit_keys: true,
        ..WorkerPolicy::default()
    })
}

async fn every_change_is_told(queue: &Queue) {
    let queue = &submitting(queue);
    let mut signals = subscribed(queue).await;

    queue.enqueue(&name("a")).await.unwrap();
    assert_eq!(message(&mut signals).await, (WAKE, String::new()));

    let claim = queue.claim(10).await.unwrap();
    let (channel, payload) = message(&mut signals).await;
    assert_eq!(channel, EVENTS);
    assert_eq!(changes(&payload), vec![("a".into(), State::Running)]);

    let task = &claim.tasks[0];
    let run = task.submit_token.clone().unwrap();
    queue
        .snooze(task, r#"{"step":1}"#, Duration::from_secs(60))
        .await
        .unwrap();
    let (_, payload) = message(&mut signals).await;
    assert_eq!(changes(&payload), vec![("a".into(), State::Processing)]);

    // A provider's webhook: the task is due at once, and idle consumers are woken.
    assert_eq!(
        queue.hurry(&name("a"), "0", None).await.unwrap(),
        Hurry::Replaced
    );
    assert_eq!(
        queue.hurry(&name("a"), &run, None).await.unwrap(),
        Hurry::Hurried
    );
    assert_eq!(message(&mut signals).await, (WAKE, String::new()));
    let claim = queue.claim(10).await.unwrap();
    assert_eq!(claim.tasks.len(), 1, "hurried: due now, not in a minute");
    let (_, payload) = message(&mut signals).await;
    assert_eq!(changes(&payload), vec![("a".into(), State::Running)]);

    queue
        .complete(&claim.tasks[0], r#"{"ok":1}"#)
        .await
        .unwrap();
    let (_, payload) = message(&mut signals).await;
    assert_eq!(changes(&payload), vec![("a".into(), State::Done)]);
    assert_eq!(
        queue.hurry(&name("a"), &run, None).await.unwrap(),
        Hurry::Finished
    );
    assert_eq!(
        queue.hurry(&name("nobody"), &run, None).await.unwrap(),
        Hurry::NotFound
    );

    queue.enqueue(&name("b")).await.unwrap();
    assert_eq!(message(&mut signals).await, (WAKE, String::new()));
    queue.cancel(&name("b")).await.unwrap();
    let (_, payload) = message(&mut signals).await;
    assert_eq!(changes(&payload), vec![("b".into(), State::Cancelled)]);
}

#[tokio::test]
async fn every_script_that_changes_a_task_tells_its_subscribers() {
    let redis = RedisServer::start();
    every_change_is_told(&open(&redis)).await;
}

#[tokio::test]
async fn on_a_cluster_events_travel_by_sharded_pub_sub() {
    let cluster = RedisCluster::start();
    let queue = Queue::open(
        &cluster.url().parse().unwrap(),
        &ConnectOptions::default(),
        &unique_queue("q"),
    )
    .unwrap();
    every_change_is_told(&queue).await;
}

#[tokio::test]
async fn a_batch_of_changes_is_one_message_and_a_hurried_running_task_is_due_at_once_after_its_call()
 {
    let redis = RedisServer::start();
    let queue = submitting(&open(&redis));
    let mut signals = subscribed(&queue).await;
    for n in ["x", "y"] {
        queue.enqueue(&name(n)).await.unwrap();
        message(&mut signals).await;
    }
    let claim = queue.claim(10).await.unwrap();
    let (_, payload) = message(&mut signals).await;
    assert_eq!(
        changes(&payload),
        vec![("x".into(), State::Running), ("y".into(), State::Running)]
    );

    // A webhook during the call: the "processing" answer that follows is older news.
    let run = claim.tasks[0].submit_token.as_deref().unwrap();
    assert_eq!(
        queue.hurry(&name("x"), run, None).await.unwrap(),
        Hurry::Hurried
    );
    let batch: Vec<_> = claim
        .tasks
        .iter()
        .map(|task| {
            (
                task,
                taskq::Finish::Processing {
                    data: "{}",
                    delay: Duration::from_secs(60),
                },
            )
        })
        .collect();
    queue.finish_many(&batch).await.unwrap();
    let (_, payload) = message(&mut signals).await;
    assert_eq!(
        changes(&payload),
        vec![
            ("x".into(), State::Processing),
            ("y".into(), State::Processing)
        ]
    );
    let again = queue.claim(10).await.unwrap();
    let names: Vec<_> = again.tasks.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["x"], "x due at once, y in a minute");
}

#[tokio::test]
async fn a_lost_subscription_says_so_and_is_live_again_after_redis_restarts() {
    let mut redis = RedisServer::start();
    let queue = open(&redis);
    let mut signals = subscribed(&queue).await;

    redis.restart();
    assert_eq!(next(&mut signals).await, Signal::Lost);
    assert_eq!(next(&mut signals).await, Signal::Live);
    queue.enqueue(&name("after")).await.unwrap();
    assert_eq!(message(&mut signals).await, (WAKE, String::new()));
}

#[tokio::test]
async fn a_hung_redis_is_found_by_the_ping() {
    let redis = RedisServer::start_with(&["--enable-debug-command", "yes"]);
    let queue = open(&redis);
    let mut signals = subscribed(&queue).await;

    let mut connection = redis.connection();
    let sleeper = tokio::task::spawn_blocking(move || {
        redis::cmd("DEBUG")
            .arg("SLEEP")
            .arg(5)
            .query::<()>(&mut connection)
    });
    // Found within a ping's period and its patience, while Redis still sleeps.
    assert_eq!(next(&mut signals).await, Signal::Lost);
    assert!(!sleeper.is_finished(), "lost only once Redis woke");
    sleeper.await.unwrap().unwrap();
    assert_eq!(next(&mut signals).await, Signal::Live);
}
