//! The benchmark's own commands to a Redis that `testkit` started (`FLUSHALL` before a run,
//! `INFO` for its version and memory), each on a fresh connection with a patient response
//! timeout: emptying a million-task queue (W4's) takes well over redis-rs' default 500 ms, and a
//! busy machine must not fail a run for the benchmark's own bookkeeping.

use std::time::Duration;

use anyhow::{Context, Result};
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

/// The value of `field` in `server`'s `INFO section`.
///
/// # Errors
/// When Redis fails or does not say.
pub async fn info(server: &RedisServer, section: &str, field: &str) -> Result<String> {
    let mut conn = connect(server).await?;
    let info: String = redis::cmd("INFO")
        .arg(section)
        .query_async(&mut conn)
        .await?;
    let value =
        info_field(&info, field).with_context(|| format!("no {field} in INFO {section}"))?;
    Ok(value.to_owned())
}

/// The value of `field` in an `INFO` answer (`field:value` lines).
pub fn info_field<'a>(info: &'a str, field: &str) -> Option<&'a str> {
    let value = |line: &'a str| line.strip_prefix(field)?.strip_prefix(':');
    info.lines().find_map(value).map(str::trim)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_fields_are_found_by_exact_name() {
        let info = "# Server\r\nredis_version:7.0.15\r\nredis_version_x:no\r\n";
        assert_eq!(info_field(info, "redis_version"), Some("7.0.15"));
        assert_eq!(info_field(info, "redis"), None);
    }
}
