//! The queue as the producer and the consumer both serve it: the Redis flags they take, the
//! queue-wide series on their `/metrics`, and what the Redis holding each queue says about
//! itself on their `/healthz` and `/metrics`. The queue library stays free of flags and HTTP;
//! what both services show lives here once.
//!
//! A kit, not a service: the parts a binary that serves queues adds to `service-kit`'s (which
//! knows nothing of the queue); the queue itself is `taskq`.
//!
//! - [`redis_args`]: `REDIS_URL` and the other Redis settings, as flags and environment.
//! - [`queue_metrics`]: the counters the scripts keep, read at scrape time.
//! - [`redis_health`]: each queue's Redis report on `/healthz` and `/metrics`.

pub mod queue_metrics;
pub mod redis_args;
pub mod redis_health;

pub use queue_metrics::write_queue_stats;
pub use redis_args::RedisArgs;
pub use redis_health::{health_of, write_server_reports};
