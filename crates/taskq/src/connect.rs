//! Connecting to Redis: the URL (with its secret kept out of logs) and the connection settings.
//!
//! One URL is a single Redis; a comma-separated list of URLs is the seed nodes of a Redis
//! Cluster, served by redis-rs' async cluster connection, which follows MOVED and ASK
//! redirections (a slot migration) by itself. Every key of a queue shares one hash tag, so every
//! script and pipeline of a queue lands on one node. A `redis+sentinel://` URL names the
//! sentinels of a master, found through them and found again after a failover (`sentinel`).
//! [`RedisConnection`] hides the difference.
//!
//! One `ConnectionManager` is shared by every task of a process: it multiplexes concurrent
//! commands over one socket (pipelining them for free) and reconnects in the background after a
//! failure. Every command has a response timeout, so a hung or unreachable Redis shows up as an
//! error within that time instead of a request that never ends.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use std::sync::Arc;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, RedisResult, Value};

use crate::error::{Error, Result};
use crate::sentinel::{self, SentinelMaster, SentinelUrl};

/// A Redis URL (`redis://`, `rediss://` for TLS, `unix://`, `redis+sentinel://`), whose password
/// never shows in `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl(String);

impl RedisUrl {
    /// The URL with its password, for the client only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with any password replaced by `***`.
    pub fn redacted(&self) -> String {
        if self.is_sentinel() {
            return redact(self.0.trim());
        }
        self.nodes().map(redact).collect::<Vec<_>>().join(",")
    }

    /// The node URLs: one for a single Redis, several for a cluster's seed nodes.
    pub fn nodes(&self) -> impl Iterator<Item = &str> {
        self.0.split(',').map(str::trim).filter(|n| !n.is_empty())
    }

    /// Whether the URL names a Redis Cluster (several comma-separated nodes).
    pub fn is_cluster(&self) -> bool {
        !self.is_sentinel() && self.nodes().count() > 1
    }

    /// Whether the URL names the sentinels of a master (`redis+sentinel://`).
    pub fn is_sentinel(&self) -> bool {
        self.0.trim_start().starts_with(sentinel::SCHEME)
    }
}

fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or("", |(user, _)| user);
            format!("{scheme}://{user}:***@{host}")
        }
        None => url.to_owned(),
    }
}

impl FromStr for RedisUrl {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let url = Self(s.to_owned());
        if url.is_sentinel() {
            SentinelUrl::parse(s.trim())?;
            return Ok(url);
        }
        if s.trim_start().starts_with("rediss+sentinel://") {
            return Err(Error::InvalidUrl(
                "rediss+sentinel://: TLS through Sentinel is not supported; use redis+sentinel://"
                    .into(),
            ));
        }
        if url.nodes().next().is_none() {
            return Err(Error::InvalidUrl("empty".into()));
        }
        for node in url.nodes() {
            redis::Client::open(node)
                .map_err(|e| Error::InvalidUrl(format!("{}: {e}", redact(node))))?;
        }
        Ok(url)
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// How many replicas must acknowledge a state change, and how long to wait for them (see
/// [`crate::replication`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitForReplicas {
    /// Replicas that must hold the change (at least 1).
    pub replicas: u32,
    /// How long to wait for them.
    pub timeout: Duration,
}

/// How to talk to Redis: patience, and whom to trust over TLS.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// How long one command may take before it fails: bounds how long a caller waits on a hung
    /// or unreachable Redis.
    pub response_timeout: Duration,
    /// How long one connection attempt may take.
    pub connect_timeout: Duration,
    /// For `rediss://`: the PEM certificate(s) of the authority that signed the server's
    /// certificate, when it is not one the system trusts.
    pub tls_root_cert: Option<Vec<u8>>,
    /// When set, every state change waits for replicas' acknowledgement (see `replication`).
    pub wait_for_replicas: Option<WaitForReplicas>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            response_timeout: Duration::from_millis(500),
            connect_timeout: Duration::from_millis(500),
            tls_root_cert: None,
            wait_for_replicas: None,
        }
    }
}

/// A connection to a single Redis, a Redis Cluster or a Sentinel-watched master; cheap to clone
/// (clones share the underlying connections).
#[derive(Clone)]
pub struct RedisConnection {
    link: Link,
    connect_timeout: Duration,
    wait_for_replicas: Option<WaitForReplicas>,
}

