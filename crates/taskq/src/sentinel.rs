//! Redis under Sentinel: find the master through the sentinels, and find it again after a
//! failover.
//!
//! `redis+sentinel://[[user]:password@]host:port[,host:port...]/master-name[/db]` names the
//! sentinels and the master's service name; the credentials and the database are the master's
//! (the sentinels are asked without credentials). The master is looked up on first use and kept;
//! a command that meets a dead or demoted master (a dropped connection, a timeout, `READONLY`
//! from a master turned replica) forgets it, so the next command asks the sentinels again. A
//! failover is thus survived as a restart is: the commands in flight fail, the next ones go to the
//! promoted replica once the sentinels have promoted it. A master whose replicas stop
//! acknowledging changes (`REDIS_WAIT_REPLICAS`) is forgotten too: it may be cut off from them
//! and already replaced, while it still answers its clients.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Cmd, ConnectionAddr, ErrorKind, Pipeline, RedisFuture, RedisResult,
    ServerError, ServerErrorKind, Value,
};

use crate::error::{Error, Result};

/// The URL scheme of a Redis reached through Sentinel.
pub(crate) const SCHEME: &str = "redis+sentinel://";

/// What a `redis+sentinel://` URL says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SentinelUrl {
    /// The sentinels, as (host, port).
    pub(crate) sentinels: Vec<(String, u16)>,
    /// The master's service name (`sentinel monitor <name> ...`).
    pub(crate) master: String,
    /// The master's database.
    pub(crate) db: i64,
    /// The master's user, when it is not the default one.
    pub(crate) username: Option<String>,
    /// The master's password.
    pub(crate) password: Option<String>,
}

impl SentinelUrl {
    /// Parses a `redis+sentinel://` URL; errors never quote the password.
    pub(crate) fn parse(url: &str) -> Result<Self> {
        let bad = |why: &str| Error::InvalidUrl(format!("{SCHEME}: {why}"));
        let rest = url
            .strip_prefix(SCHEME)
            .ok_or_else(|| bad("not a sentinel URL"))?;
        let (authority, path) = rest
            .split_once('/')
            .ok_or_else(|| bad("name the master after the sentinels: .../mymaster"))?;
        let (userinfo, hosts) = match authority.rsplit_once('@') {
            Some((userinfo, hosts)) => (Some(userinfo), hosts),
            None => (None, authority),
        };
        let (username, password) = match userinfo {
            None => (None, None),
            Some(userinfo) => {
                let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                let decode = |s: &str| {
                    percent_encoding::percent_decode_str(s)
                        .decode_utf8()
                        .map(|s| s.into_owned())
                        .map_err(|_| bad("the credentials are not UTF-8 once decoded"))
                };
                let nonempty = |s: String| (!s.is_empty()).then_some(s);
                (nonempty(decode(user)?), nonempty(decode(password)?))
            }
        };
        let mut sentinels = Vec::new();
        for host in hosts.split(',').map(str::trim).filter(|h| !h.is_empty()) {
            let (name, port) = host
                .rsplit_once(':')
                .ok_or_else(|| bad("give each sentinel as host:port"))?;
            let port = port
                .parse::<u16>()
                .map_err(|_| bad("a sentinel's port is not a number"))?;
            let name = name.trim_start_matches('[').trim_end_matches(']');
            if name.is_empty() {
                return Err(bad("a sentinel has no host"));
            }
            sentinels.push((name.to_owned(), port));
        }
        if sentinels.is_empty() {
            return Err(bad("no sentinel given"));
        }
        let (master, db) = match path.split_once('/') {
            Some((master, db)) if !db.is_empty() => (
                master,
                db.parse::<i64>()
                    .map_err(|_| bad("the database after the master's name is not a number"))?,
            ),
            Some((master, _)) => (master, 0),
            None => (path, 0),
        };
        if master.is_empty() {
            return Err(bad("name the master after the sentinels: .../mymaster"));
        }
        Ok(Self {
            sentinels,
            master: master.to_owned(),
            db,
            username,
            password,
        })
    }
}

