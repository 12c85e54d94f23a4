//! One `redis-server` in a folder of its own on a port of its own, without persistence; killed,
//! and its folder removed, when its handle drops. A cluster's nodes and Sentinel's data servers
//! are started the same way ([`Setup`]), so they have the same abilities: a password, TLS only,
//! kill and restart.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;

use crate::{Certificates, Error, Result, free_port, fresh_dir, started};

/// A `redis-server` started for one test.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    /// How it was started, so that [`RedisServer::restart`] starts it the same way.
    setup: Setup,
}

/// How a server is started, beyond its port and folder: what a single Redis and every node of a
/// cluster share.
#[derive(Clone, Default)]
pub(crate) struct Setup {
    /// Extra `redis-server` arguments.
    pub(crate) extra: Vec<String>,
    /// The password clients must give (`requirepass`; `masterauth` too, for replication).
    pub(crate) password: Option<String>,
    /// Present when the server speaks only TLS; shared so that a cluster's nodes trust each other.
    pub(crate) tls: Option<Arc<Certificates>>,
}

impl Setup {
    /// No password, no TLS, `extra` arguments.
    pub(crate) fn with(extra: &[&str]) -> Self {
        Self {
            extra: extra.iter().map(|s| s.to_string()).collect(),
            ..Self::default()
        }
    }

    /// Requires `password`.
    pub(crate) fn password(password: &str) -> Self {
        let mut setup = Self::with(&["--requirepass", password, "--masterauth", password]);
        setup.password = Some(password.to_owned());
        setup
    }

    /// Speaks only TLS, with freshly made certificates.
    pub(crate) fn tls() -> Self {
        Self {
            tls: Some(Arc::new(Certificates::generate())),
            ..Self::default()
        }
    }
}

impl RedisServer {
    /// Starts a Redis without persistence on a free loopback port.
    pub fn start() -> Self {
        started(Self::try_start())
    }

    /// Starts a Redis without persistence on a free loopback port, or answers why it did not
    /// start.
    ///
    /// # Errors
    /// When `redis-server` is missing, exits, or does not answer within 10 s.
    pub fn try_start() -> Result<Self> {
        Self::try_start_setup(free_port(), Setup::default())
    }

    /// Starts a Redis with extra `redis-server` arguments (`["--appendonly", "yes"]`).
    pub fn start_with(extra: &[&str]) -> Self {
        Self::start_setup(free_port(), Setup::with(extra))
    }

    /// Starts a Redis that requires `password`; [`RedisServer::url`] carries it.
    pub fn start_with_password(password: &str) -> Self {
        Self::start_setup(free_port(), Setup::password(password))
    }

    /// Starts a Redis that speaks only TLS, with a certificate for 127.0.0.1 signed by a
    /// throw-away authority ([`RedisServer::tls_ca_file`]); [`RedisServer::url`] is `rediss://`.
    pub fn start_tls() -> Self {
        Self::start_setup(free_port(), Setup::tls())
    }

    /// The certificate authority file of a TLS server.
    pub fn tls_ca_file(&self) -> Option<&Path> {
        self.setup.tls.as_deref().map(Certificates::ca_file)
    }

    /// Starts a Redis on `port` with extra arguments (a cluster node needs `port + 10000` free too).
    pub fn start_on_port(port: u16, extra: &[&str]) -> Self {
        Self::start_setup(port, Setup::with(extra))
    }

    pub(crate) fn start_setup(port: u16, setup: Setup) -> Self {
        started(Self::try_start_setup(port, setup))
    }

    /// Starts a server, or answers why it did not start (its port taken, most likely).
    pub(crate) fn try_start_setup(port: u16, setup: Setup) -> Result<Self> {
        let mut server = Self {
            dir: fresh_dir(),
            child: None,
            port,
            setup,
        };
        server.spawn()?;
        Ok(server)
    }

