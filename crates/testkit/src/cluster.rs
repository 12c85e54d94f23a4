//! A local Redis Cluster of three masters for tests: `redis-server --cluster-enabled yes` on free
//! ports, joined with `redis-cli --cluster create`.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::RedisServer;

/// Three cluster masters, all slots assigned; the processes stop when this drops.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts three masters and waits until the cluster answers `cluster_state:ok` on each.
    pub fn start() -> Self {
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| {
                RedisServer::start_on_port(
                    cluster_port(),
                    &[
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        "2000",
                    ],
                )
            })
            .collect();
        let mut create = Command::new("redis-cli");
        create.args(["--cluster", "create"]);
        for node in &nodes {
            create.arg(format!("127.0.0.1:{}", node.port()));
        }
        let status = create
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .status()
            .expect("run redis-cli --cluster create");
        assert!(status.success(), "redis-cli --cluster create failed");
        let cluster = Self { nodes };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !cluster.is_ok() {
            assert!(Instant::now() < deadline, "the cluster did not become ok");
            std::thread::sleep(Duration::from_millis(50));
        }
        cluster
    }

    fn is_ok(&self) -> bool {
        self.nodes.iter().all(|node| {
            let info: String = redis::cmd("CLUSTER")
                .arg("INFO")
                .query(&mut node.connection())
                .unwrap_or_default();
            info.contains("cluster_state:ok")
        })
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
        self.nodes
            .iter()
            .find(|node| {
                redis::cmd("EXISTS")
                    .arg(key)
                    .query::<i64>(&mut node.connection())
                    .is_ok()
            })
            .expect("a node serves every slot")
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

/// A port `p` free together with its cluster bus port `p + 10000`.
fn cluster_port() -> u16 {
    loop {
        let port = 20_000 + fastrand_u16() % 25_000;
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
