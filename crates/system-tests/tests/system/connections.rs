//! The producer binary under a flood of hostile connections: more idle and dripping
//! connections than its cap, and more than the 20,000 open files that took the old producer
//! down, while a normal client enqueues and reads and long-polls wait.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use testkit::{RedisServer, eventually, get_json, get_text};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::stack::{Stack, post_task};

/// Connections the flood opens: more than the 20,000 open files of the old producer.
const FLOOD: usize = 21_000;
const MAX_CONNECTIONS: u64 = 2_000;
const LONG_POLLS: usize = 10;

/// What the flood did.
#[derive(Default)]
struct Flooded {
    connected: AtomicU64,
    /// Connects that failed or timed out (the listen queue full while the producer made room).
    not_connected: AtomicU64,
    /// Connections the producer closed.
    closed: AtomicU64,
    /// Connections still open after [`HOSTILE_FOR`]: ones the kernel completed while the
    /// listen queue was full and then dropped on its side, never accepted (Linux leaves the
    /// client's half open); the producer closes what it accepts within its timeouts.
    unanswered: AtomicU64,
}

/// How long a hostile connection waits for the producer to close it.
const HOSTILE_FOR: Duration = Duration::from_secs(10);

/// One hostile connection: connects, then sends nothing (`drip` false) or one byte of a request
/// head every 300 ms, until the producer closes it.
async fn hostile(addr: SocketAddr, drip: bool, flooded: Arc<Flooded>) {
    let Ok(Ok(mut stream)) =
        tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr)).await
    else {
        flooded.not_connected.fetch_add(1, Ordering::Relaxed);
        return;
    };
    flooded.connected.fetch_add(1, Ordering::Relaxed);
    let head = b"GET /healthz HTTP/1.1\r\nX-Slow: "
        .iter()
        .chain(std::iter::repeat(&b'a'));
    let mut buf = [0; 64];
    let held = async {
        for byte in head {
            tokio::select! {
                read = stream.read(&mut buf) => if !matches!(read, Ok(n) if n > 0) { return },
                () = tokio::time::sleep(Duration::from_millis(300)), if drip => {
                    if stream.write_all(&[*byte]).await.is_err() { return }
                }
            }
        }
    };
    let outcome = match tokio::time::timeout(HOSTILE_FOR, held).await {
        Ok(()) => &flooded.closed,
        Err(_) => &flooded.unanswered,
    };
    outcome.fetch_add(1, Ordering::Relaxed);
}