#[derive(Clone)]
enum Link {
    /// One Redis, multiplexed, reconnecting in the background; the client opens pub/sub
    /// connections (see [`crate::events`]).
    Single(ConnectionManager, Box<redis::Client>),
    /// A Redis Cluster, connected on first use.
    Cluster(Arc<LazyCluster>),
    /// The master of a Sentinel-watched Redis, looked up on first use and after a failover.
    Sentinel(Arc<SentinelMaster>),
}

impl RedisConnection {
    /// How many replicas each state change waits for, if any.
    pub fn wait_for_replicas(&self) -> Option<WaitForReplicas> {
        self.wait_for_replicas
    }

    /// Whether this is a Redis Cluster (events then travel by sharded pub/sub).
    pub fn is_cluster(&self) -> bool {
        matches!(self.link, Link::Cluster(_))
    }

    /// After replicas failed to acknowledge a change: a master found through Sentinel is looked
    /// up again on the next command, in case it was cut off and replaced.
    pub(crate) fn recheck_master(&self) {
        if let Link::Sentinel(master) = &self.link {
            master.forget();
        }
    }
}

/// A cluster connection made on first use, so a service starts (and reports itself unhealthy)
/// while the cluster is still down, as it does with a single Redis.
pub struct LazyCluster {
    client: ClusterClient,
    /// The nodes and settings, for the pub/sub connections (see [`crate::events`]).
    url: RedisUrl,
    options: ConnectOptions,
    connection: tokio::sync::OnceCell<ClusterConnection>,
}

impl LazyCluster {
    async fn get(&self) -> RedisResult<ClusterConnection> {
        self.connection
            .get_or_try_init(|| self.client.get_async_connection())
            .await
            .cloned()
    }
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match &mut self.link {
            Link::Single(conn, _) => conn.req_packed_command(cmd),
            Link::Cluster(cluster) => Box::pin(async move {
                let mut conn = cluster.get().await?;
                conn.req_packed_command(cmd).await
            }),
            Link::Sentinel(master) => sentinel::req_packed_command(master, cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match &mut self.link {
            Link::Single(conn, _) => conn.req_packed_commands(pipeline, offset, count),
            Link::Cluster(cluster) => Box::pin(async move {
                let mut conn = cluster.get().await?;
                conn.req_packed_commands(pipeline, offset, count).await
            }),
            Link::Sentinel(master) => {
                sentinel::req_packed_commands(master, pipeline, offset, count)
            }
        }
    }

    fn get_db(&self) -> i64 {
        match &self.link {
            Link::Single(conn, _) => conn.get_db(),
            Link::Cluster(_) => 0,
            Link::Sentinel(master) => master.db(),
        }
    }
}

/// Opens a connection to `url` without waiting for Redis: the first command connects.
///
/// # Errors
/// [`Error::Redis`] or [`Error::InvalidUrl`] when the URL is unusable;
/// [`Error::WaitUnsupported`] when replicas' acknowledgement is asked of a cluster.
pub fn connect(url: &RedisUrl, options: &ConnectOptions) -> Result<RedisConnection> {
    let link = connect_link(url, options)?;
    if matches!(link, Link::Cluster(_)) && options.wait_for_replicas.is_some() {
        return Err(Error::WaitUnsupported);
    }
    Ok(RedisConnection {
        link,
        connect_timeout: options.connect_timeout,
        wait_for_replicas: options.wait_for_replicas,
    })
}

fn connect_link(url: &RedisUrl, options: &ConnectOptions) -> Result<Link> {
    if url.is_sentinel() {
        let master = SentinelMaster::new(
            &SentinelUrl::parse(url.expose().trim())?,
            options.response_timeout,
            options.connect_timeout,
        )?;
        return Ok(Link::Sentinel(Arc::new(master)));
    }
    if url.is_cluster() {
        return Ok(Link::Cluster(Arc::new(LazyCluster {
            client: cluster_builder(url, options).build()?,
            url: url.clone(),
            options: options.clone(),
            connection: tokio::sync::OnceCell::new(),
        })));
    }
    let client = match tls_certificates(options) {
        Some(certificates) => redis::Client::build_with_tls(url.expose(), certificates)?,
        None => redis::Client::open(url.expose())?,
    };
    let config = ConnectionManagerConfig::new()
        .set_response_timeout(Some(options.response_timeout))
        .set_connection_timeout(Some(options.connect_timeout))
        // One connection attempt per failure: while Redis is down each command fails within the
        // connect timeout instead of waiting out a retry schedule; the next command tries again.
        .set_number_of_retries(0);
    Ok(Link::Single(
        ConnectionManager::new_lazy_with_config(client.clone(), config)?,
        Box::new(client),
    ))
}

/// The authority to trust over TLS, when one is configured.
fn tls_certificates(options: &ConnectOptions) -> Option<redis::TlsCertificates> {
    options
        .tls_root_cert
        .as_ref()
        .map(|root_cert| redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(root_cert.clone()),
        })
}

