//! What every producer test file does first: serve a producer in-process on a free port against
//! the test's Redis, and call it.

use std::net::SocketAddr;

use producer::Config;
use reqwest::StatusCode;
use serde_json::Value;
use testkit::{RedisServer, unique_queue};

/// The producer's flags, parsed as the binary parses them.
#[derive(clap::Parser)]
struct Cli {
    #[command(flatten)]
    config: Config,
}

/// A producer served in-process on a free port, and its queue; it stops when the returned sender
/// drops.
#[allow(dead_code, reason = "tokens.rs starts every producer with flags")]
pub async fn spawn_producer(
    redis: &RedisServer,
) -> (SocketAddr, tokio::sync::oneshot::Sender<()>, taskq::Queue) {
    spawn_producer_with(redis, &[]).await
}

/// As [`spawn_producer`], with extra flags; `--queue-name` among them serves that queue (a second
/// producer on one queue) instead of a new one.
pub async fn spawn_producer_with(
    redis: &RedisServer,
    flags: &[&str],
) -> (SocketAddr, tokio::sync::oneshot::Sender<()>, taskq::Queue) {
    let url = redis.url();
    let queue_name = unique_queue("http");
    let mut args = vec!["producer", "--redis-url", &url];
    if !flags.contains(&"--queue-name") {
        args.extend(["--queue-name", &queue_name]);
    }
    args.extend([
        "--redis-timeout-ms",
        "300",
        "--addr",
        "127.0.0.1:0",
        "--result-ttl-secs",
        "60",
    ]);
    args.extend_from_slice(flags);
    let config = <Cli as clap::Parser>::parse_from(args).config;
    let listener = tokio::net::TcpListener::bind(config.addr).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let state = config.state().unwrap();
    let queue = state.queues.default().queue.clone();
    tokio::spawn(producer::serve(listener, state, async {
        let _ = stopped.await;
    }));
    (addr, stop, queue)
}

pub async fn get(
    addr: SocketAddr,
    path_and_query: &str,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let response = testkit::http_client()
        .get(format!("http://{addr}{path_and_query}"))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.bytes().await.unwrap();
    let json = serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("{path_and_query}: body is not JSON ({e}): {body:?}"));
    (status, headers, json)
}

/// The producer's `/metrics` page.
#[allow(dead_code, reason = "not every file reads the metrics")]
pub async fn metrics(addr: SocketAddr) -> String {
    testkit::http_client()
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// POSTs `body` to `url`; the status and the body as JSON (`Null` when it is not JSON).
#[allow(dead_code, reason = "the files that only GET do not use it")]
pub async fn post(url: &str, body: Vec<u8>) -> (StatusCode, Value) {
    let response = testkit::http_client()
        .post(url)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body = response.bytes().await.unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

#[allow(
    dead_code,
    reason = "callbacks.rs, connections.rs, hooks.rs and waiting.rs do not use it"
)]
/// Sends `method path` with an optional JSON body and bearer token; answers status, headers and
/// the JSON body.
pub async fn call(
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
