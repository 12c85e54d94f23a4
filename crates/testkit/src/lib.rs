//! Test harness: real `redis-server` processes on free ports, free ports for services, and
//! waits on conditions with deadlines (never bare sleeps).
//!
//! Each test starts its own Redis in its own temporary folder, so tests never share state and a
//! failing test leaves nothing behind for the next; the server is killed when its handle drops.

mod cluster;
mod process;

use std::future::Future;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub use cluster::RedisCluster;
pub use process::{Process, binary};

/// A `redis-server` started for one test.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    extra: Vec<String>,
    password: Option<String>,
    /// The certificate authority that signed the server's certificate, when it speaks TLS.
    tls_ca: Option<PathBuf>,
}

impl RedisServer {
    /// Starts a Redis without persistence on a free loopback port.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts a Redis with extra `redis-server` arguments (`["--appendonly", "yes"]`).
    pub fn start_with(extra: &[&str]) -> Self {
        Self::start_inner(extra, None)
    }

    /// Starts a Redis that requires `password`; [`RedisServer::url`] carries it.
    pub fn start_with_password(password: &str) -> Self {
        Self::start_inner(&["--requirepass", password], Some(password.to_owned()))
    }

    /// Starts a Redis that speaks only TLS, with a certificate for 127.0.0.1 signed by a
    /// throw-away authority ([`RedisServer::tls_ca_file`]); [`RedisServer::url`] is `rediss://`.
    pub fn start_tls() -> Self {
        let dir = fresh_dir();
        let openssl = |args: &[&str]| {
            let status = Command::new("openssl")
                .args(args)
                .current_dir(&dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("run openssl");
            assert!(status.success(), "openssl {args:?}");
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        openssl(
            &[
                &["req", "-x509"],
                &ec[..],
                &[
                    "-keyout",
                    "ca.key",
                    "-out",
                    "ca.crt",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=taskq-test-ca",
                ],
            ]
            .concat(),
        );
        openssl(
            &[
                &["req"],
                &ec[..],
                &[
                    "-keyout",
                    "redis.key",
                    "-out",
                    "redis.csr",
                    "-subj",
                    "/CN=127.0.0.1",
                ],
            ]
            .concat(),
        );
        std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n")
            .expect("write san.ext");
        openssl(&[
            "x509",
            "-req",
            "-in",
            "redis.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "redis.crt",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ]);
        let file = |name: &str| dir.join(name).display().to_string();
        let port = free_port().to_string();
        let extra = [
            "--port",
            "0",
            "--tls-port",
            &port,
            "--tls-cert-file",
            &file("redis.crt"),
            "--tls-key-file",
            &file("redis.key"),
            "--tls-ca-cert-file",
            &file("ca.crt"),
            "--tls-auth-clients",
            "no",
        ];
        let mut server = Self {
            child: None,
            port: port.parse().expect("a port"),
            tls_ca: Some(dir.join("ca.crt")),
            dir,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            password: None,
        };
        server.spawn();
        server
    }

    /// The certificate authority file of a TLS server.
    pub fn tls_ca_file(&self) -> Option<&Path> {
        self.tls_ca.as_deref()
    }

    /// Starts a Redis on `port` with extra arguments (a cluster node needs `port + 10000` free too).
    pub fn start_on_port(port: u16, extra: &[&str]) -> Self {
        Self::start_inner_on(port, extra, None)
    }

    fn start_inner(extra: &[&str], password: Option<String>) -> Self {
        Self::start_inner_on(free_port(), extra, password)
    }

    fn start_inner_on(port: u16, extra: &[&str], password: Option<String>) -> Self {
        let mut server = Self {
            dir: fresh_dir(),
            tls_ca: None,
            child: None,
            port,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            password,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(self.dir.join("redis.log"))
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start redis-server (is it installed? scripts/setup installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.answers_ping() {
            assert!(
                Instant::now() < deadline,
                "redis-server on {} did not start",
                self.port
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn client(&self) -> redis::RedisResult<redis::Client> {
        match &self.tls_ca {
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

    fn answers_ping(&self) -> bool {
        self.client()
            .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(200)))
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
            .is_ok()
    }

    /// The server's URL.
    pub fn url(&self) -> String {
        let scheme = if self.tls_ca.is_some() {
            "rediss"
        } else {
            "redis"
        };
        match &self.password {
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

    /// A blocking connection for checks from the test.
    pub fn connection(&self) -> redis::Connection {
        self.client()
            .and_then(|c| c.get_connection())
            .expect("connect to the test redis")
    }

    /// Kills the server at once (SIGKILL), keeping its data folder.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and folder (after [`RedisServer::kill`]).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
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

/// A loopback port free at the time of asking.
pub fn free_port() -> u16 {
    free_addr().port()
}

/// A loopback address with a port free at the time of asking.
pub fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("find a free port")
}

/// Whether something listens on `addr`.
pub fn listening(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok()
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