/// Raises this process' open-file limit, so that it can hold the flood's connections: to the
/// hard limit, and beyond it when allowed (as root). Answers the soft limit now.
fn raise_open_files() -> u64 {
    let _ = rlimit::Resource::NOFILE.set(65_536, 65_536);
    rlimit::increase_nofile_limit(u64::MAX).expect("the open-file limit")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_idle_and_dripping_connections_beyond_the_cap_and_the_old_file_limit_does_not_stop_service()
 {
    let files = raise_open_files();
    let max = MAX_CONNECTIONS.to_string();
    let mut stack = Stack::start_with_producer_env(
        RedisServer::start(),
        &[],
        &[
            ("MAX_CONNECTIONS", &max),
            ("HEADER_READ_TIMEOUT_MS", "1000"),
            ("KEEP_ALIVE_TIMEOUT_MS", "1500"),
        ],
    );
    let producer = stack.producer();
    let long_polls: Vec<_> = (0..LONG_POLLS)
        .map(|i| {
            let client = stack.client.clone();
            tokio::spawn(async move {
                let url = format!("http://{producer}/?task-name=held-{i}&wait=60");
                get_json(&client, url).await
            })
        })
        .collect();
    eventually(Duration::from_secs(5), "the long-polls to wait", || async {
        let (_, page) = get_text(&stack.client, format!("http://{producer}/metrics")).await;
        page.contains(&format!("taskq_waiting_requests {LONG_POLLS}"))
            .then_some(())
    })
    .await;

    // Act: the flood, as many connections in flight as this process can hold.
    let flooded = Arc::new(Flooded::default());
    let in_flight = Arc::new(tokio::sync::Semaphore::new(
        usize::try_from(files.saturating_sub(1_000))
            .unwrap()
            .min(FLOOD),
    ));
    let flood_started = Instant::now();
    // The flood runs on a runtime of its own, so that its 21,000 tasks do not hold back the
    // normal client's: a client slow to send the request it connected for looks like the flood.
    let flooding = {
        let flooded = Arc::clone(&flooded);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        std::thread::spawn(move || {
            runtime.block_on(async move {
                let mut hostiles = JoinSet::new();
                for i in 0..FLOOD {
                    let permit = Arc::clone(&in_flight).acquire_owned().await.unwrap();
                    let flooded = Arc::clone(&flooded);
                    hostiles.spawn(async move {
                        hostile(producer, i % 2 == 1, flooded).await;
                        drop(permit);
                    });
                    while let Some(ended) = hostiles.try_join_next() {
                        ended.unwrap();
                    }
                }
                while let Some(ended) = hostiles.join_next().await {
                    ended.unwrap();
                }
            })
        })
    };
    // Meanwhile a normal client enqueues and reads, on kept-alive and on new connections.
    let normal = testkit::http_client();
    let mut latencies = Vec::new();
    let mut i = 0;
    while !(flooding.is_finished() && i >= 50) {
        let name = format!("normal-{i}");
        let fresh = testkit::http_client();
        let client = if i % 2 == 0 { &normal } else { &fresh };
        let started = Instant::now();
        let (status, _) = post_task(client, producer, &json!({"name": name})).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{name}");
        let (status, view) = get_json(client, format!("http://{producer}/tasks/{name}")).await;
        assert_eq!(status, StatusCode::OK, "{name}");
        assert_eq!(view["state"], "queued");
        latencies.push(started.elapsed());
        i += 1;
    }
    flooding.join().unwrap();
    let flood_took = flood_started.elapsed();

    // Assert: every normal request succeeded (above), in good time.
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    let (p50, p99, most) = (at(0.5), at(0.99), *latencies.last().unwrap());
    let page = get_text(&stack.client, format!("http://{producer}/metrics"))
        .await
        .1;
    let series = |name: &str| {
        page.lines()
            .find_map(|line| {
                line.strip_prefix(name)?
                    .strip_prefix(' ')?
                    .parse::<u64>()
                    .ok()
            })
            .unwrap_or_else(|| panic!("{name} in\n{page}"))
    };
    let closed = |reason: &str| {
        series(&format!(
            "taskq_http_connections_closed_total{{reason=\"{reason}\"}}"
        ))
    };
    println!(
        "FIGURES flood: {FLOOD} connections ({} connected, {} not; {} closed by the producer, {} never answered) against MAX_CONNECTIONS={MAX_CONNECTIONS} in {flood_took:.1?}, this process' open-file limit {files}; \
         normal client: {} enqueue+read pairs, p50 {p50:.1?}, p99 {p99:.1?}, max {most:.1?}; \
         closed by the producer: {} header timeout, {} keep-alive timeout, {} evicted; accept waited {} times",
        flooded.connected.load(Ordering::Relaxed),
        flooded.not_connected.load(Ordering::Relaxed),
        flooded.closed.load(Ordering::Relaxed),
        flooded.unanswered.load(Ordering::Relaxed),
        latencies.len(),
        closed("header_timeout"),
        closed("keep_alive_timeout"),
        closed("evicted"),
        series("taskq_http_accept_full_total"),
    );
    assert!(
        flooded.connected.load(Ordering::Relaxed) > 20_000,
        "the flood passed the old open-file limit"
    );
    assert!(p99 < Duration::from_secs(2), "p99 {p99:?}");
    assert!(most < Duration::from_secs(5), "max {most:?}");
    assert!(closed("evicted") > 0 && closed("header_timeout") > 0);

    // The idle connections left are closed after the timeout; the long-polls were never cut.
    eventually(
        Duration::from_secs(5),
        "the flood's connections closed",
        || async {
            let page = get_text(&stack.client, format!("http://{producer}/metrics"))
                .await
                .1;
            let open: u64 = page
                .lines()
                .find_map(|line| line.strip_prefix("taskq_http_connections ")?.parse().ok())?;
            (open <= LONG_POLLS as u64 + 2).then_some(())
        },
    )
    .await;
    for i in 0..LONG_POLLS {
        let url = format!("http://{producer}/tasks/held-{i}");
        let cancelled = stack.client.delete(url).send().await.unwrap();
        assert_eq!(cancelled.status(), StatusCode::OK);
    }
    for long_poll in long_polls {
        let (status, view) = long_poll.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{view}");
        assert_eq!(
            view["state"], "cancelled",
            "answered at its task's end: {view}"
        );
    }
    assert!(stack.services.producer.running(), "no restart needed");
}