/// The master of a Sentinel-watched Redis, looked up on first use and again after it fails.
pub struct SentinelMaster {
    /// Asks the sentinels; behind a lock because a lookup needs it mutably, and so that one
    /// lookup runs at a time.
    client: tokio::sync::Mutex<SentinelClient>,
    config: AsyncConnectionConfig,
    /// How long one lookup (sentinels, then the master) may take.
    lookup_timeout: Duration,
    db: i64,
    /// The master's connection while it is thought good, with the number of its lookup.
    current: RwLock<Option<(u64, MultiplexedConnection)>>,
    /// Lookups so far: a caller that met an error on an older lookup's connection must not
    /// forget a newer one.
    lookups: AtomicU64,
}

impl SentinelMaster {
    /// A master to be looked up through the sentinels of `url` on first use.
    pub(crate) fn new(
        url: &SentinelUrl,
        response_timeout: Duration,
        connect_timeout: Duration,
    ) -> Result<Self> {
        let sentinels = url
            .sentinels
            .iter()
            .map(|(host, port)| ConnectionAddr::Tcp(host.clone(), *port));
        let mut builder =
            SentinelClientBuilder::new(sentinels, &url.master, SentinelServerType::Master)?
                .set_client_to_redis_db(url.db);
        if let Some(username) = &url.username {
            builder = builder.set_client_to_redis_username(username);
        }
        if let Some(password) = &url.password {
            builder = builder.set_client_to_redis_password(password);
        }
        let config = AsyncConnectionConfig::new()
            .set_response_timeout(Some(response_timeout))
            .set_connection_timeout(Some(connect_timeout));
        Ok(Self {
            client: tokio::sync::Mutex::new(builder.build()?),
            config,
            // Asking the sentinels, then connecting to the master and asking its role.
            lookup_timeout: connect_timeout * 3 + response_timeout,
            db: url.db,
            current: RwLock::new(None),
            lookups: AtomicU64::new(0),
        })
    }

    /// The master's connection, looked up when there is none.
    async fn connection(&self) -> RedisResult<(u64, MultiplexedConnection)> {
        if let Some(current) = self.current_connection() {
            return Ok(current);
        }
        let mut client = self.client.lock().await;
        // Another caller may have looked it up while this one waited for the lock.
        if let Some(current) = self.current_connection() {
            return Ok(current);
        }
        let lookup = async {
            let master = client.async_get_client().await?;
            tracing::info!(master = %master.get_connection_info().addr(), "redis master found through sentinel");
            master
                .get_multiplexed_async_connection_with_config(&self.config)
                .await
        };
        let connection = tokio::time::timeout(self.lookup_timeout, lookup)
            .await
            .map_err(|_| {
                redis::RedisError::from(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "looking up the master through sentinel timed out",
                ))
            })??;
        let generation = self.lookups.fetch_add(1, Ordering::Relaxed);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) =
            Some((generation, connection.clone()));
        Ok((generation, connection))
    }

    fn current_connection(&self) -> Option<(u64, MultiplexedConnection)> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Forgets the connection of lookup `generation`, which met `err`; a later lookup's
    /// connection is kept.
    fn forget_lookup(&self, generation: u64, err: &dyn std::fmt::Display) {
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        if current.as_ref().is_some_and(|(g, _)| *g == generation) {
            tracing::warn!(error = %err, "redis master lost; asking the sentinels again");
            *current = None;
        }
    }

    /// Forgets the master, so that the next command asks the sentinels again: for when the
    /// master answers but its replicas do not acknowledge changes (it may have been cut off and
    /// replaced).
    pub(crate) fn forget(&self) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// A client of the master, looked up now through the sentinels (for a pub/sub connection,
    /// which follows a failover by connecting anew).
    pub(crate) async fn master_client(&self) -> RedisResult<redis::Client> {
        let mut client = self.client.lock().await;
        tokio::time::timeout(self.lookup_timeout, client.async_get_client())
            .await
            .map_err(|_| {
                redis::RedisError::from(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "looking up the master through sentinel timed out",
                ))
            })?
    }

    /// The master's database.
    pub(crate) fn db(&self) -> i64 {
        self.db
    }
}

