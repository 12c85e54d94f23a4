//! The demo against the real binaries: every task it submits finishes, and its summary says so.

use std::time::Duration;

use testkit::{Process, RedisServer, free_addr, unique_queue};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_sees_every_task_through_and_sums_up() {
    let redis = RedisServer::start();
    let (mock, producer, metrics) = (free_addr(), free_addr(), free_addr());
    let base = vec![
        ("REDIS_URL", redis.url()),
        ("QUEUE_NAME", unique_queue("demo")),
    ];
    let with = |extra: &[(&'static str, String)]| {
        let mut vars = base.clone();
        vars.extend_from_slice(extra);
        vars
    };
    let _mock = Process::serve(
        "mock-api",
        mock,
        &with(&[
            ("MOCK_API_ADDR", mock.to_string()),
            ("MOCK_DELAY_MS", "50".into()),
            ("MOCK_POLLS_UNTIL_DONE", "2".into()),
        ]),
    );
    let _producer = Process::serve(
        "producer",
        producer,
        &with(&[
            ("PRODUCER_ADDR", producer.to_string()),
            ("ADMIN_TOKEN", "demo-token".into()),
        ]),
    );
    let _consumer = Process::spawn(
        "consumer",
        &with(&[
            ("API_URL", format!("http://{mock}/")),
            ("CONSUMER_ADDR", metrics.to_string()),
            ("POLL_INTERVAL_MS", "100".into()),
        ]),
    );
    let config = demo::Config {
        producer_url: format!("http://{producer}/"),
        tasks: 30,
        timeout_secs: 30,
        admin_token: Some("demo-token".into()),
    };

    let summary = demo::run(&config).await.unwrap();

    assert_eq!((summary.enqueued, summary.duplicates), (30, 30));
    assert_eq!((summary.done, summary.dead), (30, 0));
    assert_eq!(summary.processing_answers, 30);
    assert!(summary.wall < Duration::from_secs(30));
    assert!(summary.table().contains("tasks enqueued"));
}
