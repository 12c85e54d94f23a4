//! The consumer's settings: flags and environment ([`Config`]), and per queue
//! ([`QueueSettings`], from `QUEUES_FILE`).

mod check;
mod queues;

use std::net::SocketAddr;
use std::path::PathBuf;

use queue_kit::RedisArgs;
use reqwest::Url;

pub use check::check;
pub use queues::{Compiled, QueueSettings, QueuesFileError};

/// The consumer's settings.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Redis and queue.
    #[command(flatten)]
    pub redis: RedisArgs,
    /// Where the consumer serves /metrics and /healthz (port 0: any free port).
    #[arg(long, env = "CONSUMER_ADDR", default_value = "127.0.0.1:9003")]
    pub addr: SocketAddr,
    /// The third-party API of the original shape (queues without a profile); each call is
    /// GET {API_URL}?task-name=NAME. https:// works.
    #[arg(long, env = "API_URL", default_value = "http://127.0.0.1:9001/", hide_env_values = true, value_parser = OriginalApiUrl)]
    pub api_url: Url,
    /// A PEM file of certificate authorities trusted for every queue's API, beside the
    /// system's (a profile adds its own with ca_file).
    #[arg(long, env = "API_CA_FILE")]
    pub api_ca_file: Option<PathBuf>,
    /// Tasks in flight at most.
    #[arg(long, env = "CONCURRENCY", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub concurrency: u32,
    /// Tasks claimed per Redis round trip at most.
    #[arg(long, env = "BATCH_SIZE", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub batch_size: u32,
    /// Wait before polling again a task that answered "processing" (ms).
    #[arg(long, env = "POLL_INTERVAL_MS", default_value_t = 2000)]
    pub poll_interval_ms: u64,
    /// How long a claim lasts without renewal (ms); held leases are renewed every third of it,
    /// and a crashed consumer's tasks come back after it.
    #[arg(long, env = "LEASE_MS", default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(100..))]
    pub lease_ms: u64,
    /// Failed attempts (errors, expired leases) after which a task is dead.
    #[arg(long, env = "MAX_ATTEMPTS", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_attempts: u32,
    /// The cron tick (6 fields, with seconds) that wakes the claim loop and sweeps expired leases.
    #[arg(long, env = "TICK", default_value = "* * * * * *", value_parser = tick_schedule)]
    pub tick: String,
    /// How often a secret file (`${file:/path}` in a profile's headers or auth) is looked at
    /// again: a changed file is read and used from the next call, without a restart (ms).
    #[arg(long, env = "SECRETS_RELOAD_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(100..))]
    pub secrets_reload_ms: u64,
    /// How long one API call may take (ms).
    #[arg(long, env = "API_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub api_timeout_ms: u64,
    /// The largest API answer read (bytes); a larger one is a failed call.
    #[arg(long, env = "API_MAX_BODY_BYTES", default_value_t = 1 << 20)]
    pub api_max_body_bytes: usize,
    /// The most bytes a multipart upload's files may hold in all (a profile's file parts, which
    /// the consumer downloads and streams to the API).
    #[arg(long, env = "API_MAX_UPLOAD_BYTES", default_value_t = 100 << 20)]
    pub api_max_upload_bytes: u64,
    /// The first retry delay after a failure (ms); it doubles per failure.
    #[arg(long, env = "RETRY_BASE_MS", default_value_t = 1000)]
    pub retry_base_ms: u64,
    /// The longest retry delay (ms).
    #[arg(long, env = "RETRY_MAX_MS", default_value_t = 300_000)]
    pub retry_max_ms: u64,
    /// The longest Retry-After (s) honoured from the API; a longer one is cut to this.
    #[arg(long, env = "RETRY_AFTER_MAX_SECS", default_value_t = 3600)]
    pub retry_after_max_secs: u64,
    /// How long after enqueue a task may keep answering "processing" before it is dead (s; 0 = forever).
    #[arg(long, env = "MAX_POLL_SECS", default_value_t = 86_400)]
    pub max_poll_secs: u64,
    /// How long calls in flight may run on after SIGTERM before their tasks are handed back (ms).
    #[arg(long, env = "SHUTDOWN_GRACE_MS", default_value_t = 10_000)]
    pub shutdown_grace_ms: u64,
    /// How long dead and cancelled tasks are kept (s); while kept, their names dedup. The same
    /// setting in every binary: the consumer buries dead tasks with it, the producer cancels
    /// with it.
    #[arg(long, env = "DEAD_TTL_SECS", default_value_t = 7 * 86_400, value_parser = clap::value_parser!(u64).range(1..))]
    pub dead_ttl_secs: u64,
    /// A JSON (or, named *.toml, TOML) file of per-queue settings:
    /// `{"queue-a": {"api_url": "http://a/", "concurrency": 20, "poll_interval_ms": 500}, ...}`.
    /// Keys: api_url, concurrency, batch_size, poll_interval_ms, api_timeout_ms, max_attempts,
    /// lease_ms, and api (an API profile: see docs/real-apis.md). The queues it names
    /// are served unless QUEUES lists them.
    #[arg(long, env = "QUEUES_FILE")]
    pub queues_file: Option<PathBuf>,
    /// How many dead tasks are kept at most; the oldest are pruned first.
    #[arg(long, env = "DEAD_MAX", default_value_t = 10_000)]
    pub dead_max: u64,
    /// Calls per second the API allows, shared by every consumer of the limit key (0: no rate).
    /// For queues of the original shape; a profile states its own (`"rate"`).
    #[arg(long, env = "API_RATE_PER_SEC", default_value_t = 0.0, value_parser = rate_per_sec)]
    pub api_rate_per_sec: f64,
    /// Calls back to back the rate allows at most.
    #[arg(long, env = "API_RATE_BURST", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub api_rate_burst: u32,
    /// Calls in flight at once the API allows, across every consumer of the limit key (0: no
    /// cap). For queues of the original shape; a profile states its own (`"max_in_flight"`).
    #[arg(long, env = "API_MAX_IN_FLIGHT", default_value_t = 0)]
    pub api_max_in_flight: u32,
    /// The key the original shape's limits are shared under (default: the queue's name); queues
    /// naming one key share one limit, and a 429 with Retry-After pauses it for all of them.
    #[arg(long, env = "API_LIMIT_KEY")]
    pub api_limit_key: Option<String>,
    /// Provider webhooks in (PUBLIC_URL, HOOK_SECRET): where a profile's `{{webhook_url}}` points.
    #[command(flatten)]
    pub hooks: webhooks::HookSettings,
    /// Callbacks to clients (CALLBACK_*): how the consumer signs and delivers them.
    #[command(flatten)]
    pub callbacks: webhooks::CallbackSettings,
    /// Connections to /metrics and /healthz: the header-read and keep-alive timeouts, the cap.
    #[command(flatten)]
    pub connections: service_kit::ConnectionArgs,
}

