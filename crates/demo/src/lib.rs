//! demo: what a new user sees first. It talks to a running producer only through its public HTTP
//! API, as any client would: submits tasks (each twice, to show dedup), watches `/stats` while
//! the consumers work, draws one progress bar per state, and ends with a summary table.
//!
//! Counts are deltas from a first reading of `/stats`, so a queue that already holds work does
//! not skew the figures. `scripts/demo` starts the services and runs this.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use tokio::task::JoinSet;

/// The demo's settings.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// The producer's base URL.
    #[arg(
        long,
        env = "DEMO_PRODUCER_URL",
        default_value = "http://127.0.0.1:9002"
    )]
    pub producer_url: String,
    /// How many tasks to submit (each is submitted twice).
    #[arg(long, env = "DEMO_TASKS", default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub tasks: u64,
    /// How long to wait for every task to finish (s).
    #[arg(long, env = "DEMO_TIMEOUT_SECS", default_value_t = 120)]
    pub timeout_secs: u64,
    /// The producer's admin token, for `/stats` (when it has one).
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
}

/// Why the demo stopped early.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The producer could not be reached or answered an error.
    #[error("{what}: {detail}")]
    Producer {
        /// What the demo was doing.
        what: String,
        /// What went wrong.
        detail: String,
    },
    /// Not every task finished in time.
    #[error("{finished} of {tasks} tasks finished within {timeout:?}")]
    Timeout {
        /// Tasks done or dead.
        finished: u64,
        /// Tasks submitted.
        tasks: u64,
        /// The time allowed.
        timeout: Duration,
    },
}

/// What the demo saw, for the summary table.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Tasks created.
    pub enqueued: u64,
    /// Repeated submissions that changed nothing.
    pub duplicates: u64,
    /// Tasks done.
    pub done: u64,
    /// Tasks dead.
    pub dead: u64,
    /// "processing" answers recorded.
    pub processing_answers: u64,
    /// Failed calls retried.
    pub retried: u64,
    /// From the first submission to the last task finished.
    pub wall: Duration,
}

impl Summary {
    /// The summary as a boxed table.
    pub fn table(&self) -> String {
        let per_sec = self.done as f64 / self.wall.as_secs_f64().max(0.001);
        let rows = [
            ("tasks enqueued", self.enqueued.to_string()),
            (
                "duplicate submissions absorbed",
                self.duplicates.to_string(),
            ),
            ("done", self.done.to_string()),
            ("dead", self.dead.to_string()),
            (
                "\"processing\" answers",
                self.processing_answers.to_string(),
            ),
            ("failed calls retried", self.retried.to_string()),
            ("wall time", format!("{:.1} s", self.wall.as_secs_f64())),
            ("throughput", format!("{per_sec:.1} tasks/s")),
        ];
        let left = rows
            .iter()
            .map(|(k, _)| k.chars().count())
            .max()
            .unwrap_or(0);
        let right = rows
            .iter()
            .map(|(_, v)| v.chars().count())
            .max()
            .unwrap_or(0);
        let rule = |l: char, m: char, r: char| {
            format!(
                "{l}{}{m}{}{r}\n",
                "─".repeat(left + 2),
                "─".repeat(right + 2)
            )
        };
        let mut out = rule('┌', '┬', '┐');
        for (key, value) in rows {
            let _ = writeln!(out, "│ {key:<left$} │ {value:>right$} │");
        }
        out.push_str(&rule('└', '┴', '┘'));
        out
    }
}

/// A producer's client.
struct Producer {
    client: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Producer {
    async fn send(&self, request: reqwest::RequestBuilder, what: &str) -> Result<Value, DemoError> {
        let request = match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let failed = |detail: String| DemoError::Producer {
            what: what.to_owned(),
            detail,
        };
        let response = request.send().await.map_err(|e| failed(e.to_string()))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| failed(e.to_string()))?;
        if !status.is_success() {
            return Err(failed(format!(
                "{status}: {}",
                String::from_utf8_lossy(&body)
            )));
        }
        serde_json::from_slice(&body).map_err(|e| failed(e.to_string()))
    }

    async fn submit(&self, name: &str) -> Result<Value, DemoError> {
        let body = json!({"name": name, "payload": {"source": "demo"}});
        let request = self
            .client
            .post(format!("{}/tasks", self.base))
            .header("content-type", "application/json")
            .body(body.to_string());
        self.send(request, &format!("submitting {name}")).await
    }

