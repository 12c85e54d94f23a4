//! The shapes of real providers over real sockets, as a consumer's profile meets them: the mock
//! served over HTTPS on a free port (a certificate from testkit's throw-away authority), called
//! by reqwest with each provider's own paths, headers and bodies; a webhook receiver on another
//! port; `/stats` read back. One test per shape: a job's whole life, its result in its format,
//! the credential check, the error bodies.

// This file's mock is its own (over HTTPS, with the providers' shapes): of the shared support
// it takes only the serving on a free port.
#[allow(dead_code)]
mod support;

use std::future::IntoFuture;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use mock_api::{Config, Shape};
use serde_json::{Value, json};
use testkit::Certificates;

/// Long enough for anything these tests wait for; they return as soon as it happens.
const PATIENCE: Duration = Duration::from_secs(5);

/// A mock over HTTPS on a free port, and a client that trusts it.
struct Api {
    base: String,
    http: reqwest::Client,
    /// Kept until the test ends: the certificate's files.
    _tls: Certificates,
}

/// One answer, read whole.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    bytes: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes).unwrap_or_else(|err| {
            let text = String::from_utf8_lossy(&self.bytes);
            panic!("{} is not JSON ({err}): {text}", self.status)
        })
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} in {:?}", self.headers))
            .to_str()
            .expect("ASCII")
    }

    fn text(&self) -> &str {
        std::str::from_utf8(&self.bytes).expect("UTF-8")
    }
}

/// A mock of `shape` that answers at once, its jobs done at their third poll.
fn config(shape: Shape) -> Config {
    Config {
        shape,
        delay_ms: 0,
        polls_until_done: 3,
        ..Config::default()
    }
}

async fn start(config: Config) -> Api {
    let tls = Certificates::generate();
    let config = Config {
        tls_cert: Some(tls.cert_file()),
        tls_key: Some(tls.key_file()),
        ..config
    };
    let address = support::serve_on_free_port(|listener| {
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
    fn url(&self, path: &str) -> String {
        if path.starts_with("https://") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        }
    }

    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.get(self.url(path))
    }

    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.post(self.url(path))
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
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
    async fn submitted(&self, request: reqwest::RequestBuilder, field: &str) -> String {
        let answer = self.send(request).await.json();
        answer[field]
            .as_str()
            .unwrap_or_else(|| panic!("an id in {field}: {answer}"))
            .to_owned()
    }

    /// The answers to `n` polls in turn, each sent as `poll` makes it (a job done at its `n`th
    /// poll is seen running, then done).
    async fn polls(&self, n: usize, poll: impl Fn() -> reqwest::RequestBuilder) -> Vec<Answer> {
        let mut answers = Vec::with_capacity(n);
        for _ in 0..n {
            answers.push(self.send(poll()).await);
        }
        answers
    }

    /// The answer to the last of `n` polls (see [`Api::polls`]).
    async fn last_poll(&self, n: usize, poll: impl Fn() -> reqwest::RequestBuilder) -> Answer {
        let mut answers = self.polls(n, poll).await;
        answers.pop().expect("at least one poll")
    }

    async fn stats(&self) -> Value {
        self.send(self.get("/stats")).await.json()
    }

    /// Waits until `/stats` shows each of `expected`'s counts.
    async fn wait_for_stats(&self, expected: &[(&str, u64)]) -> Value {
        testkit::eventually(PATIENCE, &format!("stats {expected:?}"), || async {
            let stats = self.stats().await;
            let all = expected.iter().all(|&(name, count)| stats[name] == count);
            all.then_some(stats)
        })
        .await
    }
}

/// A JSON body on `request`.
fn with_json(request: reqwest::RequestBuilder, body: &Value) -> reqwest::RequestBuilder {
    request
        .header("content-type", "application/json")
        .body(body.to_string())
}

/// One part of a multipart body.
enum Field<'a> {
    Text(&'a str, &'a str),
    /// Name, file name, content type, bytes.
    File(&'a str, &'a str, &'a str, &'a [u8]),
}

