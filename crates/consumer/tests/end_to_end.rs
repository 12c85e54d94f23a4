//! The three real binaries and a real redis-server, working together over real sockets.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use taskq::{ConnectOptions, Policy, Queue};
use testkit::{Process, RedisServer, eventually, free_addr, unique_queue};
use tokio::task::JoinSet;

/// Redis, mock-api, producer and consumer, each its own process.
struct System {
    redis: RedisServer,
    queue_name: String,
    mock: SocketAddr,
    producer: SocketAddr,
    _processes: Vec<Process>,
    consumer: Process,
}

impl System {
    fn start(mock_env: &[(&str, &str)], consumer_env: &[(&str, &str)]) -> Self {
        let redis = RedisServer::start();
        let queue_name = unique_queue("e2e");
        let (mock, producer) = (free_addr(), free_addr());
        let common = |extra: &[(&str, &str)]| -> Vec<(&'static str, String)> {
            let mut env = vec![
                ("REDIS_URL", redis.url()),
                ("QUEUE_NAME", queue_name.clone()),
            ];
            env.extend(extra.iter().map(|(k, v)| (leak(k), v.to_string())));
            env
        };
        let mut mock_vars = common(mock_env);
        mock_vars.push(("MOCK_API_ADDR", mock.to_string()));
        let mut producer_vars = common(&[]);
        producer_vars.push(("PRODUCER_ADDR", producer.to_string()));
        let mut consumer_vars = common(consumer_env);
        consumer_vars.push(("API_URL", format!("http://{mock}/")));
        let processes = vec![
            Process::serve("mock-api", mock, &mock_vars),
            Process::serve("producer", producer, &producer_vars),
        ];
        let consumer = Process::spawn("consumer", &consumer_vars);
        Self {
            redis,
            queue_name,
            mock,
            producer,
            _processes: processes,
            consumer,
        }
    }

    fn queue(&self) -> Queue {
        Queue::open(
            &self.redis.url().parse().unwrap(),
            ConnectOptions::default(),
            &self.queue_name,
            Policy::default(),
        )
        .unwrap()
    }

    async fn mock_stats(&self) -> Value {
        let body = reqwest::get(format!("http://{}/stats", self.mock))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        serde_json::from_slice(&body).unwrap()
    }
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_owned().into_boxed_str())
}

