//! The provider's limits over real sockets: the mock served on a free port, called by a real
//! HTTP client, its `/stats` read back.

mod support;

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use mock_api::{Config, Shape};
use reqwest::StatusCode;
use support::{Answer, Api, start};

/// The rate limit's window.
const WINDOW: Duration = Duration::from_secs(1);

impl Api {
    /// `GET /?task-name=NAME` (the original shape).
    async fn call(&self, name: &str) -> Answer {
        self.send(self.http.get(format!("{}/?task-name={name}", self.base)))
            .await
    }

    /// `n` calls at once, each for its own name.
    async fn burst(&self, n: usize) -> Vec<Answer> {
        join_all((0..n).map(|i| async move { self.call(&format!("t{i}")).await })).await
    }
}

fn served(answers: &[Answer]) -> usize {
    answers
        .iter()
        .filter(|a| a.status == StatusCode::OK)
        .count()
}

/// Asserts `answer` is a 429 for `error`, retried after a second (the window's length, and the
/// in-flight limit's fixed advice).
fn assert_refused(answer: &Answer, error: &str) {
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS, "{answer:?}");
    assert_eq!(answer.body["error"], error, "{answer:?}");
    assert_eq!(answer.retry_after, Some(1), "{answer:?}");
}

/// The refusals among `answers`, each checked with [`assert_refused`].
fn refused(answers: &[Answer], error: &str) -> usize {
    answers
        .iter()
        .filter(|a| a.status == StatusCode::TOO_MANY_REQUESTS)
        .inspect(|a| assert_refused(a, error))
        .count()
}

fn limited(rate_limit_per_sec: u32, max_in_flight: u32, delay_ms: u64) -> Config {
    Config {
        rate_limit_per_sec,
        max_in_flight,
        delay_ms,
        ..Config::default()
    }
}

#[tokio::test]
async fn a_burst_beyond_the_rate_gets_the_rate_served_until_the_window_slides() {
    let api = start(limited(5, 0, 0)).await;

    let first = api.burst(20).await;
    assert_eq!(served(&first), 5);
    assert_eq!(refused(&first, "rate limited"), 15);
    api.assert_stats(&[("calls", 5), ("throttled", 15)]).await;

    tokio::time::sleep(WINDOW).await;
    let later = api.burst(5).await;

    assert_eq!(served(&later), 5, "{later:?}");
    api.assert_stats(&[("calls", 10), ("throttled", 15)]).await;
}

#[tokio::test]
async fn a_throttled_call_does_not_advance_its_task() {
    let api = start(Config {
        polls_until_done: 3,
        ..limited(1, 0, 0)
    })
    .await;
    assert_eq!(api.call("a").await.body["data"]["progress"], 1);
    assert_refused(&api.call("a").await, "rate limited");

    tokio::time::sleep(WINDOW).await;
    let next = api.call("a").await;

    assert_eq!(next.body["status"], "processing", "{next:?}");
    assert_eq!(next.body["data"]["progress"], 2);
    api.assert_stats(&[("calls", 2), ("throttled", 1)]).await;
}

#[tokio::test]
async fn calls_beyond_those_in_flight_are_refused() {
    let api = start(limited(0, 3, 1000)).await;

    let answers = api.burst(7).await;

    assert_eq!(served(&answers), 3);
    assert_eq!(refused(&answers, "too many in flight"), 4);
    api.assert_stats(&[
        ("max_in_flight_seen", 3),
        ("throttled", 4),
        ("calls", 3),
        ("in_flight", 0),
    ])
    .await;
}

#[tokio::test]
async fn a_client_that_hangs_up_mid_delay_gives_its_slot_back() {
    let delay = Duration::from_secs(2);
    let api = start(limited(0, 2, delay.as_millis().try_into().expect("ms"))).await;
    let impatient = testkit::http_client_builder()
        .timeout(Duration::from_millis(200))
        .build()
        .expect("a client");
    let started = Instant::now();

    let gone = join_all((0..2).map(|i| {
        impatient
            .get(format!("{}/?task-name=gone{i}", api.base))
            .send()
    }))
    .await;
    assert!(
        gone.iter()
            .all(|r| r.as_ref().is_err_and(reqwest::Error::is_timeout))
    );

    // Well before their delay ends: only the hang-up can have given the slots back.
    let before_the_delay_ends = (delay * 3 / 4).saturating_sub(started.elapsed());
    testkit::eventually(before_the_delay_ends, "the slots given back", || async {
        (api.stats().await["in_flight"] == 0).then_some(())
    })
    .await;
    let answers = api.burst(2).await;
    assert_eq!(served(&answers), 2, "{answers:?}");
    api.assert_stats(&[("throttled", 0), ("max_in_flight_seen", 2)])
        .await;
}

#[tokio::test]
async fn without_limits_the_concurrency_reached_is_still_reported() {
    let api = start(limited(0, 0, 1000)).await;

    let answers = api.burst(10).await;

    assert_eq!(served(&answers), 10);
    api.assert_stats(&[("max_in_flight_seen", 10), ("throttled", 0)])
        .await;
}

#[tokio::test]
async fn reset_forgets_the_refusals_the_window_and_the_most_in_flight() {
    let api = start(limited(1, 0, 0)).await;
    let answers = api.burst(3).await;
    assert_eq!(
        (served(&answers), refused(&answers, "rate limited")),
        (1, 2)
    );
    api.assert_stats(&[("throttled", 2), ("max_in_flight_seen", 1)])
        .await;

    api.reset().await;

    api.assert_stats(&[("throttled", 0), ("max_in_flight_seen", 0)])
        .await;
    // Within the window the burst filled: served only because the window was forgotten.
    assert_eq!(api.call("again").await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_real_api_shape_is_limited_too() {
    let api = start(Config {
        shape: Shape::Replicate,
        ..limited(2, 0, 0)
    })
    .await;
    let submit = || {
        api.send(
            api.with_key(api.http.post(format!("{}/v1/predictions", api.base)))
                .body(r#"{"input": {"prompt": "hi"}}"#),
        )
    };
    let poll = |id: String| {
        api.send(api.with_key(api.http.get(format!("{}/v1/predictions/{id}", api.base))))
    };

    let submits = join_all((0..4).map(|_| submit())).await;
    let made: Vec<_> = submits
        .iter()
        .filter(|a| a.status == StatusCode::CREATED)
        .collect();
    assert_eq!(made.len(), 2, "{submits:?}");
    assert_eq!(refused(&submits, "rate limited"), 2);
    let id = made[0].body["id"].as_str().expect("an id").to_owned();
    assert_refused(&poll(id.clone()).await, "rate limited");
    api.assert_stats(&[("jobs", 2), ("throttled", 3)]).await;

    tokio::time::sleep(WINDOW).await;
    let first_poll = poll(id).await;

    assert_eq!(first_poll.status, StatusCode::OK);
    assert_eq!(first_poll.body["status"], "processing", "{first_poll:?}");
    assert_eq!(first_poll.body["logs"], "step 1 of 2");
}
