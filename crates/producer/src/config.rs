//! The producer's settings.

use std::net::SocketAddr;
use std::time::Duration;

use taskq::service::RedisArgs;
use taskq::{Policy, Queue};

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
}

impl Config {
    /// Opens the queue these settings name (the connection is made on first use).
    ///
    /// # Errors
    /// When the queue name or the Redis URL is unusable.
    pub fn queue(&self) -> taskq::Result<Queue> {
        let policy = Policy {
            result_ttl: Duration::from_secs(self.result_ttl_secs.max(1)),
            ..Policy::default()
        };
        Queue::open(
            &self.redis.redis_url,
            &self.redis.connect_options()?,
            &self.redis.queue_name,
            policy,
        )
    }
}