/// A `multipart/form-data` body of `fields` on `request`, made by hand (reqwest is built
/// without its `multipart` feature), its boundary not in any of them.
fn with_form(request: reqwest::RequestBuilder, fields: &[Field<'_>]) -> reqwest::RequestBuilder {
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
type Posts = Arc<Mutex<Vec<(String, Value)>>>;

/// A webhook receiver on a free port: records every POST (path and body) and answers 200.
struct Receiver {
    base: String,
    posts: Posts,
}

async fn receiver() -> Receiver {
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
        support::serve_on_free_port(|listener| axum::serve(listener, app).into_future()).await;
    Receiver {
        base: format!("http://{address}"),
        posts,
    }
}

impl Receiver {
    /// The body of the first POST to `path`, once it came.
    async fn body_at(&self, path: &str) -> Value {
        testkit::eventually(PATIENCE, &format!("a POST to {path}"), || async {
            let posts = self.posts.lock().unwrap_or_else(PoisonError::into_inner);
            posts
                .iter()
                .find(|(p, _)| p == path)
                .map(|(_, b)| b.clone())
        })
        .await
    }

    fn count(&self) -> usize {
        self.posts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[tokio::test]
async fn fal_queues_then_completes_and_its_output_is_fetched_from_response_url() {
    let hooks = receiver().await;
    let api = start(Config {
        webhooks: true,
        ..config(Shape::Fal)
    })
    .await;
    let key = |request: reqwest::RequestBuilder| request.header("authorization", "Key mock-key");
    let input = json!({"prompt": "a cat", "num_images": 2, "seed": 7});

    let anonymous = api
        .send(with_json(api.post("/fal-ai/flux/dev"), &input))
        .await;
    let bearer = api
        .send(
            with_json(api.post("/fal-ai/flux/dev"), &input)
                .header("authorization", "Bearer mock-key"),
        )
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert!(anonymous.json()["detail"].is_string(), "{anonymous:?}");
    assert_eq!(bearer.status, StatusCode::UNAUTHORIZED);

    let hook = format!("{}/fal", hooks.base);
    let path = format!("/fal-ai/flux/dev?fal_webhook={hook}");
    let submitted = api.send(key(with_json(api.post(&path), &input))).await;
    assert_eq!(submitted.status, StatusCode::OK);
    let submitted = submitted.json();
    let id = submitted["request_id"].as_str().expect("an id");
    let requests = format!("{}/fal-ai/flux/requests/{id}", api.base);
    assert_eq!(
        submitted["status_url"],
        format!("{requests}/status"),
        "no subpath"
    );
    assert_eq!(submitted["response_url"], requests);
    assert_eq!(submitted["cancel_url"], format!("{requests}/cancel"));
    assert_eq!(submitted["gateway_request_id"], id);

    let early = api.send(key(api.get(&requests))).await;
    assert_eq!(early.status, StatusCode::BAD_REQUEST);
    assert_eq!(early.json()["detail"], "Request is still in progress");
    let status_url = format!("{requests}/status");
    let statuses: Vec<_> = api
        .polls(3, || key(api.get(&status_url)))
        .await
        .iter()
        .map(|status| (status.status.as_u16(), status.json()))
        .collect();
    assert_eq!(statuses[0].0, 202);
    assert_eq!(statuses[0].1["status"], "IN_QUEUE");
    assert_eq!(statuses[0].1["queue_position"], 1);
    assert_eq!(statuses[1].0, 202);
    assert_eq!(statuses[1].1["status"], "IN_PROGRESS");
    assert_eq!(statuses[2].0, 200);
    assert_eq!(statuses[2].1["status"], "COMPLETED");
    assert_eq!(statuses[2].1["response_url"], requests);

    let output = api.send(key(api.get(&requests))).await;
    assert_eq!(output.status, StatusCode::OK);
    let output = output.json();
    assert_eq!(output["seed"], 7);
    assert_eq!(output["prompt"], "a cat");
    let images = output["images"].as_array().expect("images");
    assert_eq!(images.len(), 2);
    assert_eq!(images[0]["url"], format!("{}/files/{id}-0.png", api.base));
    assert_eq!(images[0]["content_type"], "image/png");
    let image = api
        .send(api.get(images[1]["url"].as_str().expect("a URL")))
        .await;
    assert_eq!(image.status, StatusCode::OK);
    assert_eq!(image.header("content-type"), "image/png");
    assert_eq!(
        image.bytes,
        mock_api::content::file(&format!("{id}-1.png"), 4096)
    );

    let posted = hooks.body_at("/fal").await;
    assert_eq!(
        posted,
        json!({"request_id": id, "gateway_request_id": id, "status": "OK", "payload": output, "error": null})
    );

    // A model that refuses its input: the status still says COMPLETED, the output is its 422.
    let failing = json!({"prompt": "x", "fail": "prompt is unsafe"});
    let path = format!("/fal-ai/flux?fal_webhook={hook}-failed");
    let submitted = api
        .send(key(with_json(api.post(&path), &failing)))
        .await
        .json();
    let (status_url, response_url) = (
        submitted["status_url"].as_str().expect("a URL"),
        submitted["response_url"].as_str().expect("a URL"),
    );
    let ended = api.last_poll(4, || key(api.get(status_url))).await;
    let refused = api.send(key(api.get(response_url))).await;
    assert_eq!(
        (ended.status, &ended.json()["status"]),
        (StatusCode::OK, &json!("COMPLETED"))
    );
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(refused.json()["detail"][0]["msg"], "prompt is unsafe");
    let posted = hooks.body_at("/fal-failed").await;
    assert_eq!(posted["status"], "ERROR");
    assert_eq!(posted["payload"], refused.json());
    assert!(posted["error"].is_string(), "{posted}");

    let unknown = api
        .send(key(api.get("/fal-ai/flux/requests/nope/status")))
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert!(unknown.json()["detail"].is_string());
    api.wait_for_stats(&[
        ("jobs", 2),
        ("done", 2),
        ("webhooks_sent", 2),
        ("unauthorized", 2),
        ("downloads", 1),
    ])
    .await;
    assert_eq!(hooks.count(), 2);
}

#[tokio::test]
async fn an_openai_batch_validates_runs_finalizes_and_its_output_file_is_json_lines() {
    let api = start(Config {
        polls_until_done: 4,
        ..config(Shape::OpenaiBatch)
    })
    .await;
    let key = |request: reqwest::RequestBuilder| request.header("authorization", "Bearer mock-key");
    let batch = json!({
        "input_file_id": "file-abc123",
        "endpoint": "/v1/chat/completions",
        "completion_window": "24h",
        "metadata": {"requests": "5"},
    });

    let anonymous = api.send(with_json(api.post("/v1/batches"), &batch)).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous.json()["error"]["code"], "invalid_api_key");

    let created = api
        .send(key(with_json(api.post("/v1/batches"), &batch)))
        .await;
    assert_eq!(created.status, StatusCode::OK);
    let created = created.json();
    let id = created["id"].as_str().expect("an id");
    assert!(id.starts_with("batch_"), "{id}");
    assert_eq!(
        (&created["object"], &created["status"]),
        (&json!("batch"), &json!("validating"))
    );
    assert_eq!(created["endpoint"], "/v1/chat/completions");

    let seen: Vec<_> = api
        .polls(4, || key(api.get(&format!("/v1/batches/{id}"))))
        .await
        .iter()
        .map(|polled| {
            assert_eq!(polled.status, StatusCode::OK);
            polled.json()
        })
        .collect();
    let statuses: Vec<_> = seen.iter().map(|b| b["status"].clone()).collect();
    assert_eq!(
        statuses,
        [
            json!("validating"),
            json!("in_progress"),
            json!("finalizing"),
            json!("completed")
        ]
    );
    let completed = &seen[3];
    assert_eq!(
        completed["request_counts"],
        json!({"total": 5, "completed": 5, "failed": 0})
    );
    let output_file = completed["output_file_id"]
        .as_str()
        .expect("an output file");
    assert!(output_file.starts_with("file-"), "{output_file}");

    let content = api
        .send(key(api.get(&format!("/v1/files/{output_file}/content"))))
        .await;
    assert_eq!(content.status, StatusCode::OK);
    assert_eq!(content.header("content-type"), "application/octet-stream");
    let lines: Vec<Value> = content
        .text()
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 5, "{}", content.text());
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["custom_id"], format!("request-{}", i + 1));
        assert_eq!(line["response"]["status_code"], 200);
        assert!(line["response"]["request_id"].is_string());
        assert_eq!(line["response"]["body"]["object"], "chat.completion");
        assert_eq!(line["error"], Value::Null);
    }

    // A batch whose input file does not exist is refused at once; one asking to fail fails.
    let missing = json!({"input_file_id": "file-missing", "endpoint": "/v1/embeddings", "completion_window": "24h"});
    let refused = api
        .send(key(with_json(api.post("/v1/batches"), &missing)))
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    let error = &refused.json()["error"];
    assert_eq!(error["type"], "invalid_request_error");
    assert_eq!(error["param"], "input_file_id");
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("file-missing"))
    );
    assert!(error.as_object().is_some_and(|e| e.contains_key("code")));
    let bad_window =
        json!({"input_file_id": "f", "endpoint": "/v1/embeddings", "completion_window": "1h"});
    let refused = api
        .send(key(with_json(api.post("/v1/batches"), &bad_window)))
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert_eq!(refused.json()["error"]["param"], "completion_window");

    let failing = json!({
        "input_file_id": "file-abc",
        "endpoint": "/v1/embeddings",
        "completion_window": "24h",
        "metadata": {"fail": "line 1: the model does not exist"},
    });
    let id = api
        .submitted(key(with_json(api.post("/v1/batches"), &failing)), "id")
        .await;
    let last = api
        .last_poll(4, || key(api.get(&format!("/v1/batches/{id}"))))
        .await
        .json();
    assert_eq!(last["status"], "failed");
    assert_eq!(
        last["errors"]["data"][0]["message"],
        "line 1: the model does not exist"
    );
    assert_eq!(last["errors"]["data"][0]["line"], 1);
    assert_eq!(last["output_file_id"], Value::Null);
    let no_output = api
        .send(key(api.get(&format!("/v1/files/file-{}/content", &id[6..]))))
        .await;
    assert_eq!(no_output.status, StatusCode::NOT_FOUND);
    assert_eq!(no_output.json()["error"]["type"], "invalid_request_error");
    api.wait_for_stats(&[("jobs", 2), ("done", 2), ("unauthorized", 1)])
        .await;
}

