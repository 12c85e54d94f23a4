//! The Redis settings the producer and the consumer take, each a flag and an environment
//! variable; secrets (`REDIS_URL` with its password) are never shown by `--help`.

use std::time::Duration;

use taskq::{ConnectOptions, Error, RedisUrl, Result, WaitForReplicas};

/// The Redis settings every binary takes.
#[derive(Debug, Clone, clap::Args)]
pub struct RedisArgs {
    /// Redis to use: redis://[user:password@]host:port[/db], rediss:// for TLS, several
    /// comma-separated URLs for a cluster's nodes, or
    /// redis+sentinel://[user:password@]host:port[,host:port...]/master-name[/db] for a master
    /// found through its sentinels.
    #[arg(
        long,
        env = "REDIS_URL",
        default_value = "redis://127.0.0.1:6379",
        hide_env_values = true
    )]
    pub redis_url: RedisUrl,
    /// The queue's name (1 to 128 of A-Z a-z 0-9 - _ . :); every key lives under {taskq:NAME}.
    #[arg(long, env = "QUEUE_NAME", default_value = "example")]
    pub queue_name: String,
    /// Several queues served by one process (comma-separated names); overrides QUEUE_NAME.
    /// Each queue has its own hash tag, so on a cluster the queues spread over the shards.
    #[arg(long, env = "QUEUES", value_delimiter = ',', value_parser = listed_queue)]
    pub queues: Vec<String>,
    /// How long one Redis command may take before it counts as failed (ms).
    #[arg(long, env = "REDIS_TIMEOUT_MS", default_value_t = 500)]
    pub redis_timeout_ms: u64,
    /// How often each process reads the Redis holding each queue for its memory, eviction policy
    /// and persistence (ms): the producer's admission control and every binary's warnings.
    #[arg(long, env = "REDIS_CHECK_MS", default_value_t = 250, value_parser = clap::value_parser!(u64).range(10..))]
    pub redis_check_ms: u64,
    /// Replicas that must acknowledge every enqueue and state change before it is answered or
    /// acted on (Redis WAIT); 0 = do not wait. With 1 or more, a failover loses no acknowledged
    /// change.
    #[arg(long, env = "REDIS_WAIT_REPLICAS", default_value_t = 0)]
    pub redis_wait_replicas: u32,
    /// How long a change waits for REDIS_WAIT_REPLICAS replicas before it counts as failed
    /// (ms); below REDIS_TIMEOUT_MS.
    #[arg(long, env = "REDIS_WAIT_TIMEOUT_MS", default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..))]
    pub redis_wait_timeout_ms: u64,
    /// For rediss://: a PEM file with the certificate authority that signed Redis' certificate,
    /// when the system does not already trust it.
    #[arg(long, env = "REDIS_TLS_CA_FILE")]
    pub redis_tls_ca_file: Option<std::path::PathBuf>,
}

/// One name of `QUEUES`: not empty, so `--queues ''` (or a stray comma) is a clear mistake rather
/// than a queue named "" or a silent fall back to `QUEUE_NAME`. (An empty variable, `QUEUES=`,
/// is an unset one before it gets here: `service_kit::command_line`.)
fn listed_queue(text: &str) -> Result<String, String> {
    let name = text.trim();
    if name.is_empty() {
        return Err(
            "an empty queue name: list names separated by commas, or leave QUEUES unset to serve QUEUE_NAME"
                .into(),
        );
    }
    Ok(name.to_owned())
}

impl RedisArgs {
    /// The queues to serve: QUEUES when given (each once, in order), else QUEUE_NAME.
    pub fn queue_names(&self) -> Vec<String> {
        let mut listed: Vec<String> = Vec::new();
        for name in &self.queues {
            if !listed.contains(name) {
                listed.push(name.clone());
            }
        }
        if listed.is_empty() {
            vec![self.queue_name.clone()]
        } else {
            listed
        }
    }

    /// The connection settings these flags ask for.
    ///
    /// # Errors
    /// [`Error::TlsCaFile`] when the CA file cannot be read; [`Error::WaitTooLong`] when the
    /// wait for replicas would outlast the command timeout.
    pub fn connect_options(&self) -> Result<ConnectOptions> {
        let timeout = Duration::from_millis(self.redis_timeout_ms.max(1));
        let wait_for_replicas = (self.redis_wait_replicas > 0).then(|| WaitForReplicas {
            replicas: self.redis_wait_replicas,
            timeout: Duration::from_millis(self.redis_wait_timeout_ms),
        });
        if let Some(wait) = wait_for_replicas
            && wait.timeout >= timeout
        {
            return Err(Error::WaitTooLong {
                wait: wait.timeout,
                timeout,
            });
        }
        let tls_root_cert = match &self.redis_tls_ca_file {
            Some(path) => Some(std::fs::read(path).map_err(|reason| Error::TlsCaFile {
                path: path.clone(),
                reason,
            })?),
            None => None,
        };
        Ok(ConnectOptions {
            response_timeout: timeout,
            connect_timeout: timeout,
            tls_root_cert,
            wait_for_replicas,
        })
    }
}
