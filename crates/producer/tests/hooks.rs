//! Provider webhooks over a real socket against a real redis-server: only a URL signed for its
//! task's run hurries it, and nothing else a webhook can do changes anything.

mod support;

use std::time::Duration;

use reqwest::StatusCode;
use support::{get, metrics, post, spawn_producer, spawn_producer_with};
use taskq::{Queue, TaskName, WorkerPolicy};
use testkit::RedisServer;
use webhooks::{HookSecret, HookUrls};

const SECRET: &str = "a-hook-secret-for-the-tests";

/// The queue as a consumer whose calls start with a submit claims it: each run of a task gets
/// its submit token, which its hook URL is written for.
fn submitting(queue: Queue) -> Queue {
    queue.with_worker_policy(WorkerPolicy {
        submit_keys: true,
        ..WorkerPolicy::default()
    })
}

/// A task submitted and waiting a minute for its next poll, as after a "processing" answer;
/// answers its run (submit token).
async fn waiting_a_minute(queue: &Queue, name: &TaskName) -> String {
    queue.enqueue(name).await.unwrap();
    let claim = queue.claim(1).await.unwrap();
    queue
        .snooze(&claim.tasks[0], "{}", Duration::from_secs(60))
        .await
        .unwrap();
    assert!(queue.claim(10).await.unwrap().tasks.is_empty());
    claim.tasks[0].submit_token.clone().unwrap()
}

