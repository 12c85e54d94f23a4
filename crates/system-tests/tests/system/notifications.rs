//! Results pushed to clients, on the real binaries: callbacks signed the Standard Webhooks way
//! and checked here by a verifier of our own (ring's HMAC, not taskq's), retried through a
//! receiver that fails then recovers and through restarts of the consumer and the producer;
//! callbacks to private addresses refused; and provider webhooks that finish a task long before
//! its next poll.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use testkit::{RedisServer, eventually, free_addr, get_text, replicate_profile};

use crate::real_apis::{KEY_VAR, SECRET, TempFile};
use crate::stack::{Stack, post_task};

/// The callback secret: `whsec_` and the base64 of 32 bytes.
const CALLBACK_KEY: &[u8; 32] = b"taskq-system-test-callback-key!!";

fn callback_secret() -> String {
    format!("whsec_{}", STANDARD.encode(CALLBACK_KEY))
}

/// One POST the receiver got.
#[derive(Debug, Clone)]
struct Received {
    id: String,
    timestamp: i64,
    /// Whether `webhook-signature` holds a `v1` signature that the receiver's own HMAC matches.
    verified: bool,
    body: Value,
    /// The query of the URL called (the callback URL's own, kept).
    query: Option<String>,
    /// What the receiver answered.
    accepted: bool,
}

/// A client's callback receiver: verifies each POST's signature with ring's HMAC-SHA256 over
/// `id.timestamp.body`, keeps what came, and answers 500 until told to accept.
#[derive(Default)]
struct Receiver {
    accepting: AtomicBool,
    received: Mutex<Vec<Received>>,
}