/// A cluster client's settings for `url`'s nodes.
pub(crate) fn cluster_builder(
    url: &RedisUrl,
    options: &ConnectOptions,
) -> redis::cluster::ClusterClientBuilder {
    let mut builder = ClusterClient::builder(url.nodes())
        .response_timeout(options.response_timeout)
        .connection_timeout(options.connect_timeout);
    if let Some(certificates) = tls_certificates(options) {
        builder = builder.certs(certificates);
    }
    builder
}

/// Where a pub/sub connection comes from (see [`crate::events`]).
pub(crate) enum PubSubSource {
    /// A single Redis: its client.
    Single(redis::Client),
    /// A cluster: its nodes and settings, for a client of its own built with a push sender.
    Cluster(RedisUrl, ConnectOptions),
    /// The master found through Sentinel, looked up at each connection.
    Sentinel(Arc<SentinelMaster>),
}

impl RedisConnection {
    /// Where to open pub/sub connections to the Redis this connection talks to.
    pub(crate) fn pubsub_source(&self) -> PubSubSource {
        match &self.link {
            Link::Single(_, client) => PubSubSource::Single(client.as_ref().clone()),
            Link::Cluster(cluster) => {
                PubSubSource::Cluster(cluster.url.clone(), cluster.options.clone())
            }
            Link::Sentinel(master) => PubSubSource::Sentinel(Arc::clone(master)),
        }
    }

    /// How long one connection attempt may take.
    pub(crate) fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        let url: RedisUrl = "redis://user:s3cret@host:6379/0".parse().unwrap();
        assert_eq!(format!("{url:?}"), "redis://user:***@host:6379/0");
        assert_eq!(url.to_string(), "redis://user:***@host:6379/0");
        let bare: RedisUrl = "redis://:s3cret@host".parse().unwrap();
        assert!(!format!("{bare:?}").contains("s3cret"));
        assert_eq!(url.expose(), "redis://user:s3cret@host:6379/0");
    }

    #[test]
    fn a_list_of_urls_is_a_cluster_and_every_password_is_hidden() {
        let url: RedisUrl = "redis://:pw1@a:7000, redis://:pw2@b:7001,redis://c:7002"
            .parse()
            .unwrap();
        assert!(url.is_cluster());
        assert_eq!(url.nodes().count(), 3);
        assert_eq!(
            url.to_string(),
            "redis://:***@a:7000,redis://:***@b:7001,redis://c:7002"
        );
        assert!(!"redis://a:1".parse::<RedisUrl>().unwrap().is_cluster());
        assert!(",".parse::<RedisUrl>().is_err());
    }

    #[test]
    fn a_sentinel_url_is_one_master_and_its_password_is_hidden() {
        let url: RedisUrl = "redis+sentinel://:pw@s1:26379,s2:26379/mymaster"
            .parse()
            .unwrap();
        assert!(url.is_sentinel());
        assert!(!url.is_cluster());
        assert_eq!(
            url.to_string(),
            "redis+sentinel://:***@s1:26379,s2:26379/mymaster"
        );
        let err = "rediss+sentinel://:pw@s1:1/m"
            .parse::<RedisUrl>()
            .unwrap_err();
        assert!(err.to_string().contains("not supported"), "{err}");
    }

    #[test]
    fn urls_without_secrets_are_shown_as_they_are() {
        let url: RedisUrl = "redis://127.0.0.1:6379".parse().unwrap();
        assert_eq!(url.to_string(), "redis://127.0.0.1:6379");
    }

    #[test]
    fn a_bad_url_is_refused_without_echoing_its_password() {
        let err = "http://u:s3cret@x".parse::<RedisUrl>().unwrap_err();
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }
}