#[tokio::test]
async fn a_revai_job_is_transcribed_and_its_transcript_fetched_as_text_or_json() {
    let hooks = receiver().await;
    let api = start(Config {
        webhooks: true,
        ..config(Shape::Revai)
    })
    .await;
    let key = |request: reqwest::RequestBuilder| request.header("authorization", "Bearer mock-key");
    let job = json!({
        "source_config": {"url": "https://example.com/media/talk.mp3?sig=1"},
        "notification_config": {"url": format!("{}/rev", hooks.base)},
        "metadata": "m-1",
    });

    let anonymous = api
        .send(with_json(api.post("/speechtotext/v1/jobs"), &job))
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous.header("content-type"), "application/problem+json");
    assert_eq!(anonymous.json()["status"], 401);

    let submitted = api
        .send(key(with_json(api.post("/speechtotext/v1/jobs"), &job)))
        .await;
    assert_eq!(submitted.status, StatusCode::OK);
    let submitted = submitted.json();
    assert_eq!(submitted["status"], "in_progress");
    assert_eq!(submitted["metadata"], "m-1");
    let id = submitted["id"].as_str().expect("an id");
    let job_url = format!("/speechtotext/v1/jobs/{id}");
    let transcript_url = format!("{job_url}/transcript");

    let early = api
        .send(key(api.get(&transcript_url)).header("accept", "text/plain"))
        .await;
    assert_eq!(early.status, StatusCode::CONFLICT);
    assert_eq!(early.header("content-type"), "application/problem+json");
    let early = early.json();
    assert_eq!(early["status"], 409);
    assert_eq!(early["current_value"], "in_progress");
    assert!(
        early["type"]
            .as_str()
            .is_some_and(|t| t.ends_with("/invalid-job-state"))
    );
    assert!(
        early["title"].is_string() && early["detail"].is_string(),
        "{early}"
    );

    let statuses: Vec<_> = api
        .polls(3, || key(api.get(&job_url)))
        .await
        .iter()
        .map(|polled| polled.json()["status"].clone())
        .collect();
    assert_eq!(
        statuses,
        [
            json!("in_progress"),
            json!("in_progress"),
            json!("transcribed")
        ]
    );

    let text = api
        .send(key(api.get(&transcript_url)).header("accept", "text/plain"))
        .await;
    let transcript = api
        .send(
            key(api.get(&transcript_url))
                .header("accept", "application/vnd.rev.transcript.v1.0+json"),
        )
        .await;
    assert_eq!(text.status, StatusCode::OK);
    assert!(text.header("content-type").starts_with("text/plain"));
    assert_eq!(
        transcript.header("content-type"),
        "application/vnd.rev.transcript.v1.0+json"
    );
    let spoken: String = transcript.json()["monologues"][0]["elements"]
        .as_array()
        .expect("elements")
        .iter()
        .map(|e| e["value"].as_str().expect("a value"))
        .collect();
    assert_eq!(
        spoken,
        format!("This is the transcript of talk.mp3 for job {id}.")
    );
    assert_eq!(text.text(), format!("Speaker 0    00:00:00    {spoken}\n"));
    let again = api
        .send(key(api.get(&transcript_url)).header("accept", "text/plain"))
        .await;
    assert_eq!(again.bytes, text.bytes, "deterministic");
    let refused = api
        .send(key(api.get(&transcript_url)).header("accept", "application/xml"))
        .await;
    assert_eq!(refused.status, StatusCode::NOT_ACCEPTABLE);

    let posted = hooks.body_at("/rev").await;
    assert_eq!(posted["job"]["id"], id);
    assert_eq!(posted["job"]["status"], "transcribed");

    // A failed job: its failure and detail; its transcript stays out of reach.
    let failing = json!({"source_config": {"url": "https://example.com/a.mp3"}, "metadata": "fail: unsupported codec"});
    let id = api
        .submitted(
            key(with_json(api.post("/speechtotext/v1/jobs"), &failing)),
            "id",
        )
        .await;
    let last = api
        .last_poll(3, || key(api.get(&format!("/speechtotext/v1/jobs/{id}"))))
        .await
        .json();
    assert_eq!(last["status"], "failed");
    assert_eq!(last["failure_detail"], "unsupported codec");
    assert!(last["failure"].is_string());
    let out_of_reach = api
        .send(key(
            api.get(&format!("/speechtotext/v1/jobs/{id}/transcript"))
        ))
        .await;
    assert_eq!(out_of_reach.status, StatusCode::CONFLICT);
    assert_eq!(out_of_reach.json()["current_value"], "failed");

    let no_source = api
        .send(key(with_json(
            api.post("/speechtotext/v1/jobs"),
            &json!({"metadata": "x"}),
        )))
        .await;
    assert_eq!(no_source.status, StatusCode::BAD_REQUEST);
    assert_eq!(no_source.json()["status"], 400);
    let unknown = api.send(key(api.get("/speechtotext/v1/jobs/nope"))).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.header("content-type"), "application/problem+json");
    api.wait_for_stats(&[("jobs", 2), ("done", 2), ("webhooks_sent", 1)])
        .await;
}