impl Receiver {
    /// Serves a receiver on a free port of 127.0.0.1.
    async fn start() -> (Arc<Self>, SocketAddr) {
        let receiver = Arc::new(Self::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(Arc::clone(&receiver));
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (receiver, addr)
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

async fn receive(
    State(receiver): State<Arc<Receiver>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (id, timestamp) = (header("webhook-id"), header("webhook-timestamp"));
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, CALLBACK_KEY);
    let signed = [id.as_bytes(), b".", timestamp.as_bytes(), b".", &body].concat();
    let expected = STANDARD.encode(ring::hmac::sign(&key, &signed).as_ref());
    let verified = header("webhook-signature")
        .split(' ')
        .any(|signature| signature == format!("v1,{expected}"));
    let accepted = receiver.accepting.load(Ordering::SeqCst);
    receiver.received.lock().unwrap().push(Received {
        id,
        timestamp: timestamp.parse().unwrap_or_default(),
        verified,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        query: uri.query().map(str::to_owned),
        accepted,
    });
    if accepted {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    }
}

/// `POST /tasks` of `name` with a callback to `url`, on the producer at `producer`.
async fn submit_with_callback(
    client: &reqwest::Client,
    producer: SocketAddr,
    name: &str,
    url: &str,
) -> (StatusCode, Value) {
    let body = json!({"name": name, "payload": {"n": name}, "callback_url": url});
    post_task(client, producer, &body).await
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .try_into()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_are_signed_retried_until_accepted_and_survive_restarts() {
    let (receiver, receiver_addr) = Receiver::start().await;
    let allow_private = [("CALLBACK_ALLOW_PRIVATE", "1")];
    let mut stack = Stack::start_with_producer_env(
        RedisServer::start(),
        &[("MOCK_DELAY_MS", "10")],
        &allow_private,
    );
    let secret = callback_secret();
    let consumer_env = [
        ("CALLBACK_SECRET", secret.as_str()),
        ("CALLBACK_ALLOW_PRIVATE", "1"),
        ("CALLBACK_MAX_ATTEMPTS", "100"),
        ("RETRY_BASE_MS", "50"),
        ("RETRY_MAX_MS", "200"),
    ];
    let mut consumer = stack.consumer(&consumer_env);
    let names: Vec<String> = (0..20).map(|i| format!("cb {i}")).collect();
    for name in &names {
        let url = format!("http://{receiver_addr}/hook?for={}", name.replace(' ', "-"));
        let (status, view) =
            submit_with_callback(&stack.client, stack.producer(), name, &url).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{view}");
        assert_eq!(view["callback"]["state"], "waiting", "{view}");
    }

    // The receiver refuses: every task ends, and its callback is retried, its failures shown.
    eventually(
        Duration::from_secs(20),
        "every callback refused once",
        || {
            let (received, names) = (receiver.received(), &names);
            async move {
                names
                    .iter()
                    .all(|name| received.iter().any(|r| r.body["task"] == name.as_str()))
                    .then_some(())
            }
        },
    )
    .await;
    let (_, view) = stack.task(&names[0]).await;
    assert_eq!(view["state"], "done", "{view}");
    assert_eq!(view["callback"]["state"], "pending", "{view}");
    assert!(
        view["callback"]["attempts"].as_u64().unwrap() >= 1,
        "{view}"
    );
    let error = view["callback"]["last_error"].as_str().unwrap();
    assert!(error.contains("answered 500"), "{error}");
    assert!(
        !error.contains("for=cb"),
        "errors name the URL without its query: {error}"
    );

    // Both binaries restart while the callbacks are pending; then the receiver recovers.
    consumer.kill();
    stack.restart_producer(&allow_private);
    let _consumer = stack.consumer(&consumer_env);
    receiver.accepting.store(true, Ordering::SeqCst);
    for name in &names {
        let view = eventually(
            Duration::from_secs(20),
            &format!("{name}'s callback delivered"),
            || async {
                let (_, view) = stack.task(name).await;
                (view["callback"]["state"] == "delivered").then_some(view)
            },
        )
        .await;
        assert!(
            view["callback"]["attempts"].as_u64().unwrap() >= 1,
            "{view}"
        );
    }

    let received = receiver.received();
    let now = unix_now();
    for name in &names {
        let mine: Vec<&Received> = received
            .iter()
            .filter(|r| r.body["task"] == name.as_str())
            .collect();
        assert!(mine.len() >= 2, "{name}: refused, then accepted: {mine:?}");
        assert!(mine.iter().any(|r| r.accepted), "{name}");
        for delivery in &mine {
            assert!(
                delivery.verified,
                "{name}: the signature verifies: {delivery:?}"
            );
            assert_eq!(delivery.id, mine[0].id, "one webhook-id for every attempt");
            assert!((now - delivery.timestamp).abs() < 300, "{delivery:?}");
            assert_eq!(
                delivery.query.as_deref(),
                Some(format!("for={}", name.replace(' ', "-")).as_str())
            );
            let view = &delivery.body;
            assert_eq!(view["state"], "done", "{view}");
            assert!(
                view.get("callback").is_none(),
                "the body is the task's view without its callback's state: {view}"
            );
            assert_eq!(view["payload"], json!({"n": name}), "{view}");
        }
    }
    let ids: std::collections::HashSet<&str> = received.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), names.len(), "one webhook-id per task");

    let (_, metrics) = get_text(
        &stack.client,
        format!("http://{}/metrics", stack.producer()),
    )
    .await;
    let delivered = format!(
        "taskq_callback_deliveries_total{{queue=\"{}\",outcome=\"delivered\"}} {}",
        stack.queue_name,
        names.len()
    );
    assert!(metrics.lines().any(|l| l == delivered), "{metrics}");
    let pending = format!(
        "taskq_callbacks{{queue=\"{}\",state=\"pending\"}} 0",
        stack.queue_name
    );
    assert!(metrics.lines().any(|l| l == pending), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_to_private_addresses_are_refused_at_submit_and_at_delivery() {
    let (receiver, receiver_addr) = Receiver::start().await;
    // This stack's producer lets private callback URLs in; its consumer does not send them.
    let stack = Stack::start_with_producer_env(
        RedisServer::start(),
        &[("MOCK_DELAY_MS", "10")],
        &[("CALLBACK_ALLOW_PRIVATE", "1")],
    );
    let strict = free_addr();
    let _strict = stack.another_producer(strict, &[]);

    for url in [
        format!("http://{receiver_addr}/hook"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://[::1]:9/".to_owned(),
        "http://10.0.0.7/hook".to_owned(),
        "ftp://example.com/hook".to_owned(),
        "http://metadata.google.internal/computeMetadata/v1/".to_owned(),
        "http://metadata/computeMetadata/v1/".to_owned(),
        "http://instance-data/latest/meta-data/".to_owned(),
    ] {
        let (status, body) = submit_with_callback(&stack.client, strict, "refused", &url).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{url}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains("callback_url"),
            "{body}"
        );
    }
    let (status, _) = stack.task("refused").await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a refused submit writes nothing"
    );

    // A name of loopback passes a producer that allows it, and is refused by the consumer, which
    // does not: nothing reaches the receiver.
    let _consumer = stack.consumer(&[("RETRY_BASE_MS", "50")]);
    let url = format!("http://localhost:{}/hook", receiver_addr.port());
    let (status, view) = submit_with_callback(&stack.client, stack.producer(), "local", &url).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{view}");
    let view = eventually(Duration::from_secs(20), "the callback to fail", || async {
        let (_, view) = stack.task("local").await;
        (view["callback"]["state"] == "failed").then_some(view)
    })
    .await;
    assert_eq!(view["state"], "done", "{view}");
    assert_eq!(
        view["callback"]["attempts"], 1,
        "refused for good at once: {view}"
    );
    let error = view["callback"]["last_error"].as_str().unwrap();
    assert!(error.contains("names a host inside the network"), "{error}");
    assert!(receiver.received().is_empty(), "nothing was sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_webhook_finishes_a_task_long_before_its_next_poll() {
    let hook_secret = "hook-secret-for-the-system-test";
    let stack = Stack::start_with_producer_env(
        RedisServer::start(),
        &[
            ("MOCK_SHAPE", "replicate"),
            ("MOCK_API_KEY", SECRET),
            ("MOCK_DELAY_MS", "20"),
            ("MOCK_WEBHOOKS", "1"),
            ("MOCK_JOB_MS", "1500"),
        ],
        &[("HOOK_SECRET", hook_secret)],
    );
    let mut profile = replicate_profile(&stack.services.mock.base(), KEY_VAR);
    profile["submit"]["body"]["webhook"] = json!("{{webhook_url}}");
    let file = TempFile::write(
        &format!("{}.json", stack.queue_name),
        &json!({ &stack.queue_name: {"poll_interval_ms": 60_000, "api": profile} }).to_string(),
    );
    let public_url = format!("http://{}", stack.producer());
    let _consumer = stack.consumer(&[
        ("QUEUES_FILE", &file.path()),
        (KEY_VAR, SECRET),
        ("PUBLIC_URL", &public_url),
        ("HOOK_SECRET", hook_secret),
    ]);
    let names: Vec<String> = (0..5).map(|i| format!("hooked {i}")).collect();
    for name in &names {
        let (status, view) = stack.submit(name, &json!({"prompt": name})).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{view}");
    }

    // Forged and unsigned hooks for a live task are refused and change nothing: the task is
    // polled once after its submit, when the real webhook comes.
    let hook = |sig: &str| {
        let mut url = reqwest::Url::parse(&format!("{public_url}/hooks/")).unwrap();
        url.path_segments_mut()
            .unwrap()
            .pop()
            .push(&stack.queue_name)
            .push(&names[0]);
        if !sig.is_empty() {
            url.query_pairs_mut().append_pair("sig", sig);
        }
        url
    };
    for sig in ["", "forged", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"] {
        let response = stack
            .client
            .post(hook(sig))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "sig {sig:?}");
    }

    for name in &names {
        let view = stack.wait_final(name, Duration::from_secs(20)).await;
        assert_eq!(view["state"], "done", "{view}");
        let took = view["done_at_ms"].as_u64().unwrap() - view["created_at_ms"].as_u64().unwrap();
        assert!(
            (1500..10_000).contains(&took),
            "{name} done {took} ms after its enqueue: at its job's end, long before the \
             60 s poll: {view}"
        );
        assert_eq!(
            view["claims"], 2,
            "the submit, then one poll after the webhook: {view}"
        );
    }
    let stats = stack.mock_stats().await;
    assert_eq!(stats["webhooks_sent"], names.len(), "{stats}");
    assert_eq!(stats["webhooks_failed"], 0, "{stats}");
}
