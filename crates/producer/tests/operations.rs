//! The operator's side over a real socket against a real redis-server: `/healthz` following
//! Redis, dead tasks paged, retried and purged, `/stats` and `/metrics`, `/openapi.json`, and
//! one producer serving several queues.

mod support;

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use support::{call, get, metrics, spawn_producer, spawn_producer_with};
use testkit::{RedisServer, eventually, unique_queue};

#[tokio::test]
async fn healthz_follows_redis_and_a_dead_redis_is_a_fast_503() {
    let mut redis = RedisServer::start();
    let (addr, _stop, _) = spawn_producer(&redis).await;
    assert_eq!(get(addr, "/healthz").await.0, StatusCode::OK);

    redis.kill();

    for path in ["/healthz", "/?task-name=x", "/tasks/x"] {
        let started = std::time::Instant::now();
        let (status, _, body) = get(addr, path).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert!(body["error"].is_string());
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{path} took {:?}",
            started.elapsed()
        );
    }

    redis.restart();
    eventually(
        Duration::from_secs(10),
        "the producer to reconnect",
        || async { (get(addr, "/healthz").await.0 == StatusCode::OK).then_some(()) },
    )
    .await;
    assert_eq!(get(addr, "/?task-name=x").await.0, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn dead_tasks_are_listed_page_by_page_retried_and_purged() {
    let redis = RedisServer::start();
    let (addr, _stop, queue) = spawn_producer(&redis).await;
    for i in 0..25 {
        get(addr, &format!("/?task-name=d{i:02}")).await;
    }
    for task in queue.claim(25).await.unwrap().tasks {
        queue
            .fail(&task, "refused", Duration::ZERO, true)
            .await
            .unwrap();
    }

    let mut listed = Vec::new();
    let mut path = "/tasks?state=dead&limit=10".to_owned();
    loop {
        let (status, _, page) = get(addr, &path).await;
        assert_eq!(status, StatusCode::OK);
        for task in page["tasks"].as_array().unwrap() {
            assert_eq!(task["state"], "dead");
            assert_eq!(task["last_error"], "refused");
            listed.push(task["task"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(cursor) => {
                let url = reqwest::Url::parse_with_params(
                    "http://x/tasks?state=dead&limit=10",
                    [("cursor", cursor)],
                )
                .unwrap();
                path = format!("/tasks?{}", url.query().unwrap());
            }
            None => break,
        }
    }
    listed.sort();
    assert_eq!(
        listed,
        (0..25).map(|i| format!("d{i:02}")).collect::<Vec<_>>()
    );

    let (status, _, one) = call(addr, Method::POST, "/tasks/d00/retry", None, None).await;
    assert_eq!((status, &one["state"]), (StatusCode::OK, &json!("queued")));
    let (status, _, _) = call(addr, Method::POST, "/tasks/d00/retry", None, None).await;
    assert_eq!(status, StatusCode::CONFLICT, "no longer dead");
    let (status, _, all) = call(addr, Method::POST, "/dead/retry", None, None).await;
    assert_eq!((status, &all["count"]), (StatusCode::OK, &json!(24)));
    for task in queue.claim(25).await.unwrap().tasks {
        queue.complete(&task, "{}").await.unwrap();
    }
    let (status, _, purged) = call(addr, Method::POST, "/purge?state=done", None, None).await;
    assert_eq!((status, &purged["count"]), (StatusCode::OK, &json!(25)));
    assert_eq!(get(addr, "/tasks/d07").await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn stats_and_metrics_show_the_queue_wide_counters() {
    let redis = RedisServer::start();
    let (addr, _stop, queue) = spawn_producer(&redis).await;
    for name in ["a", "b", "c", "a"] {
        get(addr, &format!("/?task-name={name}")).await;
    }
    let task = queue.claim(1).await.unwrap().tasks.remove(0);
    queue.complete(&task, "1").await.unwrap();

    let (status, _, stats) = get(addr, "/stats").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stats["counts"]["due"], 2);
    assert_eq!(stats["totals"]["enqueued"], 3);
    assert_eq!(stats["totals"]["duplicates"], 1);
    assert_eq!(stats["totals"]["done"], 1);
    assert!(stats["oldest_due_age_ms"].is_u64());
    assert!(stats["queue"].as_str().unwrap().starts_with("http"));
    // The sampler takes one sample a second: a rate follows within about two.
    eventually(Duration::from_secs(5), "a throughput", || async {
        let (_, _, stats) = get(addr, "/stats").await;
        stats["throughput"]["window_secs"].as_f64()
    })
    .await;

    let response = testkit::http_client()
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = response.text().await.unwrap();
    let queue_label = format!("queue=\"{}\"", queue.keys().queue());
    for (sample, value) in [
        ("taskq_redis_up", 1),
        ("taskq_enqueued_total", 3),
        ("taskq_duplicates_total", 1),
        ("taskq_claimed_total", 1),
        ("taskq_done_total", 1),
    ] {
        let line = format!("{sample}{{{queue_label}}} {value}");
        assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
    }
    let due = format!("taskq_tasks{{{queue_label},state=\"due\"}} 2");
    assert!(text.lines().any(|l| l == due), "{due}");
}

#[tokio::test]
async fn the_openapi_document_describes_every_route() {
    let redis = RedisServer::start();
    let (addr, _stop, _) = spawn_producer(&redis).await;

    let (status, _, document) = get(addr, "/openapi.json").await;

    assert_eq!(status, StatusCode::OK);
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    let paths = document["paths"].as_object().unwrap();
    for (path, method) in [
        ("/", "get"),
        ("/tasks", "post"),
        ("/tasks/batch", "post"),
        ("/tasks", "get"),
        ("/tasks/{name}", "get"),
        ("/tasks/{name}", "delete"),
        ("/tasks/{name}/retry", "post"),
        ("/dead/retry", "post"),
        ("/purge", "post"),
        ("/stats", "get"),
        ("/metrics", "get"),
        ("/queues", "get"),
        ("/healthz", "get"),
    ] {
        assert!(paths[path].get(method).is_some(), "{method} {path}");
    }
    assert_eq!(
        document["components"]["securitySchemes"]["admin_token"]["scheme"],
        "bearer"
    );
}

#[tokio::test]
async fn one_producer_serves_several_queues_picked_by_the_queue_parameter() {
    let redis = RedisServer::start();
    let (first, second) = (unique_queue("first"), unique_queue("second"));
    let queues = format!("{first},{second}");
    let (addr, _stop, default) = spawn_producer_with(&redis, &["--queues", &queues]).await;
    assert_eq!(default.keys().queue(), first);

    let (_, _, listed) = get(addr, "/queues").await;
    assert_eq!(listed["queues"], serde_json::json!([first, second]));

    // One name in each queue: two tasks, each deduplicated within its own queue.
    let (status, headers, plain) = get(addr, "/?task-name=t").await;
    assert_eq!(
        (status, plain["enqueued"].clone()),
        (StatusCode::ACCEPTED, true.into())
    );
    assert_eq!(headers["location"], "/tasks/t");
    let (status, headers, other) = get(addr, &format!("/?task-name=t&queue={second}")).await;
    assert_eq!(
        (status, other["enqueued"].clone()),
        (StatusCode::ACCEPTED, true.into())
    );
    let location = headers["location"].to_str().unwrap().to_owned();
    assert_eq!(location, format!("/tasks/t?queue={second}"));
    let (_, _, again) = get(addr, &format!("/?queue={second}&task-name=t")).await;
    assert_eq!(again["enqueued"], false);
    // Naming the default queue is the same as naming none.
    let (_, headers, named) = get(addr, &format!("/?task-name=t&queue={first}")).await;
    assert_eq!(named["enqueued"], false);
    assert_eq!(headers["location"], "/tasks/t");

    let (status, _, shown) = get(addr, &location).await;
    assert_eq!(
        (status, shown["task"].clone()),
        (StatusCode::OK, "t".into())
    );
    let (_, _, stats) = get(addr, &format!("/stats?queue={second}")).await;
    assert_eq!(stats["queue"], second.as_str());
    assert_eq!(
        (
            stats["totals"]["enqueued"].clone(),
            stats["totals"]["duplicates"].clone()
        ),
        (1.into(), 1.into())
    );
    let (_, _, stats) = get(addr, "/stats").await;
    assert_eq!(stats["queue"], first.as_str());
    assert_eq!(stats["totals"]["duplicates"], 1);

    // The task of the second queue is that queue's: claimed there, absent from the first.
    let other_queue = taskq::Queue::new(
        taskq::connect::connect(&redis.url().parse().unwrap(), &Default::default()).unwrap(),
        &second,
    )
    .unwrap();
    let claimed = other_queue.claim(10).await.unwrap().tasks;
    assert_eq!(claimed.len(), 1);
    assert_eq!(default.claim(10).await.unwrap().tasks.len(), 1);

    for path in [
        "/?task-name=t&queue=elsewhere".to_owned(),
        "/tasks/t?queue=elsewhere".to_owned(),
        "/stats?queue=elsewhere".to_owned(),
    ] {
        let (status, _, body) = get(addr, &path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(body["error"], "no queue named \"elsewhere\" is served here");
    }
    let text = metrics(addr).await;
    for queue in [&first, &second] {
        let line = format!("taskq_enqueued_total{{queue=\"{queue}\"}} 1");
        assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
    }
}
