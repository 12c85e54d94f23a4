//! Fault injection against real processes: consumers killed, stopped and outnumbered, Redis
//! killed, hung and cutting connections, and a third-party API that misbehaves in every way.
//! Each test prints its figures (`FIGURES ...`) for the record.
//!
//! Every scenario runs twice: on one Redis (`single::`) and on a three-master cluster
//! (`cluster::`), where a fault to "Redis" hits the master that owns the queue's hash slot, or
//! every master.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::stack::{Backend, Stack, names};
use reqwest::StatusCode;
use testkit::{eventually, free_addr};

crate::stack::on_both_backends! {
    a_consumer_killed_mid_call_loses_nothing_and_only_its_tasks_are_called_twice,
    a_call_slower_than_the_lease_is_never_handed_to_a_second_consumer,
    four_consumers_share_five_thousand_tasks_with_exactly_one_call_per_poll,
    redis_killed_for_five_seconds_loses_no_acknowledged_task_and_work_resumes,
    a_hung_redis_gets_fast_503s_and_work_resumes_when_it_wakes,
    killed_client_connections_are_reopened,
    broken_answers_are_retried_then_kept_as_dead_with_the_reason,
    a_client_error_is_permanent_and_uses_no_retries,
    a_call_that_cannot_be_made_is_a_permanent_failure_at_once,
    a_huge_answer_is_refused_without_reading_it_whole,
    throttling_with_retry_after_is_honoured,
    an_unreachable_api_is_retried_then_dead,
    a_task_that_never_finishes_dies_at_the_poll_deadline,
    sigterm_hands_back_unfinished_tasks_due_at_once_and_exits_zero,
    sigterm_lets_calls_in_flight_finish_within_the_grace_period,
    a_password_protected_redis_works_and_the_password_never_shows_in_logs,
    a_tls_only_redis_works_over_rediss,
}

/// Environment variables for one process.
type Env<'a> = &'a [(&'a str, &'a str)];

const DURABLE: &[&str] = &["--appendonly", "yes", "--appendfsync", "always"];

async fn a_consumer_killed_mid_call_loses_nothing_and_only_its_tasks_are_called_twice<
    R: Backend,
>() {
    let stack = Stack::start_on(
        R::start(),
        &[("MOCK_DELAY_MS", "2000"), ("MOCK_POLLS_UNTIL_DONE", "1")],
    );
    let fast_lease = [
        ("CONCURRENCY", "300"),
        ("BATCH_SIZE", "100"),
        ("LEASE_MS", "1000"),
    ];
    let mut first = stack.consumer(&fast_lease);
    stack.enqueue_all(&names("crash", 300)).await;
    eventually(Duration::from_secs(15), "300 calls in flight", || async {
        (stack.mock_calls().await >= 300).then_some(())
    })
    .await;

    first.kill();
    let killed = Instant::now();
    // The survivor's own leases are long: recovery depends only on the dead consumer's leases,
    // and a loaded CI machine must not make the survivor lose a lease of its own.
    let _second = stack.consumer(&[("CONCURRENCY", "300"), ("BATCH_SIZE", "100")]);
    let stats = stack.wait_done(300, Duration::from_secs(30)).await;

    let recovery = killed.elapsed();
    let calls = stack.mock_calls().await;
    assert_eq!(
        (stats.counts.due, stats.counts.running, stats.counts.dead),
        (0, 0, 0),
        "{stats:?}"
    );
    assert_eq!(stats.totals["done"], 300, "no task lost: {stats:?}");
    assert!(
        calls <= 600,
        "only tasks in flight at the kill may be called twice: {calls} calls, {stats:?}"
    );
    assert_eq!(stats.totals["reaped"], 300, "{stats:?}");
    eprintln!(
        "FIGURES crash: tasks=300 calls={calls} lost=0 duplicated={} recovery={recovery:?}",
        calls - 300
    );
}

