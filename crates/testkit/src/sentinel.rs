//! A Redis under Sentinel for tests: a master, its replicas and three sentinels
//! (`redis-server sentinel.conf --sentinel`) on free ports, each in its own folder. The test can
//! kill the master, or cut it off from its replicas and sentinels while clients still reach it (a
//! network partition, made with ACLs), and wait for the sentinels to promote a replica, as in a
//! real failover.
//!
//! Clients use the user [`USER`] (password [`PASSWORD`]); replication and the sentinels use the
//! default user, whose rights a partition takes away.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{RedisServer, Setup, free_port, fresh_dir};

/// The service name the sentinels watch.
pub const MASTER_NAME: &str = "mymaster";
/// The clients' user on every data server.
pub const USER: &str = "app";
/// The clients' password.
pub const PASSWORD: &str = "app-secret";

/// How long a master may be silent before a sentinel thinks it down: short, so that a test's
/// failover takes a few seconds.
const DOWN_AFTER_MS: u64 = 1000;

/// A master, its replicas and three sentinels; every process stops when this drops.
pub struct RedisSentinel {
    /// The data servers: the first started as the master, the others as its replicas (roles
    /// change in a failover).
    servers: Vec<RedisServer>,
    sentinels: Vec<SentinelProcess>,
}

struct SentinelProcess {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Drop for SentinelProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl RedisSentinel {
    /// Starts a master with `replicas` replicas and three sentinels, and waits until every
    /// sentinel knows every replica and the other sentinels (so a failover can be agreed on).
    pub fn start(replicas: usize) -> Self {
        let master = RedisServer::start_setup(free_port(), Setup::default());
        let master_port = master.port().to_string();
        let mut servers = vec![master];
        for _ in 0..replicas {
            let replica = RedisServer::start_setup(
                free_port(),
                Setup::with(&["--replicaof", "127.0.0.1", &master_port]),
            );
            servers.push(replica);
        }
        let sentinels = (0..3)
            .map(|_| SentinelProcess::start(servers[0].port()))
            .collect();
        for server in &servers {
            let () = redis::cmd("ACL")
                .arg("SETUSER")
                .arg(USER)
                .arg(&["on", &format!(">{PASSWORD}"), "~*", "&*", "+@all"][..])
                .query(&mut server.connection())
                .expect("add the clients' user");
        }
        let sentinel = Self { servers, sentinels };
        sentinel.wait_ready(Duration::from_secs(30));
        sentinel
    }