/// Runs `call` on the master's connection, forgetting the master when the call says it is gone:
/// a connection error, or a server error in the reply (redis-rs hands those back as values).
async fn on_master<T>(
    master: &Arc<SentinelMaster>,
    call: impl AsyncFnOnce(&mut MultiplexedConnection) -> RedisResult<T>,
    server_error: impl Fn(&T) -> Option<&ServerError>,
) -> RedisResult<T> {
    let (generation, mut connection) = master.connection().await?;
    let result = call(&mut connection).await;
    match &result {
        Err(err) if connection_lost(err) => master.forget_lookup(generation, err),
        Ok(reply) => {
            if let Some(err) = server_error(reply).filter(|err| not_master(err.kind())) {
                master.forget_lookup(generation, err);
            }
        }
        Err(_) => {}
    }
    result
}

/// Whether an error says the connection to the master is gone or hung.
fn connection_lost(err: &redis::RedisError) -> bool {
    err.is_io_error()
        || err.is_unrecoverable_error()
        || err.is_timeout()
        || matches!(err.kind(), ErrorKind::Server(kind) if not_master(Some(kind)))
}

/// Whether a server error says the server is no longer a master that takes writes (`READONLY`
/// from a master turned replica, `MASTERDOWN` from a replica cut off from its master).
fn not_master(kind: Option<ServerErrorKind>) -> bool {
    matches!(
        kind,
        Some(ServerErrorKind::ReadOnly | ServerErrorKind::MasterDown)
    )
}

fn first_server_error(value: &Value) -> Option<&ServerError> {
    match value {
        Value::ServerError(err) => Some(err),
        Value::Array(items) => items.iter().find_map(first_server_error),
        _ => None,
    }
}

/// Sends a packed command to the master.
pub(crate) fn req_packed_command<'a>(
    master: &'a Arc<SentinelMaster>,
    cmd: &'a Cmd,
) -> RedisFuture<'a, Value> {
    Box::pin(on_master(
        master,
        async |conn| conn.req_packed_command(cmd).await,
        first_server_error,
    ))
}

/// Sends a packed pipeline to the master.
pub(crate) fn req_packed_commands<'a>(
    master: &'a Arc<SentinelMaster>,
    pipeline: &'a Pipeline,
    offset: usize,
    count: usize,
) -> RedisFuture<'a, Vec<Value>> {
    Box::pin(on_master(
        master,
        async move |conn| conn.req_packed_commands(pipeline, offset, count).await,
        |replies: &Vec<Value>| replies.iter().find_map(first_server_error),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sentinel_url_names_the_sentinels_the_master_and_its_credentials() {
        let url = SentinelUrl::parse("redis+sentinel://app:p%40ss@s1:26379, s2:26380/mymaster/2")
            .unwrap();
        assert_eq!(
            url,
            SentinelUrl {
                sentinels: vec![("s1".into(), 26379), ("s2".into(), 26380)],
                master: "mymaster".into(),
                db: 2,
                username: Some("app".into()),
                password: Some("p@ss".into()),
            }
        );
        let bare = SentinelUrl::parse("redis+sentinel://127.0.0.1:26379/m").unwrap();
        assert_eq!((bare.db, bare.username, bare.password), (0, None, None));
        let password_only = SentinelUrl::parse("redis+sentinel://:pw@h:1/m/").unwrap();
        assert_eq!(
            (password_only.username, password_only.password),
            (None, Some("pw".into()))
        );
    }

    #[test]
    fn a_bad_sentinel_url_is_refused_without_echoing_its_password() {
        for url in [
            "redis+sentinel://:s3cret@h:26379",
            "redis+sentinel://:s3cret@h:26379/",
            "redis+sentinel://:s3cret@/m",
            "redis+sentinel://:s3cret@h/m",
            "redis+sentinel://:s3cret@h:port/m",
            "redis+sentinel://:s3cret@h:1/m/db",
        ] {
            let err = SentinelUrl::parse(url).unwrap_err().to_string();
            assert!(!err.contains("s3cret"), "{url}: {err}");
            assert!(err.starts_with("invalid redis url"), "{url}: {err}");
        }
    }
}