/// Bytes that look like an image and hold what a careless multipart reader trips on: line
/// breaks, dashes, zeros.
fn image_bytes(n: usize) -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.extend((0..n).map(|i| match i % 97 {
        0 => b'\r',
        1 => b'\n',
        2 | 3 => b'-',
        _ => u8::try_from(i * 31 % 256).expect("a byte"),
    }));
    bytes
}

#[tokio::test]
async fn a_stability_upscale_takes_a_multipart_image_and_answers_bytes_made_from_it() {
    let api = start(Config {
        max_upload_bytes: 16 << 10,
        ..config(Shape::StabilityUpscale)
    })
    .await;
    let key = |request: reqwest::RequestBuilder| request.header("authorization", "Bearer mock-key");
    let image = image_bytes(5000);
    let path = "/v2beta/stable-image/upscale/creative";
    let fields = [
        Field::File("image", "cat.png", "image/png", &image),
        Field::Text("prompt", "a cat, sharper"),
        Field::Text("output_format", "webp"),
        Field::Text("seed", "17"),
    ];

    let anonymous = api.send(with_form(api.post(path), &fields)).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous.json()["name"], "unauthorized");

    let submitted = api.send(key(with_form(api.post(path), &fields))).await;
    assert_eq!(submitted.status, StatusCode::OK);
    let id = submitted.json()["id"].as_str().expect("an id").to_owned();
    let result = format!("/v2beta/results/{id}");

    let running = api
        .send(key(api.get(&result)).header("accept", "image/*"))
        .await;
    assert_eq!(running.status, StatusCode::ACCEPTED);
    assert_eq!(running.json(), json!({"id": id, "status": "in-progress"}));
    api.send(key(api.get(&result)).header("accept", "image/*"))
        .await;
    let done = api
        .send(key(api.get(&result)).header("accept", "image/*"))
        .await;
    assert_eq!(done.status, StatusCode::OK);
    assert_eq!(done.header("content-type"), "image/webp");
    assert_eq!(done.header("finish-reason"), "SUCCESS");
    assert_eq!(done.header("seed"), "17");
    assert_eq!(
        done.bytes,
        mock_api::shapes::upscaled(&image, "a cat, sharper")
    );
    let header = format!(
        "upscaled {} {:016x} {:016x}\n",
        image.len(),
        mock_api::fnv1a(&image),
        mock_api::fnv1a(b"a cat, sharper")
    );
    let (head, tail) = done.bytes.split_at(header.len());
    assert_eq!(head, header.as_bytes());
    assert!(tail.iter().eq(image.iter().rev()), "the upload, reversed");

    let as_json = api
        .send(key(api.get(&result)).header("accept", "application/json"))
        .await;
    assert_eq!(as_json.status, StatusCode::OK);
    let as_json = as_json.json();
    assert_eq!(as_json["finish_reason"], "SUCCESS");
    assert_eq!(as_json["seed"], 17);
    let decoded = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        as_json["image"].as_str().expect("base64"),
    )
    .expect("base64");
    assert_eq!(decoded, done.bytes);

    let no_prompt = api
        .send(key(with_form(
            api.post(path),
            &[Field::File("image", "a.png", "image/png", &image)],
        )))
        .await;
    assert_eq!(no_prompt.status, StatusCode::BAD_REQUEST);
    let no_prompt = no_prompt.json();
    assert_eq!(no_prompt["name"], "bad_request");
    assert_eq!(no_prompt["errors"], json!(["prompt: required"]));
    let too_large = image_bytes(20 << 10);
    let refused = api
        .send(key(with_form(
            api.post(path),
            &[
                Field::File("image", "a.png", "image/png", &too_large),
                Field::Text("prompt", "p"),
            ],
        )))
        .await;
    assert_eq!(refused.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(refused.json()["name"], "payload_too_large");
    let not_a_form = api
        .send(key(with_json(api.post(path), &json!({"prompt": "p"}))))
        .await;
    assert_eq!(not_a_form.status, StatusCode::BAD_REQUEST);
    assert_eq!(not_a_form.json()["name"], "bad_request");

    let failing = [
        Field::File("image", "a.png", "image/png", b"tiny"),
        Field::Text("prompt", "fail: the image was flagged"),
    ];
    let id = api
        .submitted(key(with_form(api.post(path), &failing)), "id")
        .await;
    let last = api
        .last_poll(3, || key(api.get(&format!("/v2beta/results/{id}"))))
        .await;
    assert_eq!(last.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(last.json()["errors"], json!(["the image was flagged"]));
    let unknown = api.send(key(api.get("/v2beta/results/nope"))).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.json()["name"], "not_found");
    api.wait_for_stats(&[("jobs", 2), ("done", 2), ("unauthorized", 1)])
        .await;
}

