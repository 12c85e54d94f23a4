//! Prometheus metrics: the text exposition format, a lock-free histogram, and the queue-wide
//! series that both the producer's and the consumer's `/metrics` show.
//!
//! The counters that must be exact (enqueued, done, dead, ...) are not counted in process memory:
//! the scripts keep them in the queue's stats hash, in the same atomic step as the change they
//! count, and `/metrics` reads them at scrape time. So every process reports the same queue-wide
//! totals, several consumers add up by construction, and a restart loses nothing. Only what
//! belongs to one process (its calls' latency and status codes, its Redis errors) is counted
//! here, in memory.
//!
//! The format is written by hand: a few dozen lines, against a dependency with a global recorder
//! that tests running several services in one process would share.

use std::fmt::{self, Display, Write};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::queue::Queue;
use crate::stats::QueueStats;

/// The queue-wide counters the scripts keep, with their help text. A counter that has not
/// happened yet is shown as 0, so that its series exists from the start.
const COUNTERS: [(&str, &str); 14] = [
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
];

/// The kind of a metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (resets when a process restarts, unless read from Redis).
    Counter,
    /// Goes up and down.
    Gauge,
    /// Observations in cumulative buckets.
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
        }
    }
}

/// A page of metrics in the Prometheus text format (version 0.0.4).
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    /// The media type of the page.
    pub const CONTENT_TYPE: &'static str = "text/plain; version=0.0.4; charset=utf-8";

    /// An empty page.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts a family: its help and type lines. Its samples follow.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) -> &mut Self {
        let help = help.replace('\\', r"\\").replace('\n', r"\n");
        // Writing to a String cannot fail.
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.as_str());
        self
    }

    /// One sample of the current family.
    pub fn sample(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        value: impl Display,
    ) -> &mut Self {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (label, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{label}=\"{}\"", Escaped(value));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
        self
    }

    /// One series of the current histogram family: its buckets, sum and count.
    pub fn histogram(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        histogram: &Histogram,
    ) -> &mut Self {
        let bucket = format!("{name}_bucket");
        let mut cumulative = 0;
        for (bound, count) in histogram.bounds.iter().zip(&histogram.counts) {
            cumulative += count.load(Ordering::Relaxed);
            let le = bound.to_string();
            self.sample(&bucket, &with(labels, ("le", &le)), cumulative);
        }
        let count = histogram.count.load(Ordering::Relaxed);
        self.sample(&bucket, &with(labels, ("le", "+Inf")), count);
        let sum = f64::from_bits(histogram.sum_bits.load(Ordering::Relaxed));
        self.sample(&format!("{name}_sum"), labels, sum);
        self.sample(&format!("{name}_count"), labels, count)
    }

    /// The page's text.
    pub fn finish(self) -> String {
        self.out
    }
}

fn with<'a>(labels: &[(&'a str, &'a str)], extra: (&'a str, &'a str)) -> Vec<(&'a str, &'a str)> {
    let mut all = labels.to_vec();
    all.push(extra);
    all
}

/// A label value with `\`, `"` and newlines escaped.
struct Escaped<'a>(&'a str);

impl Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            match c {
                '\\' => f.write_str(r"\\")?,
                '"' => f.write_str("\\\"")?,
                '\n' => f.write_str(r"\n")?,
                c => f.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// Observations counted in fixed buckets, lock-free: cheap enough for every API call.
#[derive(Debug)]
pub struct Histogram {
    /// Upper bounds of the buckets, ascending.
    bounds: &'static [f64],
    /// Observations per bucket (not cumulative; the page adds them up).
    counts: Vec<AtomicU64>,
    count: AtomicU64,
    /// The sum of observations, as `f64` bits (added to with compare-and-swap).
    sum_bits: AtomicU64,
}

impl Histogram {
    /// Buckets for latencies in seconds, from 5 ms to a minute.
    pub const LATENCY_SECONDS: &'static [f64] = &[
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    ];

    /// An empty histogram with these bucket bounds (ascending).
    pub fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_bits: AtomicU64::new(0f64.to_bits()),
        }
    }

    /// Counts one observation.
    pub fn observe(&self, value: f64) {
        if let Some(i) = self.bounds.iter().position(|bound| value <= *bound) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let _ = self
            .sum_bits
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + value).to_bits())
            });
    }
}

/// Reads every queue's statistics from Redis (one after another) and writes them with
/// [`write_queues`]: the `/metrics` of the producer and of the consumer. A queue whose Redis did
/// not answer is logged, and shows `taskq_redis_up 0` without its other series.
pub async fn write_queue_stats(page: &mut Exposition, queues: &[&Queue]) {
    let mut read = Vec::with_capacity(queues.len());
    for queue in queues {
        let stats = queue.stats().await;
        if let Err(err) = &stats {
            tracing::warn!(queue = queue.keys().queue(), error = %err, "metrics: redis unavailable");
        }
        read.push(stats.ok());
    }
    let named: Vec<(&str, Option<&QueueStats>)> = queues
        .iter()
        .zip(&read)
        .map(|(queue, stats)| (queue.keys().queue(), stats.as_ref()))
        .collect();
    write_queues(page, &named);
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
    fn labels_are_escaped_and_families_have_help_and_type() {
        let mut page = Exposition::new();
        page.family("x_total", Kind::Counter, "An x.\nSecond line.")
            .sample("x_total", &[("name", "a\"b\\c\nd")], 3);
        assert_eq!(
            page.finish(),
            "# HELP x_total An x.\\nSecond line.\n# TYPE x_total counter\n\
             x_total{name=\"a\\\"b\\\\c\\nd\"} 3\n"
        );
    }

    #[test]
    fn histogram_buckets_are_cumulative_with_sum_and_count() {
        let histogram = Histogram::new(&[0.1, 1.0]);
        for value in [0.0625, 0.5, 0.5, 7.0] {
            histogram.observe(value);
        }
        let mut page = Exposition::new();
        page.family("lat_seconds", Kind::Histogram, "Latency.")
            .histogram("lat_seconds", &[("q", "x")], &histogram);
        let text = page.finish();
        for line in [
            "lat_seconds_bucket{q=\"x\",le=\"0.1\"} 1",
            "lat_seconds_bucket{q=\"x\",le=\"1\"} 3",
            "lat_seconds_bucket{q=\"x\",le=\"+Inf\"} 4",
            "lat_seconds_sum{q=\"x\"} 8.0625",
            "lat_seconds_count{q=\"x\"} 4",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }

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

        let mut down = Exposition::new();
        write_queues(&mut down, &[("q", None)]);
        assert_eq!(
            down.finish().lines().last(),
            Some("taskq_redis_up{queue=\"q\"} 0")
        );
    }
}