async fn get_json(client: &reqwest::Client, url: String) -> (StatusCode, Value) {
    let response = client.get(url).send().await.unwrap();
    let status = response.status();
    let body = response.bytes().await.unwrap();
    (status, serde_json::from_slice(&body).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_tasks_enqueued_twice_all_finish_with_exactly_three_calls_each() {
    let system = System::start(
        &[("MOCK_DELAY_MS", "20"), ("MOCK_POLLS_UNTIL_DONE", "3")],
        &[("CONCURRENCY", "100"), ("POLL_INTERVAL_MS", "100")],
    );
    let client = reqwest::Client::new();
    let names: Arc<Vec<String>> = Arc::new((0..1000).map(|i| format!("task {i}/é")).collect());

    // Every name twice, 64 requests in flight, each answer timed.
    let mut requests = JoinSet::new();
    for lane in 0..64 {
        let (client, names, producer) = (client.clone(), Arc::clone(&names), system.producer);
        requests.spawn(async move {
            let mut slowest = Duration::ZERO;
            for i in (lane..2000).step_by(64) {
                let name = &names[i % 1000];
                let url = reqwest::Url::parse_with_params(
                    &format!("http://{producer}/"),
                    [("task-name", name)],
                )
                .unwrap();
                let started = Instant::now();
                let (status, body) = get_json(&client, url.to_string()).await;
                slowest = slowest.max(started.elapsed());
                assert!(
                    status == StatusCode::ACCEPTED || status == StatusCode::OK,
                    "{name}: {status}"
                );
                assert_eq!(body["task"], name.as_str());
            }
            slowest
        });
    }
    let mut slowest = Duration::ZERO;
    while let Some(lane) = requests.join_next().await {
        slowest = slowest.max(lane.unwrap());
    }
    assert!(
        slowest < Duration::from_millis(500),
        "slowest enqueue answer took {slowest:?}"
    );

    let queue = system.queue();
    eventually(Duration::from_secs(30), "every task to be done", || async {
        let counts = queue.counts().await.unwrap();
        (counts.totals.get("done") == Some(&1000)).then_some(())
    })
    .await;

    let counts = queue.counts().await.unwrap();
    assert_eq!((counts.due, counts.running, counts.dead), (0, 0, 0));
    assert_eq!(counts.totals["enqueued"], 1000);
    assert_eq!(counts.totals["duplicates"], 1000);
    let stats = system.mock_stats().await;
    assert_eq!(stats["calls"], 3000, "{stats}");
    assert_eq!(stats["tasks"], 1000);
    for name in names.iter().step_by(97) {
        let url = reqwest::Url::parse_with_params(
            &format!("http://{}/", system.producer),
            [("task-name", name)],
        )
        .unwrap();
        let (status, body) = get_json(&client, url.to_string()).await;
        assert_eq!(status, StatusCode::OK, "{name}");
        assert_eq!(body["state"], "done");
        assert_eq!(body["polls"], 2);
        assert_eq!(body["data"], mock_api::result(name, 3));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_retried_until_every_task_finishes() {
    let system = System::start(
        &[
            ("MOCK_DELAY_MS", "0"),
            ("MOCK_POLLS_UNTIL_DONE", "2"),
            ("MOCK_FAILURE_RATE", "0.3"),
        ],
        &[
            ("RETRY_BASE_MS", "10"),
            ("RETRY_MAX_MS", "50"),
            ("MAX_ATTEMPTS", "50"),
            ("POLL_INTERVAL_MS", "10"),
        ],
    );
    let client = reqwest::Client::new();
    for i in 0..200 {
        let (status, _) = get_json(
            &client,
            format!("http://{}/?task-name=f{i}", system.producer),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED);
    }

    let queue = system.queue();
    eventually(Duration::from_secs(30), "every task to be done", || async {
        (queue.counts().await.unwrap().totals.get("done") == Some(&200)).then_some(())
    })
    .await;

    let stats = system.mock_stats().await;
    let failures = stats["failures"].as_u64().unwrap();
    assert!(failures > 0, "the mock failed no call: {stats}");
    assert_eq!(stats["calls"].as_u64().unwrap(), 400 + failures, "{stats}");
    let counts = queue.counts().await.unwrap();
    assert_eq!(counts.totals["retried"], failures);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_the_api_always_refuses_dies_after_max_attempts_with_its_last_error() {
    let system = System::start(
        &[("MOCK_DELAY_MS", "0"), ("MOCK_FAILURE_RATE", "1")],
        &[
            ("RETRY_BASE_MS", "10"),
            ("RETRY_MAX_MS", "20"),
            ("MAX_ATTEMPTS", "3"),
        ],
    );
    let client = reqwest::Client::new();
    get_json(
        &client,
        format!("http://{}/?task-name=doomed", system.producer),
    )
    .await;

    let url = format!("http://{}/tasks/doomed", system.producer);
    let body = eventually(Duration::from_secs(10), "the task to die", || async {
        let (_, body) = get_json(&client, url.clone()).await;
        (body["state"] == "dead").then_some(body)
    })
    .await;

    assert_eq!(body["attempts"], 3);
    assert_eq!(body["last_error"], "the API answered HTTP 500");
    assert_eq!(system.mock_stats().await["calls"], 3);
    let (status, again) = get_json(
        &client,
        format!("http://{}/?task-name=doomed", system.producer),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(again["enqueued"], false, "a dead task keeps its name");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consumer_exits_zero_on_sigterm_and_sigint() {
    for signal in ["TERM", "INT"] {
        let mut system = System::start(&[("MOCK_DELAY_MS", "0")], &[]);
        let queue = system.queue();
        // The consumer is up once it has swept (its first tick) or claimed.
        reqwest::get(format!("http://{}/?task-name=s", system.producer))
            .await
            .unwrap();
        eventually(
            Duration::from_secs(10),
            "the consumer to finish a task",
            || async {
                (queue.counts().await.unwrap().totals.get("done") == Some(&1)).then_some(())
            },
        )
        .await;

        system.consumer.signal(signal);
        let status = system.consumer.wait_exit(Duration::from_secs(10));

        assert!(
            status.is_some_and(|s| s.success()),
            "SIG{signal}: {status:?}"
        );
    }
}
