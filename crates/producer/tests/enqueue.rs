//! A task's life as a client sees it over a real socket against a real redis-server: enqueued
//! by `GET /?task-name=`, `POST /tasks` or a batch, now or on a schedule; read while it runs
//! and once it is done, dead or cancelled; `HEAD` that never enqueues; names of every awkward
//! character, each to its own record.

mod support;

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{call, get, spawn_producer, spawn_producer_with};
use testkit::RedisServer;

#[tokio::test]
async fn enqueue_answers_202_with_location_and_the_task_view() {
    let redis = RedisServer::start();
    let (addr, _stop, _) = spawn_producer(&redis).await;

    let (status, headers, body) = get(addr, "/?task-name=a%20b%2Fc").await;

    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(headers["location"], "/tasks/a%20b%2Fc");
    assert_eq!(body["task"], "a b/c");
    assert_eq!(body["state"], "queued");
    assert_eq!(body["enqueued"], true);
    assert_eq!(body["data"], Value::Null);

    let (status, _, again) = get(addr, "/?task-name=a+b%2Fc").await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(again["enqueued"], false);
    assert_eq!(again["created_at_ms"], body["created_at_ms"]);

    let (status, _, shown) = get(addr, "/tasks/a%20b%2Fc").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(shown["state"], "queued");
    assert!(shown.get("enqueued").is_none());
}

#[tokio::test]
async fn a_done_task_answers_200_with_its_result() {
    let redis = RedisServer::start();
    let (addr, _stop, queue) = spawn_producer(&redis).await;
    get(addr, "/?task-name=t").await;
    // Finish the task the way a consumer would.
    let task = queue.claim(1).await.unwrap().tasks.remove(0);
    queue.complete(&task, r#"{"answer":42}"#).await.unwrap();

    let (status, headers, body) = get(addr, "/?task-name=t").await;

    assert_eq!(status, StatusCode::OK);
    assert!(headers.get("location").is_none());
    assert_eq!(body["state"], "done");
    assert_eq!(body["data"]["answer"], 42);
}

#[tokio::test]
async fn post_tasks_enqueues_with_a_payload_and_answers_202_with_location_and_retry_after() {
    let redis = RedisServer::start();
    let (addr, _stop, _) = spawn_producer_with(&redis, &["--poll-interval-ms", "2500"]).await;
    let body = json!({"name": "report 7/a", "payload": {"region": "eu", "ids": [1, 2]}});

    let (status, headers, created) = call(addr, Method::POST, "/tasks", Some(body), None).await;

    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(headers["location"], "/tasks/report%207%2Fa");
    assert_eq!(headers["retry-after"], "3");
    assert_eq!(created["enqueued"], true);
    assert_eq!(created["payload"]["ids"][1], 2);
    let again = json!({"name": "report 7/a", "payload": "other"});
    let (_, _, duplicate) = call(addr, Method::POST, "/tasks", Some(again), None).await;
    assert_eq!(duplicate["enqueued"], false);
    assert_eq!(
        duplicate["payload"]["region"], "eu",
        "the first payload stays"
    );
    let (status, _, shown) = get(addr, "/tasks/report%207%2Fa").await;
    assert_eq!(
        (status, &shown["payload"]["region"]),
        (StatusCode::OK, &json!("eu"))
    );
}

#[tokio::test]
async fn head_reads_and_never_enqueues() {
    let redis = RedisServer::start();
    let (addr, _stop, queue) = spawn_producer(&redis).await;
    let head = |path: &'static str| async move {
        testkit::http_client()
            .head(format!("http://{addr}{path}"))
            .send()
            .await
            .unwrap()
            .status()
    };

    assert_eq!(head("/?task-name=link").await, StatusCode::NOT_FOUND);
    assert_eq!(head("/tasks/link").await, StatusCode::NOT_FOUND);
    assert_eq!(head("/").await, StatusCode::BAD_REQUEST);
    assert!(
        queue.claim(10).await.unwrap().tasks.is_empty(),
        "HEAD enqueued"
    );
    assert_eq!(get(addr, "/tasks/link").await.0, StatusCode::NOT_FOUND);

    get(addr, "/?task-name=link").await;
    assert_eq!(head("/?task-name=link").await, StatusCode::OK);
    assert_eq!(queue.claim(10).await.unwrap().tasks.len(), 1);
}

#[tokio::test]
async fn a_dead_task_answers_its_view_with_200_and_no_retry_after() {
    let redis = RedisServer::start();
    let (addr, _stop, queue) = spawn_producer(&redis).await;
    get(addr, "/?task-name=gone").await;
    let task = queue.claim(1).await.unwrap().tasks.remove(0);
    queue
        .fail(&task, "the API said no", Duration::ZERO, true)
        .await
        .unwrap();

    for _ in 0..2 {
        let (status, headers, body) = get(addr, "/?task-name=gone").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["state"], "dead");
        assert_eq!(body["enqueued"], false);
        assert_eq!(body["last_error"], "the API said no");
        assert!(headers.get("retry-after").is_none(), "{headers:?}");
    }
    let (status, headers, body) = call(
        addr,
        Method::POST,
        "/tasks",
        Some(json!({"name": "gone"})),
        None,
    )
    .await;
    assert_eq!((status, &body["state"]), (StatusCode::OK, &json!("dead")));
    assert!(headers.get("retry-after").is_none());
}