#[tokio::test]
async fn an_elevenlabs_dub_of_a_downloaded_file_gives_audio_made_from_it_per_language() {
    let api = start(config(Shape::ElevenlabsDubbing)).await;
    let key = |request: reqwest::RequestBuilder| request.header("xi-api-key", "mock-key");
    let media = api.send(api.get("/files/talk.mp3?bytes=20000")).await;
    assert_eq!(media.status, StatusCode::OK);
    assert_eq!(media.header("content-type"), "audio/mpeg");
    assert_eq!(media.bytes.len(), 20_000);
    let fields = [
        Field::File("file", "talk.mp3", "audio/mpeg", &media.bytes),
        Field::Text("target_lang", "es"),
        Field::Text("name", "talk"),
    ];

    let anonymous = api.send(with_form(api.post("/v1/dubbing"), &fields)).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous.json()["detail"]["status"], "invalid_api_key");

    let submitted = api
        .send(key(with_form(api.post("/v1/dubbing"), &fields)))
        .await;
    assert_eq!(submitted.status, StatusCode::OK);
    let submitted = submitted.json();
    let id = submitted["dubbing_id"].as_str().expect("an id").to_owned();
    assert!(
        submitted["expected_duration_sec"].is_number(),
        "{submitted}"
    );

    let early = api
        .send(key(api.get(&format!("/v1/dubbing/{id}/audio/es"))))
        .await;
    assert_eq!(early.status, StatusCode::TOO_EARLY);
    assert!(early.json()["detail"]["message"].is_string());
    let seen: Vec<_> = api
        .polls(3, || key(api.get(&format!("/v1/dubbing/{id}"))))
        .await
        .iter()
        .map(Answer::json)
        .collect();
    assert_eq!(seen[0]["status"], "dubbing");
    assert_eq!(seen[2]["status"], "dubbed");
    assert_eq!(seen[2]["target_languages"], json!(["es"]));
    assert_eq!(seen[2]["name"], "talk");

    let audio = api
        .send(key(api.get(&format!("/v1/dubbing/{id}/audio/es"))))
        .await;
    assert_eq!(audio.status, StatusCode::OK);
    assert_eq!(audio.header("content-type"), "audio/mpeg");
    assert_eq!(audio.bytes, mock_api::shapes::dubbed(&media.bytes, "es"));
    assert!(
        audio
            .bytes
            .ends_with(&media.bytes.iter().rev().copied().collect::<Vec<_>>())
    );
    let other = api
        .send(key(api.get(&format!("/v1/dubbing/{id}/audio/fr"))))
        .await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    assert!(other.json()["detail"]["status"].is_string());

    // A source URL instead of a file: the dub is made from the URL.
    let url = "https://example.com/clip.mp4";
    let by_url = [
        Field::Text("source_url", url),
        Field::Text("target_lang", "de"),
    ];
    let id = api
        .submitted(
            key(with_form(api.post("/v1/dubbing"), &by_url)),
            "dubbing_id",
        )
        .await;
    api.polls(3, || key(api.get(&format!("/v1/dubbing/{id}"))))
        .await;
    let audio = api
        .send(key(api.get(&format!("/v1/dubbing/{id}/audio/de"))))
        .await;
    assert_eq!(audio.bytes, mock_api::shapes::dubbed(url.as_bytes(), "de"));

    let no_lang = api
        .send(key(with_form(
            api.post("/v1/dubbing"),
            &[Field::Text("source_url", url)],
        )))
        .await;
    assert_eq!(no_lang.status, StatusCode::UNPROCESSABLE_ENTITY);
    let detail = &no_lang.json()["detail"];
    assert_eq!(detail["status"], "invalid_parameters");
    assert!(
        detail["message"]
            .as_str()
            .is_some_and(|m| m.contains("target_lang"))
    );
    let no_source = api
        .send(key(with_form(
            api.post("/v1/dubbing"),
            &[Field::Text("target_lang", "es")],
        )))
        .await;
    assert_eq!(no_source.status, StatusCode::UNPROCESSABLE_ENTITY);

    let failing = [
        Field::Text("source_url", url),
        Field::Text("target_lang", "es"),
        Field::Text("fail", "no speech found"),
    ];
    let id = api
        .submitted(
            key(with_form(api.post("/v1/dubbing"), &failing)),
            "dubbing_id",
        )
        .await;
    let last = api
        .last_poll(3, || key(api.get(&format!("/v1/dubbing/{id}"))))
        .await
        .json();
    assert_eq!(
        (&last["status"], &last["error"]),
        (&json!("failed"), &json!("no speech found"))
    );
    let unknown = api.send(key(api.get("/v1/dubbing/nope"))).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert!(unknown.json()["detail"]["status"].is_string());
    api.wait_for_stats(&[("jobs", 3), ("done", 3), ("downloads", 1)])
        .await;
}

