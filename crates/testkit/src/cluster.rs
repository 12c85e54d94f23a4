//! A local Redis Cluster of three masters for tests: `redis-server --cluster-enabled yes` on free
//! ports, given a third of the slots each and introduced with `CLUSTER MEET`, as
//! `redis-cli --cluster create` does. The nodes start as [`RedisServer`]s do, so a cluster has the
//! same abilities: persistence arguments, a password, TLS only, kill and restart of one node.

use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::{Error, RedisServer, Result, Setup, started};

/// Redis Cluster's number of hash slots.
const SLOTS: usize = 16_384;

/// Three cluster masters, all slots assigned; the processes stop when this drops.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts three masters and waits until the cluster answers `cluster_state:ok` on each.
    pub fn start() -> Self {
        started(Self::try_start())
    }

    /// Starts three masters and waits until the cluster answers `cluster_state:ok` on each, or
    /// answers why it could not.
    ///
    /// # Errors
    /// When a node does not start, refuses a `CLUSTER` command, or the cluster is not ok within
    /// 20 s.
    pub fn try_start() -> Result<Self> {
        Self::try_start_setup(Setup::default())
    }

    /// Starts three masters, each with extra `redis-server` arguments (`["--appendonly", "yes"]`).
    pub fn start_with(extra: &[&str]) -> Self {
        Self::start_setup(Setup::with(extra))
    }

    /// Starts three masters that require `password` (from clients and from each other);
    /// [`RedisCluster::url`] carries it on every node's URL.
    pub fn start_with_password(password: &str) -> Self {
        Self::start_setup(Setup::password(password))
    }

    /// Starts three masters that speak only TLS, to clients and on the cluster bus, with one
    /// certificate for 127.0.0.1 ([`RedisCluster::tls_ca_file`]); the URLs are `rediss://`.
    pub fn start_tls() -> Self {
        let mut setup = Setup::tls();
        setup.extra = ["--tls-cluster", "yes", "--tls-replication", "yes"]
            .map(str::to_owned)
            .to_vec();
        Self::start_setup(setup)
    }

    fn start_setup(setup: Setup) -> Self {
        started(Self::try_start_setup(setup))
    }

    fn try_start_setup(mut setup: Setup) -> Result<Self> {
        setup.extra.extend(
            [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "2000",
            ]
            .map(str::to_owned),
        );
        let nodes = (0..3)
            .map(|_| start_node(&setup))
            .collect::<Result<Vec<_>>>()?;
        let share = SLOTS / nodes.len();
        for (i, node) in nodes.iter().enumerate() {
            let last = if i + 1 == nodes.len() {
                SLOTS - 1
            } else {
                (i + 1) * share - 1
            };
            let slots: Vec<usize> = (i * share..=last).collect();
            cluster(node, "ADDSLOTS", &slots)?;
            // Distinct epochs up front, so that the nodes need not resolve a collision.
            cluster(node, "SET-CONFIG-EPOCH", i + 1)?;
        }
        for node in &nodes[1..] {
            cluster(&nodes[0], "MEET", ("127.0.0.1", node.port()))?;
        }
        let cluster = Self { nodes };
        cluster.try_wait_ok(Duration::from_secs(20))?;
        Ok(cluster)
    }

    /// Waits until [`RedisCluster::is_ok`], or panics after `within`. A master that was just
    /// (re)started takes about two seconds: Redis keeps a new master's state at `fail` that long.
    pub fn wait_ok(&self, within: Duration) {
        started(self.try_wait_ok(within));
    }

    fn try_wait_ok(&self, within: Duration) -> Result<()> {
        let deadline = Instant::now() + within;
        while !self.is_ok() {
            if Instant::now() >= deadline {
                return Err(Error(format!("the cluster was not ok within {within:?}")));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// Whether every master answers and says `cluster_state:ok` (all slots served, no master
    /// failing in its view).
    pub fn is_ok(&self) -> bool {
        self.nodes.iter().all(|node| {
            node.try_connection(Duration::from_millis(500))
                .and_then(|mut c| redis::cmd("CLUSTER").arg("INFO").query::<String>(&mut c))
                .is_ok_and(|info| info.contains("cluster_state:ok"))
        })
    }

    /// The certificate authority file of a TLS cluster.
    pub fn tls_ca_file(&self) -> Option<&Path> {
        self.nodes[0].tls_ca_file()
    }

    /// The seed-node URL list taskq takes for a cluster: `redis://a,redis://b,redis://c`.
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

    /// The master serving `key` (the only one that answers for it without a MOVED).
    pub fn node_for(&self, key: &str) -> &RedisServer {
        &self.nodes[self.index_for(key)]
    }

    /// The master serving `key`, or why none could be found.
    ///
    /// # Errors
    /// When no master, or more than one, answers for it.
    pub fn try_node_for(&self, key: &str) -> Result<&RedisServer> {
        let owners: Vec<&RedisServer> = self.nodes.iter().filter(|n| serves(n, key)).collect();
        match owners[..] {
            [owner] => Ok(owner),
            _ => Err(Error(format!(
                "{key} is served by {} masters, not exactly one",
                owners.len()
            ))),
        }
    }

    /// The master serving `key`, to kill and restart it. Keep the reference across the outage:
    /// a killed master answers for no key, so it cannot be found again until it is back.
    pub fn node_for_mut(&mut self, key: &str) -> &mut RedisServer {
        let index = self.index_for(key);
        &mut self.nodes[index]
    }

    fn index_for(&self, key: &str) -> usize {
        self.nodes
            .iter()
            .position(|node| serves(node, key))
            .expect("a live node serves every slot")
    }

    /// Moves the slot of `key` from its master to `to`, keys and all, with the protocol
    /// `redis-cli --cluster reshard` uses (IMPORTING / MIGRATING, `MIGRATE` in batches, then
    /// `SETSLOT NODE` everywhere). Clients keep working throughout by following ASK and MOVED.
    /// Answers how many keys moved.
    pub fn migrate_slot_of(&self, key: &str, to: &RedisServer) -> usize {
        let from = self.node_for(key);
        assert_ne!(from.port(), to.port(), "the slot is already there");
        let id = |node: &RedisServer| -> String {
            redis::cmd("CLUSTER")
                .arg("MYID")
                .query(&mut node.connection())
                .expect("CLUSTER MYID")
        };
        let (from_id, to_id) = (id(from), id(to));
        let slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query(&mut from.connection())
            .expect("CLUSTER KEYSLOT");
        let setslot = |node: &RedisServer, args: &[&str]| {
            redis::cmd("CLUSTER")
                .arg("SETSLOT")
                .arg(slot)
                .arg(args)
                .query::<()>(&mut node.connection())
                .expect("CLUSTER SETSLOT");
        };
        setslot(to, &["IMPORTING", &from_id]);
        setslot(from, &["MIGRATING", &to_id]);
        let mut moved = 0;
        let mut source = from.connection();
        loop {
            let keys: Vec<String> = redis::cmd("CLUSTER")
                .arg("GETKEYSINSLOT")
                .arg(slot)
                .arg(100)
                .query(&mut source)
                .expect("CLUSTER GETKEYSINSLOT");
            if keys.is_empty() {
                break;
            }
            moved += keys.len();
            redis::cmd("MIGRATE")
                .arg("127.0.0.1")
                .arg(to.port())
                .arg("")
                .arg(0)
                .arg(5000)
                .arg("KEYS")
                .arg(&keys)
                .query::<()>(&mut source)
                .expect("MIGRATE");
        }
        for node in &self.nodes {
            setslot(node, &["NODE", &to_id]);
        }
        moved
    }
}

/// Whether `node` answers for `key` (without a MOVED).
fn serves(node: &RedisServer, key: &str) -> bool {
    node.try_connection(Duration::from_secs(1))
        .and_then(|mut c| redis::cmd("EXISTS").arg(key).query::<i64>(&mut c))
        .is_ok()
}

/// Runs `CLUSTER subcommand args...` on `node`.
fn cluster(node: &RedisServer, subcommand: &str, args: impl redis::ToRedisArgs) -> Result<()> {
    node.try_connection(Duration::from_secs(2))
        .and_then(|mut c| {
            redis::cmd("CLUSTER")
                .arg(subcommand)
                .arg(args)
                .query::<()>(&mut c)
        })
        .map_err(|e| Error(format!("CLUSTER {subcommand} on {}: {e}", node.port())))
}

/// Starts one node on a port from [`cluster_port`]; another test may take the same free port
/// first, so a node that cannot bind is tried again on another.
fn start_node(setup: &Setup) -> Result<RedisServer> {
    let mut failures = Vec::new();
    for _ in 0..5 {
        match RedisServer::try_start_setup(cluster_port(), setup.clone()) {
            Ok(node) => return Ok(node),
            Err(e) => failures.push(e.to_string()),
        }
    }
    Err(Error(format!("no cluster node started: {failures:?}")))
}

/// A port `p` free together with its cluster bus port `p + 10000`: `p` in 10000..16000, so both
/// lie below [`free_addr`](crate::free_addr)'s ports and Linux' ephemeral range (32768 and up),
/// where an outgoing connection or a `:0` listener could take one before Redis listens on it.
fn cluster_port() -> u16 {
    loop {
        let port = 10_000 + fastrand_u16() % 6_000;
        let free = |p: u16| TcpListener::bind(("127.0.0.1", p)).is_ok();
        if free(port) && free(port + 10_000) {
            return port;
        }
    }
}

/// A pseudo-random number from the clock and a counter, enough to spread test ports.
fn fastrand_u16() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mixed = nanos ^ (std::process::id() << 16) ^ SEQ.fetch_add(7919, Ordering::Relaxed);
    (mixed % 65_521) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_killed_master_comes_back_from_its_folder_with_its_keys_and_the_cluster_heals() {
        let mut cluster =
            RedisCluster::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
        let owner = cluster.node_for("{q}:k").port();
        redis::cmd("SET")
            .arg("{q}:k")
            .arg("kept")
            .query::<()>(&mut cluster.node_for("{q}:k").connection())
            .unwrap();

        // Found while it serves: a dead master answers for no key.
        let node = cluster.node_for_mut("{q}:k");
        node.kill();
        assert!(!node.answers_ping());
        node.restart();

        cluster.wait_ok(Duration::from_secs(30));
        let node = cluster.node_for("{q}:k");
        assert_eq!(node.port(), owner, "the same master serves the slot");
        let value: String = redis::cmd("GET")
            .arg("{q}:k")
            .query(&mut node.connection())
            .unwrap();
        assert_eq!(value, "kept");
    }

    #[test]
    fn a_password_cluster_refuses_clients_without_the_password() {
        let cluster = RedisCluster::start_with_password("pw-for-test");

        let urls = cluster.url();
        assert_eq!(urls.matches(":pw-for-test@127.0.0.1:").count(), 3, "{urls}");
        for node in cluster.nodes() {
            let bare = format!("redis://127.0.0.1:{}", node.port());
            let mut anonymous = redis::Client::open(bare).unwrap().get_connection().unwrap();
            let refused = redis::cmd("PING").query::<String>(&mut anonymous);
            assert!(refused.is_err(), "{refused:?}");
        }
    }
}
