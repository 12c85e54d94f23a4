//! The benchmark's own commands to a Redis that `testkit` started (`FLUSHALL` before a run, and
//! the connections the measured windows read `INFO` on), each on a fresh connection with a
//! patient response timeout: emptying a million-task queue (W4's) takes well over redis-rs'
//! default 500 ms, and a busy machine must not fail a run for the benchmark's own bookkeeping.

use std::time::Duration;

use anyhow::Result;
use redis::aio::MultiplexedConnection;
use testkit::RedisServer;

/// A fresh connection to `server` for the benchmark's own commands.
pub async fn connect(server: &RedisServer) -> Result<MultiplexedConnection> {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(60)));
    let client = redis::Client::open(server.url())?;
    Ok(client
        .get_multiplexed_async_connection_with_config(&config)
        .await?)
}

/// Empties `server`: every run starts from nothing.
pub async fn flush(server: &RedisServer) -> Result<()> {
    let mut conn = connect(server).await?;
    Ok(redis::cmd("FLUSHALL").query_async(&mut conn).await?)
}
