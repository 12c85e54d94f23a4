//! The three real binaries and real redis-server processes, working together over real sockets.
//! Every scenario runs twice: on one Redis (`single::`) and on a three-master cluster
//! (`cluster::`).

use std::time::{Duration, Instant};

use crate::stack::{Backend, Stack, enqueue_url, names};
use reqwest::StatusCode;
use testkit::get_json;
use tokio::task::JoinSet;

crate::stack::on_both_backends! {
    a_thousand_tasks_enqueued_twice_all_finish_with_exactly_three_calls_each,
    failures_are_retried_until_every_task_finishes,
    a_task_the_api_always_refuses_dies_after_max_attempts_with_its_last_error,
    every_binary_exits_zero_on_sigterm_and_sigint,
    a_submitted_payload_reaches_the_api_as_query_parameters_and_a_cancelled_task_is_never_called,
    json_logs_name_the_task_and_attempt_on_every_line_about_a_task,
}

async fn a_thousand_tasks_enqueued_twice_all_finish_with_exactly_three_calls_each<R: Backend>() {
    let stack = Stack::start_on(
        R::start(),
        &[("MOCK_DELAY_MS", "20"), ("MOCK_POLLS_UNTIL_DONE", "3")],
    );
    let _consumer = stack.consumer(&[("CONCURRENCY", "100"), ("POLL_INTERVAL_MS", "100")]);
    let names: Vec<String> = (0..1000).map(|i| format!("task {i}/é")).collect();

    // Every name twice, 64 requests in flight, each answer timed.
    let mut lanes = JoinSet::new();
    for lane in 0..64 {
        let (client, producer) = (stack.client.clone(), stack.producer());
        let names = names.clone();
        lanes.spawn(async move {
            let mut slowest = Duration::ZERO;
            for i in (lane..2000).step_by(64) {
                let name = &names[i % 1000];
                let started = Instant::now();
                let (status, body) = get_json(&client, enqueue_url(producer, name)).await;
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
    while let Some(lane) = lanes.join_next().await {
        slowest = slowest.max(lane.unwrap());
    }
    assert!(
        slowest < Duration::from_millis(500),
        "slowest enqueue answer took {slowest:?}"
    );

    let stats = stack.wait_done(1000, Duration::from_secs(30)).await;

    assert_eq!(
        (stats.counts.due, stats.counts.running, stats.counts.dead),
        (0, 0, 0)
    );
    assert_eq!(stats.totals["enqueued"], 1000);
    assert_eq!(stats.totals["duplicates"], 1000);
    let stats = stack.mock_stats().await;
    assert_eq!(stats["calls"], 3000, "{stats}");
    assert_eq!(stats["tasks"], 1000);
    for name in names.iter().step_by(97) {
        let (status, body) = stack.enqueue(name).await;
        assert_eq!(status, StatusCode::OK, "{name}");
        assert_eq!(body["state"], "done");
        assert_eq!(body["polls"], 2);
        assert_eq!(body["data"], mock_api::result(name, 3));
    }
}

async fn failures_are_retried_until_every_task_finishes<R: Backend>() {
    let stack = Stack::start_on(
        R::start(),
        &[
            ("MOCK_DELAY_MS", "0"),
            ("MOCK_POLLS_UNTIL_DONE", "2"),
            ("MOCK_FAILURE_RATE", "0.3"),
        ],
    );
    let _consumer = stack.consumer(&[
        ("RETRY_BASE_MS", "10"),
        ("RETRY_MAX_MS", "50"),
        ("MAX_ATTEMPTS", "50"),
        ("POLL_INTERVAL_MS", "10"),
    ]);
    stack.enqueue_all(&names("f", 200)).await;

    let queue_stats = stack.wait_done(200, Duration::from_secs(30)).await;

    let stats = stack.mock_stats().await;
    let failures = stats["failures"].as_u64().unwrap();
    assert!(failures > 0, "the mock failed no call: {stats}");
    assert_eq!(stats["calls"].as_u64().unwrap(), 400 + failures, "{stats}");
    assert_eq!(queue_stats.totals["retried"], failures);
}

async fn a_task_the_api_always_refuses_dies_after_max_attempts_with_its_last_error<R: Backend>() {
    let stack = Stack::start_on(
        R::start(),
        &[("MOCK_DELAY_MS", "0"), ("MOCK_FAILURE_RATE", "1")],
    );
    let _consumer = stack.consumer(&[
        ("RETRY_BASE_MS", "10"),
        ("RETRY_MAX_MS", "20"),
        ("MAX_ATTEMPTS", "3"),
    ]);
    stack.enqueue("doomed").await;

    let body = stack.wait_dead("doomed", Duration::from_secs(10)).await;

    assert_eq!(body["attempts"], 3);
    assert_eq!(body["last_error"], "the API answered HTTP 500");
    assert_eq!(stack.mock_calls().await, 3);
    let (status, again) = stack.enqueue("doomed").await;
    assert_eq!(status, StatusCode::OK, "a dead task is final: {again}");
    assert_eq!(again["enqueued"], false, "a dead task keeps its name");
}

async fn every_binary_exits_zero_on_sigterm_and_sigint<R: Backend>() {
    let redis = std::sync::Arc::new(R::start());
    for signal in ["TERM", "INT"] {
        let mut stack = Stack::start_on(std::sync::Arc::clone(&redis), &[("MOCK_DELAY_MS", "0")]);
        let mut consumer = stack.consumer(&[]);
        stack.enqueue("s").await;
        stack.wait_done(1, Duration::from_secs(10)).await;

        for process in [
            &mut consumer,
            &mut stack.services.producer,
            &mut stack.services.mock.process,
        ] {
            process.signal(signal);
            let status = process.wait_exit(Duration::from_secs(10));
            assert!(
                status.is_some_and(|s| s.success()),
                "SIG{signal}: {status:?}"
            );
        }
    }
}

async fn a_submitted_payload_reaches_the_api_as_query_parameters_and_a_cancelled_task_is_never_called<
    R: Backend,
>() {
    use std::sync::{Arc, Mutex};
    // A stand-in for the API that keeps every query string it gets and answers done.
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let api = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api_addr = api.local_addr().unwrap();
    let recorder = Arc::clone(&seen);
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(
            move |axum::extract::RawQuery(query): axum::extract::RawQuery| {
                let recorder = Arc::clone(&recorder);
                async move {
                    recorder.lock().unwrap().push(query.unwrap_or_default());
                    axum::Json(serde_json::json!({"status": "done", "data": {"ok": true}}))
                }
            },
        ),
    );
    tokio::spawn(async move { axum::serve(api, app).await });
    let stack = Stack::start_on(R::start(), &[]);
    // The cancelled task is cancelled before any consumer runs.
    let submit = |body: serde_json::Value| {
        stack
            .client
            .post(format!("http://{}/tasks", stack.producer()))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };
    let accepted = submit(
        serde_json::json!({"name": "with payload", "payload": {"region": "eu west", "n": 3}}),
    );
    assert_eq!(accepted.await.unwrap().status(), StatusCode::ACCEPTED);
    submit(serde_json::json!({"name": "cancelled"}))
        .await
        .unwrap();
    let cancelled = stack
        .client
        .delete(format!("http://{}/tasks/cancelled", stack.producer()))
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.status(), StatusCode::OK);
    let api_url = format!("http://{api_addr}/");
    let _consumer = stack.consumer(&[("API_URL", &api_url)]);

    stack.wait_done(1, Duration::from_secs(10)).await;

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "only the live task is called: {seen:?}");
    let called = reqwest::Url::parse(&format!("http://api/?{}", seen[0])).unwrap();
    let mut parameters: Vec<(String, String)> = called.query_pairs().into_owned().collect();
    parameters.sort();
    assert_eq!(
        parameters,
        [
            ("n".to_owned(), "3".to_owned()),
            ("region".to_owned(), "eu west".to_owned()),
            ("task-name".to_owned(), "with payload".to_owned()),
        ]
    );
    let (_, cancelled) = stack.task("cancelled").await;
    assert_eq!(cancelled["state"], "cancelled");
}

async fn json_logs_name_the_task_and_attempt_on_every_line_about_a_task<R: Backend>() {
    let stack = Stack::start_on(
        R::start(),
        &[("MOCK_DELAY_MS", "0"), ("MOCK_FAILURE_RATE", "1")],
    );
    let log = std::env::temp_dir().join(format!("taskq-json-{}.log", stack.queue_name));
    let settings = [
        ("LOG_FORMAT", "json"),
        ("RUST_LOG", "info"),
        ("MAX_ATTEMPTS", "2"),
        ("RETRY_BASE_MS", "10"),
    ];
    let mut consumer = stack.consumer_logged(&settings, &log);
    stack.enqueue("logged").await;
    stack.wait_dead("logged", Duration::from_secs(10)).await;
    consumer.terminate(Duration::from_secs(10));

    let text = std::fs::read_to_string(&log).unwrap();
    std::fs::remove_file(&log).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    let about_the_task: Vec<&serde_json::Value> =
        lines.iter().filter(|l| l["task"] == "logged").collect();
    assert!(
        about_the_task.len() >= 2,
        "a retry and a death are logged: {text}"
    );
    for line in about_the_task {
        assert!(line["attempt"].as_u64().is_some(), "no attempt on {line}");
    }
}

/// `--help` lists every setting with its environment variable, and the values of the secret ones
/// never: a container started with `--help` would print them to its log.
#[tokio::test]
async fn help_never_shows_a_secret_from_the_environment() {
    let secrets = [
        ("REDIS_URL", "redis://:hunter2-redis@127.0.0.1:1"),
        ("ADMIN_TOKEN", "hunter2-admin"),
        ("CLIENT_TOKEN", "hunter2-client"),
        ("API_URL", "https://hunter2-api.example/"),
        ("MOCK_API_KEY", "hunter2-mock"),
    ];
    for binary in ["producer", "consumer", "mock-api"] {
        let output = testkit::run_to_end(binary, &["--help"], &secrets).await;
        assert!(output.status.success(), "{binary} --help: {output:?}");
        let help = String::from_utf8_lossy(&output.stdout);
        assert!(
            help.contains("[env: "),
            "{binary}: settings name their variables"
        );
        assert!(
            !help.contains("hunter2"),
            "{binary} --help shows a secret:\n{help}"
        );
    }
}

/// `--healthcheck`, the compose file's healthchecks (the image has no curl): each binary asks
/// the health route on the address its settings name, and exits 0 while it serves, 1 once it
/// is gone.
#[tokio::test]
async fn each_binary_healthcheck_exits_0_while_it_serves_and_1_once_it_is_gone() {
    let mut stack = Stack::start(&[]);
    let consumer_addr = testkit::free_addr();
    let mut consumer = stack.serving_consumer(consumer_addr, &[]);
    let probes = [
        ("producer", "PRODUCER_ADDR", stack.producer()),
        ("consumer", "CONSUMER_ADDR", consumer_addr),
        ("mock-api", "MOCK_API_ADDR", stack.services.mock.addr()),
    ];
    let probe = |binary, var, addr: std::net::SocketAddr| async move {
        testkit::run_to_end(binary, &["--healthcheck"], &[(var, &addr.to_string())]).await
    };

    for (binary, var, addr) in probes {
        let output = probe(binary, var, addr).await;
        assert!(output.status.success(), "{binary} serving: {output:?}");
    }
    for process in [
        &mut consumer,
        &mut stack.services.producer,
        &mut stack.services.mock.process,
    ] {
        process.terminate(Duration::from_secs(10));
    }
    for (binary, var, addr) in probes {
        let output = probe(binary, var, addr).await;
        assert_eq!(output.status.code(), Some(1), "{binary} gone: {output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(&addr.to_string()), "{binary}: {stderr}");
    }
}

/// Compose passes optional settings through from the shell (`ADMIN_TOKEN: ${ADMIN_TOKEN:-}`),
/// as empty variables when the shell has none: an empty variable is an unset setting, logged as
/// unset and acted on as unset; one with a default takes the default.
#[tokio::test]
async fn an_empty_variable_is_an_unset_setting_and_logged_as_one() {
    let redis = testkit::RedisServer::start();
    let addr = testkit::free_addr();
    let queue = testkit::unique_queue("empty-env");
    let log = std::env::temp_dir().join(format!("{queue}.log"));
    let env = [
        ("REDIS_URL", redis.url()),
        ("QUEUE_NAME", queue),
        ("PRODUCER_ADDR", addr.to_string()),
        ("RUST_LOG", "info".to_owned()),
        ("ADMIN_TOKEN", String::new()),
        ("CLIENT_TOKEN", String::new()),
        ("HOOK_SECRET", String::new()),
        ("RESULT_TTL_SECS", String::new()),
    ];
    let mut producer = testkit::started(testkit::Process::try_serve(
        &testkit::binary("producer"),
        addr,
        &env,
        Some(&log),
    ));

    let stats = testkit::http_client()
        .get(format!("http://{addr}/stats"))
        .send()
        .await
        .unwrap();
    producer.terminate(Duration::from_secs(10));

    assert_eq!(stats.status(), StatusCode::OK, "the admin routes are open");
    let text = std::fs::read_to_string(&log).unwrap();
    std::fs::remove_file(&log).unwrap();
    for unset in [
        "admin_token: None",
        "client_token: None",
        "hook_secret: None",
        "result_ttl_secs: 3600",
    ] {
        assert!(text.contains(unset), "no {unset:?} in the log: {text}");
    }
    assert!(text.contains("ADMIN_TOKEN is not set"), "{text}");
}