    /// `redis+sentinel://app:PASSWORD@` naming the three sentinels and the master's service name.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        format!(
            "redis+sentinel://{USER}:{PASSWORD}@{}/{MASTER_NAME}",
            hosts.join(",")
        )
    }

    /// Cuts the master off from its replicas and the sentinels, which use the default user,
    /// while clients (user [`USER`]) still reach it: its replication links are dropped and the
    /// default user may no longer run a command there. Answers the master's port.
    pub fn partition_master(&self) -> u16 {
        let master = self.master().expect("the sentinels name a master");
        let mut admin = master.connection_as(USER, PASSWORD);
        let () = redis::pipe()
            .atomic()
            .cmd("CLIENT")
            .arg(&["KILL", "TYPE", "replica"][..])
            .ignore()
            .cmd("ACL")
            .arg(&["SETUSER", "default", "-@all"][..])
            .ignore()
            .query(&mut admin)
            .expect("partition the master");
        master.port()
    }

    /// Ends a partition as the sentinels would once they reach the old master again: the default
    /// user gets its rights back and the old master becomes a replica of the promoted one,
    /// dropping what it took during the partition.
    pub fn heal(&self, old_master: u16) {
        let new_master = self.master_port().expect("the sentinels name a master");
        assert_ne!(new_master, old_master, "heal after a promotion");
        let old = self.servers.iter().find(|s| s.port() == old_master);
        let mut admin = old
            .expect("the old master is one of the servers")
            .connection_as(USER, PASSWORD);
        let () = redis::pipe()
            .cmd("ACL")
            .arg(&["SETUSER", "default", "+@all"][..])
            .ignore()
            .cmd("REPLICAOF")
            .arg("127.0.0.1")
            .arg(new_master)
            .ignore()
            .query(&mut admin)
            .expect("heal the old master");
    }

    /// The data servers (master and replicas).
    pub fn servers(&self) -> &[RedisServer] {
        &self.servers
    }

    /// The port of the master as the sentinels agree on it, when a majority of those that answer
    /// name the same one.
    pub fn master_port(&self) -> Option<u16> {
        let named: Vec<u16> = self
            .sentinels
            .iter()
            .filter_map(|s| s.master_port())
            .collect();
        let first = *named.first()?;
        (named.iter().filter(|p| **p == first).count() * 2 > self.sentinels.len()).then_some(first)
    }

    /// The data server the sentinels name as the master.
    pub fn master(&self) -> Option<&RedisServer> {
        let port = self.master_port()?;
        self.servers.iter().find(|s| s.port() == port)
    }

    /// The data server the sentinels name as the master, to kill it.
    pub fn master_mut(&mut self) -> Option<&mut RedisServer> {
        let port = self.master_port()?;
        self.servers.iter_mut().find(|s| s.port() == port)
    }

    /// Whether the sentinels name a master that answers and says it is the master.
    pub fn serves(&self) -> bool {
        self.master().is_some_and(|master| {
            master
                .try_connection(Duration::from_millis(200))
                .and_then(|mut c| redis::cmd("ROLE").query::<redis::Value>(&mut c))
                .is_ok_and(|role| match role {
                    redis::Value::Array(items) => matches!(
                        items.first(),
                        Some(redis::Value::BulkString(role)) if role == b"master"
                    ),
                    _ => false,
                })
        })
    }

    fn wait_ready(&self, within: Duration) {
        let deadline = Instant::now() + within;
        let replicas = self.servers.len() - 1;
        let others = self.sentinels.len() - 1;
        loop {
            let ready = self.serves()
                && self.sentinels.iter().all(|s| {
                    s.count("SENTINEL", "REPLICAS") == Some(replicas)
                        && s.count("SENTINEL", "SENTINELS") == Some(others)
                })
                && self.servers[1..].iter().all(replica_in_sync);
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the sentinels did not see {replicas} replicas and each other within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Whether a replica's link to its master is up.
fn replica_in_sync(replica: &RedisServer) -> bool {
    replica
        .try_connection(Duration::from_millis(200))
        .and_then(|mut c| {
            redis::cmd("INFO")
                .arg("replication")
                .query::<String>(&mut c)
        })
        .is_ok_and(|info| info.contains("master_link_status:up"))
}

impl SentinelProcess {
    fn start(master_port: u16) -> Self {
        let port = free_port();
        let dir = fresh_dir();
        let config = dir.join("sentinel.conf");
        std::fs::write(
            &config,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {dir}\nlogfile {log}\n\
                 sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 2\n\
                 sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n\
                 sentinel failover-timeout {MASTER_NAME} 10000\n\
                 sentinel parallel-syncs {MASTER_NAME} 1\n",
                dir = dir.display(),
                log = dir.join("sentinel.log").display(),
            ),
        )
        .expect("write sentinel.conf");
        let child = Command::new("redis-server")
            .arg(&config)
            .arg("--sentinel")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start redis-server --sentinel (scripts/setup installs redis-server)");
        let process = Self { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while process.master_port().is_none() {
            assert!(
                Instant::now() < deadline,
                "sentinel on {port} did not start"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        process
    }

    fn connection(&self) -> redis::RedisResult<redis::Connection> {
        let within = Duration::from_millis(200);
        let connection = redis::Client::open(format!("redis://127.0.0.1:{}", self.port))?
            .get_connection_with_timeout(within)?;
        connection.set_read_timeout(Some(within))?;
        Ok(connection)
    }

    fn master_port(&self) -> Option<u16> {
        let (_, port): (String, String) = redis::cmd("SENTINEL")
            .arg("GET-MASTER-ADDR-BY-NAME")
            .arg(MASTER_NAME)
            .query(&mut self.connection().ok()?)
            .ok()?;
        port.parse().ok()
    }

    /// How many entries `SENTINEL <what> mymaster` lists.
    fn count(&self, command: &str, what: &str) -> Option<usize> {
        let entries: Vec<redis::Value> = redis::cmd(command)
            .arg(what)
            .arg(MASTER_NAME)
            .query(&mut self.connection().ok()?)
            .ok()?;
        Some(entries.len())
    }
}
