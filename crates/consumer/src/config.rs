//! The consumer's settings.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use queue_service::RedisArgs;
use reqwest::Url;
use taskq::{Backoff, Policy, Queue, WorkerConfig};

use crate::api::{Api, ApiSpec, Profile, ProfileError};

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
    #[arg(long, env = "TICK", default_value = "* * * * * *")]
    pub tick: String,
    /// How long one API call may take (ms).
    #[arg(long, env = "API_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub api_timeout_ms: u64,
    /// The largest API answer read (bytes); a larger one is a failed call.
    #[arg(long, env = "API_MAX_BODY_BYTES", default_value_t = 1 << 20)]
    pub api_max_body_bytes: usize,
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
    /// lease_ms, and api (an API profile: see README, "Calling real APIs"). The queues it names
    /// are served unless QUEUES lists them.
    #[arg(long, env = "QUEUES_FILE")]
    pub queues_file: Option<PathBuf>,
    /// How many dead tasks are kept at most; the oldest are pruned first.
    #[arg(long, env = "DEAD_MAX", default_value_t = 10_000)]
    pub dead_max: u64,
    /// The queue's API profile, from QUEUES_FILE (`None`: the original shape at API_URL).
    #[arg(skip)]
    pub api_profile: Option<Arc<Profile>>,
}

/// One queue's settings in `QUEUES_FILE`; what is left out comes from the flags.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueOverrides {
    api_url: Option<String>,
    concurrency: Option<u32>,
    batch_size: Option<u32>,
    poll_interval_ms: Option<u64>,
    api_timeout_ms: Option<u64>,
    max_attempts: Option<u32>,
    lease_ms: Option<u64>,
    api: Option<ApiSpec>,
}

/// Why the per-queue settings could not be read.
#[derive(Debug, thiserror::Error)]
pub enum QueuesFileError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A queue's api_url is not a URL.
    #[error("queue {queue}: api_url: {message}")]
    BadUrl {
        /// The queue.
        queue: String,
        /// What is wrong.
        message: String,
    },
    /// The file is not the expected JSON or TOML.
    #[error("parsing {path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What the parser said (it names the key).
        message: String,
    },
    /// A queue names both an original-shape URL and a profile.
    #[error("queue {0}: give api_url (the original shape) or api (a profile), not both")]
    TwoApis(String),
    /// A queue's API profile is wrong.
    #[error("queue {queue}: {source}")]
    Profile {
        /// The queue.
        queue: String,
        /// The field and what is wrong with it.
        source: ProfileError,
    },
}

/// Reads the per-queue settings: TOML when the file name ends in `.toml`, else JSON.
fn read_queues_file(
    path: &Path,
) -> Result<std::collections::BTreeMap<String, QueueOverrides>, QueuesFileError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| QueuesFileError::Read {
        path: shown.clone(),
        source,
    })?;
    let parsed = if path.extension().is_some_and(|ext| ext == "toml") {
        toml::from_str(&text).map_err(|e| {
            // Not the error's own text: it quotes the file's line, which may hold a credential.
            let line = e
                .span()
                .map_or(0, |span| text[..span.start].lines().count().max(1));
            format!("{} (line {line})", e.message())
        })
    } else {
        serde_json::from_str(&text).map_err(|e| e.to_string())
    };
    parsed.map_err(|message| QueuesFileError::Parse {
        path: shown,
        message: without_quoted_text(&message),
    })
}

/// `message` with the text between double quotes left out: a parser quotes the values it
/// refuses (escaping quotes inside them), and a value in this file may be a credential. Names of
/// keys, which parsers quote with backticks, stay.
fn without_quoted_text(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut chars = message.chars();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', false) => {
                out.push_str("\"…\"");
                quoted = true;
            }
            ('"', true) => quoted = false,
            ('\\', true) => {
                chars.next();
            }
            (_, true) => {}
            (c, false) => out.push(c),
        }
    }
    out
}

