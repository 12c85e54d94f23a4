//! `POST /tasks/{name}/callback/retry`: an operator delivers a failed callback again, over real
//! sockets against a real Redis, the deliveries played by the library as a consumer would.

mod support;

use std::time::Duration;

use reqwest::StatusCode;
use support::{get, metrics, post, spawn_producer};
use taskq::{NewTask, Queue, TaskName};
use testkit::RedisServer;

/// Submits `name` with a callback, completes it, and fails its delivery for good.
async fn ended_with_a_failed_callback(queue: &Queue, name: &TaskName) {
    queue
        .submit_task(NewTask {
            name: name.clone(),
            payload: None,
            run_at: Default::default(),
            callback_url: Some("https://receiver.example/hook".into()),
        })
        .await
        .unwrap();
    let task = queue.claim(1).await.unwrap().tasks.remove(0);
    queue.complete(&task, "{}").await.unwrap();
    let lane = queue.callbacks();
    let delivery = lane.claim(1).await.unwrap().tasks.remove(0);
    lane.fail(&delivery, "callback answered 410", Duration::ZERO, true)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_failed_callback_is_delivered_again_once_and_nothing_else_is() {
    let redis = RedisServer::start();
    let (addr, _stop, queue) = spawn_producer(&redis).await;
    let retry = |name: &str| format!("http://{addr}/tasks/{name}/callback/retry");
    let name = TaskName::parse("called back").unwrap();
    ended_with_a_failed_callback(&queue, &name).await;
    let (_, _, view) = get(addr, "/tasks/called%20back").await;
    assert_eq!(view["callback"]["state"], "failed", "{view}");
    assert_eq!(view["callback"]["attempts"], 1, "{view}");

    let (status, view) = post(&retry("called%20back"), vec![]).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(
        view["state"], "done",
        "the task itself is untouched: {view}"
    );
    assert_eq!(view["callback"]["state"], "pending", "{view}");
    assert_eq!(view["callback"]["attempts"], 0, "a fresh budget: {view}");
    let again = queue.callbacks().claim(10).await.unwrap().tasks;
    assert_eq!(again.len(), 1, "the delivery is due at once");
    assert_eq!(again[0].name, name);
    let q = queue.keys().queue();
    let page = metrics(addr).await;
    for line in [
        format!("taskq_callback_deliveries_total{{queue=\"{q}\",outcome=\"failed\"}} 1"),
        format!("taskq_callbacks{{queue=\"{q}\",state=\"pending\"}} 1"),
    ] {
        assert!(page.lines().any(|l| l == line), "{line} in\n{page}");
    }

    // A callback that has not failed, a task without one, and no task at all.
    let (status, body) = post(&retry("called%20back"), vec![]).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("pending"),
        "{body}"
    );
    queue
        .enqueue(&TaskName::parse("plain").unwrap())
        .await
        .unwrap();
    let (status, body) = post(&retry("plain"), vec![]).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("no callback"),
        "{body}"
    );
    let (status, _) = post(&retry("nobody"), vec![]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        queue.callbacks().claim(10).await.unwrap().tasks.is_empty(),
        "refused retries change nothing"
    );
}
