//! Redis failing under the binaries: killed for five seconds with enqueues going on (nothing
//! acknowledged is lost with `appendfsync always`), hung by `DEBUG SLEEP`, cutting client
//! connections, and spoken to with a password or over TLS only.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use testkit::eventually;

use crate::stack::{Backend, Stack, names};

crate::stack::on_both_backends! {
    redis_killed_for_five_seconds_loses_no_acknowledged_task_and_work_resumes,
    a_hung_redis_gets_fast_503s_and_work_resumes_when_it_wakes,
    killed_client_connections_are_reopened,
    a_password_protected_redis_works_and_the_password_never_shows_in_logs,
    a_tls_only_redis_works_over_rediss,
}

const DURABLE: &[&str] = &["--appendonly", "yes", "--appendfsync", "always"];

/// Enqueues through the producer until stopped, checking every answer: 2xx, or a 503 with a JSON
/// error within a second, never anything else.
struct Writer {
    stop: Arc<AtomicBool>,
    /// How many enqueues were answered 2xx so far, to wait on.
    acknowledged: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<Written>,
}

/// What a [`Writer`] saw.
struct Written {
    /// The names acknowledged with 2xx.
    acknowledged: Vec<String>,
    /// How many enqueues were refused with a 503.
    refused: usize,
    /// The longest a refusal took.
    slowest_refusal: Duration,
}

