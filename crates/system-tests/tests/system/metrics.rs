//! `/metrics` under load, on the real binaries: the queue-wide counters come from Redis, so two
//! consumers add up exactly and the producer shows the same totals as each consumer.

use std::collections::HashMap;
use std::time::Duration;

use crate::stack::{Stack, names};
use reqwest::StatusCode;
use testkit::{eventually, free_addr};

/// The samples of a Prometheus page: `name{labels}` → value.
async fn scrape(client: &reqwest::Client, url: String) -> HashMap<String, f64> {
    let response = client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{url}");
    let text = response.text().await.unwrap();
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').unwrap();
            (series.to_owned(), value.parse().unwrap())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_consumers_add_up_exactly_and_every_metrics_page_shows_the_queue_wide_totals() {
    let stack = Stack::start(&[
        ("MOCK_DELAY_MS", "20"),
        ("MOCK_POLLS_UNTIL_DONE", "2"),
        ("MOCK_FAILURE_RATE", "0.2"),
    ]);
    let (first_addr, second_addr) = (free_addr(), free_addr());
    let settings = [
        ("POLL_INTERVAL_MS", "50"),
        ("RETRY_BASE_MS", "20"),
        ("MAX_ATTEMPTS", "20"),
    ];
    let first_addr_text = first_addr.to_string();
    let second_addr_text = second_addr.to_string();
    let mut first_env = settings.to_vec();
    first_env.push(("CONSUMER_ADDR", &first_addr_text));
    let mut second_env = settings.to_vec();
    second_env.push(("CONSUMER_ADDR", &second_addr_text));
    let _first = stack.consumer(&first_env);
    let _second = stack.consumer(&second_env);
    let client = &stack.client;
    eventually(
        Duration::from_secs(10),
        "the consumers' /healthz",
        || async {
            for addr in [first_addr, second_addr] {
                let status = client.get(format!("http://{addr}/healthz")).send().await;
                if status.ok()?.status() != StatusCode::OK {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;

    // Scraped while the work runs, the done counter only grows.
    stack.enqueue_all(&names("m", 400)).await;
    let label = format!("{{queue=\"{}\"}}", stack.queue_name);
    let done = format!("taskq_done_total{label}");
    let mut last = 0.0;
    let mut scrapes = 0;
    loop {
        let page = scrape(client, format!("http://{}/metrics", stack.producer())).await;
        let now = page[&done];
        assert!(now >= last, "done went from {last} to {now}");
        last = now;
        scrapes += 1;
        if now >= 400.0 {
            break;
        }
        assert!(scrapes < 600, "400 tasks not done in time: {now}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let stats = stack.queue().stats().await.unwrap();
    let mock_calls = stack.mock_calls().await as f64;
    let producer = scrape(client, format!("http://{}/metrics", stack.producer())).await;
    let first = scrape(client, format!("http://{first_addr}/metrics")).await;
    let second = scrape(client, format!("http://{second_addr}/metrics")).await;
    for page in [&producer, &first, &second] {
        for counter in ["done", "enqueued", "claimed", "snoozed", "retried", "dead"] {
            let series = format!("taskq_{counter}_total{label}");
            let expected = stats.totals.get(counter).copied().unwrap_or(0) as f64;
            assert_eq!(page[&series], expected, "{series}");
        }
        assert_eq!(page[&done], 400.0);
        assert_eq!(page[&format!("taskq_redis_up{label}")], 1.0);
    }
    // Each call was counted by the consumer that made it, by status, and timed.
    let calls = |page: &HashMap<String, f64>| {
        page.iter()
            .filter(|(series, _)| series.starts_with("taskq_api_calls_total{"))
            .map(|(_, value)| value)
            .sum::<f64>()
    };
    assert_eq!(calls(&first) + calls(&second), mock_calls);
    let timed = format!("taskq_api_call_duration_seconds_count{label}");
    assert_eq!(first[&timed] + second[&timed], mock_calls);
    let failed = format!(
        "taskq_api_calls_total{{queue=\"{}\",status=\"500\"}}",
        stack.queue_name
    );
    assert!(first.get(&failed).unwrap_or(&0.0) + second.get(&failed).unwrap_or(&0.0) > 0.0);
    assert_eq!(first[&format!("taskq_api_calls_in_flight{label}")], 0.0);
    println!(
        "FIGURES metrics: 400 tasks, 2 consumers, {mock_calls} API calls, {scrapes} scrapes while running, done {}",
        producer[&done]
    );
}
