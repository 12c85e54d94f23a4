//! The Prometheus text exposition format, written by hand (a few dozen lines, against a
//! dependency with a global recorder that tests running several services in one process would
//! share), and a lock-free histogram for what one process measures (call latencies).

use std::fmt::{self, Display, Write};
use std::sync::atomic::{AtomicU64, Ordering};

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
}
