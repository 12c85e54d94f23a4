//! The producer's HTTP API over a real socket against a real redis-server.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use support::{get, metrics, spawn_producer, spawn_producer_with};
use testkit::{RedisServer, eventually, unique_queue};

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
async fn bad_input_gets_a_4xx_json_error_and_writes_nothing() {
    let redis = RedisServer::start();
    let (addr, _stop, queue) = spawn_producer(&redis).await;
    let long = "n".repeat(257);
    let cases = [
        ("/".to_owned(), StatusCode::BAD_REQUEST),
        ("/?other=1".to_owned(), StatusCode::BAD_REQUEST),
        ("/?task-name=".to_owned(), StatusCode::BAD_REQUEST),
        (format!("/?task-name={long}"), StatusCode::BAD_REQUEST),
        ("/?task-name=a%0Ab".to_owned(), StatusCode::BAD_REQUEST),
        ("/?task-name=%00".to_owned(), StatusCode::BAD_REQUEST),
        ("/?task-name=..".to_owned(), StatusCode::BAD_REQUEST),
        ("/?task-name=%FF".to_owned(), StatusCode::BAD_REQUEST),
        ("/?task-name=%G1".to_owned(), StatusCode::BAD_REQUEST),
        (
            "/?task-name=a&task-name=b".to_owned(),
            StatusCode::BAD_REQUEST,
        ),
        ("/tasks/%FF".to_owned(), StatusCode::BAD_REQUEST),
        (format!("/tasks/{long}"), StatusCode::BAD_REQUEST),
        ("/tasks/never-seen".to_owned(), StatusCode::NOT_FOUND),
        ("/no/such/route".to_owned(), StatusCode::NOT_FOUND),
    ];
    for (path, expected) in cases {
        let (status, _, body) = get(addr, &path).await;
        assert_eq!(status, expected, "{path}");
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{path}: {body}"
        );
    }
    let response = testkit::http_client()
        .post(format!("http://{addr}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);

    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query(&mut redis.connection())
        .unwrap();
    // The watch keeps its reading of Redis' memory, whatever the requests.
    keys.retain(|key| key != queue.keys().memory(false));
    assert!(keys.is_empty(), "bad input wrote {keys:?}");
}

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

/// Sends raw bytes as one HTTP/1.1 request (closing the connection after it) and answers the
/// status code of the reply, after checking that its body is a JSON error.
async fn raw_status(addr: SocketAddr, request: &[u8]) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    // The server may answer and close before it has read everything: a write error is fine.
    let _ = stream.write_all(request).await;
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply).await;
    let reply = String::from_utf8_lossy(&reply).into_owned();
    let (head, body) = reply
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no whole head in {reply:?}"));
    let error: Value = serde_json::from_str(body)
        .unwrap_or_else(|e| panic!("the body is not JSON ({e}): {reply:?}"));
    assert!(error["error"].is_string(), "{reply:?}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{head}"
    );
    head.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {head:?}"))
}