/// A Textract call: `POST /` with the operation in `X-Amz-Target`, the key in `Authorization`.
fn textract(api: &Api, operation: &str, body: &Value) -> reqwest::RequestBuilder {
    api.post("/")
        .header("authorization", "mock-key")
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amz-target", format!("Textract.{operation}"))
        .body(body.to_string())
}

/// Every page of a Textract job's blocks, `max` to a page: the pages' blocks and how many
/// pages there were, at most `limit` of them.
async fn textract_pages(api: &Api, id: &str, max: u64, limit: usize) -> (Vec<Value>, usize) {
    let (mut blocks, mut token, mut pages) = (Vec::new(), None::<String>, 0);
    while pages < limit {
        let mut ask = json!({"JobId": id, "MaxResults": max});
        if let Some(token) = &token {
            ask["NextToken"] = json!(token);
        }
        let page = api
            .send(textract(api, "GetDocumentTextDetection", &ask))
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text());
        assert_eq!(page.header("content-type"), "application/x-amz-json-1.1");
        let page = page.json();
        assert_eq!(page["JobStatus"], "SUCCEEDED");
        blocks.extend(page["Blocks"].as_array().expect("blocks").iter().cloned());
        pages += 1;
        match page["NextToken"].as_str() {
            Some(next) => {
                assert_ne!(Some(next), token.as_deref(), "a new token each page");
                token = Some(next.to_owned());
            }
            None => break,
        }
    }
    (blocks, pages)
}

#[tokio::test]
async fn a_textract_job_succeeds_and_its_blocks_come_in_pages_until_next_token_ends() {
    let api = start(Config {
        polls_until_done: 2,
        textract_blocks: 250,
        ..config(Shape::Textract)
    })
    .await;
    let document = json!({
        "DocumentLocation": {"S3Object": {"Bucket": "docs", "Name": "contract.pdf"}},
        "ClientRequestToken": "task-42",
    });

    let anonymous = api
        .send(
            api.post("/")
                .header("x-amz-target", "Textract.StartDocumentTextDetection")
                .body(document.to_string()),
        )
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert!(anonymous.json()["__type"].is_string());

    let started = api
        .send(textract(&api, "StartDocumentTextDetection", &document))
        .await;
    assert_eq!(started.status, StatusCode::OK);
    assert_eq!(started.header("content-type"), "application/x-amz-json-1.1");
    let id = started.json()["JobId"]
        .as_str()
        .expect("a job id")
        .to_owned();
    let again = api
        .send(textract(&api, "StartDocumentTextDetection", &document))
        .await;
    assert_eq!(
        again.json()["JobId"],
        id,
        "the same ClientRequestToken, the same job"
    );

    let running = api
        .send(textract(
            &api,
            "GetDocumentTextDetection",
            &json!({ "JobId": id }),
        ))
        .await;
    assert_eq!(running.json(), json!({"JobStatus": "IN_PROGRESS"}));
    let (blocks, pages) = textract_pages(&api, &id, 100, 10).await;
    assert_eq!(pages, 3, "100 + 100 + 50");
    assert_eq!(blocks.len(), 250);
    let mut ids: Vec<_> = blocks
        .iter()
        .map(|b| b["Id"].as_str().expect("an id"))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 250, "every block once");
    assert_eq!(blocks[0]["BlockType"], "PAGE");
    assert_eq!(blocks[1]["BlockType"], "LINE");
    assert_eq!(blocks[249]["Page"], 5);
    let (whole, pages) = textract_pages(&api, &id, 1000, 10).await;
    assert_eq!(
        (pages, &whole),
        (1, &blocks),
        "one page of up to 1000 blocks"
    );
    let first = api
        .send(textract(
            &api,
            "GetDocumentTextDetection",
            &json!({ "JobId": id }),
        ))
        .await
        .json();
    assert_eq!(first["DocumentMetadata"]["Pages"], 5);
    assert_eq!(first.get("NextToken"), None);

    let too_many = api
        .send(textract(
            &api,
            "GetDocumentTextDetection",
            &json!({"JobId": id, "MaxResults": 1001}),
        ))
        .await;
    assert_eq!(too_many.status, StatusCode::BAD_REQUEST);
    assert_eq!(too_many.json()["__type"], "InvalidParameterException");
    let unknown = api
        .send(textract(
            &api,
            "GetDocumentTextDetection",
            &json!({"JobId": "0"}),
        ))
        .await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert_eq!(unknown.json()["__type"], "InvalidJobIdException");
    assert!(unknown.json()["message"].is_string());
    assert_eq!(unknown.header("x-amzn-errortype"), "InvalidJobIdException");
    for target in [None, Some("Textract.AnalyzeDocument")] {
        let mut call = api.post("/").header("authorization", "mock-key").body("{}");
        if let Some(target) = target {
            call = call.header("x-amz-target", target);
        }
        let refused = api.send(call).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST);
        assert_eq!(refused.json()["__type"], "UnknownOperationException");
        assert!(refused.json()["message"].is_string());
    }

    let failing = json!({"DocumentLocation": {"S3Object": {"Bucket": "docs", "Name": "fail: unsupported document format"}}});
    let id = api
        .submitted(
            textract(&api, "StartDocumentTextDetection", &failing),
            "JobId",
        )
        .await;
    let last = api
        .last_poll(2, || {
            textract(&api, "GetDocumentTextDetection", &json!({ "JobId": id }))
        })
        .await
        .json();
    assert_eq!(
        last,
        json!({"JobStatus": "FAILED", "StatusMessage": "unsupported document format"})
    );
    api.wait_for_stats(&[("jobs", 2), ("idempotent_replays", 1), ("done", 2)])
        .await;
}