#[tokio::test]
async fn only_the_url_signed_for_a_task_hurries_it_and_replays_change_nothing() {
    let redis = RedisServer::start();
    let (addr, _stop, queue) = spawn_producer_with(&redis, &["--hook-secret", SECRET]).await;
    let queue = submitting(queue);
    let q = queue.keys().queue().to_owned();
    let name = TaskName::parse("render a/b").unwrap();
    let run = waiting_a_minute(&queue, &name).await;
    let urls = HookUrls::new(&format!("http://{addr}"), SECRET.parse().unwrap());
    let good = urls.url(&q, name.as_str(), &run);
    let forged = HookUrls::new(
        &format!("http://{addr}"),
        "another-secret-entirely!".parse::<HookSecret>().unwrap(),
    )
    .url(&q, name.as_str(), &run);
    let unsigned = good.split_once('?').unwrap().0.to_owned();
    let other_task = urls
        .url(&q, "someone else", &run)
        .replace("someone%20else", "render%20a%2Fb");
    let other_run = good.replace(&format!("run={run}&"), "run=999999&");

    for bad in [
        &forged,
        &unsigned,
        &other_task,
        &other_run,
        &format!("{unsigned}?sig="),
    ] {
        let (status, body) = post(bad, b"{}".to_vec()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{bad}");
        assert!(body["error"].as_str().unwrap().contains("sig"));
    }
    assert!(
        queue.claim(10).await.unwrap().tasks.is_empty(),
        "a refused webhook changes nothing"
    );

    let (status, body) = post(
        &good,
        br#"{"status":"succeeded","output":"forged?"}"#.to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(
        body,
        serde_json::json!({"task": "render a/b", "hurried": true})
    );
    let claim = queue.claim(10).await.unwrap();
    assert_eq!(claim.tasks.len(), 1, "due at once, not in a minute");
    let view = queue.get(&name).await.unwrap().unwrap();
    assert_ne!(
        view.data.as_ref().map(|d| d.get()),
        Some(r#""forged?""#),
        "the webhook's body is never taken as the result"
    );

    queue.complete(&claim.tasks[0], r#"{"r":1}"#).await.unwrap();
    let (status, body) = post(&good, Vec::new()).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a replay after the end changes nothing"
    );
    assert_eq!(body["hurried"], false);
    let (_, _, view) = get(addr, "/tasks/render%20a%2Fb").await;
    assert_eq!(view["state"], "done");

    let (status, _) = post(&urls.url(&q, "never enqueued", &run), Vec::new()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = post(
        &good.replace(&format!("/hooks/{q}/"), "/hooks/nope/"),
        Vec::new(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = post(&good, vec![b'x'; 1024 * 1024 + 1]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        body["error"].is_string(),
        "a JSON error like every other: {body}"
    );

    let metrics = metrics(addr).await;
    for line in [
        r#"taskq_hooks_total{outcome="hurried"} 1"#,
        r#"taskq_hooks_total{outcome="finished"} 1"#,
        r#"taskq_hooks_total{outcome="refused"} 5"#,
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
    assert!(!metrics.contains(SECRET));
}

#[tokio::test]
async fn without_a_hook_secret_there_are_no_hooks() {
    let redis = RedisServer::start();
    let (addr, _stop, queue) = spawn_producer(&redis).await;
    let queue = submitting(queue);
    let name = TaskName::parse("t").unwrap();
    let run = waiting_a_minute(&queue, &name).await;
    let url = HookUrls::new(&format!("http://{addr}"), SECRET.parse().unwrap()).url(
        queue.keys().queue(),
        "t",
        &run,
    );
    let (status, body) = post(&url, Vec::new()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].as_str().unwrap().contains("HOOK_SECRET"));
    assert!(queue.claim(10).await.unwrap().tasks.is_empty());
}

#[tokio::test]
async fn a_hook_for_an_earlier_run_of_the_name_changes_nothing_and_never_hurries_a_later_task() {
    let redis = RedisServer::start();
    let (addr, _stop, queue) = spawn_producer_with(&redis, &["--hook-secret", SECRET]).await;
    let queue = submitting(queue);
    let q = queue.keys().queue().to_owned();
    let urls = HookUrls::new(&format!("http://{addr}"), SECRET.parse().unwrap());
    // reuse-1 ran, ended and was purged; the name is enqueued again for a year from now.
    let name = TaskName::parse("reuse-1").unwrap();
    let run = waiting_a_minute(&queue, &name).await;
    let old_hook = urls.url(&q, name.as_str(), &run);
    let claim = {
        post(&old_hook, Vec::new()).await;
        queue.claim(1).await.unwrap()
    };
    queue.complete(&claim.tasks[0], "{}").await.unwrap();
    queue.purge(taskq::FinalState::Done).await.unwrap();
    let later = serde_json::json!({"name": "reuse-1", "delay_ms": 31_536_000_000_u64});
    let (status, queued) = post_json(addr, &later).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");

    let (status, body) = post(&old_hook, Vec::new()).await;

    assert_eq!(status, StatusCode::GONE, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("earlier run"),
        "{body}"
    );
    let (_, _, view) = get(addr, "/tasks/reuse-1").await;
    assert_eq!(view["state"], "queued");
    assert_eq!(view["run_at_ms"], queued["run_at_ms"], "still a year ahead");
    assert!(queue.claim(10).await.unwrap().tasks.is_empty());

    // A run that died and was retried by an operator is a new run too.
    let name = TaskName::parse("retried").unwrap();
    let run = waiting_a_minute(&queue, &name).await;
    let retried_hook = urls.url(&q, name.as_str(), &run);
    post(&retried_hook, Vec::new()).await;
    let claim = queue.claim(1).await.unwrap();
    queue
        .fail(
            &claim.tasks[0],
            "the provider said no",
            Duration::ZERO,
            true,
        )
        .await
        .unwrap();
    assert!(queue.retry_dead(&name).await.unwrap());
    let (status, _) = post(&retried_hook, Vec::new()).await;
    assert_eq!(status, StatusCode::GONE);
    let metrics = metrics(addr).await;
    assert!(
        metrics.contains(r#"taskq_hooks_total{outcome="replaced"} 2"#),
        "{metrics}"
    );
}

/// `POST /tasks` with `body`; the status and the answer.
async fn post_json(
    addr: std::net::SocketAddr,
    body: &serde_json::Value,
) -> (StatusCode, serde_json::Value) {
    let response = testkit::http_client()
        .post(format!("http://{addr}/tasks"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status();
    (
        status,
        serde_json::from_slice(&response.bytes().await.unwrap()).unwrap(),
    )
}

#[tokio::test]
async fn a_body_over_hook_max_body_bytes_is_refused_and_changes_nothing() {
    let redis = RedisServer::start();
    let (addr, _stop, queue) = spawn_producer_with(
        &redis,
        &["--hook-secret", SECRET, "--hook-max-body-bytes", "64"],
    )
    .await;
    let queue = submitting(queue);
    let name = TaskName::parse("pushed").unwrap();
    let run = waiting_a_minute(&queue, &name).await;
    let urls = HookUrls::new(&format!("http://{addr}"), SECRET.parse().unwrap());
    let hook = urls.url(queue.keys().queue(), name.as_str(), &run);
    let at_most = format!(r#"{{"transcript":"{}"}}"#, "a".repeat(64 - 17));
    assert_eq!(at_most.len(), 64);
    let over = format!(r#"{{"transcript":"{}"}}"#, "a".repeat(65 - 17));

    let (status, body) = post(&hook, over.into_bytes()).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert!(body["error"].is_string(), "{body}");
    assert!(
        queue.claim(10).await.unwrap().tasks.is_empty(),
        "a refused body neither hurries the task"
    );

    let (status, _) = post(&hook, at_most.clone().into_bytes()).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let claim = queue.claim(10).await.unwrap();
    assert_eq!(
        claim.tasks[0].hook.as_deref(),
        Some(at_most.as_str()),
        "a body at the limit is kept whole for the next call"
    );
}
