//! The mock's webhooks over real sockets: the mock served on a free port, a receiver on another
//! that records every POST and answers as a test tells it, and `/stats` read back.

mod support;

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use mock_api::{Config, Shape};
use serde_json::{Value, json};
use support::{Api, json_body, start};
use testkit::epoch_ms;
use tokio::time::Instant;

/// Long enough for anything these tests wait for; they return as soon as it happens.
const PATIENCE: Duration = Duration::from_secs(5);

/// One POST the receiver got.
#[derive(Debug, Clone)]
struct Post {
    at: Instant,
    /// When it arrived, in ms since the Unix epoch (the clock `GET /webhooks` uses).
    wall_ms: u64,
    path: String,
    headers: HeaderMap,
    body: Value,
}

/// A webhook receiver on a free port: records every request, and answers the statuses it was
/// given in turn, then 200.
struct Receiver {
    base: String,
    state: Arc<ReceiverState>,
}

#[derive(Default)]
struct ReceiverState {
    posts: Mutex<Vec<Post>>,
    answers: Mutex<Vec<StatusCode>>,
}

async fn receiver(answers: &[u16]) -> Receiver {
    async fn record(
        State(state): State<Arc<ReceiverState>>,
        uri: axum::http::Uri,
        headers: HeaderMap,
        body: axum::body::Bytes,
    ) -> StatusCode {
        let post = Post {
            at: Instant::now(),
            wall_ms: epoch_ms(),
            path: uri.to_string(),
            headers,
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        };
        state
            .posts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(post);
        let mut answers = state.answers.lock().unwrap_or_else(PoisonError::into_inner);
        if answers.is_empty() {
            StatusCode::OK
        } else {
            answers.remove(0)
        }
    }
    let state = Arc::new(ReceiverState {
        posts: Mutex::default(),
        answers: Mutex::new(
            answers
                .iter()
                .map(|&s| StatusCode::from_u16(s).expect("a status"))
                .collect(),
        ),
    });
    let app = axum::Router::new()
        .fallback(axum::routing::post(record))
        .with_state(Arc::clone(&state));
    let address =
        support::serve_on_free_port(|listener| axum::serve(listener, app).into_future()).await;
    Receiver {
        base: format!("http://{address}"),
        state,
    }
}

impl Receiver {
    fn posts(&self) -> Vec<Post> {
        self.state
            .posts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The POSTs to `path`, once there are at least `n`.
    async fn wait_for(&self, path: &str, n: usize) -> Vec<Post> {
        testkit::eventually(PATIENCE, &format!("{n} POSTs to {path}"), || async {
            let posts: Vec<_> = self
                .posts()
                .into_iter()
                .filter(|p| p.path == path)
                .collect();
            (posts.len() >= n).then_some(posts)
        })
        .await
    }
}

/// A mock of `shape` that answers at once and calls webhooks, its jobs finishing `job_ms`
/// after their submit (by their polls when 0).
fn hooked(shape: Shape, job_ms: u64) -> Config {
    Config {
        shape,
        webhooks: true,
        job_ms,
        delay_ms: 0,
        ..Config::default()
    }
}

impl Api {
    /// Submits `body` the shape's way; answers where to poll the job, and its id.
    async fn submit(&self, body: &Value) -> (String, String) {
        let path = match self.shape {
            Shape::Replicate => "/v1/predictions",
            Shape::Google => "/v1/models/veo:predictLongRunning",
            Shape::Azure => "/documentintelligence/documentModels/prebuilt-read:analyze",
            Shape::Stability => "/v2beta/image-to-video",
            Shape::Original => unreachable!("the original shape has no submit"),
            other => unreachable!("{other:?} has tests of its own (providers_*.rs)"),
        };
        let request = self.http.post(format!("{}{path}", self.base));
        let answer = self
            .with_key(request)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("an answer");
        assert!(answer.status().is_success(), "{answer:?}");
        if self.shape == Shape::Azure {
            let location = answer.headers()["operation-location"]
                .to_str()
                .expect("ASCII")
                .to_owned();
            let id = location
                .rsplit('/')
                .next()
                .and_then(|last| last.split('?').next())
                .expect("an id")
                .to_owned();
            return (location, id);
        }
        let answer = json_body(answer).await;
        match self.shape {
            Shape::Google => {
                let name = answer["name"].as_str().expect("a name");
                (format!("{}/v1/{name}", self.base), name.to_owned())
            }
            Shape::Replicate => {
                let id = answer["id"].as_str().expect("an id");
                (format!("{}/v1/predictions/{id}", self.base), id.to_owned())
            }
            _ => {
                let id = answer["id"].as_str().expect("an id");
                let url = format!("{}/v2beta/image-to-video/result/{id}", self.base);
                (url, id.to_owned())
            }
        }
    }

