//! The producer's settings.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use queue_kit::RedisArgs;
use service_kit::Connections;
use taskq::connect::connect;
use taskq::{EnqueuePolicy, Queue};

use crate::served::Queues;
use crate::state::AppState;
use crate::tokens::{BearerToken, Tokens};

/// The producer's settings.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Redis and queue.
    #[command(flatten)]
    pub redis: RedisArgs,
    /// Address to listen on.
    #[arg(long, env = "PRODUCER_ADDR", default_value = "127.0.0.1:9002")]
    pub addr: SocketAddr,
    /// How long a finished task's result is kept and served (s); after that a request for the
    /// name enqueues it again.
    #[arg(long, env = "RESULT_TTL_SECS", default_value_t = 3600)]
    pub result_ttl_secs: u64,
    /// How long dead and cancelled tasks are kept (s); while kept, their names dedup. The same
    /// setting in every binary: the consumer buries dead tasks with it, the producer cancels
    /// with it.
    #[arg(long, env = "DEAD_TTL_SECS", default_value_t = 7 * 86_400, value_parser = clap::value_parser!(u64).range(1..))]
    pub dead_ttl_secs: u64,
    /// The consumer's wait between two polls of a task (ms): the `Retry-After` hint of 202 answers.
    #[arg(long, env = "POLL_INTERVAL_MS", default_value_t = 2000)]
    pub poll_interval_ms: u64,
    /// The share of Redis' maxmemory above which enqueues are refused (503 with Retry-After), so
    /// that consumers keep the headroom to finish what was accepted; 1 turns the check off.
    #[arg(long, env = "REDIS_MEMORY_HIGH_WATER", default_value_t = 0.85, value_parser = high_water)]
    pub redis_memory_high_water: f64,
    /// The tasks a queue may hold (due and leased) before enqueues are refused; 0: no limit.
    #[arg(long, env = "MAX_QUEUED", default_value_t = 0)]
    pub max_queued: u64,
    /// The bearer token the admin routes require (list, stats, retry, purge), and cancelling
    /// when CLIENT_TOKEN is not set; when unset (an empty variable is unset) they are open. Set it
    /// in production.
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<BearerToken>,
    /// The bearer token the client routes require when set (enqueue, read, cancel); the admin
    /// token is accepted there too. Unset (an empty variable is unset): enqueue and read are
    /// open, cancel needs ADMIN_TOKEN (when that is set).
    #[arg(long, env = "CLIENT_TOKEN", hide_env_values = true)]
    pub client_token: Option<BearerToken>,
    /// The longest a long-poll (`?wait=`) holds a request (ms, at most 60000): a longer wait is
    /// answered with the view as it is when this is up. Keep it below the idle timeout of any
    /// proxy or load balancer in front of the producer.
    #[arg(long, env = "LONG_POLL_MAX_MS", default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pub long_poll_max_ms: u64,
    /// The largest webhook body read (bytes, at most 64 MiB): a larger one is answered 413 and
    /// changes nothing. A JSON body is kept with its task until the next call, in Redis.
    #[arg(long, env = "HOOK_MAX_BODY_BYTES", default_value_t = 1024 * 1024, value_parser = clap::value_parser!(u64).range(1..=64 * 1024 * 1024))]
    pub hook_max_body_bytes: u64,
    /// Provider webhooks in (PUBLIC_URL, HOOK_SECRET): the producer checks the hook URLs.
    #[command(flatten)]
    pub hooks: webhooks::HookSettings,
    /// Callbacks to clients (the producer checks a task's callback_url; the consumer delivers).
    #[command(flatten)]
    pub callbacks: webhooks::CallbackSettings,
    /// Client connections: the header-read and keep-alive timeouts, the cap.
    #[command(flatten)]
    pub connections: service_kit::ConnectionArgs,
}

/// Why the producer cannot start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// A queue name or the Redis URL is unusable.
    #[error("opening the queue: {0}")]
    Queue(taskq::Error),
    /// The connection cap does not fit the open-file limit.
    #[error(transparent)]
    Connections(#[from] service_kit::connections::LimitsError),
}

// By hand rather than `#[from]`, which would also make the error its source: the message
// already holds it, and a cause printed as both would show twice.
impl From<taskq::Error> for StartError {
    fn from(error: taskq::Error) -> Self {
        Self::Queue(error)
    }
}

impl Config {
    /// The handlers' state: the queues (QUEUES, else QUEUE_NAME) on one connection made on
    /// first use, the tokens, the `Retry-After` hint, and the client connections' limits (the
    /// process' soft limit of open files is raised to its hard limit first: the default cap is
    /// sized from it).
    ///
    /// # Errors
    /// When a queue name or the Redis URL is unusable, or the connection cap does not fit.
    pub fn state(&self) -> Result<AppState, StartError> {
        let conn = connect(&self.redis.redis_url, &self.redis.connect_options()?)?;
        let policy = EnqueuePolicy {
            result_ttl: Duration::from_secs(self.result_ttl_secs.max(1)),
            memory_high_water: Some(self.redis_memory_high_water),
            max_queued: (self.max_queued > 0).then_some(self.max_queued),
        };
        let dead_ttl = Duration::from_secs(self.dead_ttl_secs);
        let mut queues = self.redis.queue_names().into_iter().map(|name| {
            Queue::new(conn.clone(), &name).map(|queue| {
                queue
                    .with_enqueue_policy(policy.clone())
                    .with_dead_ttl(dead_ttl)
            })
        });
        let default = queues.next().expect("queue_names is never empty")?;
        Ok(AppState {
            redis_check: Duration::from_millis(self.redis.redis_check_ms),
            tokens: Tokens {
                admin: self.admin_token.clone(),
                client: self.client_token.clone(),
            },
            retry_after: Duration::from_millis(self.poll_interval_ms),
            long_poll_max: Duration::from_millis(self.long_poll_max_ms),
            hook_secret: self.hooks.hook_secret.clone(),
            // At most 64 MiB (the parser's range): fits any usize taskq builds for.
            hook_max_body_bytes: usize::try_from(self.hook_max_body_bytes).unwrap_or(usize::MAX),
            callback_allow_private: self.callbacks.callback_allow_private,
            connections: Arc::new(Connections::new(self.connections.limits(u64::MAX)?)),
            ..AppState::new(Queues::new(default, queues.collect::<Result<Vec<_>, _>>()?))
        })
    }
}

/// A high-water mark: a share of maxmemory, above 0.
fn high_water(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(share) if share > 0.0 && share.is_finite() => Ok(share),
        _ => Err("a share of maxmemory above 0, such as 0.85 (1 turns the check off)".into()),
    }
}
