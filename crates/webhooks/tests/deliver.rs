//! Deliveries over real sockets: receivers on 127.0.0.1, port 0. The signature is checked the
//! way a client would, with ring and the `whsec_` secret, not with this crate's `sign`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Response, header};
use axum::routing::any;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use webhooks::{CallbackSecret, CallbackSettings, Deliverer, DeliveryError, Destination};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const BODY: &[u8] = br#"{"name":"report-42","state":"done","result":{"rows":3}}"#;

/// A request a receiver got.
#[derive(Debug, Clone)]
struct Seen {
    headers: HeaderMap,
    body: Bytes,
}

/// A receiver answering every request with `status` (and `location`, when given), recording
/// what it got.
struct Receiver {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Receiver {
    async fn start(status: u16, location: Option<String>) -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&seen);
        let app = axum::Router::new().fallback(any(move |headers: HeaderMap, body: Bytes| {
            let record = Arc::clone(&record);
            let location = location.clone();
            async move {
                record.lock().unwrap().push(Seen { headers, body });
                let mut answer = Response::builder().status(status);
                if let Some(to) = location {
                    answer = answer.header(header::LOCATION, to);
                }
                answer
                    .body(Body::from(format!("receiver says {status}")))
                    .unwrap()
            }
        }));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { addr, seen }
    }

    fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{path_and_query}", self.addr)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn deliverer(secret: Option<&str>, allow_private: bool, timeout: Duration) -> Deliverer {
    Deliverer::new(&CallbackSettings {
        callback_secret: secret.map(|s| s.parse::<CallbackSecret>().unwrap()),
        callback_timeout_ms: timeout.as_millis() as u64,
        callback_allow_private: allow_private,
        ..CallbackSettings::default()
    })
    .unwrap()
}

/// A destination past the submit-time check (as if the producer allowed private addresses),
/// so the deliverer's own checks are what is tested.
fn destination(url: &str) -> Destination {
    Destination::parse(url, true).unwrap()
}

