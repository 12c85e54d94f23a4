//! The queue-wide series that both the producer's and the consumer's `/metrics` show.
//!
//! The counters that must be exact (enqueued, done, dead, ...) are not counted in process memory:
//! the scripts keep them in the queue's stats hash, in the same atomic step as the change they
//! count, and `/metrics` reads them at scrape time. So every process reports the same queue-wide
//! totals, several consumers add up by construction, and a restart loses nothing. Only what
//! belongs to one process (its calls' latency and status codes, its Redis errors) is counted
//! here, in memory.

use service_kit::prometheus::{Exposition, Kind};
use taskq::{Queue, QueueStats};

/// The queue-wide counters the scripts keep, with their help text. A counter that has not
/// happened yet is shown as 0, so that its series exists from the start.
const COUNTERS: [(&str, &str); 16] = [
    ("enqueued", "Tasks created by an enqueue."),
    (
        "duplicates",
        "Enqueues of a name already live or done: nothing written.",
    ),
    (
        "claimed",
        "Tasks handed to a consumer (one per call started).",
    ),
    ("done", "Tasks finished: the API answered done."),
    (
        "snoozed",
        "Processing answers recorded: the task is polled again later.",
    ),
    ("retried", "Failed calls rescheduled after a backoff."),
    (
        "throttled",
        "Answers that asked to slow down (HTTP 429, 503): called again later, no attempt used.",
    ),
    (
        "dead",
        "Tasks that died: attempt limit, permanent failure or poll deadline.",
    ),
    (
        "stale",
        "Answers refused because the worker had lost the task (lease reaped, or cancelled).",
    ),
    (
        "reaped",
        "Expired leases taken back from a vanished consumer.",
    ),
    (
        "released",
        "Tasks handed back unrun at a consumer's shutdown.",
    ),
    ("revived", "Dead tasks retried by an operator."),
    ("cancelled", "Tasks cancelled."),
    ("purged", "Finished records deleted by an operator."),
    (
        "results_deferred",
        "Results that found no room in a Redis at maxmemory: the task waits, called again later.",
    ),
    (
        "payloads_dropped",
        "Done tasks whose payload made room for their result in a Redis at maxmemory.",
    ),
];

/// Reads every queue's statistics from Redis (one after another) and writes them with
/// [`write_queues`]: the `/metrics` of the producer and of the consumer. A queue whose Redis did
/// not answer is logged, and shows `taskq_redis_up 0` without its other series.
pub async fn write_queue_stats(page: &mut Exposition, queues: &[&Queue]) {
    let mut tasks = Vec::with_capacity(queues.len());
    let mut lanes = Vec::with_capacity(queues.len());
    for queue in queues {
        let name = queue.keys().queue();
        let stats = queue.stats().await;
        if let Err(err) = &stats {
            tracing::warn!(queue = name, error = %err, "metrics: redis unavailable");
        }
        // The callback lane only when the queue answered: one warning per queue is enough.
        let lane = match stats {
            Ok(_) => queue.callbacks().stats().await.ok(),
            Err(_) => None,
        };
        tasks.push((name, stats.ok()));
        lanes.push((name, lane));
    }
    write_queues(page, &borrowed(&tasks));
    write_callbacks(page, &borrowed(&lanes));
}

/// Each queue's name with a borrow of what was read for it.
fn borrowed<'a>(
    read: &'a [(&'a str, Option<QueueStats>)],
) -> Vec<(&'a str, Option<&'a QueueStats>)> {
    read.iter()
        .map(|(name, stats)| (*name, stats.as_ref()))
        .collect()
}

/// Writes each queue's callbacks, from its callback lane's statistics: deliveries by outcome
/// (queue-wide, exact, as the lane's scripts count them) and callbacks pending or failed now.
pub fn write_callbacks(page: &mut Exposition, lanes: &[(&str, Option<&QueueStats>)]) {
    let answered: Vec<(&str, &QueueStats)> = lanes
        .iter()
        .filter_map(|(queue, stats)| Some((*queue, (*stats)?)))
        .collect();
    if answered.is_empty() {
        return;
    }
    page.family(
        "taskq_callback_deliveries_total",
        Kind::Counter,
        "Callback deliveries by outcome: delivered (2xx), retried (failed, tried again after a \
         backoff), failed (given up: attempt limit, 410, refused address). Queue-wide, exact.",
    );
    for (queue, stats) in &answered {
        let total = |name: &str| stats.totals.get(name).copied().unwrap_or(0);
        for (outcome, value) in [
            ("delivered", total("done")),
            ("retried", total("retried") + total("reaped")),
            ("failed", total("dead")),
        ] {
            page.sample(
                "taskq_callback_deliveries_total",
                &[("queue", queue), ("outcome", outcome)],
                value,
            );
        }
    }
    page.family(
        "taskq_callbacks",
        Kind::Gauge,
        "Callbacks now: pending (to deliver or being delivered) and failed (given up, kept).",
    );
    for (queue, stats) in &answered {
        let counts = &stats.counts;
        for (state, value) in [
            ("pending", counts.due + counts.running),
            ("failed", counts.dead),
        ] {
            page.sample(
                "taskq_callbacks",
                &[("queue", queue), ("state", state)],
                value,
            );
        }
    }
}

