//! The handle on one queue: its connection, key names and policies ([`crate::policy`]). The operations live in the
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
//!
//! The handle knows no operation: `enqueue.rs` builds its `Writer` from the handle's connection,
//! keys and enqueuing policy, which the crate may read (`pub(crate)`).

use std::sync::Arc;
use std::time::Duration;

use redis::AsyncCommands;

use crate::batcher::Enqueuer;
use crate::connect::{ConnectOptions, RedisConnection, RedisUrl, connect};
use crate::error::{Error, Result};
use crate::keys::QueueKeys;
use crate::policy::{DEFAULT_DEAD_TTL, EnqueuePolicy, WorkerPolicy};
use crate::scripts::once_more_if_dropped;

/// A handle on one queue; cheap to clone (all clones share one connection).
#[derive(Clone)]
pub struct Queue {
    pub(crate) conn: RedisConnection,
    pub(crate) keys: Arc<QueueKeys>,
    pub(crate) enqueue_policy: Arc<EnqueuePolicy>,
    worker_policy: Arc<WorkerPolicy>,
    dead_ttl: Duration,
    enqueuer: Arc<Enqueuer>,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("queue", &self.keys.queue())
            .field("enqueue_policy", &self.enqueue_policy)
            .field("worker_policy", &self.worker_policy)
            .field("dead_ttl", &self.dead_ttl)
            .finish_non_exhaustive()
    }
}

impl Queue {
    /// A queue on `conn`, with the default policies (see [`crate::policy`]); a binary sets the
    /// side it decides with [`Queue::with_enqueue_policy`] or [`Queue::with_worker_policy`].
    ///
    /// # Errors
    /// [`Error::InvalidQueueName`] when `queue` cannot be used in a key.
    pub fn new(conn: RedisConnection, queue: &str) -> Result<Self> {
        Ok(Self {
            conn,
            keys: Arc::new(QueueKeys::new(queue)?),
            enqueue_policy: Arc::default(),
            worker_policy: Arc::default(),
            dead_ttl: DEFAULT_DEAD_TTL,
            enqueuer: Arc::default(),
        })
    }

    /// Connects lazily to `url` (see [`connect`]) and opens `queue` there.
    ///
    /// # Errors
    /// As [`Queue::new`] and [`connect`].
    pub fn open(url: &RedisUrl, options: &ConnectOptions, queue: &str) -> Result<Self> {
        Self::new(connect(url, options)?, queue)
    }

    /// A handle on another lane of this queue (its callbacks), with this handle's connection and
    /// policies.
    pub(crate) fn lane(&self, keys: Arc<QueueKeys>) -> Self {
        Self {
            keys,
            enqueuer: Arc::default(),
            ..self.clone()
        }
    }

    /// This handle with the enqueuing side's policy (the producer's).
    #[must_use]
    pub fn with_enqueue_policy(mut self, policy: EnqueuePolicy) -> Self {
        self.enqueue_policy = Arc::new(policy);
        self
    }

    /// This handle with the workers' policy (the consumer's).
    #[must_use]
    pub fn with_worker_policy(mut self, policy: WorkerPolicy) -> Self {
        self.worker_policy = Arc::new(policy);
        self
    }

    /// This handle keeping dead and cancelled records for `ttl` (`DEAD_TTL_SECS`).
    #[must_use]
    pub fn with_dead_ttl(mut self, ttl: Duration) -> Self {
        self.dead_ttl = ttl;
        self
    }

    /// The queue's key names.
    pub fn keys(&self) -> &QueueKeys {
        &self.keys
    }

    /// What the enqueuing side decided.
    pub fn enqueue_policy(&self) -> &EnqueuePolicy {
        &self.enqueue_policy
    }

    /// What the workers decided.
    pub fn worker_policy(&self) -> &WorkerPolicy {
        &self.worker_policy
    }

    /// How long dead and cancelled records are kept.
    pub fn dead_ttl(&self) -> Duration {
        self.dead_ttl
    }

    /// The connection, to clone for a command that needs it mutably.
    pub(crate) fn conn(&self) -> RedisConnection {
        self.conn.clone()
    }

    /// The connection, for running scripts.
    pub(crate) fn redis(&self) -> &RedisConnection {
        &self.conn
    }

    /// The connection this handle uses (to subscribe to its events, see [`crate::events`]).
    pub fn redis_connection(&self) -> &RedisConnection {
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

    /// Gathers this handle's single enqueues into shared calls (see [`crate::batcher`]).
    pub(crate) fn enqueuer(&self) -> &Enqueuer {
        &self.enqueuer
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