/// Whether `headers` carry a `v1` signature of `body` made with `secret`, computed here from
/// the specification: HMAC-SHA256, keyed with the base64-decoded part after `whsec_`, over
/// `{webhook-id}.{webhook-timestamp}.{body}`.
fn independently_verified(secret: &str, headers: &HeaderMap, body: &[u8]) -> bool {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
    let id = headers["webhook-id"].to_str().unwrap();
    let timestamp = headers["webhook-timestamp"].to_str().unwrap();
    let mut content = format!("{id}.{timestamp}.").into_bytes();
    content.extend_from_slice(body);
    let expected = format!(
        "v1,{}",
        STANDARD.encode(ring::hmac::sign(&key, &content).as_ref())
    );
    headers["webhook-signature"]
        .to_str()
        .unwrap()
        .split(' ')
        .any(|signature| signature == expected)
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test]
async fn a_signed_delivery_is_verified_by_the_receiver() {
    // Arrange
    let receiver = Receiver::start(200, None).await;
    let deliverer = deliverer(Some(SECRET), true, Duration::from_secs(5));
    let id = webhooks::message_id(&[b"example", b"report-42"]);

    // Act
    let delivered = deliverer
        .deliver(
            &destination(&receiver.url("/hooks/taskq?token=t")),
            &id,
            BODY,
        )
        .await
        .unwrap();

    // Assert
    assert_eq!(delivered.status, 200);
    let seen = receiver.seen();
    assert_eq!(seen.len(), 1);
    let Seen { headers, body } = &seen[0];
    assert_eq!(&body[..], BODY);
    assert!(independently_verified(SECRET, headers, body), "{headers:?}");
    assert_eq!(headers["webhook-id"], id.as_str());
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    assert_eq!(
        headers[header::USER_AGENT],
        format!("taskq-callback/{}", env!("CARGO_PKG_VERSION")).as_str()
    );
    let timestamp: i64 = headers["webhook-timestamp"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((unix_now() - timestamp).abs() <= 5, "{timestamp}");
    // The crate's own verify agrees, and refuses another body.
    let secret: CallbackSecret = SECRET.parse().unwrap();
    let signatures = headers["webhook-signature"].to_str().unwrap();
    assert!(secret.verify(&id, timestamp, body, signatures));
    assert!(!secret.verify(&id, timestamp, b"{}", signatures));
}

#[tokio::test]
async fn an_unsigned_delivery_carries_its_id_and_no_signature() {
    let receiver = Receiver::start(204, None).await;
    let deliverer = deliverer(None, true, Duration::from_secs(5));

    let delivered = deliverer
        .deliver(&destination(&receiver.url("/")), "msg_1", BODY)
        .await
        .unwrap();

    assert_eq!(delivered.status, 204);
    let seen = receiver.seen();
    assert_eq!(seen[0].headers["webhook-id"], "msg_1");
    assert!(seen[0].headers.get("webhook-timestamp").is_some());
    assert!(seen[0].headers.get("webhook-signature").is_none());
}

#[tokio::test]
async fn a_delivery_to_loopback_is_refused_unless_private_is_allowed() {
    // Arrange
    let receiver = Receiver::start(200, None).await;
    let url = receiver.url("/hook");
    assert!(
        Destination::parse(&url, false).is_err(),
        "refused at submit"
    );
    let dest = destination(&url);

    // Act
    let refused = deliverer(Some(SECRET), false, Duration::from_secs(5))
        .deliver(&dest, "msg_1", BODY)
        .await
        .unwrap_err();

    // Assert
    assert!(
        matches!(refused, DeliveryError::Forbidden { .. }),
        "{refused}"
    );
    assert!(refused.is_permanent());
    assert!(receiver.seen().is_empty(), "nothing reached the receiver");

    let allowed = deliverer(Some(SECRET), true, Duration::from_secs(5))
        .deliver(&dest, "msg_1", BODY)
        .await
        .unwrap();
    assert_eq!(allowed.status, 200);
    assert_eq!(receiver.seen().len(), 1);
}

#[tokio::test]
async fn a_name_resolving_to_loopback_is_refused_and_never_reached() {
    let receiver = Receiver::start(200, None).await;
    let dest = destination(&format!("http://localhost:{}/hook", receiver.addr.port()));

    let refused = deliverer(Some(SECRET), false, Duration::from_secs(5))
        .deliver(&dest, "msg_1", BODY)
        .await
        .unwrap_err();

    match &refused {
        DeliveryError::Forbidden { reason, .. } => {
            assert!(reason.contains("localhost resolves to"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    assert!(refused.is_permanent());
    assert!(receiver.seen().is_empty());
}

#[tokio::test]
async fn an_answer_of_500_is_a_failure_worth_retrying_and_names_no_query() {
    let receiver = Receiver::start(500, None).await;
    let dest = destination(&receiver.url("/hook?token=s3cret"));

    let failed = deliverer(Some(SECRET), true, Duration::from_secs(5))
        .deliver(&dest, "msg_1", BODY)
        .await
        .unwrap_err();

    match &failed {
        DeliveryError::Status {
            status,
            body_snippet,
            destination,
        } => {
            assert_eq!(*status, 500);
            assert_eq!(body_snippet, "receiver says 500");
            assert_eq!(destination, &format!("http://{}/hook", receiver.addr));
        }
        other => panic!("{other:?}"),
    }
    assert!(!failed.is_permanent());
    for shown in [failed.to_string(), format!("{failed:?}")] {
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(!shown.contains("whsec_"), "{shown}");
    }
    assert_eq!(receiver.seen().len(), 1);
}

#[tokio::test]
async fn an_answer_of_410_gone_is_permanent() {
    let receiver = Receiver::start(410, None).await;

    let failed = deliverer(Some(SECRET), true, Duration::from_secs(5))
        .deliver(&destination(&receiver.url("/hook")), "msg_1", BODY)
        .await
        .unwrap_err();

    assert!(
        matches!(failed, DeliveryError::Status { status: 410, .. }),
        "{failed:?}"
    );
    assert!(failed.is_permanent());
}

#[tokio::test]
async fn a_redirect_is_a_failed_delivery_and_its_target_gets_nothing() {
    // Arrange
    let target = Receiver::start(200, None).await;
    let redirecting = Receiver::start(302, Some(target.url("/stolen"))).await;

    // Act
    let failed = deliverer(Some(SECRET), true, Duration::from_secs(5))
        .deliver(&destination(&redirecting.url("/hook")), "msg_1", BODY)
        .await
        .unwrap_err();

    // Assert
    assert!(
        matches!(failed, DeliveryError::Status { status: 302, .. }),
        "{failed:?}"
    );
    assert!(!failed.is_permanent());
    assert_eq!(redirecting.seen().len(), 1);
    assert!(target.seen().is_empty(), "the redirect was not followed");
}

#[tokio::test]
async fn a_receiver_that_never_answers_times_out_within_the_deadline() {
    // Arrange: accepts connections, holds them, never reads nor answers.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let timeout = Duration::from_millis(300);
    let deliverer = deliverer(Some(SECRET), true, timeout);
    let started = Instant::now();

    // Act
    let failed = tokio::time::timeout(
        Duration::from_secs(10),
        deliverer.deliver(&destination(&format!("http://{addr}/hook")), "msg_1", BODY),
    )
    .await
    .expect("the deliverer's own deadline ends the call")
    .unwrap_err();

    // Assert
    let took = started.elapsed();
    assert!(
        matches!(
            failed,
            DeliveryError::Timeout {
                timeout_ms: 300,
                ..
            }
        ),
        "{failed:?}"
    );
    assert!(!failed.is_permanent());
    assert!(took >= timeout, "{took:?}");
    assert!(took < timeout + Duration::from_secs(2), "{took:?}");
}

#[tokio::test]
async fn a_huge_answer_is_cut_at_4_kib_and_the_call_returns_promptly() {
    // Arrange: answers 500 with a 100 MiB body, written until the client hangs up.
    const HUGE: u64 = 100 * 1024 * 1024;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = vec![0u8; 64 * 1024];
        let _ = socket.read(&mut request).await.unwrap();
        let head = format!(
            "HTTP/1.1 500 Internal Server Error\r\ncontent-type: text/plain\r\ncontent-length: {HUGE}\r\n\r\n"
        );
        socket.write_all(head.as_bytes()).await.unwrap();
        let chunk = vec![b'x'; 64 * 1024];
        let mut written = 0u64;
        while written < HUGE {
            if socket.write_all(&chunk).await.is_err() {
                break;
            }
            written += chunk.len() as u64;
        }
        written
    });
    // A deadline far longer than the call may take, so it is not what ends the call.
    let deliverer = deliverer(Some(SECRET), true, Duration::from_secs(60));
    let started = Instant::now();

    // Act
    let failed = deliverer
        .deliver(&destination(&format!("http://{addr}/hook")), "msg_1", BODY)
        .await
        .unwrap_err();

    // Assert
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    match &failed {
        DeliveryError::Status {
            status,
            body_snippet,
            ..
        } => {
            assert_eq!(*status, 500);
            assert!(!body_snippet.is_empty());
            assert!(
                body_snippet.len() <= webhooks::MAX_SNIPPET_BYTES,
                "{}",
                body_snippet.len()
            );
        }
        other => panic!("{other:?}"),
    }
    let written = tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the server sees the connection closed")
        .unwrap();
    assert!(written < HUGE, "the client hung up after {written} bytes");
}

#[tokio::test]
async fn a_refused_connection_is_a_connect_error_that_is_retried() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);

    let failed = deliverer(Some(SECRET), true, Duration::from_secs(5))
        .deliver(
            &destination(&format!("http://{addr}/hook?token=s3cret")),
            "msg_1",
            BODY,
        )
        .await
        .unwrap_err();

    assert!(
        matches!(failed, DeliveryError::Connect { .. }),
        "{failed:?}"
    );
    assert!(!failed.is_permanent());
    assert!(!failed.to_string().contains("s3cret"), "{failed}");
}

#[tokio::test]
async fn an_id_with_a_dot_is_refused_before_sending() {
    let receiver = Receiver::start(200, None).await;

    let failed = deliverer(Some(SECRET), true, Duration::from_secs(5))
        .deliver(&destination(&receiver.url("/")), "task.1", BODY)
        .await
        .unwrap_err();

    assert!(
        matches!(failed, DeliveryError::InvalidId { .. }),
        "{failed:?}"
    );
    assert!(failed.is_permanent());
    assert!(receiver.seen().is_empty());
}