impl Config {
    /// One configuration per queue served (QUEUES, else the queues of QUEUES_FILE, else
    /// QUEUE_NAME), each with its overrides from QUEUES_FILE applied and its API profile
    /// compiled (`${VAR}` read from the environment).
    ///
    /// # Errors
    /// [`QueuesFileError`] when QUEUES_FILE cannot be read or parsed, or a profile is wrong.
    pub fn per_queue(&self) -> Result<Vec<Config>, QueuesFileError> {
        self.per_queue_with(|name| std::env::var(name).ok())
    }

    /// [`Config::per_queue`], with `lookup` for the environment.
    fn per_queue_with(
        &self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Vec<Config>, QueuesFileError> {
        let overrides = match &self.queues_file {
            Some(path) => read_queues_file(path)?,
            None => Default::default(),
        };
        let names = if self.redis.queues.is_empty() && !overrides.is_empty() {
            overrides.keys().cloned().collect()
        } else {
            self.redis.queue_names()
        };
        names
            .into_iter()
            .map(|name| {
                let o = overrides.get(&name).cloned().unwrap_or_default();
                if o.api_url.is_some() && o.api.is_some() {
                    return Err(QueuesFileError::TwoApis(name));
                }
                let mut config = self.clone();
                if let Some(url) = o.api_url {
                    config.api_url =
                        original_api_url(&url).map_err(|message| QueuesFileError::BadUrl {
                            queue: name.clone(),
                            message,
                        })?;
                }
                config.redis.queue_name = name;
                config.redis.queues.clear();
                config.concurrency = o.concurrency.unwrap_or(config.concurrency).max(1);
                config.batch_size = o.batch_size.unwrap_or(config.batch_size).clamp(1, 1000);
                config.poll_interval_ms = o.poll_interval_ms.unwrap_or(config.poll_interval_ms);
                config.api_timeout_ms = o.api_timeout_ms.unwrap_or(config.api_timeout_ms).max(1);
                config.max_attempts = o.max_attempts.unwrap_or(config.max_attempts).max(1);
                config.lease_ms = o.lease_ms.unwrap_or(config.lease_ms).max(100);
                config.api_profile = o
                    .api
                    .map(|spec| spec.compile(&lookup))
                    .transpose()
                    .map_err(|source| QueuesFileError::Profile {
                        queue: config.redis.queue_name.clone(),
                        source,
                    })?
                    .map(Arc::new);
                Ok(config)
            })
            .collect()
    }

    /// The API this queue calls.
    pub fn api(&self) -> Api {
        match &self.api_profile {
            Some(profile) => Api::Profile(Arc::clone(profile)),
            None => Api::Original(self.api_url.clone()),
        }
    }

    /// The queue's rules as this consumer applies them.
    pub fn policy(&self) -> Policy {
        Policy {
            submit_keys: self.api().submits(),
            lease: Duration::from_millis(self.lease_ms),
            max_attempts: self.max_attempts,
            max_poll: (self.max_poll_secs > 0).then(|| Duration::from_secs(self.max_poll_secs)),
            dead_ttl: Duration::from_secs(self.dead_ttl_secs),
            dead_max: self.dead_max,
            ..Policy::default()
        }
    }

    /// The worker's settings.
    pub fn worker(&self) -> WorkerConfig {
        WorkerConfig {
            concurrency: self.concurrency as usize,
            batch_size: self.batch_size as usize,
            poll_interval: Duration::from_millis(self.poll_interval_ms),
            backoff: self.backoff(),
            shutdown_grace: Duration::from_millis(self.shutdown_grace_ms),
            // The cron tick wakes the loop; between ticks it sleeps until work is due.
            idle_poll: None,
        }
    }

    /// The retry schedule.
    pub fn backoff(&self) -> Backoff {
        Backoff {
            base: Duration::from_millis(self.retry_base_ms),
            max: Duration::from_millis(self.retry_max_ms.max(self.retry_base_ms)),
        }
    }

    /// Opens the queue (the connection is made on first use).
    ///
    /// # Errors
    /// When the queue name or Redis URL is unusable.
    pub fn queue(&self) -> taskq::Result<Queue> {
        Queue::open(
            &self.redis.redis_url,
            &self.redis.connect_options()?,
            &self.redis.queue_name,
            self.policy(),
        )
    }
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

#[cfg(test)]
mod tests;