#[tokio::test]
async fn endless_textract_pages_never_stop_giving_a_next_token() {
    let api = start(Config {
        polls_until_done: 1,
        textract_blocks: 120,
        textract_endless_pages: true,
        ..config(Shape::Textract)
    })
    .await;
    let document = json!({"DocumentLocation": {"S3Object": {"Bucket": "b", "Name": "n.pdf"}}});
    let id = api
        .submitted(
            textract(&api, "StartDocumentTextDetection", &document),
            "JobId",
        )
        .await;

    let (blocks, pages) = textract_pages(&api, &id, 50, 20).await;

    assert_eq!(pages, 20, "cut off by the caller, not by the provider");
    assert_eq!(blocks.len(), 120, "past the end, pages are empty");
}

/// Now, in ms since the Unix epoch (the clock `GET /webhooks` uses).
fn epoch_ms() -> u64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970");
    u64::try_from(since.as_millis()).expect("a u64")
}

#[tokio::test]
async fn a_deepgram_job_is_never_polled_its_full_result_is_posted_to_the_callback() {
    let hooks = receiver().await;
    // Webhooks off: Deepgram's callback is its only way to a result, so it is called anyway.
    let api = start(Config {
        job_ms: 100,
        ..config(Shape::Deepgram)
    })
    .await;
    let key = |request: reqwest::RequestBuilder| request.header("authorization", "Token mock-key");
    let audio = json!({"url": "https://example.com/audio/talk.wav"});
    let listen = format!(
        "/v1/listen?callback={}/dg&model=nova-3&smart_format=true",
        hooks.base
    );

    let anonymous = api.send(with_json(api.post(&listen), &audio)).await;
    let bearer = api
        .send(with_json(api.post(&listen), &audio).header("authorization", "Bearer mock-key"))
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous.json()["err_code"], "INVALID_AUTH");
    assert!(anonymous.json()["request_id"].is_string());
    assert_eq!(bearer.status, StatusCode::UNAUTHORIZED);
    let no_callback = api
        .send(key(with_json(api.post("/v1/listen?model=nova-3"), &audio)))
        .await;
    assert_eq!(no_callback.status, StatusCode::BAD_REQUEST);
    assert!(
        no_callback.json()["err_msg"]
            .as_str()
            .is_some_and(|m| m.contains("callback"))
    );
    let as_audio = api
        .send(key(api
            .post(&listen)
            .header("content-type", "audio/wav")
            .body(audio.to_string())))
        .await;
    assert_eq!(as_audio.status, StatusCode::BAD_REQUEST);

    let before = epoch_ms();
    let submitted = api.send(key(with_json(api.post(&listen), &audio))).await;
    assert_eq!(submitted.status, StatusCode::OK);
    let id = submitted.json()["request_id"]
        .as_str()
        .expect("an id")
        .to_owned();
    let posted = hooks.body_at("/dg").await;

    assert_eq!(posted["metadata"]["request_id"], id);
    assert_eq!(
        posted["metadata"]["model_info"]["mock-model-0000"]["name"],
        "nova-3"
    );
    let alternative = &posted["results"]["channels"][0]["alternatives"][0];
    assert_eq!(
        alternative["transcript"],
        "this is the transcript of talk.wav"
    );
    assert!(alternative["confidence"].is_number());
    assert_eq!(alternative["words"].as_array().map(Vec::len), Some(6));
    let sent = api.send(api.get("/webhooks")).await.json();
    let sent_at = sent["sent_at_ms"][&id].as_u64().expect("when it was sent");
    assert!(
        sent_at >= before + 100,
        "{sent_at} is job_ms after {before}"
    );

    let failing = json!({"url": "https://example.com/a.wav", "fail": "audio too short"});
    let listen = format!("/v1/listen?callback={}/dg-failed", hooks.base);
    let id = api
        .submitted(key(with_json(api.post(&listen), &failing)), "request_id")
        .await;
    let posted = hooks.body_at("/dg-failed").await;
    assert_eq!(
        posted,
        json!({"err_code": "Bad Request", "err_msg": "audio too short", "request_id": id})
    );
    let no_poll = api.send(key(api.get("/v1/listen"))).await;
    assert_eq!(no_poll.status, StatusCode::METHOD_NOT_ALLOWED);
    api.wait_for_stats(&[
        ("jobs", 2),
        ("done", 2),
        ("webhooks_sent", 2),
        ("unauthorized", 2),
    ])
    .await;
}