    /// Starts the process and waits until it answers; an early exit is reported with the end of
    /// its log.
    fn spawn(&mut self) -> Result<()> {
        let listen = match &self.setup.tls {
            Some(tls) => tls.server_args(self.port),
            None => vec!["--port".to_owned(), self.port.to_string()],
        };
        let child = Command::new("redis-server")
            .args(listen)
            .args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(self.dir.join("redis.log"))
            .args(&self.setup.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| {
                Error(format!(
                    "starting redis-server: {e} (is it installed? scripts/setup installs it)"
                ))
            })?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.answers_ping() {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                let log = std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                return Err(Error(format!(
                    "redis-server on {} exited ({status}): {}",
                    self.port,
                    tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
                )));
            }
            if Instant::now() >= deadline {
                return Err(Error(format!(
                    "redis-server on {} did not start within 10 s",
                    self.port
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    fn client(&self) -> redis::RedisResult<redis::Client> {
        match self.tls_ca_file() {
            Some(ca) => redis::Client::build_with_tls(
                self.url(),
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(std::fs::read(ca).expect("read the CA file")),
                },
            ),
            None => redis::Client::open(self.url()),
        }
    }

    /// A blocking connection whose connect, reads and writes each give up after `within`, for
    /// checks on a server that may be down or hung.
    pub(crate) fn try_connection(&self, within: Duration) -> redis::RedisResult<redis::Connection> {
        let connection = self.client()?.get_connection_with_timeout(within)?;
        connection.set_read_timeout(Some(within))?;
        connection.set_write_timeout(Some(within))?;
        Ok(connection)
    }

    /// Whether the server answers `PING` within 200 ms.
    pub fn answers_ping(&self) -> bool {
        self.try_connection(Duration::from_millis(200))
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
            .is_ok()
    }

    /// The server's URL (`rediss://` for TLS, with the password when there is one).
    pub fn url(&self) -> String {
        let scheme = if self.setup.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        match &self.setup.password {
            Some(password) => format!("{scheme}://:{password}@127.0.0.1:{}", self.port),
            None => format!("{scheme}://127.0.0.1:{}", self.port),
        }
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's data folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The value of `field` in the server's `INFO section`.
    ///
    /// # Errors
    /// When the server does not answer within 60 s or does not say.
    pub fn try_info(&self, section: &str, field: &str) -> Result<String> {
        info_field(&self.try_info_text(&[section])?, field)
            .map(str::to_owned)
            .ok_or_else(|| Error(format!("no {field} in INFO {section}")))
    }

    /// The server's `INFO` answer for `sections`.
    ///
    /// # Errors
    /// When the server does not answer within 60 s.
    pub(crate) fn try_info_text(&self, sections: &[&str]) -> Result<String> {
        let failed = |e: redis::RedisError| Error(format!("INFO {sections:?}: {e}"));
        let mut connection = self
            .try_connection(Duration::from_secs(60))
            .map_err(failed)?;
        redis::cmd("INFO")
            .arg(sections)
            .query(&mut connection)
            .map_err(failed)
    }

    /// [`RedisServer::try_info`] for tests: panics with the reason.
    pub fn info(&self, section: &str, field: &str) -> String {
        started(self.try_info(section, field))
    }

    /// A fresh connection for the harness' own commands, with a patient response timeout:
    /// emptying a million-task queue takes well over redis-rs' default 500 ms, and a busy
    /// machine must not fail a run for its bookkeeping.
    ///
    /// # Errors
    /// When it cannot connect within 2 s.
    pub async fn try_async_connection(&self) -> Result<MultiplexedConnection> {
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(60)));
        let failed = |e: redis::RedisError| Error(format!("connecting to {}: {e}", self.url()));
        let client = redis::Client::open(self.url()).map_err(failed)?;
        client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(failed)
    }

    /// Empties the server (`FLUSHALL`): a benchmark run starts from nothing.
    ///
    /// # Errors
    /// When it does not answer.
    pub async fn try_flush_all(&self) -> Result<()> {
        let mut conn = self.try_async_connection().await?;
        redis::cmd("FLUSHALL")
            .query_async(&mut conn)
            .await
            .map_err(|e| Error(format!("FLUSHALL: {e}")))
    }

    /// A blocking connection for checks from the test.
    pub fn connection(&self) -> redis::Connection {
        self.client()
            .and_then(|c| c.get_connection())
            .expect("connect to the test redis")
    }

    /// A blocking connection as `user` with `password`, for checks from the test.
    pub fn connection_as(&self, user: &str, password: &str) -> redis::Connection {
        redis::Client::open(format!("redis://{user}:{password}@127.0.0.1:{}", self.port))
            .and_then(|client| client.get_connection_with_timeout(Duration::from_secs(2)))
            .expect("connect to the test redis as a user")
    }

    /// Kills the server at once (SIGKILL), keeping its data folder.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and folder, with the same arguments (after
    /// [`RedisServer::kill`]); a cluster node comes back from its `nodes.conf`.
    pub fn restart(&mut self) {
        self.kill();
        started(self.spawn());
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
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
