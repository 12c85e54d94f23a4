//! Provider webhooks over a real socket against a real redis-server: only a URL signed for its
//! task hurries it, and nothing else a webhook can do changes anything.

mod support;

use std::time::Duration;

use reqwest::StatusCode;
use support::{get, metrics, post, spawn_producer, spawn_producer_with};
use taskq::{Queue, TaskName};
use testkit::RedisServer;
use webhooks::{HookSecret, HookUrls};

const SECRET: &str = "a-hook-secret-for-the-tests";

/// A task waiting a minute for its next poll, as after a "processing" answer.
async fn waiting_a_minute(queue: &Queue, name: &TaskName) {
    queue.enqueue(name).await.unwrap();
    let claim = queue.claim(1).await.unwrap();
    queue
        .snooze(&claim.tasks[0], "{}", Duration::from_secs(60))
        .await
        .unwrap();
    assert!(queue.claim(10).await.unwrap().tasks.is_empty());
}

#[tokio::test]
async fn only_the_url_signed_for_a_task_hurries_it_and_replays_change_nothing() {
    let redis = RedisServer::start();
    let (addr, _stop, queue) = spawn_producer_with(&redis, &["--hook-secret", SECRET]).await;
    let q = queue.keys().queue().to_owned();
    let name = TaskName::parse("render a/b").unwrap();
    waiting_a_minute(&queue, &name).await;
    let urls = HookUrls::new(&format!("http://{addr}"), SECRET.parse().unwrap());
    let good = urls.url(&q, name.as_str());
    let forged = HookUrls::new(
        &format!("http://{addr}"),
        "another-secret-entirely!".parse::<HookSecret>().unwrap(),
    )
    .url(&q, name.as_str());
    let unsigned = good.split_once('?').unwrap().0.to_owned();
    let other_task = urls
        .url(&q, "someone else")
        .replace("someone%20else", "render%20a%2Fb");

    for bad in [&forged, &unsigned, &other_task, &format!("{unsigned}?sig=")] {
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

    let (status, _) = post(&urls.url(&q, "never enqueued"), Vec::new()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = post(
        &good.replace(&format!("/hooks/{q}/"), "/hooks/nope/"),
        Vec::new(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = post(&good, vec![b'x'; 1024 * 1024 + 1]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);

    let metrics = metrics(addr).await;
    for line in [
        r#"taskq_hooks_total{outcome="hurried"} 1"#,
        r#"taskq_hooks_total{outcome="finished"} 1"#,
        r#"taskq_hooks_total{outcome="refused"} 4"#,
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
    assert!(!metrics.contains(SECRET));
}

#[tokio::test]
async fn without_a_hook_secret_there_are_no_hooks() {
    let redis = RedisServer::start();
    let (addr, _stop, queue) = spawn_producer(&redis).await;
    let name = TaskName::parse("t").unwrap();
    waiting_a_minute(&queue, &name).await;
    let url = HookUrls::new(&format!("http://{addr}"), SECRET.parse().unwrap())
        .url(queue.keys().queue(), "t");
    let (status, body) = post(&url, Vec::new()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].as_str().unwrap().contains("HOOK_SECRET"));
    assert!(queue.claim(10).await.unwrap().tasks.is_empty());
}
