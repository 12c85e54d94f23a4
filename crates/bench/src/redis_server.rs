//! A private `redis-server`: a free loopback port, a temporary folder, no persistence (`--save ''
//! --appendonly no`, so no fork or disk write ever disturbs a timing), killed when dropped.
//! [`crate::redis_cluster`] starts three of them in cluster mode.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::process::{Child, Command};
use tokio::time::{Instant, sleep};

use crate::process::free_port;

/// How long the benchmark's own commands (`FLUSHALL`, `INFO`) may take.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(60);

/// A running `redis-server` owned by the benchmark.
pub struct RedisServer {
    /// The process; `kill_on_drop` so an early return or a panic never leaves it behind.
    child: Child,
    port: u16,
    /// Its working folder (where `redis.log` goes), removed on drop.
    dir: PathBuf,
}

impl RedisServer {
    /// Starts `program` (usually `redis-server`) and waits until it answers `PING`.
    ///
    /// # Errors
    /// When it cannot be started or does not answer within 10 s.
    pub async fn start(program: &str) -> Result<Self> {
        Self::start_with(program, free_port()?, &[]).await
    }

    /// Starts `program` on `port` with `extra` arguments (cluster mode, for instance), in a
    /// folder of its own, and waits until it answers `PING`.
    ///
    /// # Errors
    /// When it cannot be started or does not answer within 10 s.
    pub async fn start_with(program: &str, port: u16, extra: &[&str]) -> Result<Self> {
        let dir =
            std::env::temp_dir().join(format!("taskq-bench-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let child = Command::new(program)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .args(extra)
            .arg("--dir")
            .arg(&dir)
            .arg("--logfile")
            .arg(dir.join("redis.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| {
                format!("starting {program} (is it installed? scripts/setup installs it)")
            })?;
        let server = Self { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match server.connect().await {
                Ok(mut conn) => {
                    let pong: redis::RedisResult<String> =
                        redis::cmd("PING").query_async(&mut conn).await;
                    if pong.is_ok() {
                        return Ok(server);
                    }
                }
                Err(_) if Instant::now() < deadline => {}
                Err(err) => bail!("redis-server on port {port} did not start: {err}"),
            }
            sleep(Duration::from_millis(20)).await;
        }
    }

    /// The server's URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A fresh connection for the benchmark's own commands (`FLUSHALL`, `INFO`), with a patient
    /// response timeout: emptying a million-task queue (W4's) takes well over redis-rs' default
    /// 500 ms, and a busy machine must not fail a run for the benchmark's own bookkeeping.
    ///
    /// # Errors
    /// When the server does not accept it.
    pub async fn connect(&self) -> Result<redis::aio::MultiplexedConnection> {
        let client = redis::Client::open(self.url())?;
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(ADMIN_TIMEOUT));
        Ok(client
            .get_multiplexed_async_connection_with_config(&config)
            .await?)
    }

    /// Empties the server: every run starts from nothing.
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn flush(&self) -> Result<()> {
        let mut conn = self.connect().await?;
        let () = redis::cmd("FLUSHALL").query_async(&mut conn).await?;
        Ok(())
    }

    /// `redis_version` from `INFO server`.
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn version(&self) -> Result<String> {
        let mut conn = self.connect().await?;
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut conn)
            .await?;
        Ok(info_field(&info, "redis_version")
            .unwrap_or("unknown")
            .to_owned())
    }

    /// Memory Redis holds for data (`used_memory` of `INFO memory`), in bytes.
    ///
    /// # Errors
    /// When Redis fails or does not say.
    pub async fn used_memory(&self) -> Result<u64> {
        let mut conn = self.connect().await?;
        let info: String = redis::cmd("INFO")
            .arg("memory")
            .query_async(&mut conn)
            .await?;
        info_field(&info, "used_memory")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| anyhow::anyhow!("no used_memory in INFO memory"))
    }

    /// Stops the server and removes its folder.
    pub async fn stop(mut self) {
        // Errors here mean it is already gone, which is the goal.
        let _ = self.child.kill().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The value of `field` in an `INFO` answer (`field:value` lines).
pub fn info_field<'a>(info: &'a str, field: &str) -> Option<&'a str> {
    info.lines().find_map(|line| {
        line.strip_prefix(field)
            .and_then(|rest| rest.strip_prefix(':'))
            .map(str::trim)
    })
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