/// Writes the queue-wide series of each queue: whether Redis answered, the scripts' counters,
/// and the tasks per set; a queue whose Redis did not answer (`None`) has only
/// `taskq_redis_up 0`. Each family comes once, with a series per queue, as the format requires.
pub fn write_queues(page: &mut Exposition, queues: &[(&str, Option<&QueueStats>)]) {
    page.family(
        "taskq_redis_up",
        Kind::Gauge,
        "Whether Redis answered this scrape (the queue-wide series are missing when not).",
    );
    for (queue, stats) in queues {
        page.sample(
            "taskq_redis_up",
            &[("queue", queue)],
            u8::from(stats.is_some()),
        );
    }
    let answered: Vec<(&str, &QueueStats)> = queues
        .iter()
        .filter_map(|(queue, stats)| Some((*queue, (*stats)?)))
        .collect();
    if answered.is_empty() {
        return;
    }
    let mut counters: Vec<(&str, &str)> = COUNTERS.to_vec();
    for (_, stats) in &answered {
        for name in stats.totals.keys() {
            let valid = name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
            if valid && !counters.iter().any(|(known, _)| known == name) {
                counters.push((name, "A counter kept by the queue's scripts."));
            }
        }
    }
    for (counter, help) in counters {
        let name = format!("taskq_{counter}_total");
        page.family(&name, Kind::Counter, &format!("{help} Queue-wide, exact."));
        for (queue, stats) in &answered {
            let value = stats.totals.get(counter).copied().unwrap_or(0);
            page.sample(&name, &[("queue", queue)], value);
        }
    }
    page.family(
        "taskq_tasks",
        Kind::Gauge,
        "Tasks per set: due (queued or processing), running, dead, cancelled.",
    );
    for (queue, stats) in &answered {
        let counts = &stats.counts;
        for (state, value) in [
            ("due", counts.due),
            ("running", counts.running),
            ("dead", counts.dead),
            ("cancelled", counts.cancelled),
        ] {
            page.sample("taskq_tasks", &[("queue", queue), ("state", state)], value);
        }
    }
    page.family(
        "taskq_due_now",
        Kind::Gauge,
        "Due tasks whose time has come (the rest wait for a retry or the next poll).",
    );
    for (queue, stats) in &answered {
        page.sample("taskq_due_now", &[("queue", queue)], stats.counts.due_now);
    }
    page.family(
        "taskq_oldest_due_age_seconds",
        Kind::Gauge,
        "How long the earliest due task has been due: grows when consumers do not keep up.",
    );
    for (queue, stats) in &answered {
        let age = stats.oldest_due_age_ms as f64 / 1000.0;
        page.sample("taskq_oldest_due_age_seconds", &[("queue", queue)], age);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_series_show_every_known_counter_once_per_family_and_say_when_redis_is_down() {
        let mut stats = QueueStats::default();
        stats.totals.insert("done".into(), 7);
        stats.totals.insert("new_thing".into(), 2);
        let mut page = Exposition::new();
        write_queues(
            &mut page,
            &[
                ("q", Some(&stats)),
                ("r", Some(&QueueStats::default())),
                ("down", None),
            ],
        );
        let text = page.finish();
        for line in [
            "taskq_redis_up{queue=\"q\"} 1",
            "taskq_redis_up{queue=\"down\"} 0",
            "taskq_done_total{queue=\"q\"} 7",
            "taskq_done_total{queue=\"r\"} 0",
            "taskq_purged_total{queue=\"q\"} 0",
            "taskq_new_thing_total{queue=\"q\"} 2",
            "taskq_tasks{queue=\"q\",state=\"dead\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        assert!(!text.contains("queue=\"down\",state"));
        assert_eq!(text.matches("# TYPE taskq_done_total ").count(), 1);

        let mut lane = QueueStats::default();
        lane.totals.insert("done".into(), 3);
        lane.totals.insert("retried".into(), 2);
        lane.totals.insert("reaped".into(), 1);
        lane.counts.due = 4;
        lane.counts.running = 1;
        let mut callbacks = Exposition::new();
        write_callbacks(&mut callbacks, &[("q", Some(&lane)), ("down", None)]);
        let text = callbacks.finish();
        for line in [
            "taskq_callback_deliveries_total{queue=\"q\",outcome=\"delivered\"} 3",
            "taskq_callback_deliveries_total{queue=\"q\",outcome=\"retried\"} 3",
            "taskq_callback_deliveries_total{queue=\"q\",outcome=\"failed\"} 0",
            "taskq_callbacks{queue=\"q\",state=\"pending\"} 5",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        assert!(!text.contains("down"));

        let mut down = Exposition::new();
        write_queues(&mut down, &[("q", None)]);
        assert_eq!(
            down.finish().lines().last(),
            Some("taskq_redis_up{queue=\"q\"} 0")
        );
    }
}
