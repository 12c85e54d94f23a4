//! The queue library's errors.

/// Why a task name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// The name is empty.
    #[error("task name is empty")]
    Empty,
    /// The name is longer than the limit.
    #[error("task name is {len} bytes long; the limit is {max}")]
    TooLong {
        /// The name's length in bytes.
        len: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// The name is `.` or `..`, which URL paths cannot carry.
    #[error("task names . and .. are reserved (a URL path cannot carry them)")]
    DotSegment,
    /// The name holds a control character.
    #[error("task name holds the control character {0:?}")]
    ControlCharacter(char),
}

/// An error of a queue operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Redis could not be reached or answered with an error.
    #[error("redis: {0}")]
    Redis(redis::RedisError),
    /// The queue is full: nothing was written (see [`Full`]).
    #[error(transparent)]
    Full(#[from] Full),
    /// A script answered something this version does not understand.
    #[error("unexpected reply from redis: {0}")]
    UnexpectedReply(String),
    /// The queue name cannot be used in a key.
    #[error("invalid queue name {0:?}: use 1 to 128 ASCII letters, digits, '-', '_', '.' or ':'")]
    InvalidQueueName(String),
    /// A task scheduled beyond what the queue holds exactly (ms from now, or since the epoch).
    #[error("a task may be due at most 9999999999999 ms from now or since the epoch, not {0}")]
    InvalidRunAt(u64),
    /// The limit key cannot be used in a key.
    #[error("invalid limit key {0:?}: use 1 to 128 ASCII letters, digits, '-', '_', '.' or ':'")]
    InvalidLimitKey(String),
    /// A task name was refused.
    #[error(transparent)]
    InvalidName(#[from] NameError),
    /// The TLS certificate authority file could not be read.
    #[error("reading the Redis TLS CA file {}: {reason}", path.display())]
    TlsCaFile {
        /// The file.
        path: std::path::PathBuf,
        /// Why it could not be read.
        reason: std::io::Error,
    },
    /// The Redis URL could not be parsed.
    #[error("invalid redis url: {0}")]
    InvalidUrl(String),
    /// Fewer replicas than asked for acknowledged a state change in time (`REDIS_WAIT_REPLICAS`):
    /// the change is on the master but might not survive a failover.
    #[error(
        "{acknowledged} of {wanted} redis replicas acknowledged the change within {timeout:?}; \
         it may not survive a failover"
    )]
    NotReplicated {
        /// Replicas asked for.
        wanted: u32,
        /// Replicas that acknowledged in time.
        acknowledged: u32,
        /// How long the change waited for them.
        timeout: std::time::Duration,
    },
    /// Replicas' acknowledgement was asked of a Redis Cluster, which taskq does not support.
    #[error("REDIS_WAIT_REPLICAS is not supported on a Redis Cluster; use one Redis or Sentinel")]
    WaitUnsupported,
    /// The wait for replicas would outlast the command timeout, which would cut it short.
    #[error(
        "REDIS_WAIT_TIMEOUT_MS ({wait:?}) must be below REDIS_TIMEOUT_MS ({timeout:?}), which \
         bounds every command, WAIT included"
    )]
    WaitTooLong {
        /// The wait for replicas.
        wait: std::time::Duration,
        /// The command timeout.
        timeout: std::time::Duration,
    },
    /// A list cursor that this list did not hand out.
    #[error("invalid cursor {0:?}: pass back a next_cursor of the same state's list")]
    InvalidCursor(String),
    /// The runtime stopped before an enqueue was answered (the enqueue may have been written).
    #[error("the enqueue was not answered: the runtime is shutting down")]
    Interrupted,
    /// A task's payload is over the limit.
    #[error("the payload is {len} bytes of JSON; the limit is {max}")]
    PayloadTooLarge {
        /// The payload's length in bytes.
        len: usize,
        /// The limit in bytes.
        max: usize,
    },
}

/// Why a change that adds data was refused before anything was written: the queue holds as much
/// as its enqueuing side allows ([`crate::EnqueuePolicy`]), or Redis as much as its `maxmemory`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Full {
    /// The task would take Redis' memory past the high-water mark.
    #[error(
        "the queue is full: Redis would use {used} bytes, above the high-water mark of {mark} \
         bytes; try again later"
    )]
    Memory {
        /// Bytes in use, as estimated with the task.
        used: u64,
        /// The mark.
        mark: u64,
    },
    /// Redis is at `maxmemory` and refused a change that adds data (enqueue, retry, a result
    /// larger than what it replaces); what drains the queue still runs (see `crate::scripts`).
    #[error(
        "the queue is full: Redis is at maxmemory and refuses what adds data until memory is freed; try again later"
    )]
    MaxMemory,
    /// The queue holds its most tasks (due and leased).
    #[error(
        "the queue is full: it holds {queued} tasks, at most {max} are allowed; try again later"
    )]
    MaxQueued {
        /// Tasks held.
        queued: u64,
        /// The limit.
        max: u64,
    },
}

impl From<redis::RedisError> for Error {
    /// A refusal for memory (`OOM`: a script that adds data, at `maxmemory`) is told apart, so
    /// that callers can say the queue is full rather than that Redis failed.
    fn from(err: redis::RedisError) -> Self {
        if err.code() == Some("OOM") {
            Self::Full(Full::MaxMemory)
        } else {
            Self::Redis(err)
        }
    }
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
