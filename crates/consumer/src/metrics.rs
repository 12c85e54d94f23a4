//! What one consumer process measures of its own work: the third-party calls' latency, their
//! status codes and how many are in flight, and its Redis errors.
//!
//! These live in process memory because they describe this process, not the queue: the exact,
//! queue-wide counters (enqueued, done, dead, ...) are the scripts' own and come from Redis at
//! each scrape (see [`queue_kit::queue_metrics`]). Several consumers are summed by Prometheus.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use service_kit::prometheus::{Exposition, Histogram, Kind};
use taskq::WorkerStats;

/// The calls to the third-party API of one queue.
#[derive(Debug)]
pub struct CallMetrics {
    latency: Histogram,
    /// Calls by outcome: the HTTP status code, or `timeout`, `connect_error`, `error` when no
    /// status arrived.
    outcomes: Mutex<BTreeMap<String, u64>>,
    in_flight: AtomicI64,
}

impl Default for CallMetrics {
    fn default() -> Self {
        Self {
            latency: Histogram::new(Histogram::LATENCY_SECONDS),
            outcomes: Mutex::default(),
            in_flight: AtomicI64::new(0),
        }
    }
}

impl CallMetrics {
    /// Starts measuring one call; it is counted when the returned guard drops.
    pub fn start(&self) -> Call<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Call {
            metrics: self,
            started: Instant::now(),
            outcome: "error".into(),
        }
    }
}

/// Writes the call series and Redis errors of each queue served (queue, its calls, its
/// worker's totals); each family once, with a series per queue.
pub fn write_calls(page: &mut Exposition, queues: &[(&str, &CallMetrics, &WorkerStats)]) {
    page.family(
        "taskq_api_call_duration_seconds",
        Kind::Histogram,
        "Third-party API calls' latency, body read included.",
    );
    for (queue, calls, _) in queues {
        page.histogram(
            "taskq_api_call_duration_seconds",
            &[("queue", queue)],
            &calls.latency,
        );
    }
    page.family(
        "taskq_api_calls_total",
        Kind::Counter,
        "Third-party API calls by HTTP status, or timeout, connect_error, error when none came.",
    );
    for (queue, calls, _) in queues {
        let outcomes = calls
            .outcomes
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for (outcome, count) in outcomes.iter() {
            page.sample(
                "taskq_api_calls_total",
                &[("queue", queue), ("status", outcome)],
                count,
            );
        }
    }
    page.family(
        "taskq_api_calls_in_flight",
        Kind::Gauge,
        "Third-party API calls in progress in this process.",
    );
    for (queue, calls, _) in queues {
        let in_flight = calls.in_flight.load(Ordering::Relaxed);
        page.sample("taskq_api_calls_in_flight", &[("queue", queue)], in_flight);
    }
    page.family(
        "taskq_consumer_redis_errors_total",
        Kind::Counter,
        "Redis calls of this consumer that failed (each was retried or its task comes back).",
    );
    for (queue, _, worker) in queues {
        let errors = worker.redis_errors.load(Ordering::Relaxed);
        page.sample(
            "taskq_consumer_redis_errors_total",
            &[("queue", queue)],
            errors,
        );
    }
}

/// One call being measured.
pub struct Call<'a> {
    metrics: &'a CallMetrics,
    started: Instant,
    outcome: String,
}

impl Call<'_> {
    /// Records how the call ended: an HTTP status code or a transport failure's kind.
    pub fn outcome(&mut self, outcome: impl ToString) {
        self.outcome = outcome.to_string();
    }
}

impl Drop for Call<'_> {
    fn drop(&mut self) {
        let metrics = self.metrics;
        metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
        metrics
            .latency
            .observe(self.started.elapsed().as_secs_f64());
        *metrics
            .outcomes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(std::mem::take(&mut self.outcome))
            .or_default() += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_counted_by_outcome_and_in_flight_until_they_end() {
        let metrics = CallMetrics::default();
        let mut ok = metrics.start();
        ok.outcome(200);
        let timed_out = {
            let mut call = metrics.start();
            call.outcome("timeout");
            call
        };
        let worker = WorkerStats::default();
        let mut page = Exposition::new();
        write_calls(&mut page, &[("q", &metrics, &worker)]);
        assert!(
            page.finish()
                .contains("taskq_api_calls_in_flight{queue=\"q\"} 2\n")
        );

        drop((ok, timed_out));
        let _unfinished_outcome = metrics.start();

        let mut page = Exposition::new();
        write_calls(&mut page, &[("q", &metrics, &worker)]);
        let text = page.finish();
        for line in [
            "taskq_api_calls_total{queue=\"q\",status=\"200\"} 1",
            "taskq_api_calls_total{queue=\"q\",status=\"timeout\"} 1",
            "taskq_api_calls_in_flight{queue=\"q\"} 1",
            "taskq_api_call_duration_seconds_count{queue=\"q\"} 2",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }
}
