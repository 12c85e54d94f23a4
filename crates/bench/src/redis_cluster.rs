//! A private Redis Cluster of three masters, no replicas: three [`RedisServer`]s started with
//! `--cluster-enabled yes` on loopback ports `p` whose bus port `p + 10000` is free too, joined
//! with `redis-cli --cluster create ... --cluster-replicas 0 --cluster-yes` (which spreads the
//! 16,384 slots evenly), ready once every node says `cluster_state:ok`. Stopped when dropped.

use std::net::TcpListener;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::process::Command;
use tokio::time::{Instant, sleep, timeout};

use crate::process::free_port;
use crate::redis_server::RedisServer;

/// Masters in the cluster.
pub const MASTERS: usize = 3;

/// A running three-master cluster owned by the benchmark.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts three cluster-mode servers (`redis_server`), joins them with `redis_cli`, and waits
    /// (20 s at most) until every node reports `cluster_state:ok`.
    ///
    /// # Errors
    /// When a server cannot start, `redis-cli --cluster create` fails, or the cluster does not
    /// become ok in time.
    pub async fn start(redis_server: &str, redis_cli: &str) -> Result<Self> {
        let mut nodes = Vec::with_capacity(MASTERS);
        for _ in 0..MASTERS {
            let node = RedisServer::start_with(
                redis_server,
                cluster_port()?,
                &[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "5000",
                ],
            )
            .await?;
            nodes.push(node);
        }
        let mut create = Command::new(redis_cli);
        create.args(["--cluster", "create"]);
        for node in &nodes {
            create.arg(format!("127.0.0.1:{}", node.port()));
        }
        create
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let output = timeout(Duration::from_secs(30), create.output())
            .await
            .context("redis-cli --cluster create did not end within 30 s")?
            .with_context(|| format!("running {redis_cli} --cluster create"))?;
        if !output.status.success() {
            bail!(
                "redis-cli --cluster create failed ({}): {}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let cluster = Self { nodes };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !cluster.is_ok().await {
            if Instant::now() > deadline {
                bail!("the cluster did not reach cluster_state:ok within 20 s");
            }
            sleep(Duration::from_millis(50)).await;
        }
        Ok(cluster)
    }

    async fn is_ok(&self) -> bool {
        for node in &self.nodes {
            let Ok(mut conn) = node.connect().await else {
                return false;
            };
            let info: String = redis::cmd("CLUSTER")
                .arg("INFO")
                .query_async(&mut conn)
                .await
                .unwrap_or_default();
            if !info.contains("cluster_state:ok") {
                return false;
            }
        }
        true
    }

    /// The URL taskq takes for a cluster: the masters' URLs, comma-separated.
    pub fn url(&self) -> String {
        self.nodes
            .iter()
            .map(RedisServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The masters.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// The index (in [`RedisCluster::nodes`]) of the master that serves `key`: the only one that
    /// answers `EXISTS key` instead of redirecting with `MOVED`.
    ///
    /// # Errors
    /// When no node or several nodes claim the key.
    pub async fn master_of(&self, key: &str) -> Result<usize> {
        let mut owners = Vec::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let mut conn = node.connect().await?;
            let answer: redis::RedisResult<i64> =
                redis::cmd("EXISTS").arg(key).query_async(&mut conn).await;
            if answer.is_ok() {
                owners.push(i);
            }
        }
        match owners.as_slice() {
            [one] => Ok(*one),
            _ => bail!("{key} is served by masters {owners:?}, not exactly one"),
        }
    }

    /// The hash slot of `key` (`CLUSTER KEYSLOT`).
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn slot_of(&self, key: &str) -> Result<u16> {
        let mut conn = self.nodes[0].connect().await?;
        Ok(redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query_async(&mut conn)
            .await?)
    }

    /// Keys held by each master (`DBSIZE`), in node order.
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn keys_per_master(&self) -> Result<Vec<u64>> {
        let mut out = Vec::with_capacity(self.nodes.len());
        for node in &self.nodes {
            let mut conn = node.connect().await?;
            out.push(redis::cmd("DBSIZE").query_async(&mut conn).await?);
        }
        Ok(out)
    }

    /// Stops every node and removes their folders.
    pub async fn stop(self) {
        for node in self.nodes {
            node.stop().await;
        }
    }
}

/// A free loopback port `p` whose cluster bus port `p + 10000` is free as well.
fn cluster_port() -> Result<u16> {
    for _ in 0..1000 {
        let port = free_port()?;
        let Some(bus) = port.checked_add(10_000) else {
            continue;
        };
        if TcpListener::bind(("127.0.0.1", bus)).is_ok() {
            return Ok(port);
        }
    }
    bail!("found no free port p with p + 10000 free as well")
}
