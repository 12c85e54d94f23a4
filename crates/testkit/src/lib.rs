//! The one harness that starts what the tests and the benchmark run: real `redis-server`
//! processes (one, a three-master cluster, or a master under Sentinel), the project's binaries as
//! child processes, free ports for them, what they did (Redis' own counters, the machine's and a
//! process' CPU), and waits on conditions with deadlines (never bare sleeps).
//!
//! Each test starts its own Redis in its own temporary folder, so tests never share state and a
//! failing test leaves nothing behind for the next; every server and process is killed when its
//! handle drops.
//!
//! Tests want a panic with the reason when something does not start; the benchmark wants the
//! reason as an error, so that one failed run is recorded and the others go on. So what the
//! benchmark starts has a fallible constructor (`try_...`, answering [`Error`]), and the
//! panicking one tests call is a thin wrapper around it.
//!
//! # Layout
//! - [`RedisServer`] (`server.rs`): one `redis-server`, plain, with a password, or TLS only.
//! - [`RedisCluster`] (`cluster.rs`): three of them as a cluster's masters; slot migration.
//! - [`RedisSentinel`] (`sentinel.rs`): a master, replicas and three sentinels; failovers.
//! - [`Binaries`] (`binaries.rs`): where the workspace's binaries are and where their logs go.
//! - [`Process`] and [`MockApi`] (`process.rs`, `mock_api.rs`): one binary running, and what a
//!   process used (peak memory, CPU time, from `/proc`).
//! - [`Stack`] (`stack.rs`): the mock-api and a producer of one queue, and consumers on them.
//! - [`Usage`], [`MachineCpu`] and [`Window`] (`usage.rs`): what a Redis server, the machine
//!   and a process did between two readings.
//! - [`Certificates`] and [`RsaKey`] (`tls.rs`): a throw-away certificate authority and a server
//!   certificate; an RSA key and a service-account key file holding it.
//! - `http.rs`: an HTTP client, GETs answering text or JSON.
//! - Here: free ports, unique queue names, [`eventually`], [`epoch_ms`].

mod binaries;
mod cluster;
mod http;
mod mock_api;
mod process;
pub mod sentinel;
mod server;
mod stack;
mod tls;
mod usage;

use std::future::Future;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

pub use binaries::{Binaries, binaries_dir, binary, binary_in};
pub use cluster::RedisCluster;
pub use http::{
    get_json, get_text, http_client, http_client_builder, try_get_json, try_get_ok_json,
    try_get_text,
};
pub use mock_api::{MockApi, replicate_profile};
pub use process::{Process, cpu_seconds, peak_rss_kib, rss_kib, run_to_end, try_run_to_end};
pub use sentinel::RedisSentinel;
pub(crate) use server::Setup;
pub use server::{RedisServer, info_field};
pub use stack::{Stack, StackSettings};
pub use tls::{Certificates, RsaKey};
pub use usage::{Command, MachineCpu, Spent, Usage, Window};

/// Why a server or process did not start (a program missing, a port taken, no answer in time),
/// said in words for a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// What the fallible constructors answer.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a test does with a fallible constructor's answer: the value, or a panic with the reason.
pub fn started<T>(result: Result<T>) -> T {
    result.unwrap_or_else(|e| panic!("{e}"))
}

/// A new, empty folder for one server's files.
fn fresh_dir() -> PathBuf {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "taskq-test-redis-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("create a folder for redis");
    dir
}

/// A loopback port free at the time of asking; see [`free_addr`].
pub fn free_port() -> u16 {
    free_addr().port()
}

/// Where [`free_addr`] hands out ports: above the cluster nodes' ports and their bus ports (see
/// `cluster.rs`), below Linux' ephemeral range (32768 and up).
const SERVICE_PORTS: std::ops::Range<u32> = 26_000..32_768;

/// A loopback address with a port free at the time of asking, for a server a test starts.
///
/// Not a port the system picks (`127.0.0.1:0`): the system hands the same ephemeral ports to
/// outgoing connections and to every `:0` listener (a consumer's `/metrics`), so one could take
/// the port before the test's server binds it, and the test would talk to a stranger. Ports come
/// from below the ephemeral range instead, in turn, so one process never hands out a port twice
/// while others are in use; each process starts at its own place in the range.
pub fn free_addr() -> SocketAddr {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let span = SERVICE_PORTS.end - SERVICE_PORTS.start;
    let start = std::process::id().wrapping_mul(7919);
    loop {
        let offset = start.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed)) % span;
        let port = u16::try_from(SERVICE_PORTS.start + offset).expect("a port");
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
            return listener.local_addr().expect("a bound address");
        }
    }
}

/// Whether something listens on `addr`.
pub fn listening(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok()
}

/// Now by the system clock, in whole ms since the Unix epoch: the clock of Redis' `TIME` (a
/// task's `done_at_ms`) and of the mock's `GET /webhooks`, on the same machine.
pub fn epoch_ms() -> u64 {
    let since = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH);
    since.map_or(0, |since| {
        u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
    })
}

/// A queue name no other test uses.
pub fn unique_queue(prefix: &str) -> String {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

/// Polls `check` every 10 ms until it answers `Some`, or panics with `what` after `within`.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
