//! The handle on one queue: its connection, key names and policy. The operations live in the
//! modules of their concepts, each opening with the script it runs: [`crate::enqueue`],
//! [`crate::claim`], [`crate::finish`] (and release, extend), [`crate::sweep`], [`crate::cancel`],
//! [`crate::list`], [`crate::stats`], [`crate::retry`], [`crate::purge`].
//!
//! Key schema (see [`crate::keys`]): `due` and `leased` are sorted sets scored by time in ms, the
//! seed design's sorted set split in two so that a claimed task is never mistaken for a due one;
//! `dead` keeps failed tasks; each task has a HASH record. Clients send delays, never timestamps:
//! scripts read the server's clock.
//!
//! Ownership: a claim hands each task a fresh token. Complete, snooze, fail, release and extend
//! check it, so a worker whose lease was reaped gets [`crate::Ack::Stale`] and its answer is
//! dropped. Delivery is therefore at-least-once: a task whose worker vanished mid-call is called
//! again.

use std::sync::Arc;
use std::time::Duration;

use redis::AsyncCommands;

use crate::batcher::{self, Enqueued, Enqueuer};
use crate::connect::{ConnectOptions, RedisConnection, RedisUrl, connect};
use crate::error::{Error, Result};
use crate::keys::QueueKeys;
use crate::name::TaskName;
use crate::scripts::{millis, once_more_if_dropped};

/// The rules a queue's scripts apply; the same for every process of one queue.
#[derive(Debug, Clone)]
pub struct Policy {
    /// How long a done task's result is kept (and answers requests) before the name may be
    /// enqueued again.
    pub result_ttl: Duration,
    /// How long a claim is valid without renewal. Workers renew held leases well before they end.
    pub lease: Duration,
    /// Failed attempts (errors and expired leases) after which a task is dead.
    pub max_attempts: u32,
    /// How long after its creation a task may keep answering "processing" before it is dead.
    pub max_poll: Option<Duration>,
    /// How long dead records are kept.
    pub dead_ttl: Duration,
    /// How many dead records are kept at most; the oldest go first.
    pub dead_max: u64,
    /// Expired leases and dead records handled per script call, so no call blocks Redis long.
    pub sweep_limit: usize,
    /// Whether the queue's calls start with a submit (an API profile with `submit`): then each
    /// claimed task that has no remote id yet carries a submit token, fixed for the task's life,
    /// from which its submit's idempotency key is made ([`ClaimedTask::submit_token`]).
    pub submit_keys: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            result_ttl: Duration::from_secs(3600),
            lease: Duration::from_secs(30),
            max_attempts: 5,
            max_poll: Some(Duration::from_secs(24 * 3600)),
            dead_ttl: Duration::from_secs(7 * 24 * 3600),
            dead_max: 10_000,
            sweep_limit: 100,
            submit_keys: false,
        }
    }
}

/// A handle on one queue; cheap to clone (all clones share one connection).
#[derive(Clone)]
pub struct Queue {
    conn: RedisConnection,
    keys: Arc<QueueKeys>,
    policy: Arc<Policy>,
    enqueuer: Arc<Enqueuer>,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("queue", &self.keys.queue())
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Queue {
    /// A queue on `conn`.
    ///
    /// # Errors
    /// [`Error::InvalidQueueName`] when `queue` cannot be used in a key.
    pub fn new(conn: RedisConnection, queue: &str, policy: Policy) -> Result<Self> {
        Ok(Self {
            conn,
            keys: Arc::new(QueueKeys::new(queue)?),
            policy: Arc::new(policy),
            enqueuer: Arc::default(),
        })
    }

    /// Connects lazily to `url` (see [`connect`]) and opens `queue` there.
    ///
    /// # Errors
    /// As [`Queue::new`] and [`connect`].
    pub fn open(
        url: &RedisUrl,
        options: &ConnectOptions,
        queue: &str,
        policy: Policy,
    ) -> Result<Self> {
        Self::new(connect(url, options)?, queue, policy)
    }

    /// The queue's key names.
    pub fn keys(&self) -> &QueueKeys {
        &self.keys
    }

    /// The queue's policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The connection, to clone for a command that needs it mutably.
    pub(crate) fn conn(&self) -> RedisConnection {
        self.conn.clone()
    }

    /// The connection, for running scripts.
    pub(crate) fn redis(&self) -> &RedisConnection {
        &self.conn
    }

    /// Checks that Redis answers.
    ///
    /// # Errors
    /// [`Error::Redis`] when it does not within the response timeout.
    pub async fn ping(&self) -> Result<()> {
        let () = redis::cmd("PING")
            .query_async(&mut self.conn())
            .await
            .map(|_: String| ())?;
        Ok(())
    }

    /// Enqueues one task in the next call shared with other enqueues (see [`crate::enqueue`]).
    pub(crate) async fn enqueue_one(
        &self,
        name: &TaskName,
        payload: Option<Box<serde_json::value::RawValue>>,
    ) -> Result<Enqueued> {
        self.enqueuer
            .enqueue(name, payload, || batcher::CallTarget {
                conn: self.conn.clone(),
                keys: Arc::clone(&self.keys),
                result_ttl_ms: millis(self.policy.result_ttl),
            })
            .await
    }

    /// The members with the lowest scores of each sorted set, in one pipelined round trip.
    ///
    /// While the queue's slot moves between cluster nodes, the pipeline may be answered `ASK`
    /// (or `TRYAGAIN`), which redis-rs follows for single commands but not inside a pipeline: the
    /// sets are then read one command each.
    pub(crate) async fn earliest<T: redis::FromRedisValue>(
        &self,
        sets: &[(&str, usize)],
    ) -> Result<T> {
        let mut pipe = redis::pipe();
        for (key, count) in sets {
            pipe.zrange(*key, 0, (*count as isize) - 1);
        }
        let piped = once_more_if_dropped(|| {
            let (mut conn, pipe) = (self.conn(), &pipe);
            async move { pipe.query_async(&mut conn).await }
        })
        .await;
        match piped {
            Err(err) if err.is_cluster_error() => {
                tracing::debug!(error = %err, "slot on the move: reading candidates one set at a time");
                let mut replies = Vec::with_capacity(sets.len());
                for (key, count) in sets {
                    let reply: redis::Value =
                        self.conn().zrange(*key, 0, (*count as isize) - 1).await?;
                    replies.push(reply);
                }
                redis::from_redis_value(redis::Value::Array(replies))
                    .map_err(|err| Error::UnexpectedReply(format!("candidates: {err}")))
            }
            piped => Ok(piped?),
        }
    }
}
