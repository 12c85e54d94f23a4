//! Throughput over the last minute, for `GET /stats`.
//!
//! The queue keeps only running totals (the scripts' counters), not a history: keeping one in
//! Redis would cost every finished task another write. So each producer samples the totals once
//! a second and keeps a minute of samples in memory; the rate is the difference between the
//! newest sample and the oldest one still inside the window. The totals are queue-wide, so every
//! producer reports the same rate, whichever consumers did the work. Right after start the window
//! is shorter, and says so.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use serde::Serialize;
use taskq::Queue;
use tokio::time::Instant;

/// How far back the rate looks.
pub const WINDOW: Duration = Duration::from_secs(60);

/// How often the totals are sampled.
const EVERY: Duration = Duration::from_secs(1);

/// The rate of tasks over the window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Rate {
    /// The span the rate covers (s): 60, or less right after the producer started.
    pub window_secs: f64,
    /// Tasks enqueued within it.
    pub enqueued: u64,
    /// Tasks finished (done) within it.
    pub done: u64,
    /// Tasks finished per second.
    pub done_per_sec: f64,
}

/// A minute of samples of the queue's totals.
#[derive(Debug, Default)]
pub struct Throughput {
    /// (when, enqueued, done), oldest first.
    samples: Mutex<VecDeque<(Instant, u64, u64)>>,
}

impl Throughput {
    /// Adds a sample taken now; drops those no longer needed to cover the window.
    pub fn record(&self, enqueued: u64, done: u64) {
        let now = Instant::now();
        let mut samples = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
        samples.push_back((now, enqueued, done));
        // Keep one sample at or beyond the window's start, so the rate covers the whole window.
        while samples.len() > 2 && now.duration_since(samples[1].0) >= WINDOW {
            samples.pop_front();
        }
    }

    /// The rate over the window; `None` until two samples a moment apart exist.
    pub fn rate(&self) -> Option<Rate> {
        let samples = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
        let (first, last) = (samples.front()?, samples.back()?);
        let span = last.0.duration_since(first.0).min(WINDOW + EVERY);
        if span.is_zero() {
            return None;
        }
        let done = last.2.saturating_sub(first.2);
        Some(Rate {
            window_secs: span.as_secs_f64(),
            enqueued: last.1.saturating_sub(first.1),
            done,
            done_per_sec: done as f64 / span.as_secs_f64(),
        })
    }

    /// Samples the queue's totals every second, forever (the caller aborts it at shutdown).
    pub async fn sample(&self, queue: Queue) {
        let mut tick = tokio::time::interval(EVERY);
        loop {
            tick.tick().await;
            match queue.stats().await {
                Ok(stats) => {
                    let total = |name: &str| stats.totals.get(name).copied().unwrap_or(0);
                    self.record(total("enqueued"), total("done"));
                }
                Err(err) => tracing::debug!(error = %err, "throughput sample skipped"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_rate_covers_the_last_minute_and_a_shorter_start() {
        let throughput = Throughput::default();
        assert_eq!(throughput.rate(), None);
        throughput.record(0, 0);
        tokio::time::advance(Duration::from_secs(10)).await;
        throughput.record(40, 20);

        let early = throughput.rate().unwrap();
        assert_eq!(
            (early.window_secs, early.done, early.done_per_sec),
            (10.0, 20, 2.0)
        );

        for second in 11..=130 {
            tokio::time::advance(Duration::from_secs(1)).await;
            throughput.record(40 + second, 20 + 2 * second);
        }
        let later = throughput.rate().unwrap();
        assert_eq!(later.window_secs, 60.0);
        assert_eq!((later.done, later.enqueued), (120, 60));
        assert_eq!(later.done_per_sec, 2.0);
    }
}