async fn a_call_slower_than_the_lease_is_never_handed_to_a_second_consumer<R: Backend>() {
    let stack = Stack::start_on(
        R::start(),
        &[("MOCK_DELAY_MS", "2000"), ("MOCK_POLLS_UNTIL_DONE", "2")],
    );
    // Each call outlasts three leases; renewals every 200 ms leave 400 ms of slack for a loaded
    // machine.
    let env = [
        ("LEASE_MS", "600"),
        ("POLL_INTERVAL_MS", "10"),
        ("CONCURRENCY", "100"),
    ];
    let _consumers = [stack.consumer(&env), stack.consumer(&env)];
    stack.enqueue_all(&names("slow", 100)).await;

    let stats = stack.wait_done(100, Duration::from_secs(30)).await;

    let calls = stack.mock_calls().await;
    assert_eq!(calls, 200, "exactly one call per poll");
    assert!(!stats.totals.contains_key("reaped"), "{:?}", stats.totals);
    assert!(!stats.totals.contains_key("stale"), "{:?}", stats.totals);
    eprintln!("FIGURES slow-calls: tasks=100 polls=2 calls={calls} lease=600ms call=2000ms");
}

async fn four_consumers_share_five_thousand_tasks_with_exactly_one_call_per_poll<R: Backend>() {
    let stack = Stack::start_on(
        R::start(),
        &[("MOCK_DELAY_MS", "5"), ("MOCK_POLLS_UNTIL_DONE", "2")],
    );
    let env = [("POLL_INTERVAL_MS", "20"), ("CONCURRENCY", "50")];
    let _consumers: Vec<_> = (0..4).map(|_| stack.consumer(&env)).collect();
    let started = Instant::now();
    stack.enqueue_all(&names("many", 5000)).await;

    let stats = stack.wait_done(5000, Duration::from_secs(60)).await;

    let calls = stack.mock_calls().await;
    assert_eq!(calls, 10_000);
    assert_eq!(
        (stats.counts.due, stats.counts.running, stats.counts.dead),
        (0, 0, 0)
    );
    assert!(!stats.totals.contains_key("stale"));
    eprintln!(
        "FIGURES many-consumers: consumers=4 tasks=5000 calls={calls} wall={:?}",
        started.elapsed()
    );
}

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
        let (client, producer, prefix) = (stack.client.clone(), stack.producer, prefix.to_owned());
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
                    crate::stack::get_json(&client, crate::stack::enqueue_url(producer, &name))
                        .await;
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

/// Runs one task against a misbehaving API and answers its final view once dead.
async fn dies_with<R: Backend>(
    redis: R,
    mock_env: &[(&str, &str)],
    consumer_env: &[(&str, &str)],
    error: &str,
) -> (serde_json::Value, u64) {
    let stack = Stack::start_on(redis, mock_env);
    let mut env = vec![
        ("MAX_ATTEMPTS", "2"),
        ("RETRY_BASE_MS", "10"),
        ("RETRY_MAX_MS", "20"),
    ];
    env.extend_from_slice(consumer_env);
    let _consumer = stack.consumer(&env);
    stack.enqueue("victim").await;
    let body = stack.wait_dead("victim", Duration::from_secs(20)).await;
    let last_error = body["last_error"].as_str().unwrap();
    assert!(
        last_error.contains(error),
        "{last_error:?} should mention {error:?}"
    );
    (body, stack.mock_calls().await)
}

async fn broken_answers_are_retried_then_kept_as_dead_with_the_reason<R: Backend>() {
    let cases: [(Env, Env, &str); 5] = [
        (&[("MOCK_BODY", "not-json")], &[], "not the expected JSON"),
        (&[("MOCK_BODY", "unknown-status")], &[], "unknown status"),
        (&[("MOCK_BODY", "empty")], &[], "not the expected JSON"),
        (
            &[("MOCK_DELAY_MS", "400")],
            &[("API_TIMEOUT_MS", "100")],
            "did not answer in time",
        ),
        (
            &[("MOCK_FAILURE_RATE", "1"), ("MOCK_FAILURE_STATUS", "502")],
            &[],
            "HTTP 502",
        ),
    ];
    let redis = Arc::new(R::start());
    for (mock_env, consumer_env, error) in cases {
        let mut mock = vec![("MOCK_DELAY_MS", "0")];
        mock.extend_from_slice(mock_env);
        let (body, calls) = dies_with(Arc::clone(&redis), &mock, consumer_env, error).await;
        assert_eq!(body["attempts"], 2, "{error}");
        assert_eq!(calls, 2, "{error}: retried up to MAX_ATTEMPTS");
    }
}