    /// Polls `url`: the status and body.
    async fn poll(&self, url: &str) -> (StatusCode, Value) {
        let answer = self
            .with_key(self.http.get(url))
            .send()
            .await
            .expect("an answer");
        (answer.status(), json_body(answer).await)
    }

    /// `GET /webhooks`.
    async fn webhooks(&self) -> Value {
        let answer = self
            .http
            .get(format!("{}/webhooks", self.base))
            .send()
            .await;
        json_body(answer.expect("an answer")).await
    }

    /// Waits until `/stats` shows each of `expected`'s counts.
    async fn wait_for_stats(&self, expected: &[(&str, u64)]) -> Value {
        testkit::eventually(PATIENCE, &format!("stats {expected:?}"), || async {
            let stats = self.stats().await;
            expected
                .iter()
                .all(|&(name, count)| stats[name] == count)
                .then_some(stats)
        })
        .await
    }
}

/// A port that was free a moment ago: a connection to it is refused.
fn closed_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address")
}

#[tokio::test]
async fn a_job_calls_its_webhook_once_when_its_time_is_up_with_the_succeeded_prediction() {
    let hooks = receiver(&[]).await;
    let api = start(hooked(Shape::Replicate, 100)).await;
    let submitted_at = Instant::now();

    let (poll_url, id) = api
        .submit(&json!({"input": {"prompt": "hi"}, "webhook": format!("{}/x", hooks.base)}))
        .await;
    let posts = hooks.wait_for("/x", 1).await;

    let post = &posts[0];
    let after = post.at - submitted_at;
    assert!(
        after >= Duration::from_millis(100) && after < Duration::from_secs(2),
        "{after:?}"
    );
    assert_eq!(post.headers["content-type"], "application/json");
    assert_eq!(post.headers["webhook-id"], id.as_str());
    assert_eq!(post.body["id"], id.as_str());
    assert_eq!(post.body["status"], "succeeded", "{post:?}");
    assert_eq!(post.body["output"]["input"]["input"]["prompt"], "hi");
    // No poll came before: the clock finished the job.
    api.wait_for_stats(&[("webhooks_sent", 1), ("done", 1), ("calls", 1)])
        .await;

    let (status, polled) = api.poll(&poll_url).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(polled, post.body, "the webhook carries the poll's answer");

    // A job submitted now finishes 100 ms after the poll above: were that poll to call the
    // webhook again, its POST would have come first.
    api.submit(&json!({"webhook": format!("{}/sentinel", hooks.base)}))
        .await;
    hooks.wait_for("/sentinel", 1).await;
    assert_eq!(hooks.wait_for("/x", 1).await.len(), 1);
    api.wait_for_stats(&[("webhooks_sent", 2), ("webhooks_failed", 0), ("done", 2)])
        .await;
}

#[tokio::test]
async fn without_webhooks_on_nothing_is_posted() {
    let hooks = receiver(&[]).await;
    let api = start(Config {
        webhooks: false,
        ..hooked(Shape::Replicate, 100)
    })
    .await;
    let (poll_url, _) = api
        .submit(&json!({"input": {}, "webhook": format!("{}/x", hooks.base)}))
        .await;

    let polled = testkit::eventually(PATIENCE, "the job done", || async {
        let (_, body) = api.poll(&poll_url).await;
        (body["status"] == "succeeded").then_some(body)
    })
    .await;
    // A mock that calls webhooks, its job submitted once the first was done and finishing
    // 100 ms later: any POST of the first mock would have come before this one.
    let sentinel = start(hooked(Shape::Replicate, 100)).await;
    sentinel
        .submit(&json!({"webhook": format!("{}/sentinel", hooks.base)}))
        .await;
    hooks.wait_for("/sentinel", 1).await;

    assert_eq!(polled["status"], "succeeded");
    assert!(hooks.posts().iter().all(|p| p.path == "/sentinel"));
    api.wait_for_stats(&[("webhooks_sent", 0), ("webhooks_failed", 0), ("done", 1)])
        .await;
}

#[tokio::test]
async fn a_webhook_answered_500_twice_is_retried_until_it_is_answered_200() {
    let hooks = receiver(&[500, 500]).await;
    let api = start(hooked(Shape::Replicate, 100)).await;

    let (_, id) = api
        .submit(&json!({"webhook": format!("{}/x", hooks.base)}))
        .await;
    api.wait_for_stats(&[("webhooks_sent", 1)]).await;

    let posts = hooks.posts();
    assert_eq!(posts.len(), 3, "{posts:?}");
    assert!(posts.iter().all(|p| p.body == posts[0].body
        && p.headers["webhook-id"] == id.as_str()
        && p.body["status"] == "succeeded"));
    api.wait_for_stats(&[("webhooks_sent", 1), ("webhooks_failed", 0)])
        .await;

    api.reset().await;
    api.wait_for_stats(&[("webhooks_sent", 0), ("webhooks_failed", 0)])
        .await;
}

