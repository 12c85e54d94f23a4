//! The mock API's own latency, measured alone at a given number of calls in flight.
//!
//! W3d's ideal time assumes every call takes exactly the mock's configured delay. On a busy
//! 2-core machine it takes longer (a timer's lateness, the HTTP stack on both ends), and that
//! excess is no fault of the consumer. Measuring the mock with a plain HTTP client at the same
//! concurrency, just before the consumer runs, gives the ideal that this machine can reach.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Latency of the calls made, in ms.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    /// The mean.
    pub mean_ms: f64,
    /// The 99th percentile.
    pub p99_ms: f64,
}

/// Keeps `concurrency` calls of `GET {base}?task-name=...` in flight for `duration`, each with a
/// task name of its own (a fresh name is a "processing" answer, as most of W3d's are). Each lane's
/// first call opens its connection and is not timed. The client is set up as the consumer's is
/// (idle pool as large as the concurrency, `TCP_NODELAY`, the mock's authority trusted when it
/// serves HTTPS).
///
/// # Errors
/// When a call fails or answers other than 2xx.
pub async fn measure(
    base: &str,
    concurrency: usize,
    duration: Duration,
    client: reqwest::ClientBuilder,
) -> Result<Latency> {
    let client = client
        .pool_max_idle_per_host(concurrency)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(10))
        .build()?;
    let started = Instant::now();
    let mut lanes: JoinSet<Result<Vec<Duration>>> = JoinSet::new();
    for lane in 0..concurrency {
        let (client, base) = (client.clone(), base.to_owned());
        lanes.spawn(async move {
            let mut times = Vec::new();
            for i in 0_u64.. {
                let url = format!("{base}?task-name=latency-{lane}-{i}");
                let call = Instant::now();
                client
                    .get(url)
                    .send()
                    .await?
                    .error_for_status()?
                    .bytes()
                    .await?;
                if i > 0 {
                    times.push(call.elapsed());
                }
                if started.elapsed() >= duration {
                    break;
                }
            }
            Ok(times)
        });
    }
    let mut times = Vec::new();
    while let Some(lane) = lanes.join_next().await {
        times.extend(lane.context("a latency lane panicked")??);
    }
    summarize(times)
}

fn summarize(mut times: Vec<Duration>) -> Result<Latency> {
    if times.is_empty() {
        bail!("no call was timed");
    }
    times.sort_unstable();
    let n = times.len();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let p99 = times[(n * 99).div_ceil(100) - 1];
    Ok(Latency {
        mean_ms: times.iter().map(|&d| ms(d)).sum::<f64>() / n as f64,
        p99_ms: ms(p99),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_p99_is_the_call_at_or_above_which_one_percent_were_slower() -> Result<()> {
        let times: Vec<Duration> = (1..=200).rev().map(Duration::from_millis).collect();
        let latency = summarize(times)?;
        assert!((latency.mean_ms - 100.5).abs() < 1e-9);
        assert!((latency.p99_ms - 198.0).abs() < 1e-9);
        Ok(())
    }

    #[test]
    fn no_calls_is_an_error() {
        assert!(summarize(Vec::new()).is_err());
    }
}
