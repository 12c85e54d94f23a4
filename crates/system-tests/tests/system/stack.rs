//! The system under test: real redis-server processes (one, a three-master cluster, or a master
//! under Sentinel), the real mock-api and producer binaries, and as many real consumer processes
//! as a test asks for; every suite builds on it.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use taskq::{ConnectOptions, Queue, QueueStats};
use testkit::{
    Binaries, Process, RedisCluster, RedisSentinel, RedisServer, StackSettings, eventually,
    get_json, started, unique_queue,
};
use tokio::task::JoinSet;

/// Where the queue lives: one Redis, a three-master cluster, or a master under Sentinel; what a
/// fault does to "Redis" is done to the server that holds the queue, or to every server.
pub trait Topology {
    /// The `REDIS_URL` the binaries get.
    fn url(&self) -> String;
    /// The CA file for TLS, when the backend speaks TLS.
    fn tls_ca_file(&self) -> Option<&Path>;
    /// Every `redis-server` process.
    fn servers(&self) -> &[RedisServer];
    /// The server that holds `key`: the one Redis, or the master that owns its hash slot.
    fn server_for(&self, key: &str) -> &RedisServer;
    /// The server that holds `key`, to kill and restart it.
    fn server_for_mut(&mut self, key: &str) -> &mut RedisServer;
    /// Whether every key is served: the Redis answers; on a cluster, every master says
    /// `cluster_state:ok`; under Sentinel, the master the sentinels name answers as master.
    fn serves(&self) -> bool;
}

/// A topology a scenario can start in several ways: one Redis or a three-master cluster. A
/// scenario written once against this trait runs on both (see [`on_both_backends!`]).
pub trait Backend: Topology + Sized {
    /// Starts one without persistence.
    fn start() -> Self;
    /// Starts one whose every server gets extra `redis-server` arguments.
    fn start_with(extra: &[&str]) -> Self;
    /// Starts one that requires `password`; the URL carries it (on every node's URL).
    fn start_with_password(password: &str) -> Self;
    /// Starts one that speaks only TLS; the URL is `rediss://`.
    fn start_tls() -> Self;
}

impl Backend for RedisServer {
    fn start() -> Self {
        RedisServer::start()
    }
    fn start_with(extra: &[&str]) -> Self {
        RedisServer::start_with(extra)
    }
    fn start_with_password(password: &str) -> Self {
        RedisServer::start_with_password(password)
    }
    fn start_tls() -> Self {
        RedisServer::start_tls()
    }
}

impl Topology for RedisServer {
    fn url(&self) -> String {
        RedisServer::url(self)
    }
    fn tls_ca_file(&self) -> Option<&Path> {
        RedisServer::tls_ca_file(self)
    }
    fn servers(&self) -> &[RedisServer] {
        std::slice::from_ref(self)
    }
    fn server_for(&self, _key: &str) -> &RedisServer {
        self
    }
    fn server_for_mut(&mut self, _key: &str) -> &mut RedisServer {
        self
    }
    fn serves(&self) -> bool {
        self.answers_ping()
    }
}

impl Backend for RedisCluster {
    fn start() -> Self {
        RedisCluster::start()
    }
    fn start_with(extra: &[&str]) -> Self {
        RedisCluster::start_with(extra)
    }
    fn start_with_password(password: &str) -> Self {
        RedisCluster::start_with_password(password)
    }
    fn start_tls() -> Self {
        RedisCluster::start_tls()
    }
}

impl Topology for RedisCluster {
    fn url(&self) -> String {
        RedisCluster::url(self)
    }
    fn tls_ca_file(&self) -> Option<&Path> {
        RedisCluster::tls_ca_file(self)
    }
    fn servers(&self) -> &[RedisServer] {
        self.nodes()
    }
    fn server_for(&self, key: &str) -> &RedisServer {
        self.node_for(key)
    }
    fn server_for_mut(&mut self, key: &str) -> &mut RedisServer {
        self.node_for_mut(key)
    }
    fn serves(&self) -> bool {
        self.is_ok()
    }
}

/// One backend shared by several stacks in turn (a scenario that loops over cases starts one
/// cluster, not one per case); a shared one cannot be killed.
impl<B: Backend> Backend for Arc<B> {
    fn start() -> Self {
        Arc::new(B::start())
    }
    fn start_with(extra: &[&str]) -> Self {
        Arc::new(B::start_with(extra))
    }
    fn start_with_password(password: &str) -> Self {
        Arc::new(B::start_with_password(password))
    }
    fn start_tls() -> Self {
        Arc::new(B::start_tls())
    }
}

