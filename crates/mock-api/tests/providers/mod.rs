//! The harness of the provider tests (`providers_*.rs`): the mock served over HTTPS on a free
//! port (a certificate from testkit's throw-away authority) and a client that trusts it, each
//! answer read whole, submits and polls, JSON and multipart bodies made by hand, a webhook
//! receiver on another port, and Textract's calls, which two of the files make.

// Every test binary takes the part it needs.
#![allow(dead_code)]

use std::future::IntoFuture;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use mock_api::{Config, Shape};
use serde_json::Value;
use testkit::Certificates;

/// Long enough for anything these tests wait for; they return as soon as it happens.
pub const PATIENCE: Duration = Duration::from_secs(5);

/// A mock over HTTPS on a free port, and a client that trusts it.
pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
    /// Kept until the test ends: the certificate's files.
    _tls: Certificates,
}

/// One answer, read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub bytes: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes).unwrap_or_else(|err| {
            let text = String::from_utf8_lossy(&self.bytes);
            panic!("{} is not JSON ({err}): {text}", self.status)
        })
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} in {:?}", self.headers))
            .to_str()
            .expect("ASCII")
    }

    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.bytes).expect("UTF-8")
    }
}

/// A mock of `shape` that answers at once, its jobs done at their third poll.
pub fn config(shape: Shape) -> Config {
    Config {
        shape,
        delay_ms: 0,
        polls_until_done: 3,
        ..Config::default()
    }
}

pub async fn start(config: Config) -> Api {
    let tls = Certificates::generate();
    let config = Config {
        tls_cert: Some(tls.cert_file()),
        tls_key: Some(tls.key_file()),
        ..config
    };
    let address = crate::support::serve_on_free_port(|listener| {
        mock_api::serve(listener, config, std::future::pending())
    })
    .await;
    let base = format!("https://{address}");
    let pem = std::fs::read(tls.ca_file()).expect("the authority");
    let http = testkit::http_client_builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("a certificate"))
        .build()
        .expect("a client");
    Api {
        base,
        http,
        _tls: tls,
    }
}

impl Api {
    /// `path` on the mock, or a URL as it is.
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("https://") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        }
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.get(self.url(path))
    }

    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.post(self.url(path))
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        let response = request.send().await.expect("an answer");
        let (status, headers) = (response.status(), response.headers().clone());
        let bytes = response.bytes().await.expect("a body").to_vec();
        Answer {
            status,
            headers,
            bytes,
        }
    }

    /// The id a submit answers, in its JSON member `field`.
    pub async fn submitted(&self, request: reqwest::RequestBuilder, field: &str) -> String {
        let answer = self.send(request).await.json();
        answer[field]
            .as_str()
            .unwrap_or_else(|| panic!("an id in {field}: {answer}"))
            .to_owned()
    }

    /// The answers to `n` polls in turn, each sent as `poll` makes it (a job done at its `n`th
    /// poll is seen running, then done).
    pub async fn polls(&self, n: usize, poll: impl Fn() -> reqwest::RequestBuilder) -> Vec<Answer> {
        let mut answers = Vec::with_capacity(n);
        for _ in 0..n {
            answers.push(self.send(poll()).await);
        }
        answers
    }

    /// The answer to the last of `n` polls (see [`Api::polls`]).
    pub async fn last_poll(&self, n: usize, poll: impl Fn() -> reqwest::RequestBuilder) -> Answer {
        let mut answers = self.polls(n, poll).await;
        answers.pop().expect("at least one poll")
    }

    pub async fn stats(&self) -> Value {
        self.send(self.get("/stats")).await.json()
    }

    /// Waits until `/stats` shows each of `expected`'s counts.
    pub async fn wait_for_stats(&self, expected: &[(&str, u64)]) -> Value {
        testkit::eventually(PATIENCE, &format!("stats {expected:?}"), || async {
            let stats = self.stats().await;
            let all = expected.iter().all(|&(name, count)| stats[name] == count);
            all.then_some(stats)
        })
        .await
    }
}

/// A JSON body on `request`.
pub fn with_json(request: reqwest::RequestBuilder, body: &Value) -> reqwest::RequestBuilder {
    request
        .header("content-type", "application/json")
        .body(body.to_string())
}

/// One part of a multipart body.
pub enum Field<'a> {
    Text(&'a str, &'a str),
    /// Name, file name, content type, bytes.
    File(&'a str, &'a str, &'a str, &'a [u8]),
}

/// A `multipart/form-data` body of `fields` on `request`, made by hand (reqwest is built
/// without its `multipart` feature), its boundary not in any of them.
pub fn with_form(
    request: reqwest::RequestBuilder,
    fields: &[Field<'_>],
) -> reqwest::RequestBuilder {
    let boundary = "mock-boundary-7d1f0c";
    let mut body = Vec::new();
    for field in fields {
        body.extend(format!("--{boundary}\r\n").bytes());
        match field {
            Field::Text(name, value) => {
                body.extend(
                    format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}")
                        .bytes(),
                );
            }
            Field::File(name, file, kind, bytes) => {
                body.extend(
                    format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{file}\"\r\nContent-Type: {kind}\r\n\r\n").bytes(),
                );
                body.extend_from_slice(bytes);
            }
        }
        body.extend(b"\r\n");
    }
    body.extend(format!("--{boundary}--\r\n").bytes());
    request
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
}

/// Every POST a receiver got: its path and body.
pub type Posts = Arc<Mutex<Vec<(String, Value)>>>;

/// A webhook receiver on a free port: records every POST (path and body) and answers 200.
pub struct Receiver {
    pub base: String,
    pub posts: Posts,
}

pub async fn receiver() -> Receiver {
    async fn record(State(posts): State<Posts>, uri: Uri, body: axum::body::Bytes) -> StatusCode {
        let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let mut posts = posts.lock().unwrap_or_else(PoisonError::into_inner);
        posts.push((uri.path().to_owned(), body));
        StatusCode::OK
    }
    let posts = Posts::default();
    let app = axum::Router::new()
        .fallback(axum::routing::post(record))
        .with_state(Arc::clone(&posts));
    let address =
        crate::support::serve_on_free_port(|listener| axum::serve(listener, app).into_future())
            .await;
    Receiver {
        base: format!("http://{address}"),
        posts,
    }
}

impl Receiver {
    /// The body of the first POST to `path`, once it came.
    pub async fn body_at(&self, path: &str) -> Value {
        testkit::eventually(PATIENCE, &format!("a POST to {path}"), || async {
            let posts = self.posts.lock().unwrap_or_else(PoisonError::into_inner);
            posts
                .iter()
                .find(|(p, _)| p == path)
                .map(|(_, b)| b.clone())
        })
        .await
    }

    pub fn count(&self) -> usize {
        self.posts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// A Textract call: `POST /` with the operation in `X-Amz-Target`, the key in `Authorization`.
pub fn textract(api: &Api, operation: &str, body: &Value) -> reqwest::RequestBuilder {
    api.post("/")
        .header("authorization", "mock-key")
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amz-target", format!("Textract.{operation}"))
        .body(body.to_string())
}
