//! The callback lane against a real redis-server and a real Redis Cluster: every way a task
//! ends hands its callback to the lane in the same step (done, dead by failure, by poll deadline,
//! by an expired lease, cancelled), a task without a callback hands nothing, and the task's view
//! follows its delivery.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::{name, open};
use taskq::{CallbackState, ConnectOptions, Finish, NewTask, Queue, RunAt, State, WorkerPolicy};
use testkit::{RedisCluster, RedisServer, unique_queue};

fn open_at(url: &str) -> Queue {
    Queue::open(
        &url.parse().unwrap(),
        &ConnectOptions::default(),
        &unique_queue("cb"),
    )
    .unwrap()
}

async fn with_callback(queue: &Queue, task: &str) {
    let enqueued = queue
        .submit_task(NewTask {
            name: name(task),
            payload: None,
            run_at: RunAt::Now,
            callback_url: Some(format!("https://receiver.example/hook?task={task}")),
        })
        .await
        .unwrap();
    assert_eq!(
        enqueued.view.callback.map(|c| c.state),
        Some(CallbackState::Waiting)
    );
}

/// The deliveries due on the lane: (name, url).
async fn deliveries(queue: &Queue) -> Vec<(String, String)> {
    let lane = queue.callbacks();
    let claim = lane.claim(100).await.unwrap();
    let mut found: Vec<_> = claim
        .tasks
        .iter()
        .map(|task| {
            let payload: Value = serde_json::from_str(task.payload.as_deref().unwrap()).unwrap();
            (
                task.name.as_str().to_owned(),
                payload["url"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for task in &claim.tasks {
        lane.release(task).await.unwrap();
    }
    found.sort();
    found
}

async fn every_ending_hands_its_callback_over(queue: Queue) {
    for task in ["done", "failed", "cancelled", "plain"] {
        if task == "plain" {
            queue.enqueue(&name(task)).await.unwrap();
        } else {
            with_callback(&queue, task).await;
        }
    }
    queue.cancel(&name("cancelled")).await.unwrap();
    let claim = queue.claim(10).await.unwrap();
    let plain = claim
        .tasks
        .iter()
        .find(|t| t.name.as_str() == "plain")
        .unwrap();
    assert!(!plain.has_callback);
    let batch: Vec<_> = claim
        .tasks
        .iter()
        .map(|task| {
            let finish = match task.name.as_str() {
                "failed" => Finish::Failed {
                    error: "no",
                    delay: Duration::ZERO,
                    permanent: true,
                },
                _ => Finish::Done("{\"r\":1}"),
            };
            (task, finish)
        })
        .collect();
    queue.finish_many(&batch).await.unwrap();

    let url = |t: &str| format!("https://receiver.example/hook?task={t}");
    assert_eq!(
        deliveries(&queue).await,
        vec![
            ("cancelled".to_owned(), url("cancelled")),
            ("done".to_owned(), url("done")),
            ("failed".to_owned(), url("failed")),
        ],
        "one delivery per ended task with a callback, none for the plain one"
    );
    let view = queue.get(&name("done")).await.unwrap().unwrap();
    assert_eq!(view.callback.unwrap().state, CallbackState::Pending);
    assert!(
        queue
            .get(&name("plain"))
            .await
            .unwrap()
            .unwrap()
            .callback
            .is_none()
    );

    // A delivery that fails is retried and shows its error; one that succeeds shows delivered.
    let lane = queue.callbacks();
    let claim = lane.claim(10).await.unwrap();
    for task in &claim.tasks {
        let finish = match task.name.as_str() {
            "done" => Finish::Done("{\"status\":204}"),
            _ => Finish::Failed {
                error: "receiver answered 503",
                delay: Duration::from_secs(60),
                permanent: false,
            },
        };
        lane.finish_many(&[(task, finish)]).await.unwrap();
    }
    let done = queue
        .get(&name("done"))
        .await
        .unwrap()
        .unwrap()
        .callback
        .unwrap();
    assert_eq!(done.state, CallbackState::Delivered);
    let failed = queue
        .get(&name("failed"))
        .await
        .unwrap()
        .unwrap()
        .callback
        .unwrap();
    assert_eq!(failed.state, CallbackState::Pending);
    assert_eq!(failed.attempts, 1);
    assert_eq!(failed.last_error.as_deref(), Some("receiver answered 503"));
}

#[tokio::test]
async fn every_ending_hands_its_callback_to_the_lane_in_the_same_step() {
    let redis = RedisServer::start();
    every_ending_hands_its_callback_over(open(&redis)).await;
}

#[tokio::test]
async fn on_a_cluster_the_lane_lives_in_its_queue_slot() {
    let cluster = RedisCluster::start();
    every_ending_hands_its_callback_over(open_at(&cluster.url())).await;
}

#[tokio::test]
async fn a_task_buried_by_an_expired_lease_or_its_poll_deadline_hands_its_callback_over() {
    let redis = RedisServer::start();
    let queue = open(&redis).with_worker_policy(WorkerPolicy {
        lease: Duration::from_millis(50),
        max_attempts: 1,
        max_poll: Some(Duration::from_millis(1)),
        ..WorkerPolicy::default()
    });
    with_callback(&queue, "abandoned").await;
    with_callback(&queue, "slow").await;
    let claim = queue.claim(10).await.unwrap();
    let slow = claim
        .tasks
        .iter()
        .find(|t| t.name.as_str() == "slow")
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await; // past the 1 ms poll deadline
    queue
        .snooze(slow, "{}", Duration::from_secs(1))
        .await
        .unwrap();
    // The abandoned task's lease runs out; the sweep buries it (one attempt allowed).
    testkit::eventually(Duration::from_secs(5), "lease reaped", || async {
        (queue.sweep().await.unwrap().reaped == 1).then_some(())
    })
    .await;
    for task in ["abandoned", "slow"] {
        let view = queue.get(&name(task)).await.unwrap().unwrap();
        assert_eq!(view.state, State::Dead, "{task}");
        assert_eq!(
            view.callback.unwrap().state,
            CallbackState::Pending,
            "{task}"
        );
    }
    assert_eq!(deliveries(&queue).await.len(), 2);
}