async fn a_client_error_is_permanent_and_uses_no_retries<R: Backend>() {
    let (body, calls) = dies_with(
        R::start(),
        &[
            ("MOCK_DELAY_MS", "0"),
            ("MOCK_FAILURE_RATE", "1"),
            ("MOCK_FAILURE_STATUS", "404"),
        ],
        &[],
        "HTTP 404",
    )
    .await;
    assert_eq!((body["attempts"].as_u64(), calls), (Some(1), 1));
}

/// A 39 KB payload of the original shape travels as query parameters: percent-encoded, a URL of
/// 117 KB, which no request line may carry. The same task makes the same URL every time, so
/// retrying cannot help.
async fn a_call_that_cannot_be_made_is_a_permanent_failure_at_once<R: Backend>() {
    let stack = Stack::start_on(R::start(), &[("MOCK_DELAY_MS", "0")]);
    let _consumer = stack.consumer(&[("MAX_ATTEMPTS", "5"), ("RETRY_BASE_MS", "10")]);
    let (status, _) = stack
        .submit("wide", &serde_json::json!({"blob": "€".repeat(13_000)}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);

    let body = stack.wait_dead("wide", Duration::from_secs(20)).await;

    let error = body["last_error"].as_str().unwrap();
    assert!(
        error.contains("cannot be made") && error.contains("query parameters"),
        "{body}"
    );
    assert_eq!(
        body["claims"], 1,
        "dead at its first call, not retried: {body}"
    );
    assert_eq!(stack.mock_calls().await, 0);
}

async fn a_huge_answer_is_refused_without_reading_it_whole<R: Backend>() {
    let stack = Stack::start_on(
        R::start(),
        &[
            ("MOCK_DELAY_MS", "0"),
            ("MOCK_BODY", "huge"),
            ("MOCK_HUGE_BODY_BYTES", "67108864"),
        ],
    );
    let consumer = stack.consumer(&[
        ("MAX_ATTEMPTS", "3"),
        ("RETRY_BASE_MS", "10"),
        ("API_MAX_BODY_BYTES", "65536"),
    ]);
    stack.enqueue("huge").await;

    let body = stack.wait_dead("huge", Duration::from_secs(20)).await;

    assert!(
        body["last_error"]
            .as_str()
            .unwrap()
            .contains("over 65536 bytes"),
        "{body}"
    );
    let peak = consumer.peak_rss_kib().unwrap();
    assert!(
        peak < 48 * 1024,
        "a 64 MiB answer grew the consumer to {peak} KiB"
    );
    eprintln!("FIGURES huge-body: body=64MiB limit=64KiB consumer-peak-rss={peak}KiB");
}

async fn throttling_with_retry_after_is_honoured<R: Backend>() {
    let redis = Arc::new(R::start());
    for status in ["429", "503"] {
        let stack = Stack::start_on(
            Arc::clone(&redis),
            &[
                ("MOCK_DELAY_MS", "0"),
                ("MOCK_FAILURE_RATE", "1"),
                ("MOCK_FAILURE_STATUS", status),
                ("MOCK_RETRY_AFTER_SECS", "1"),
            ],
        );
        let _consumer = stack.consumer(&[
            ("MAX_ATTEMPTS", "3"),
            ("RETRY_BASE_MS", "10"),
            ("RETRY_MAX_MS", "20"),
        ]);
        stack.enqueue("throttled").await;

        let view = eventually(
            Duration::from_secs(10),
            "the first throttled answer",
            || async {
                let (_, body) = stack.task("throttled").await;
                (body["throttled"] == 1 && body["state"] != "running").then_some(body)
            },
        )
        .await;

        let wait = view["run_at_ms"].as_u64().unwrap() - view["updated_at_ms"].as_u64().unwrap();
        assert_eq!(
            wait, 1000,
            "HTTP {status}: Retry-After 1 s, not the 10 ms backoff"
        );
        assert_eq!(
            view["attempts"], 0,
            "HTTP {status}: throttling uses no attempt"
        );
        assert_eq!(
            view["last_error"],
            format!("the API answered HTTP {status}")
        );
        assert_eq!(stack.mock_calls().await, 1);
    }
}

async fn an_unreachable_api_is_retried_then_dead<R: Backend>() {
    let stack = Stack::start_on(R::start(), &[]);
    let closed = free_addr();
    let api_url = format!("http://{closed}/");
    let _consumer = stack.consumer(&[
        ("API_URL", api_url.as_str()),
        ("MAX_ATTEMPTS", "2"),
        ("RETRY_BASE_MS", "10"),
    ]);
    stack.enqueue("nobody-home").await;

    let body = stack
        .wait_dead("nobody-home", Duration::from_secs(10))
        .await;

    let error = body["last_error"].as_str().unwrap();
    assert!(
        error.starts_with("could not connect to the API: ") && error.contains("refused"),
        "{error}"
    );
    assert_eq!(body["attempts"], 2);
}

async fn a_task_that_never_finishes_dies_at_the_poll_deadline<R: Backend>() {
    let stack = Stack::start_on(
        R::start(),
        &[("MOCK_DELAY_MS", "0"), ("MOCK_POLLS_UNTIL_DONE", "1000000")],
    );
    let _consumer = stack.consumer(&[("MAX_POLL_SECS", "2"), ("POLL_INTERVAL_MS", "100")]);
    stack.enqueue("forever").await;

    let body = stack.wait_dead("forever", Duration::from_secs(10)).await;

    assert!(
        body["last_error"]
            .as_str()
            .unwrap()
            .starts_with("poll deadline passed"),
        "{body}"
    );
    // Picked up within a tick (1 s), then polled every 100 ms until 2 s after the enqueue.
    let calls = stack.mock_calls().await;
    assert!(
        (5..=25).contains(&calls),
        "polled about every 100 ms for 1 to 2 s: {calls}"
    );
    assert_eq!(body["polls"], calls, "{body}");
    assert_eq!(
        body["data"]["progress"], calls,
        "the latest partial data is kept: {body}"
    );
}

async fn sigterm_hands_back_unfinished_tasks_due_at_once_and_exits_zero<R: Backend>() {
    let stack = Stack::start_on(R::start(), &[("MOCK_DELAY_MS", "30000")]);
    let mut consumer = stack.consumer(&[
        ("CONCURRENCY", "300"),
        ("BATCH_SIZE", "100"),
        ("SHUTDOWN_GRACE_MS", "500"),
    ]);
    stack.enqueue_all(&names("inflight", 300)).await;
    eventually(Duration::from_secs(15), "300 calls in flight", || async {
        (stack.mock_calls().await >= 300).then_some(())
    })
    .await;

    let asked = Instant::now();
    let status = consumer.terminate(Duration::from_secs(10));
    let took = asked.elapsed();

    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    assert!(took < Duration::from_secs(3), "shutdown took {took:?}");
    let stats = stack.queue().stats().await.unwrap();
    assert_eq!((stats.counts.due, stats.counts.running), (300, 0));
    assert_eq!(stats.totals["released"], 300);
    let claim = stack.queue().claim(300).await.unwrap();
    assert_eq!(claim.tasks.len(), 300, "handed-back tasks are due at once");
    assert!(
        claim.tasks.iter().all(|t| t.attempts == 0),
        "a hand-back is not a failed attempt"
    );
    eprintln!("FIGURES shutdown: in-flight=300 exit=0 took={took:?} handed-back=300");
}

async fn sigterm_lets_calls_in_flight_finish_within_the_grace_period<R: Backend>() {
    let stack = Stack::start_on(
        R::start(),
        &[("MOCK_DELAY_MS", "500"), ("MOCK_POLLS_UNTIL_DONE", "1")],
    );
    let mut consumer = stack.consumer(&[("CONCURRENCY", "200"), ("SHUTDOWN_GRACE_MS", "10000")]);
    stack.enqueue_all(&names("finish", 200)).await;
    eventually(Duration::from_secs(15), "200 calls in flight", || async {
        (stack.mock_calls().await >= 200).then_some(())
    })
    .await;

    let status = consumer.terminate(Duration::from_secs(10));

    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    let stats = stack.queue().stats().await.unwrap();
    assert_eq!(stats.totals["done"], 200);
    assert!(!stats.totals.contains_key("released"));
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
