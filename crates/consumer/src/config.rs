//! The consumer's settings.

use std::time::Duration;

use reqwest::Url;
use taskq::service::RedisArgs;
use taskq::{Backoff, Policy, Queue, WorkerConfig};

/// The consumer's settings.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Redis and queue.
    #[command(flatten)]
    pub redis: RedisArgs,
    /// The third-party API; each call is GET {API_URL}?task-name=NAME.
    #[arg(long, env = "API_URL", default_value = "http://127.0.0.1:9001/")]
    pub api_url: Url,
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
    /// How long dead tasks are kept (s).
    #[arg(long, env = "DEAD_TTL_SECS", default_value_t = 7 * 86_400)]
    pub dead_ttl_secs: u64,
    /// How many dead tasks are kept at most; the oldest are pruned first.
    #[arg(long, env = "DEAD_MAX", default_value_t = 10_000)]
    pub dead_max: u64,
}

impl Config {
    /// The queue's rules as this consumer applies them.
    pub fn policy(&self) -> Policy {
        Policy {
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