#[tokio::test]
async fn get_webhooks_says_when_each_answered_webhook_was_sent() {
    let hooks = receiver(&[500]).await;
    let api = start(hooked(Shape::Replicate, 20)).await;

    let (_, id) = api
        .submit(&json!({"webhook": format!("{}/x", hooks.base)}))
        .await;
    api.wait_for_stats(&[("webhooks_sent", 1)]).await;
    let given_up = format!("http://{}/x", closed_addr());
    api.submit(&json!({ "webhook": given_up })).await;
    api.wait_for_stats(&[("webhooks_sent", 1), ("webhooks_failed", 1)])
        .await;
    let shown = api.webhooks().await;

    let posts = hooks.posts();
    assert_eq!(
        posts.len(),
        2,
        "refused with a 500, then answered: {posts:?}"
    );
    let times = shown["sent_at_ms"].as_object().expect("an object");
    assert_eq!(times.len(), 1, "only the answered delivery: {shown}");
    let sent = times[&id].as_u64().expect("ms since the epoch");
    assert!(
        posts[0].wall_ms < sent && sent <= posts[1].wall_ms,
        "the answered (second) attempt was sent at {sent}: {posts:?}"
    );

    api.reset().await;
    assert_eq!(api.webhooks().await, json!({"sent_at_ms": {}}));
}

#[tokio::test]
async fn a_webhook_refused_with_a_4xx_is_given_up_at_once() {
    let hooks = receiver(&[404]).await;
    let api = start(hooked(Shape::Replicate, 50)).await;

    api.submit(&json!({"webhook": format!("{}/gone", hooks.base)}))
        .await;
    api.wait_for_stats(&[("webhooks_failed", 1)]).await;

    assert_eq!(hooks.posts().len(), 1);
    api.wait_for_stats(&[("webhooks_sent", 0), ("webhooks_failed", 1)])
        .await;
}

#[tokio::test]
async fn a_webhook_nobody_answers_is_given_up_after_its_retries() {
    let closed = closed_addr();
    let api = start(hooked(Shape::Replicate, 10)).await;

    api.submit(&json!({"webhook": format!("http://{closed}/x")}))
        .await;

    api.wait_for_stats(&[("webhooks_failed", 1), ("webhooks_sent", 0)])
        .await;
}

#[tokio::test]
async fn by_polls_the_poll_that_sees_the_job_done_calls_the_webhook() {
    let hooks = receiver(&[]).await;
    let api = start(Config {
        polls_until_done: 2,
        ..hooked(Shape::Google, 0)
    })
    .await;
    let (poll_url, name) = api
        .submit(&json!({"instances": [{"prompt": "hi"}], "webhook": format!("{}/x", hooks.base)}))
        .await;

    let (_, running) = api.poll(&poll_url).await;
    let (_, done) = api.poll(&poll_url).await;
    let posts = hooks.wait_for("/x", 1).await;

    assert_eq!(running.get("done"), None, "{running}");
    assert_eq!(done["done"], true, "{done}");
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].body, done);
    assert_eq!(posts[0].body["name"], name.as_str());
    api.wait_for_stats(&[("webhooks_sent", 1), ("done", 1)])
        .await;
}

#[tokio::test]
async fn every_real_api_shape_posts_what_its_poll_answers_once_done_or_failed() {
    let hooks = receiver(&[]).await;
    for shape in [
        Shape::Replicate,
        Shape::Google,
        Shape::Azure,
        Shape::Stability,
    ] {
        let api = start(hooked(shape, 20)).await;
        for (outcome, extra) in [("done", json!(null)), ("failed", json!("fail: no GPU"))] {
            let path = format!("/{shape:?}/{outcome}");
            let body = json!({"webhook": format!("{}{path}", hooks.base), "input": extra});

            let (poll_url, _) = api.submit(&body).await;
            let posts = hooks.wait_for(&path, 1).await;
            let (status, polled) = api.poll(&poll_url).await;

            assert_eq!(posts.len(), 1, "{path}");
            assert_eq!(posts[0].body, polled, "{path}");
            let failed = polled.to_string().contains("no GPU");
            assert_eq!(failed, outcome == "failed", "{path}: {status} {polled}");
        }
        api.wait_for_stats(&[("webhooks_sent", 2), ("done", 2)])
            .await;
    }
}
