//! The producer's HTTP API over a real socket against a real redis-server.

use std::net::SocketAddr;
use std::time::Duration;

use producer::Config;
use reqwest::StatusCode;
use serde_json::Value;
use taskq::service::RedisArgs;
use testkit::{RedisServer, eventually, unique_queue};

/// A producer served in-process on a free port, and its queue; it stops when the returned sender
/// drops.
async fn spawn_producer(
    redis: &RedisServer,
) -> (SocketAddr, tokio::sync::oneshot::Sender<()>, taskq::Queue) {
    let config = Config {
        redis: RedisArgs {
            redis_url: redis.url().parse().unwrap(),
            queue_name: unique_queue("http"),
            redis_timeout_ms: 300,
            redis_tls_ca_file: None,
        },
        addr: "127.0.0.1:0".parse().unwrap(),
        result_ttl_secs: 60,
    };
    let listener = tokio::net::TcpListener::bind(config.addr).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let queue = config.queue().unwrap();
    tokio::spawn(producer::serve(listener, queue.clone(), async {
        let _ = stopped.await;
    }));
    (addr, stop, queue)
}

async fn get(
    addr: SocketAddr,
    path_and_query: &str,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let response = reqwest::get(format!("http://{addr}{path_and_query}"))
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.bytes().await.unwrap();
    let json = serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("{path_and_query}: body is not JSON ({e}): {body:?}"));
    (status, headers, json)
}

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
    let (addr, _stop, _) = spawn_producer(&redis).await;
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
    let response = reqwest::Client::new()
        .post(format!("http://{addr}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);

    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query(&mut redis.connection())
        .unwrap();
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
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut conn).unwrap();
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

/// Sends raw bytes as one HTTP/1.1 request and answers the status code of the reply.
async fn raw_status(addr: SocketAddr, request: &[u8]) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    // The server may answer and close before it has read everything: a write error is fine.
    let _ = stream.write_all(request).await;
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply).await;
    let head = String::from_utf8_lossy(&reply[..reply.len().min(64)]).into_owned();
    head.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {head:?}"))
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
