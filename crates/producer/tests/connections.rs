//! The producer's connections under clients that send nothing, drip their requests, sit idle or
//! open more connections than the cap, over real sockets against a real redis-server.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use support::{get, metrics, spawn_producer, spawn_producer_with};
use taskq::TaskName;
use testkit::{RedisServer, eventually};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TIMEOUTS: &[&str] = &[
    "--header-read-timeout-ms",
    "300",
    "--keep-alive-timeout-ms",
    "700",
];

/// Reads until the producer closes the connection; answers what it sent and when it closed.
async fn until_closed(stream: &mut TcpStream) -> (String, Instant) {
    let mut seen = Vec::new();
    let mut buf = [0; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return (String::from_utf8_lossy(&seen).into(), Instant::now()),
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
            Err(_) => panic!("still open after 10 s: {}", String::from_utf8_lossy(&seen)),
        }
    }
}

/// The value of the sample `series` (with its labels) on `/metrics`.
async fn sample(addr: SocketAddr, series: &str) -> u64 {
    let page = metrics(addr).await;
    page.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{series} in\n{page}"))
}

#[tokio::test]
async fn silent_dripping_and_stalled_clients_are_cut_off_at_the_header_timeout() {
    let redis = RedisServer::start();
    let (addr, _stop, _) = spawn_producer_with(&redis, TIMEOUTS).await;
    let started = Instant::now();

    let mut silent = TcpStream::connect(addr).await.unwrap();
    let mut dripping = TcpStream::connect(addr).await.unwrap();
    let drip = tokio::spawn(async move {
        for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
            .iter()
            .cycle()
            .take(60)
        {
            if dripping.write_all(&[*byte]).await.is_err() {
                return Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("a request dripped for 3 s was never cut off");
    });
    let mut stalled = TcpStream::connect(addr).await.unwrap();
    stalled
        .write_all(b"POST /tasks HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"name\"")
        .await
        .unwrap();

    let (said, silent_closed) = until_closed(&mut silent).await;
    let drip_cut = drip.await.unwrap();
    let (_, stalled_closed) = until_closed(&mut stalled).await;

    assert_eq!(said, "", "nothing asked, nothing answered");
    for (who, at) in [
        ("silent", silent_closed),
        ("dripping", drip_cut),
        ("stalled", stalled_closed),
    ] {
        let after = at - started;
        assert!(
            after >= Duration::from_millis(250) && after < Duration::from_secs(2),
            "{who}: {after:?}"
        );
    }
    assert!(
        sample(
            addr,
            "taskq_http_connections_closed_total{reason=\"header_timeout\"}"
        )
        .await
            >= 3
    );
}

#[tokio::test]
async fn an_idle_connection_closes_at_the_keep_alive_timeout_and_a_long_poll_is_never_cut() {
    let redis = RedisServer::start();
    let (addr, _stop, _) = spawn_producer_with(&redis, TIMEOUTS).await;
    let mut kept = TcpStream::connect(addr).await.unwrap();

    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0; 12];
    kept.read_exact(&mut first).await.unwrap();
    let answered = Instant::now();
    let long_poll = Instant::now();
    let (status, _, view) = get(addr, "/?task-name=held&wait=1.5").await;
    let (_, closed) = until_closed(&mut kept).await;

    assert_eq!(&first, b"HTTP/1.1 200");
    let idle = closed - answered;
    assert!(
        idle >= Duration::from_millis(600) && idle < Duration::from_secs(3),
        "{idle:?}"
    );
    assert_eq!(status, StatusCode::ACCEPTED, "{view}");
    assert!(
        long_poll.elapsed() >= Duration::from_millis(1400),
        "held its whole wait"
    );
    assert!(
        sample(
            addr,
            "taskq_http_connections_closed_total{reason=\"keep_alive_timeout\"}"
        )
        .await
            >= 1
    );
}

#[tokio::test]
async fn at_the_cap_new_clients_get_in_and_idle_connections_make_room() {
    let redis = RedisServer::start();
    let (addr, _stop, _) = spawn_producer_with(&redis, &["--max-connections", "20"]).await;
    let mut idle = Vec::new();
    for _ in 0..60 {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }

    let started = Instant::now();
    let (status, _, _) = get(addr, "/?task-name=still-served").await;
    let took = started.elapsed();

    assert_eq!(status, StatusCode::ACCEPTED);
    assert!(took < Duration::from_secs(1), "{took:?}");
    eventually(Duration::from_secs(5), "the cap held", || async {
        (sample(addr, "taskq_http_connections").await <= 20).then_some(())
    })
    .await;
    assert!(
        sample(
            addr,
            "taskq_http_connections_closed_total{reason=\"evicted\"}"
        )
        .await
            >= 40
    );
    assert_eq!(sample(addr, "taskq_http_connections_max").await, 20);
}

#[tokio::test]
async fn a_cap_full_of_requests_in_progress_makes_new_clients_wait_not_fail() {
    let redis = RedisServer::start();
    let (addr, _stop, queue) = spawn_producer_with(&redis, &["--max-connections", "4"]).await;
    let polls: Vec<_> = (0..4)
        .map(|i| tokio::spawn(async move { get(addr, &format!("/?task-name=p{i}&wait=2")).await }))
        .collect();
    eventually(
        Duration::from_secs(5),
        "four long-polls in progress",
        || async {
            for i in 0..4 {
                let name = TaskName::parse(format!("p{i}")).unwrap();
                queue.get(&name).await.unwrap()?;
            }
            Some(())
        },
    )
    .await;

    let started = Instant::now();
    let (status, _, _) = get(addr, "/?task-name=after").await;
    let waited = started.elapsed();

    assert_eq!(status, StatusCode::ACCEPTED);
    for poll in polls {
        assert_eq!(
            poll.await.unwrap().0,
            StatusCode::ACCEPTED,
            "no long-poll was cut"
        );
    }
    assert!(
        waited >= Duration::from_millis(500),
        "it waited for a long-poll to end: {waited:?}"
    );
    assert!(sample(addr, "taskq_http_accept_full_total").await >= 1);
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
