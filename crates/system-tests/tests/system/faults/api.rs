//! A third-party API that misbehaves in every way: broken answers, client errors, a call that
//! cannot be made, a huge answer, throttling with `Retry-After`, an unreachable host, a task that
//! never finishes. Each ends where it must: retried, dead with the reason, or done.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use testkit::{eventually, free_addr};

use crate::stack::{Backend, Stack};

crate::stack::on_both_backends! {
    broken_answers_are_retried_then_kept_as_dead_with_the_reason,
    a_client_error_is_permanent_and_uses_no_retries,
    a_call_that_cannot_be_made_is_a_permanent_failure_at_once,
    a_huge_answer_is_refused_without_reading_it_whole,
    throttling_with_retry_after_is_honoured,
    an_unreachable_api_is_retried_then_dead,
    a_task_that_never_finishes_dies_at_the_poll_deadline,
}

/// Environment variables for one process.
type Env<'a> = &'a [(&'a str, &'a str)];

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
