//! What the producer refuses, over a real socket against a real redis-server: bad names and
//! unknown routes, malformed submissions and admin queries, payloads the consumer could not
//! read, and requests HTTP itself cannot parse. Each is a 4xx with a JSON error, never a 5xx,
//! and writes nothing.

mod support;

use std::net::SocketAddr;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{call, get, spawn_producer};
use testkit::RedisServer;

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