#[tokio::test]
async fn without_job_ms_a_deepgram_callback_comes_as_soon_as_the_submit_is_answered() {
    let hooks = receiver().await;
    let api = start(Config {
        delay_ms: 50,
        ..config(Shape::Deepgram)
    })
    .await;
    let listen = format!("/v1/listen?callback={}/dg", hooks.base);
    let audio = json!({"url": "https://example.com/a.wav"});

    let before = epoch_ms();
    let submitted = api
        .send(with_json(api.post(&listen), &audio).header("authorization", "Token mock-key"))
        .await;
    let posted = hooks.body_at("/dg").await;

    let id = submitted.json()["request_id"].clone();
    assert_eq!(posted["metadata"]["request_id"], id);
    let sent = api.send(api.get("/webhooks")).await.json();
    let sent_at = sent["sent_at_ms"][id.as_str().expect("an id")]
        .as_u64()
        .expect("when it was sent");
    assert!(
        sent_at >= before + 50,
        "{sent_at} is delay_ms after {before}"
    );
}

/// A submit of each new shape, with its credential, the body it wants: its status is what
/// matters here, not its job.
fn any_submit(api: &Api, shape: Shape) -> reqwest::RequestBuilder {
    let json = |path: &str, auth: &str, body: Value| {
        with_json(api.post(path), &body).header("authorization", auth.to_owned())
    };
    let image = [
        Field::File("image", "a.png", "image/png", b"png"),
        Field::Text("prompt", "p"),
    ];
    match shape {
        Shape::Fal => json("/fal-ai/flux", "Key mock-key", json!({"prompt": "p"})),
        Shape::OpenaiBatch => json(
            "/v1/batches",
            "Bearer mock-key",
            json!({"input_file_id": "f", "endpoint": "/v1/embeddings", "completion_window": "24h"}),
        ),
        Shape::Revai => json(
            "/speechtotext/v1/jobs",
            "Bearer mock-key",
            json!({"source_config": {"url": "https://x/a.mp3"}}),
        ),
        Shape::StabilityUpscale => {
            with_form(api.post("/v2beta/stable-image/upscale/creative"), &image)
                .header("authorization", "Bearer mock-key")
        }
        Shape::ElevenlabsDubbing => with_form(
            api.post("/v1/dubbing"),
            &[
                Field::Text("source_url", "https://x/a.mp4"),
                Field::Text("target_lang", "es"),
            ],
        )
        .header("xi-api-key", "mock-key"),
        Shape::Textract => textract(
            api,
            "StartDocumentTextDetection",
            &json!({"DocumentLocation": {"S3Object": {"Bucket": "b", "Name": "n"}}}),
        ),
        Shape::Deepgram => json(
            "/v1/listen?callback=http://127.0.0.1:9/x",
            "Token mock-key",
            json!({"url": "https://x/a.wav"}),
        ),
        other => unreachable!("{other:?} has tests of its own"),
    }
}

const NEW_SHAPES: [Shape; 7] = [
    Shape::Fal,
    Shape::OpenaiBatch,
    Shape::Revai,
    Shape::StabilityUpscale,
    Shape::ElevenlabsDubbing,
    Shape::Textract,
    Shape::Deepgram,
];

#[tokio::test]
async fn an_injected_failure_answers_in_each_providers_error_body_with_its_retry_after() {
    for shape in NEW_SHAPES {
        let api = start(Config {
            failure_rate: 1.0,
            failure_status: 503,
            retry_after_secs: Some(7),
            ..config(shape)
        })
        .await;

        let failed = api.send(any_submit(&api, shape)).await;

        assert_eq!(failed.status, StatusCode::SERVICE_UNAVAILABLE, "{shape:?}");
        assert_eq!(failed.header("retry-after"), "7", "{shape:?}");
        let body = failed.json();
        let field = match shape {
            Shape::Fal => "/detail",
            Shape::OpenaiBatch => "/error/type",
            Shape::Revai => "/title",
            Shape::StabilityUpscale => "/name",
            Shape::ElevenlabsDubbing => "/detail/status",
            Shape::Textract => "/__type",
            _ => "/err_code",
        };
        assert!(
            body.pointer(field).is_some_and(Value::is_string),
            "{shape:?}: {body}"
        );
        api.wait_for_stats(&[("failures", 1), ("jobs", 0)]).await;
    }
}

#[tokio::test]
async fn a_dropped_submit_answer_still_makes_the_job_of_every_new_shape() {
    for shape in NEW_SHAPES {
        let api = start(Config {
            drop_submit_answers: 1,
            ..config(shape)
        })
        .await;

        let dropped = any_submit(&api, shape).send().await;
        let cut = match dropped {
            Err(_) => true,
            Ok(answer) => answer.bytes().await.is_err(),
        };
        let answered = api.send(any_submit(&api, shape)).await;

        assert!(cut, "{shape:?}: the first answer is cut off");
        assert_eq!(answered.status, StatusCode::OK, "{shape:?}");
        api.wait_for_stats(&[("jobs", 2), ("dropped_answers", 1)])
            .await;
        api.send(api.post("/reset")).await;
        api.wait_for_stats(&[("jobs", 0), ("calls", 0), ("dropped_answers", 0)])
            .await;
    }
}