impl Writer {
    fn start<R: Backend>(stack: &Stack<R>, prefix: &str) -> Self {
        let (client, producer, prefix) =
            (stack.client.clone(), stack.producer(), prefix.to_owned());
        let stop = Arc::new(AtomicBool::new(false));
        let acknowledged = Arc::new(AtomicUsize::new(0));
        let (stopped, counter) = (Arc::clone(&stop), Arc::clone(&acknowledged));
        let task = tokio::spawn(async move {
            let mut written = Written {
                acknowledged: Vec::new(),
                refused: 0,
                slowest_refusal: Duration::ZERO,
            };
            let mut i = 0;
            while !stopped.load(Ordering::Relaxed) {
                let name = format!("{prefix}-{i}");
                i += 1;
                let started = Instant::now();
                let (status, body) =
                    testkit::get_json(&client, crate::stack::enqueue_url(producer, &name)).await;
                let took = started.elapsed();
                if status.is_success() {
                    written.acknowledged.push(name);
                    counter.fetch_add(1, Ordering::Relaxed);
                } else {
                    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
                    assert!(body["error"].is_string());
                    assert!(took < Duration::from_secs(1), "a refusal took {took:?}");
                    written.refused += 1;
                    written.slowest_refusal = written.slowest_refusal.max(took);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            written
        });
        Self {
            stop,
            acknowledged,
            task,
        }
    }

    /// Waits until `n` more enqueues than now are acknowledged, or the writer failed (its panic
    /// surfaces when it is stopped).
    async fn wait_acknowledged(&self, n: usize, within: Duration) {
        let target = self.acknowledged.load(Ordering::Relaxed) + n;
        eventually(within, &format!("{n} more acknowledged enqueues"), || {
            let done = self.acknowledged.load(Ordering::Relaxed) >= target;
            std::future::ready((done || self.task.is_finished()).then_some(()))
        })
        .await;
    }

    /// Waits until the backend serves every key again and enqueues are acknowledged again, then
    /// stops; answers what it saw.
    async fn stop_once_served<R: Backend>(self, stack: &Stack<R>) -> Written {
        stack.wait_serving(Duration::from_secs(30)).await;
        self.wait_acknowledged(20, Duration::from_secs(20)).await;
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap()
    }
}

async fn redis_killed_for_five_seconds_loses_no_acknowledged_task_and_work_resumes<R: Backend>() {
    let mut stack = Stack::start_on(
        R::start_with(DURABLE),
        &[("MOCK_DELAY_MS", "100"), ("MOCK_POLLS_UNTIL_DONE", "2")],
    );
    let mut consumer = stack.consumer(&[("POLL_INTERVAL_MS", "50"), ("LEASE_MS", "2000")]);
    stack.enqueue_all(&names("before", 200)).await;
    let writer = Writer::start(&stack, "during");
    writer.wait_acknowledged(20, Duration::from_secs(10)).await;

    let redis = stack.queue_server_mut();
    redis.kill();
    tokio::time::sleep(Duration::from_secs(5)).await; // the outage itself
    redis.restart();
    let back = Instant::now();
    let Written {
        acknowledged,
        refused,
        slowest_refusal,
    } = writer.stop_once_served(&stack).await;

    assert!(refused > 0, "the outage refused nothing: was Redis down?");
    let total = 200 + acknowledged.len() as u64;
    stack.wait_done(total, Duration::from_secs(60)).await;
    let recovery = back.elapsed();
    for name in &acknowledged {
        let (status, body) = stack.task(name).await;
        assert_eq!(status, StatusCode::OK, "{name} was acknowledged, then lost");
        assert_eq!(body["state"], "done");
    }
    assert!(
        consumer.running(),
        "the consumer gave up instead of resuming"
    );
    eprintln!(
        "FIGURES redis-kill: tasks={total} acknowledged-during-outage-window={} refused-503={refused} slowest-503={slowest_refusal:?} lost=0 all-done-after-restart={recovery:?}",
        acknowledged.len()
    );
}

async fn a_hung_redis_gets_fast_503s_and_work_resumes_when_it_wakes<R: Backend>() {
    let stack = Stack::start_on(
        R::start_with(&["--enable-debug-command", "yes"]),
        &[("MOCK_DELAY_MS", "50"), ("MOCK_POLLS_UNTIL_DONE", "2")],
    );
    // A claim whose reply is lost to the hang leaves its tasks leased until the lease ends.
    let _consumer = stack.consumer(&[("POLL_INTERVAL_MS", "50"), ("LEASE_MS", "2000")]);
    stack.enqueue_all(&names("hung", 100)).await;
    let writer = Writer::start(&stack, "during");
    writer.wait_acknowledged(20, Duration::from_secs(10)).await;

    let mut connection = stack.queue_server().connection();
    let sleeper = tokio::task::spawn_blocking(move || {
        redis::cmd("DEBUG")
            .arg("SLEEP")
            .arg(5)
            .query::<()>(&mut connection)
    });
    sleeper.await.unwrap().unwrap();
    let Written {
        acknowledged,
        refused,
        slowest_refusal,
    } = writer.stop_once_served(&stack).await;

    assert!(refused > 0, "nothing was refused while Redis slept");
    stack
        .wait_done(100 + acknowledged.len() as u64, Duration::from_secs(30))
        .await;
    eprintln!(
        "FIGURES redis-hang: refused-503={refused} slowest-503={slowest_refusal:?} acknowledged={} lost=0",
        acknowledged.len()
    );
}

async fn killed_client_connections_are_reopened<R: Backend>() {
    let stack = Stack::start_on(
        R::start(),
        &[("MOCK_DELAY_MS", "50"), ("MOCK_POLLS_UNTIL_DONE", "2")],
    );
    // A claim whose reply is lost to a cut leaves its tasks leased until the lease ends.
    let _consumer = stack.consumer(&[("POLL_INTERVAL_MS", "50"), ("LEASE_MS", "2000")]);
    stack.enqueue_all(&names("first", 100)).await;
    let writer = Writer::start(&stack, "during");
    let servers = stack.redis.servers();
    let mut connections: Vec<redis::Connection> = servers
        .iter()
        .map(testkit::RedisServer::connection)
        .collect();
    let queue_port = stack.queue_server().port();
    let holder = servers.iter().position(|s| s.port() == queue_port).unwrap();

    let mut killed = 0;
    for round in 1..=3 {
        // The consumer and the producer keep working, so they connect again before each round.
        eventually(Duration::from_secs(10), "a client connected", || {
            let others = other_clients(&mut connections[holder]);
            std::future::ready((others > 0).then_some(()))
        })
        .await;
        let before = killed;
        for connection in &mut connections {
            killed += redis::cmd("CLIENT")
                .arg("KILL")
                .arg("TYPE")
                .arg("normal")
                .arg("SKIPME")
                .arg("yes")
                .query::<u64>(connection)
                .unwrap();
        }
        assert!(killed > before, "round {round}: no connection to kill");
    }
    let Written {
        acknowledged,
        refused,
        slowest_refusal,
    } = writer.stop_once_served(&stack).await;
    stack.enqueue_all(&names("after", 100)).await;

    let total = 200 + acknowledged.len() as u64;
    stack.wait_done(total, Duration::from_secs(30)).await;
    eprintln!(
        "FIGURES client-kill: rounds=3 connections-killed={killed} tasks={total} refused-503={refused} slowest-503={slowest_refusal:?}"
    );
}

/// How many normal clients besides `connection` itself are connected to its server.
fn other_clients(connection: &mut redis::Connection) -> usize {
    let clients: String = redis::cmd("CLIENT")
        .arg("LIST")
        .arg("TYPE")
        .arg("normal")
        .query(connection)
        .unwrap();
    clients.lines().count() - 1
}

async fn a_password_protected_redis_works_and_the_password_never_shows_in_logs<R: Backend>() {
    let password = "s3cret-pass-word";
    let stack = Stack::start_on(R::start_with_password(password), &[("MOCK_DELAY_MS", "0")]);
    let log = std::env::temp_dir().join(format!("taskq-consumer-{}.log", stack.queue_name));
    let mut consumer = stack.consumer_logged(&[("RUST_LOG", "debug")], &log);
    stack.enqueue("guarded").await;

    stack.wait_done(1, Duration::from_secs(10)).await;
    consumer.terminate(Duration::from_secs(10));

    let logged = std::fs::read_to_string(&log).unwrap();
    std::fs::remove_file(&log).unwrap();
    assert!(
        logged.contains("redis://:***@127.0.0.1"),
        "the config is logged, redacted"
    );
    assert!(
        !logged.contains(password),
        "the password leaked into the log"
    );
}

async fn a_tls_only_redis_works_over_rediss<R: Backend>() {
    let stack = Stack::start_on(
        R::start_tls(),
        &[("MOCK_DELAY_MS", "0"), ("MOCK_POLLS_UNTIL_DONE", "2")],
    );
    assert!(stack.redis.url().starts_with("rediss://"));
    let _consumer = stack.consumer(&[("POLL_INTERVAL_MS", "10")]);

    stack.enqueue_all(&names("tls", 20)).await;

    stack.wait_done(20, Duration::from_secs(20)).await;
    assert_eq!(stack.mock_calls().await, 40);
}