impl<B: Topology> Topology for Arc<B> {
    fn url(&self) -> String {
        B::url(self)
    }
    fn tls_ca_file(&self) -> Option<&Path> {
        B::tls_ca_file(self)
    }
    fn servers(&self) -> &[RedisServer] {
        B::servers(self)
    }
    fn server_for(&self, key: &str) -> &RedisServer {
        B::server_for(self, key)
    }
    fn server_for_mut(&mut self, key: &str) -> &mut RedisServer {
        Arc::get_mut(self)
            .expect("a shared backend is not killed")
            .server_for_mut(key)
    }
    fn serves(&self) -> bool {
        B::serves(self)
    }
}

/// The current master: the sentinels are asked each time, since a failover changes it.
impl Topology for RedisSentinel {
    fn url(&self) -> String {
        RedisSentinel::url(self)
    }
    fn tls_ca_file(&self) -> Option<&Path> {
        None
    }
    fn servers(&self) -> &[RedisServer] {
        RedisSentinel::servers(self)
    }
    fn server_for(&self, _key: &str) -> &RedisServer {
        self.master().expect("the sentinels name a master")
    }
    fn server_for_mut(&mut self, _key: &str) -> &mut RedisServer {
        self.master_mut().expect("the sentinels name a master")
    }
    fn serves(&self) -> bool {
        RedisSentinel::serves(self)
    }
}

/// For each scenario `name<R: Backend>()` named, two tests: `single::name` on one Redis and
/// `cluster::name` on a three-master cluster. `#[on_cluster(ignore = "why")]` before a name puts
/// that attribute on the cluster test only.
macro_rules! on_both_backends {
    ($( $(#[on_cluster($cluster:meta)])* $name:ident ),* $(,)?) => {
        mod single {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name::<testkit::RedisServer>().await
                }
            )*
        }
        mod cluster {
            $(
                $(#[$cluster])*
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name::<testkit::RedisCluster>().await
                }
            )*
        }
    };
}
pub(crate) use on_both_backends;

/// Redis, mock-api and producer, running; consumers are started with [`Stack::consumer`].
pub struct Stack<R: Topology = RedisServer> {
    pub redis: R,
    pub queue_name: String,
    /// The mock API the consumers call (over HTTPS for [`Stack::start_https`]) and the
    /// producer: testkit's, which the benchmark runs too.
    pub services: testkit::Stack,
    /// A client for the producer and the mock (trusting the mock's authority).
    pub client: reqwest::Client,
}

impl Stack {
    /// Starts a fresh Redis, the mock-api with `mock_env` and a producer.
    pub fn start(mock_env: &[(&str, &str)]) -> Self {
        Self::start_on(RedisServer::start(), mock_env)
    }

    /// Starts a fresh Redis, the mock-api over HTTPS (a certificate for 127.0.0.1 signed by an
    /// authority made for the test) with `mock_env`, and a producer.
    pub fn start_https(mock_env: &[(&str, &str)]) -> Self {
        Self::start_full(RedisServer::start(), mock_env, &[], true)
    }
}

impl<R: Topology> Stack<R> {
    /// Starts the mock-api with `mock_env` and a producer on `redis`.
    pub fn start_on(redis: R, mock_env: &[(&str, &str)]) -> Self {
        Self::start_full(redis, mock_env, &[], false)
    }

    /// Starts the mock-api with `mock_env` and a producer with `producer_env` on `redis`.
    pub fn start_with_producer_env(
        redis: R,
        mock_env: &[(&str, &str)],
        producer_env: &[(&str, &str)],
    ) -> Self {
        Self::start_full(redis, mock_env, producer_env, false)
    }

    fn start_full(
        redis: R,
        mock_env: &[(&str, &str)],
        producer_env: &[(&str, &str)],
        https: bool,
    ) -> Self {
        let queue_name = unique_queue("e2e");
        let services = testkit::Stack::start(StackSettings {
            binaries: Binaries::beside_this(),
            label: &queue_name,
            env: redis_env(&redis, &queue_name),
            mock: owned(mock_env),
            https,
            producer: owned(producer_env),
        });
        Self {
            client: services.mock.client_builder().unwrap().build().unwrap(),
            redis,
            queue_name,
            services,
        }
    }