/// A rate for `--api-rate-per-sec`: 0 (none) or within the limit's range.
fn rate_per_sec(text: &str) -> Result<f64, String> {
    let per_sec: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if per_sec == 0.0 {
        return Ok(0.0);
    }
    crate::limits::rate_limit(per_sec, 1).map(|rate| rate.per_sec)
}

/// Parses `--api-url` / `API_URL` with [`original_api_url`], and when it is refused says why
/// without the value (clap's own errors quote it, and it may hold a password).
#[derive(Debug, Clone, Copy)]
struct OriginalApiUrl;

impl clap::builder::TypedValueParser for OriginalApiUrl {
    type Value = Url;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<Url, clap::Error> {
        let refuse = |reason: &str| {
            clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("API_URL (--api-url): {reason}\n"),
            )
            .with_cmd(cmd)
        };
        let text = value.to_str().ok_or_else(|| refuse("not UTF-8"))?;
        original_api_url(text).map_err(|reason| refuse(&reason))
    }
}

/// The URL of an original-shape API: a URL without credentials, since the URL is logged and
/// shown (credentials go in a profile's headers, kept secret).
fn original_api_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| e.to_string())?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "no credentials in the URL (it is logged): give the queue an API profile with the \
             credential in a header (${VAR})"
                .into(),
        );
    }
    Ok(url)
}

/// A `TICK` the scheduler takes, checked where the settings are read: a mistake is a clear
/// refusal at start (and by `--check`), not the scheduler's bare `ParseSchedule` once serving.
fn tick_schedule(text: &str) -> Result<String, String> {
    match tokio_cron_scheduler::Job::new(text, |_, _| {}) {
        Ok(_) => Ok(text.to_owned()),
        Err(_) => Err(
            "not a cron schedule of 6 fields, seconds first (every second: \"* * * * * *\", every \
             5 s: \"*/5 * * * * *\")"
                .into(),
        ),
    }
}

#[cfg(test)]
mod tests;