#[tokio::test]
async fn requests_http_cannot_parse_get_a_json_4xx() {
    let redis = RedisServer::start();
    let (addr, _stop, queue) = spawn_producer(&redis).await;
    let request = |target: String| {
        format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").into_bytes()
    };

    let too_long = raw_status(
        addr,
        &request(format!("/?task-name={}", "u".repeat(70_000))),
    )
    .await;
    let huge_head = raw_status(
        addr,
        &request(format!("/?task-name={}", "h".repeat(1 << 20))),
    )
    .await;
    let garbage = raw_status(addr, b"NOT HTTP AT ALL\r\n\r\n").await;
    let bad_header = raw_status(addr, b"GET / HTTP/1.1\r\nHo st: x\r\n\r\n").await;

    assert_eq!(too_long, 414);
    assert_eq!(huge_head, 431);
    assert_eq!((garbage, bad_header), (400, 400));
    assert!(
        queue.claim(10).await.unwrap().tasks.is_empty(),
        "nothing enqueued"
    );
    // The connections after them are served as usual.
    assert_eq!(get(addr, "/?task-name=after").await.0, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn a_megabyte_query_string_gets_a_4xx_not_a_5xx() {
    let redis = RedisServer::start();
    let (addr, _stop, _) = spawn_producer(&redis).await;
    let huge = format!(
        "GET /?task-name={} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "a".repeat(1 << 20)
    );
    let long = format!(
        "GET /?task-name={} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "b".repeat(60_000)
    );

    let huge_status = raw_status(addr, huge.as_bytes()).await;
    let long_status = raw_status(addr, long.as_bytes()).await;

    assert!((400..500).contains(&huge_status), "{huge_status}");
    assert_eq!(long_status, 400);
}

#[tokio::test]
async fn thousands_of_idle_connections_do_not_stop_service() {
    let redis = RedisServer::start();
    let (addr, _stop, _) = spawn_producer(&redis).await;
    let mut idle = Vec::new();
    for _ in 0..2000 {
        idle.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }

    let started = std::time::Instant::now();
    let (status, _, _) = get(addr, "/?task-name=still-served").await;

    assert_eq!(status, StatusCode::ACCEPTED);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    drop(idle);
}

/// Sends `method path` with an optional JSON body and bearer token; answers status, headers and
/// the JSON body.
async fn call(
    addr: SocketAddr,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
    token: Option<&str>,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut request = testkit::http_client().request(method, format!("http://{addr}{path}"));
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    let body = response.bytes().await.unwrap();
    let json = serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("{path}: body is not JSON ({e}): {body:?}"));
    (status, headers, json)
}

use reqwest::Method;
use serde_json::json;

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
async fn bad_submissions_and_admin_queries_get_a_4xx_json_error() {
    let redis = RedisServer::start();
    let (addr, _stop, _) = spawn_producer(&redis).await;
    let huge = json!({"name": "h", "payload": "x".repeat(70_000)});
    let cases = [
        (Method::POST, "/tasks", Some(json!({"payload": 1})), 422),
        (Method::POST, "/tasks", Some(json!({"name": 5})), 422),
        (Method::POST, "/tasks", Some(json!({"name": ""})), 400),
        (Method::POST, "/tasks", Some(json!({"name": "a\nb"})), 400),
        (Method::POST, "/tasks", Some(huge), 413),
        (Method::GET, "/tasks?state=nope", None, 400),
        (Method::GET, "/tasks", None, 400),
        (Method::GET, "/tasks?state=dead&limit=0", None, 400),
        (Method::GET, "/tasks?state=dead&limit=501", None, 400),
        (Method::GET, "/tasks?state=dead&cursor=zzz", None, 400),
        (Method::POST, "/purge?state=queued", None, 400),
        (Method::DELETE, "/tasks/never-seen", None, 404),
        (Method::POST, "/tasks/never-seen/retry", None, 404),
    ];
    for (method, path, body, expected) in cases {
        let (status, _, answer) = call(addr, method.clone(), path, body, None).await;
        assert_eq!(status.as_u16(), expected, "{method} {path}: {answer}");
        assert!(answer["error"].is_string(), "{method} {path}: {answer}");
    }
    let response = testkit::http_client()
        .post(format!("http://{addr}/tasks"))
        .body("{\"name\": \"x\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let answer: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert!(answer["error"].is_string());
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
async fn admin_routes_refuse_requests_without_the_token_when_one_is_set() {
    let redis = RedisServer::start();
    let (addr, _stop, _) = spawn_producer_with(&redis, &["--admin-token", "s3cret"]).await;
    let admin = [
        (Method::GET, "/tasks?state=dead"),
        (Method::GET, "/stats"),
        (Method::POST, "/tasks/x/retry"),
        (Method::POST, "/dead/retry"),
        (Method::POST, "/purge?state=done"),
    ];

    for (method, path) in &admin {
        for token in [None, Some("wrong"), Some("s3cre"), Some("s3cret2")] {
            let (status, headers, body) = call(addr, method.clone(), path, None, token).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} {token:?}"
            );
            assert_eq!(headers["www-authenticate"], "Bearer");
            assert!(body["error"].is_string());
        }
        let (status, _, _) = call(addr, method.clone(), path, None, Some("s3cret")).await;
        assert_ne!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
    }
    // Enqueue and read stay open; cancelling needs the admin token (an open cancel would let
    // anyone block a name for DEAD_TTL_SECS).
    assert_eq!(get(addr, "/?task-name=x").await.0, StatusCode::ACCEPTED);
    assert_eq!(get(addr, "/tasks/x").await.0, StatusCode::OK);
    for token in [None, Some("wrong")] {
        let (status, headers, body) = call(addr, Method::DELETE, "/tasks/x", None, token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{token:?}");
        assert_eq!(headers["www-authenticate"], "Bearer");
        assert!(
            body["error"].as_str().unwrap().contains("ADMIN_TOKEN"),
            "{body}"
        );
    }
    assert_eq!(
        get(addr, "/tasks/x").await.2["state"],
        "queued",
        "not cancelled"
    );
    let (status, _, body) = call(addr, Method::DELETE, "/tasks/x", None, Some("s3cret")).await;
    assert_eq!(
        (status, &body["state"]),
        (StatusCode::OK, &json!("cancelled"))
    );
    let (status, _, _) = call(
        addr,
        Method::POST,
        "/tasks",
        Some(json!({"name": "y"})),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(get(addr, "/healthz").await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_client_token_guards_enqueue_read_and_cancel_and_the_admin_token_works_there_too() {
    let redis = RedisServer::start();
    let (addr, _stop, _) = spawn_producer_with(
        &redis,
        &["--admin-token", "adm1n", "--client-token", "cl1ent"],
    )
    .await;
    let client_routes = [
        (Method::GET, "/?task-name=a", None),
        (Method::POST, "/tasks", Some(json!({"name": "b"}))),
        (Method::GET, "/tasks/a", None),
        (Method::DELETE, "/tasks/b", None),
    ];

    for (method, path, body) in &client_routes {
        for token in [None, Some("wrong"), Some("cl1en")] {
            let (status, _, answer) = call(addr, method.clone(), path, body.clone(), token).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} {token:?}"
            );
            assert!(
                answer["error"].as_str().unwrap().contains("CLIENT_TOKEN"),
                "{answer}"
            );
        }
    }
    // Nothing was written by the refused requests.
    let (status, _, _) = call(addr, Method::GET, "/tasks/a", None, Some("cl1ent")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for token in ["cl1ent", "adm1n"] {
        for (method, path, body) in &client_routes {
            let (status, _, answer) =
                call(addr, method.clone(), path, body.clone(), Some(token)).await;
            assert!(
                status.is_success(),
                "{method} {path} {token}: {status} {answer}"
            );
        }
    }
    // The client token opens no admin route.
    let (status, _, _) = call(addr, Method::GET, "/stats", None, Some("cl1ent")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = call(addr, Method::GET, "/stats", None, Some("adm1n")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(get(addr, "/healthz").await.0, StatusCode::OK);
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

#[tokio::test]
async fn a_payload_the_consumer_could_not_read_is_refused_at_the_door_and_nothing_is_written() {
    let redis = RedisServer::start();
    let (addr, _stop, _) = spawn_producer(&redis).await;
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    let cases = [
        ("1e400", "number out of range"),
        (&"9".repeat(60_000), "number out of range"),
        (&deep, "recursion limit exceeded"),
    ];

    for (i, (payload, problem)) in cases.iter().enumerate() {
        let body = format!(r#"{{"name": "bad-{i}", "payload": {payload}}}"#);
        let response = testkit::http_client()
            .post(format!("http://{addr}/tasks"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let answer: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();

        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        let error = answer["error"].as_str().unwrap();
        assert!(
            error.contains("payload") && error.contains(problem),
            "{error}"
        );
        let (status, _, _) = get(addr, &format!("/tasks/bad-{i}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "nothing written");
    }

    let batch = format!(
        r#"{{"tasks": [{{"name": "fine", "payload": 1e300}}, {{"name": "huge", "payload": 1e400}}, {{"name": "deep", "payload": {deep}}}]}}"#
    );
    let response = testkit::http_client()
        .post(format!("http://{addr}/tasks/batch"))
        .header("content-type", "application/json")
        .body(batch)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let answer: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(answer["tasks"][0]["enqueued"], true, "{answer}");
    for (entry, problem) in [(1, "number out of range"), (2, "recursion limit exceeded")] {
        let error = answer["tasks"][entry]["error"].as_str().unwrap();
        assert!(error.contains(problem), "{error}");
    }
    let (status, _, _) = get(addr, "/tasks/huge").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_bearer_scheme_is_accepted_whatever_its_case() {
    let redis = RedisServer::start();
    let (addr, _stop, _) = spawn_producer_with(&redis, &["--admin-token", "s3cret"]).await;
    let stats = |authorization: &'static str| async move {
        testkit::http_client()
            .get(format!("http://{addr}/stats"))
            .header("authorization", authorization)
            .send()
            .await
            .unwrap()
            .status()
    };

    for accepted in [
        "Bearer s3cret",
        "bearer s3cret",
        "BEARER s3cret",
        "bEaReR  s3cret",
    ] {
        assert_eq!(stats(accepted).await, StatusCode::OK, "{accepted}");
    }
    for refused in ["Basic s3cret", "bearer wrong", "Bearers3cret"] {
        assert_eq!(stats(refused).await, StatusCode::UNAUTHORIZED, "{refused}");
    }
}