#[tokio::test]
async fn delete_cancels_a_running_task_so_its_worker_is_refused_and_it_is_never_called_again() {
    let redis = RedisServer::start();
    let (addr, _stop, queue) = spawn_producer(&redis).await;
    get(addr, "/?task-name=c").await;
    let running = queue.claim(1).await.unwrap().tasks.remove(0);

    let (status, _, cancelled) = call(addr, Method::DELETE, "/tasks/c", None, None).await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(cancelled["state"], "cancelled");
    assert!(cancelled["cancelled_at_ms"].is_u64());
    assert_eq!(
        queue.complete(&running, "1").await.unwrap(),
        taskq::Ack::Stale
    );
    assert!(queue.claim(10).await.unwrap().tasks.is_empty());
    let (status, headers, again) = get(addr, "/?task-name=c").await;
    assert_eq!(
        (status, &again["state"], &again["enqueued"]),
        (StatusCode::OK, &json!("cancelled"), &json!(false)),
        "a cancelled task is final: no 202"
    );
    assert!(headers.get("retry-after").is_none(), "{headers:?}");
    let (status, _, repeated) = call(addr, Method::DELETE, "/tasks/c", None, None).await;
    assert_eq!(
        (status, &repeated["state"]),
        (StatusCode::OK, &json!("cancelled"))
    );

    get(addr, "/?task-name=finished").await;
    let task = queue.claim(1).await.unwrap().tasks.remove(0);
    queue.complete(&task, "1").await.unwrap();
    let (status, _, _) = call(addr, Method::DELETE, "/tasks/finished", None, None).await;
    assert_eq!(status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn a_scheduled_task_is_queued_until_its_time_and_a_bad_schedule_writes_nothing() {
    let redis = RedisServer::start();
    let (addr, _stop, queue) = spawn_producer(&redis).await;

    let (status, _, later) = get(addr, "/?task-name=later&delay_ms=60000").await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(later["state"], "queued");
    let created = later["created_at_ms"].as_u64().unwrap();
    assert_eq!(later["run_at_ms"].as_u64(), Some(created + 60_000));
    let body = json!({"name": "at", "run_at_ms": created + 30_000, "payload": 1});
    let (status, _, at) = call(addr, Method::POST, "/tasks", Some(body), None).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(at["run_at_ms"].as_u64(), Some(created + 30_000));
    let (_, _, soon) = call(
        addr,
        Method::POST,
        "/tasks",
        Some(json!({"name": "soon", "delay_ms": 0})),
        None,
    )
    .await;
    assert_eq!(soon["run_at_ms"], soon["created_at_ms"]);
    // Neither is claimed before its time; the one due now is.
    let claimed = queue.claim(10).await.unwrap().tasks;
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].name, *"soon");

    for path in [
        "/?task-name=x&delay_ms=-5",
        "/?task-name=x&delay_ms=1.5",
        "/?task-name=x&delay_ms=1&delay_ms=2",
        "/?task-name=x&delay_ms=99999999999999",
    ] {
        let (status, _, body) = get(addr, path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
        assert!(
            body["error"].as_str().unwrap().contains("delay_ms"),
            "{path}: {body}"
        );
    }
    let both = json!({"name": "x", "delay_ms": 1, "run_at_ms": 1});
    let (status, _, body) = call(addr, Method::POST, "/tasks", Some(both), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "give delay_ms or run_at_ms, not both");
    let typo = json!({"name": "x", "delay": 60000});
    let (status, _, body) = call(addr, Method::POST, "/tasks", Some(typo), None).await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a misspelt key: {body}"
    );
    let (status, _, _) = get(addr, "/tasks/x").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing written");
}

