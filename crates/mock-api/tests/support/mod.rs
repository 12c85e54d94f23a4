//! What the mock's tests share: the mock served in-process on a free port with a client for it,
//! the API key its real-API shapes ask for, an answer read whole, and its `/stats` and `/reset`.
//! Each test file adds the calls of its own concern to [`Api`]. [`serve_on_free_port`] also
//! serves the test files' webhook receivers, and the HTTPS mock of the provider tests.

// Every test binary takes the part it needs.
#![allow(dead_code)]

use std::net::SocketAddr;

use mock_api::{Config, Shape};
use reqwest::StatusCode;
use serde_json::Value;

/// A mock on a free port, and a client for it.
pub struct Api {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// A client for it.
    pub http: reqwest::Client,
    /// The API shape it speaks.
    pub shape: Shape,
}

/// One answer, read whole.
#[derive(Debug)]
pub struct Answer {
    /// Its status.
    pub status: StatusCode,
    /// Its `Retry-After`, in whole seconds.
    pub retry_after: Option<u64>,
    /// Its JSON body, or `null` when it has none.
    pub body: Value,
}

/// Serves in the background, on a free port of 127.0.0.1, what `serve` makes of the port's
/// listener (a mock, a webhook receiver): the port's address.
pub async fn serve_on_free_port<F>(serve: impl FnOnce(tokio::net::TcpListener) -> F) -> SocketAddr
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let address = listener.local_addr().expect("its address");
    tokio::spawn(serve(listener));
    address
}

/// Serves a mock with `config` in-process on a free port.
pub async fn start(config: Config) -> Api {
    let shape = config.shape;
    let address =
        serve_on_free_port(|listener| mock_api::serve(listener, config, std::future::pending()))
            .await;
    Api {
        base: format!("http://{address}"),
        http: testkit::http_client(),
        shape,
    }
}

impl Api {
    /// `request` with the API key the shape asks for (none for the original shape).
    pub fn with_key(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self.shape {
            Shape::Replicate | Shape::Stability => {
                request.header("authorization", "Bearer mock-key")
            }
            Shape::Google => request.header("x-goog-api-key", "mock-key"),
            Shape::Azure => request.header("ocp-apim-subscription-key", "mock-key"),
            Shape::Original => request,
            other => unreachable!("{other:?} has tests of its own (providers_*.rs)"),
        }
    }

    /// `request` sent, its answer read whole.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        let response = request.send().await.expect("an answer");
        let status = response.status();
        let retry_after = response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().expect("ASCII").parse().expect("whole seconds"));
        let bytes = response.bytes().await.expect("a body");
        Answer {
            status,
            retry_after,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    /// `GET /stats`.
    pub async fn stats(&self) -> Value {
        let answer = self.http.get(format!("{}/stats", self.base)).send().await;
        json_body(answer.expect("an answer")).await
    }

    /// Asserts `/stats` shows each of `expected`'s counts.
    pub async fn assert_stats(&self, expected: &[(&str, u64)]) {
        let stats = self.stats().await;
        for &(name, count) in expected {
            assert_eq!(stats[name], count, "{name} in {stats}");
        }
    }

    /// `POST /reset`, answered 204.
    pub async fn reset(&self) {
        let reset = self
            .http
            .post(format!("{}/reset", self.base))
            .send()
            .await
            .expect("an answer");
        assert_eq!(reset.status(), StatusCode::NO_CONTENT);
    }
}

/// A body read as JSON (reqwest is built without its `json` feature).
pub async fn json_body(response: reqwest::Response) -> Value {
    let bytes = response.bytes().await.expect("a body");
    serde_json::from_slice(&bytes).expect("JSON")
}