    /// Where the producer serves.
    pub fn producer(&self) -> SocketAddr {
        self.services.producer_addr
    }

    /// Starts another producer of this stack's queue on `addr`, with `env` on top of the
    /// defaults.
    pub fn another_producer(&self, addr: SocketAddr, env: &[(&str, &str)]) -> Process {
        started(self.services.try_producer(addr, &owned(env)))
    }

    /// Kills the producer (SIGKILL) and starts a new one on its address with `env` on top of the
    /// defaults.
    pub fn restart_producer(&mut self, env: &[(&str, &str)]) {
        started(self.services.try_restart_producer(&owned(env)));
    }

    /// The variables every consumer of this stack gets (see [`testkit::Stack::consumer_env`]),
    /// then `env` on top.
    pub fn consumer_env<'a>(&'a self, env: &[(&'a str, &str)]) -> Vec<(&'a str, String)> {
        self.services.consumer_env(&owned(env))
    }

    /// Starts a consumer process on this stack with `env` on top of the defaults.
    pub fn consumer(&self, env: &[(&str, &str)]) -> Process {
        started(self.services.try_consumer(&owned(env), "consumer"))
    }

    /// Starts a consumer serving `/healthz` and `/metrics` on `addr`, `env` on top of the
    /// defaults, once it listens there.
    pub fn serving_consumer(&self, addr: SocketAddr, env: &[(&str, &str)]) -> Process {
        started(
            self.services
                .try_serving_consumer(addr, &owned(env), "consumer"),
        )
    }

    /// Starts a consumer process whose log (stderr) goes to the file `log`.
    pub fn consumer_logged(&self, env: &[(&str, &str)], log: &Path) -> Process {
        Process::spawn_logged("consumer", &self.consumer_env(env), log)
    }

    /// `POST /tasks` with a payload on the producer.
    pub async fn submit(&self, name: &str, payload: &Value) -> (StatusCode, Value) {
        let body = serde_json::json!({"name": name, "payload": payload});
        post_task(&self.client, self.producer(), &body).await
    }

    /// Waits until the task `name` is done, dead or cancelled, then answers its view.
    pub async fn wait_final(&self, name: &str, within: Duration) -> Value {
        eventually(within, &format!("{name} to finish"), || async {
            let (_, body) = self.task(name).await;
            matches!(body["state"].as_str(), Some("done" | "dead" | "cancelled")).then_some(body)
        })
        .await
    }

    /// A handle on the stack's queue, for checks.
    pub fn queue(&self) -> Queue {
        let options = ConnectOptions {
            tls_root_cert: self
                .redis
                .tls_ca_file()
                .map(|ca| std::fs::read(ca).unwrap()),
            ..ConnectOptions::default()
        };
        Queue::open(
            &self.redis.url().parse().unwrap(),
            &options,
            &self.queue_name,
        )
        .unwrap()
    }

    /// The key every record of the queue shares a hash slot with.
    pub fn queue_key(&self) -> String {
        self.queue().keys().due_key().to_owned()
    }

    /// The server that holds the queue: the one Redis, or the master that owns its hash slot.
    pub fn queue_server(&self) -> &RedisServer {
        self.redis.server_for(&self.queue_key())
    }

    /// The server that holds the queue, to kill and restart it.
    pub fn queue_server_mut(&mut self) -> &mut RedisServer {
        let key = self.queue_key();
        self.redis.server_for_mut(&key)
    }

    /// Waits until the backend serves every key again (after a restart or a hang).
    pub async fn wait_serving(&self, within: Duration) {
        eventually(within, "Redis to serve every key", || async {
            self.redis.serves().then_some(())
        })
        .await;
    }

    /// The mock's `/stats`.
    pub async fn mock_stats(&self) -> Value {
        self.services.mock.stats(&self.client).await
    }

    /// The mock's call count.
    pub async fn mock_calls(&self) -> u64 {
        self.mock_stats().await["calls"].as_u64().unwrap()
    }

    /// `GET /?task-name=NAME` on the producer.
    pub async fn enqueue(&self, name: &str) -> (StatusCode, Value) {
        get_json(&self.client, enqueue_url(self.producer(), name)).await
    }

    /// `GET /tasks/NAME` on the producer.
    pub async fn task(&self, name: &str) -> (StatusCode, Value) {
        let mut url = reqwest::Url::parse(&format!("http://{}/tasks/", self.producer())).unwrap();
        url.path_segments_mut().unwrap().pop().push(name);
        get_json(&self.client, url.to_string()).await
    }

    /// Waits until the task `name` is dead, then answers its view.
    pub async fn wait_dead(&self, name: &str, within: Duration) -> Value {
        eventually(within, &format!("{name} to die"), || async {
            let (_, body) = self.task(name).await;
            (body["state"] == "dead").then_some(body)
        })
        .await
    }

    /// Enqueues every name over HTTP, 64 requests in flight; panics on any answer but 202/200.
    pub async fn enqueue_all(&self, names: &[String]) {
        let names: Arc<Vec<String>> = Arc::new(names.to_vec());
        let mut lanes = JoinSet::new();
        for lane in 0..64 {
            let (client, names, producer) =
                (self.client.clone(), Arc::clone(&names), self.producer());
            lanes.spawn(async move {
                for name in names.iter().skip(lane).step_by(64) {
                    let (status, _) = get_json(&client, enqueue_url(producer, name)).await;
                    assert!(status.is_success(), "{name}: {status}");
                }
            });
        }
        while let Some(lane) = lanes.join_next().await {
            lane.unwrap();
        }
    }

    /// Waits until the queue counts `n` done tasks, then answers the queue's stats.
    pub async fn wait_done(&self, n: u64, within: Duration) -> QueueStats {
        let queue = self.queue();
        eventually(within, &format!("{n} tasks done"), || async {
            let stats = queue.stats().await.ok()?;
            (stats.totals.get("done").copied().unwrap_or(0) >= n).then_some(stats)
        })
        .await
    }
}

/// `names(prefix, n)`: `prefix-0` .. `prefix-(n-1)`.
pub fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

/// The producer's enqueue URL for `name`, percent-encoded.
pub fn enqueue_url(producer: SocketAddr, name: &str) -> String {
    reqwest::Url::parse_with_params(&format!("http://{producer}/"), [("task-name", name)])
        .unwrap()
        .to_string()
}

/// `POST /tasks` with `body` on the producer at `producer`; the answer parsed as JSON.
pub async fn post_task(
    client: &reqwest::Client,
    producer: SocketAddr,
    body: &Value,
) -> (StatusCode, Value) {
    let response = client
        .post(format!("http://{producer}/tasks"))
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body = response.bytes().await.unwrap();
    (status, serde_json::from_slice(&body).unwrap())
}

/// Every key of `server` and everything it holds, as text: to prove what Redis does not hold.
pub fn everything_in_redis(server: &RedisServer) -> String {
    let mut conn = server.connection();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut conn).unwrap();
    let mut out = String::new();
    for key in keys {
        let kind: String = redis::cmd("TYPE").arg(&key).query(&mut conn).unwrap();
        let values: Vec<String> = match kind.as_str() {
            "string" => vec![redis::cmd("GET").arg(&key).query(&mut conn).unwrap()],
            "hash" => redis::cmd("HGETALL").arg(&key).query(&mut conn).unwrap(),
            "zset" => redis::cmd("ZRANGE")
                .arg(&key)
                .arg(0)
                .arg(-1)
                .arg("WITHSCORES")
                .query(&mut conn)
                .unwrap(),
            "list" => redis::cmd("LRANGE")
                .arg(&key)
                .arg(0)
                .arg(-1)
                .query(&mut conn)
                .unwrap(),
            "set" => redis::cmd("SMEMBERS").arg(&key).query(&mut conn).unwrap(),
            other => panic!("{key} is a {other}: add it here"),
        };
        out.push_str(&key);
        for value in values {
            out.push(' ');
            out.push_str(&value);
        }
        out.push('\n');
    }
    out
}

/// The variables that point a binary at `redis` and the queue.
pub fn redis_env(redis: &impl Topology, queue_name: &str) -> Vec<(&'static str, String)> {
    let mut vars = vec![
        ("REDIS_URL", redis.url()),
        ("QUEUE_NAME", queue_name.to_owned()),
    ];
    if let Some(ca) = redis.tls_ca_file() {
        vars.push(("REDIS_TLS_CA_FILE", ca.display().to_string()));
    }
    vars
}

/// `vars` with owned values, as testkit takes them.
fn owned<'a>(vars: &[(&'a str, &str)]) -> Vec<(&'a str, String)> {
    vars.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
}