#[tokio::test]
async fn a_batch_of_a_thousand_answers_each_task_in_order_duplicates_and_bad_entries_included() {
    let redis = RedisServer::start();
    let (addr, _stop, queue) = spawn_producer(&redis).await;
    get(addr, "/?task-name=existing").await;

    let big = "x".repeat(70 * 1024);
    let tasks: Vec<Value> = (0..1000)
        .map(|i| match i % 10 {
            0 => json!({"name": "existing"}),
            1 => json!({"name": format!("dup-{}", i / 100), "payload": i}),
            2 => json!({"name": ""}),
            3 => json!({"name": 7}),
            4 => json!({"name": format!("big-{i}"), "payload": big}),
            5 => json!({"name": format!("both-{i}"), "delay_ms": 1, "run_at_ms": 1}),
            6 => json!({"name": format!("later-{i}"), "delay_ms": 60_000}),
            _ => json!({"name": format!("t-{i}"), "payload": {"i": i}}),
        })
        .collect();
    let (status, _, body) = call(
        addr,
        Method::POST,
        "/tasks/batch",
        Some(json!({"tasks": tasks})),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let answers = body["tasks"].as_array().unwrap();
    assert_eq!(answers.len(), 1000);
    let mut created = 0;
    for (i, answer) in answers.iter().enumerate() {
        let error = answer["error"].as_str();
        match i % 10 {
            0 => assert_eq!(
                (answer["task"].as_str(), &answer["enqueued"]),
                (Some("existing"), &json!(false))
            ),
            1 => {
                // Ten tasks share each dup name: the first in the batch creates it.
                assert_eq!(answer["enqueued"], json!(i % 100 == 1), "{i}: {answer}");
                assert_eq!(
                    answer["payload"],
                    json!((i / 100) * 100 + 1),
                    "{i}: the first payload"
                );
            }
            2 => assert!(error.unwrap().contains("empty"), "{i}: {answer}"),
            3 => assert!(error.unwrap().contains("invalid type"), "{i}: {answer}"),
            4 => assert!(
                error.unwrap().contains("the limit is 65536"),
                "{i}: {answer}"
            ),
            5 => assert_eq!(error, Some("give delay_ms or run_at_ms, not both"), "{i}"),
            6 => {
                let run_at = answer["run_at_ms"].as_u64().unwrap();
                assert_eq!(run_at, answer["created_at_ms"].as_u64().unwrap() + 60_000);
            }
            _ => {
                assert_eq!(answer["task"], format!("t-{i}"));
                assert_eq!(answer["payload"]["i"], i);
            }
        }
        if answer["enqueued"] == json!(true) {
            created += 1;
        }
    }
    // 10 dup names, 100 later, 300 t-: 410 created; every one of them is in Redis.
    assert_eq!(created, 410);
    let stats = queue.stats().await.unwrap();
    assert_eq!(stats.totals["enqueued"], 411);
    assert_eq!(stats.counts.due, 411);

    for (batch, status) in [
        (json!({"tasks": []}), StatusCode::BAD_REQUEST),
        (
            json!({"tasks": vec![json!({"name": "a"}); 1001]}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"tasks": {"name": "a"}}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (json!({}), StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        let (got, _, body) = call(addr, Method::POST, "/tasks/batch", Some(batch), None).await;
        assert_eq!(got, status, "{body}");
        assert!(body["error"].is_string(), "{body}");
    }
    assert_eq!(
        queue.stats().await.unwrap().totals["enqueued"],
        411,
        "nothing written"
    );
}

/// Characters that break naive key builders, URL handling or JSON.
const AWKWARD: &[&str] = &[
    " ",
    "/",
    "%",
    "%2F",
    "{",
    "}",
    "{taskq:other}",
    "\"",
    "'",
    "\\",
    "+",
    "&",
    "=",
    "?",
    "#",
    ":",
    "*",
    "..",
    "é",
    "日本",
    "🙂",
    "\u{301}",
    "\u{200b}",
    "a",
    "Z",
    "0",
    "-",
    "_",
    "~",
    "<b>",
];

#[tokio::test]
async fn generated_hostile_names_round_trip_to_their_own_key_and_nowhere_else() {
    let redis = RedisServer::start();
    let (addr, _stop, queue) = spawn_producer(&redis).await;
    let seed = fastrand::u64(..);
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut names = std::collections::HashSet::new();
    while names.len() < 300 {
        let parts = rng.usize(1..12);
        let name: String = (0..parts)
            .map(|_| AWKWARD[rng.usize(..AWKWARD.len())])
            .collect();
        // Only valid names: the invalid ones (".", "..", too long) have their own test.
        if taskq::TaskName::parse(name.as_str()).is_ok() {
            names.insert(name);
        }
    }

    for name in &names {
        let url =
            reqwest::Url::parse_with_params(&format!("http://{addr}/"), [("task-name", name)])
                .unwrap();
        let path_and_query = format!("/?{}", url.query().unwrap());
        let (status, headers, body) = get(addr, &path_and_query).await;
        assert_eq!(status, StatusCode::ACCEPTED, "seed {seed}: {name:?}");
        assert_eq!(body["task"], name.as_str(), "seed {seed}");
        let location = headers["location"].to_str().unwrap();
        let (status, _, shown) = get(addr, location).await;
        assert_eq!(
            (status, &shown["task"]),
            (StatusCode::OK, &body["task"]),
            "seed {seed}: {location}"
        );
    }

    let mut conn = redis.connection();
    let mut keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut conn).unwrap();
    // The reading of Redis' memory, kept for admission, is not the queue's.
    keys.retain(|key| key != queue.keys().memory(false));
    let prefix = queue.keys().task_prefix();
    let records: std::collections::HashSet<&str> =
        keys.iter().filter_map(|k| k.strip_prefix(prefix)).collect();
    assert_eq!(
        records.len(),
        names.len(),
        "seed {seed}: one record per name"
    );
    assert!(
        names.iter().all(|n| records.contains(n.as_str())),
        "seed {seed}"
    );
    assert_eq!(
        keys.len(),
        names.len() + 2,
        "seed {seed}: only the records, due and stats: {keys:?}"
    );
}