    async fn stats(&self) -> Result<Value, DemoError> {
        let request = self.client.get(format!("{}/stats", self.base));
        self.send(request, "reading /stats").await
    }
}

/// A counter of a `/stats` answer (0 when absent).
fn total(stats: &Value, name: &str) -> u64 {
    stats["totals"][name].as_u64().unwrap_or(0)
}

/// One bar per state, all of the same length (the number of tasks).
struct Bars {
    _all: MultiProgress,
    waiting: ProgressBar,
    running: ProgressBar,
    done: ProgressBar,
    dead: ProgressBar,
}

impl Bars {
    fn new(tasks: u64) -> Self {
        let all = MultiProgress::new();
        let bar = |label: &str, colour: &str| {
            let style = ProgressStyle::with_template(&format!(
                "{label:>8} [{{bar:40.{colour}}}] {{pos:>6}}/{{len}} {{msg}}"
            ))
            .expect("a valid template")
            .progress_chars("█▉ ");
            all.add(ProgressBar::new(tasks).with_style(style))
        };
        Self {
            waiting: bar("waiting", "blue"),
            running: bar("running", "yellow"),
            done: bar("done", "green"),
            dead: bar("dead", "red"),
            _all: all,
        }
    }

    fn show(&self, waiting: u64, running: u64, done: u64, dead: u64) {
        for (bar, value) in [
            (&self.waiting, waiting),
            (&self.running, running),
            (&self.done, done),
            (&self.dead, dead),
        ] {
            bar.set_position(value);
        }
    }

    fn finish(&self) {
        for bar in [&self.waiting, &self.running, &self.done, &self.dead] {
            bar.abandon();
        }
    }
}

/// Submits `tasks` tasks twice each, shows their progress, and answers the summary.
///
/// # Errors
/// [`DemoError`] when the producer fails or the tasks do not finish in time.
pub async fn run(config: &Config) -> Result<Summary, DemoError> {
    // reqwest is built with rustls and no crypto provider of its own: use ring, as the rest of
    // the workspace does (installing fails only when one is installed already).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let producer = std::sync::Arc::new(Producer {
        client: reqwest::Client::new(),
        base: config.producer_url.trim_end_matches('/').to_owned(),
        token: config.admin_token.clone(),
    });
    let before = producer.stats().await?;
    let started = Instant::now();
    let mut submissions = JoinSet::new();
    for lane in 0..16 {
        let (producer, tasks) = (std::sync::Arc::clone(&producer), config.tasks);
        submissions.spawn(async move {
            for i in (lane..2 * tasks).step_by(16) {
                producer.submit(&format!("demo-{}", i % tasks + 1)).await?;
            }
            Ok::<_, DemoError>(())
        });
    }
    while let Some(lane) = submissions.join_next().await {
        lane.expect("a submission lane panicked")?;
    }

    let bars = Bars::new(config.tasks);
    let timeout = Duration::from_secs(config.timeout_secs);
    let since = |stats: &Value, name: &str| total(stats, name).saturating_sub(total(&before, name));
    let finished = loop {
        let stats = producer.stats().await?;
        let (done, dead) = (since(&stats, "done"), since(&stats, "dead"));
        let counts = &stats["counts"];
        let count = |name: &str| counts[name].as_u64().unwrap_or(0);
        bars.show(count("due"), count("running"), done, dead);
        if done + dead >= config.tasks {
            break stats;
        }
        if started.elapsed() > timeout {
            bars.finish();
            return Err(DemoError::Timeout {
                finished: done + dead,
                tasks: config.tasks,
                timeout,
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    bars.finish();
    Ok(Summary {
        enqueued: since(&finished, "enqueued"),
        duplicates: since(&finished, "duplicates"),
        done: since(&finished, "done"),
        dead: since(&finished, "dead"),
        processing_answers: since(&finished, "snoozed"),
        retried: since(&finished, "retried"),
        wall: started.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_is_an_aligned_table() {
        let summary = Summary {
            enqueued: 20,
            duplicates: 20,
            done: 19,
            dead: 1,
            processing_answers: 40,
            retried: 7,
            wall: Duration::from_millis(2500),
        };
        let table = summary.table();
        let widths: Vec<usize> = table.lines().map(|l| l.chars().count()).collect();
        assert!(widths.windows(2).all(|w| w[0] == w[1]), "{table}");
        let done = table.lines().find(|l| l.starts_with("│ done ")).unwrap();
        assert!(done.ends_with(" 19 │"), "{table}");
        assert!(table.contains("7.6 tasks/s"), "{table}");
    }
}
