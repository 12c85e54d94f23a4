//! The queue: every operation on tasks, each one Lua script (one round trip, atomic).
//!
//! Key schema (see [`crate::keys`]): `due` and `leased` are sorted sets scored by time in ms, the
//! seed design's sorted set split in two so that a claimed task is never mistaken for a due one;
//! `dead` keeps failed tasks; each task has a HASH record. Clients send delays, never timestamps:
//! scripts read the server's clock.
//!
//! Ownership: a claim hands each task a fresh token. Complete, snooze, fail, release and extend
//! check it, so a worker whose lease was reaped gets [`Ack::Stale`] and its answer is dropped.
//! Delivery is therefore at-least-once: a task whose worker vanished mid-call is called again.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use redis::AsyncCommands;
use tracing::instrument;

use crate::connect::{ConnectOptions, RedisConnection, RedisUrl, connect};
use crate::enqueue::{self, Enqueuer};
use crate::error::{Error, Result};
use crate::keys::QueueKeys;
use crate::name::TaskName;
use crate::replication::run_replicated;
use crate::scripts;
use crate::task::{ClaimedTask, TaskView};

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

/// The answer to an enqueue.
#[derive(Debug, Clone)]
pub struct Enqueued {
    /// Whether this call created the task (false: a task of that name was already there).
    pub created: bool,
    /// The task as it is now.
    pub view: TaskView,
}

/// The result of a claim.
#[derive(Debug, Clone, Default)]
pub struct Claim {
    /// The leased tasks.
    pub tasks: Vec<ClaimedTask>,
    /// How long until the earliest task still in the due set is due (`None`: the set is empty;
    /// zero: more are due now, for instance after losing candidates to another worker).
    pub next_due_in: Option<Duration>,
}

/// What a finishing call (complete, snooze, fail, release) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ack {
    /// Recorded as asked.
    Applied,
    /// Recorded, and the task is now dead (attempt limit, permanent error or poll deadline).
    Dead,
    /// Refused: the token no longer owns the task (its lease was reaped). Counted as `stale`.
    Stale,
}

impl Ack {
    fn from_code(code: i64) -> Result<Self> {
        match code {
            0 => Ok(Self::Stale),
            1 => Ok(Self::Applied),
            2 => Ok(Self::Dead),
            other => Err(Error::UnexpectedReply(format!("ack code {other}"))),
        }
    }
}

/// The outcome of one call, as recorded by [`Queue::finish_many`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish<'a> {
    /// Done: store the final data (JSON text).
    Done(&'a str),
    /// Still processing: store the partial data (JSON text), due again after `delay`.
    Processing {
        /// Partial data, JSON text.
        data: &'a str,
        /// When to poll again.
        delay: Duration,
    },
    /// Submitted: store the remote id of the job the API made and its first answer (JSON
    /// text) as partial data; polled after `delay`. Not a failed attempt, not a poll.
    Submitted {
        /// The API's id for the job.
        remote_id: &'a str,
        /// The submit's answer, JSON text.
        data: &'a str,
        /// When to poll first.
        delay: Duration,
    },
    /// The API asked to slow down (429, 503): due again after `delay`, no attempt used; dead
    /// past the poll deadline.
    Throttled {
        /// What the API said, kept as the task's last error.
        message: &'a str,
        /// When to call again.
        delay: Duration,
    },
    /// Failed: retry after `delay`, or bury at the attempt limit or when `permanent`.
    Failed {
        /// What went wrong.
        error: &'a str,
        /// When to retry.
        delay: Duration,
        /// Whether retrying cannot help.
        permanent: bool,
    },
}

/// What one sweep of the reaper did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sweep {
    /// Expired leases taken back.
    pub reaped: u64,
    /// Dead records pruned by age or count.
    pub pruned: u64,
}

/// Task counts by where the tasks are, plus the queue-wide counters the scripts keep.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Counts {
    /// Tasks waiting to be called (queued or processing).
    pub due: u64,
    /// Tasks leased to a consumer.
    pub running: u64,
    /// Dead tasks kept.
    pub dead: u64,
    /// Counters: enqueued, duplicates, claimed, done, snoozed, retried, dead, stale, reaped, ...
    pub totals: BTreeMap<String, u64>,
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

    pub(crate) fn conn(&self) -> RedisConnection {
        self.conn.clone()
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

    /// Adds the task `name` unless a task of that name is live (queued, running, processing,
    /// dead, cancelled) or done with its result still kept; either way answers the task as it now
    /// is. [`Queue::submit`] adds a payload.
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis fails; nothing is written then.
    pub async fn enqueue(&self, name: &TaskName) -> Result<Enqueued> {
        self.submit(name, None).await
    }

    /// Adds many tasks in one round trip; answers, per name, whether it was created.
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis fails; the batch is then either wholly written or not at all.
    pub async fn enqueue_many(&self, names: &[TaskName]) -> Result<Vec<bool>> {
        let tasks = names.iter().map(|name| (name, None));
        let reply: Vec<redis::Value> =
            enqueue::invocation(&self.keys, millis(self.policy.result_ttl), false, tasks)
                .run(&self.conn)
                .await?;
        let (_, flags) = enqueue::split(reply, names.len())?;
        Ok(flags
            .into_iter()
            .map(|flag| flag == redis::Value::Int(1))
            .collect())
    }

    /// Enqueues one task in the next call shared with other enqueues (see [`crate::enqueue`]).
    pub(crate) async fn enqueue_one(
        &self,
        name: &TaskName,
        payload: Option<Box<serde_json::value::RawValue>>,
    ) -> Result<Enqueued> {
        self.enqueuer
            .enqueue(name, payload, || enqueue::Target {
                conn: self.conn.clone(),
                keys: Arc::clone(&self.keys),
                result_ttl_ms: millis(self.policy.result_ttl),
            })
            .await
    }

    /// Reads a task's record; `None` for a name never seen (or whose result expired).
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis fails, [`Error::UnexpectedReply`] for a corrupt record.
    pub async fn get(&self, name: &TaskName) -> Result<Option<TaskView>> {
        let key = self.keys.task(name);
        let fields: Vec<(String, String)> = once_more_if_dropped(|| {
            let mut conn = self.conn();
            let key = &key;
            async move { conn.hgetall(key).await }
        })
        .await?;
        if fields.is_empty() {
            return Ok(None);
        }
        TaskView::from_fields(name.as_str(), fields).map(Some)
    }

    /// Leases up to `limit` due tasks, after taking back the expired leases among the earliest
    /// few. Two round trips: a pipelined read of candidates, then the script that re-checks and
    /// claims them (every key it touches is declared, as Redis Cluster requires).
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis fails. The script is atomic, so a failed call leased nothing,
    /// unless only its reply was lost: those tasks come back when their lease expires.
    pub async fn claim(&self, limit: usize) -> Result<Claim> {
        let lease_candidates = self.policy.sweep_limit.min(CLAIM_REAP_CANDIDATES);
        let (due, leased): (Vec<String>, Vec<String>) = self
            .earliest(&[
                (&self.keys.due, limit),
                (&self.keys.leased, lease_candidates),
            ])
            .await?;
        let mut invocation = scripts::CLAIM.key(&self.keys.due);
        invocation
            .key(&self.keys.leased)
            .key(&self.keys.dead)
            .key(&self.keys.seq)
            .key(&self.keys.stats);
        for name in due.iter().chain(&leased) {
            invocation.key(self.keys.task_raw(name));
        }
        let reply: Vec<redis::Value> = invocation
            .arg(self.keys.task_prefix())
            .arg(due.len())
            .arg(millis(self.policy.lease))
            .arg(self.policy.max_attempts)
            .arg(millis(self.policy.dead_ttl))
            .arg(limit)
            .arg(u8::from(self.policy.submit_keys))
            .run(&self.conn)
            .await?;
        parse_claim(reply, self.policy.submit_keys)
    }

    /// The members with the lowest scores of each sorted set, in one pipelined round trip.
    ///
    /// While the queue's slot moves between cluster nodes, the pipeline may be answered `ASK`
    /// (or `TRYAGAIN`), which redis-rs follows for single commands but not inside a pipeline: the
    /// sets are then read one command each.
    async fn earliest<T: redis::FromRedisValue>(&self, sets: &[(&str, usize)]) -> Result<T> {
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

    /// Stores the final result: the task is done and leaves the queue.
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis fails; safe to call again with the same arguments.
    #[instrument(level = "debug", skip(self, task, data), fields(task = %task.name))]
    pub async fn complete(&self, task: &ClaimedTask, data: &str) -> Result<Ack> {
        self.finish_one(task, Finish::Done(data)).await
    }

    /// Stores partial data and makes the task due again after `delay`; not a failed attempt.
    /// Past the poll deadline the task is dead instead ([`Ack::Dead`]).
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis fails; safe to call again with the same arguments.
    #[instrument(level = "debug", skip(self, task, data), fields(task = %task.name))]
    pub async fn snooze(&self, task: &ClaimedTask, data: &str, delay: Duration) -> Result<Ack> {
        self.finish_one(task, Finish::Processing { data, delay })
            .await
    }

    /// Records a failed attempt: due again after `delay`, or dead when the attempt limit is
    /// reached or `permanent` is set.
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis fails; safe to call again with the same arguments.
    #[instrument(level = "debug", skip(self, task), fields(task = %task.name))]
    pub async fn fail(
        &self,
        task: &ClaimedTask,
        error: &str,
        delay: Duration,
        permanent: bool,
    ) -> Result<Ack> {
        self.finish_one(
            task,
            Finish::Failed {
                error,
                delay,
                permanent,
            },
        )
        .await
    }

    async fn finish_one(&self, task: &ClaimedTask, finish: Finish<'_>) -> Result<Ack> {
        let mut acks = self.finish_many(&[(task, finish)]).await?;
        acks.pop()
            .ok_or_else(|| Error::UnexpectedReply("finish: no ack".into()))
    }

    /// Records the outcomes of many calls in one round trip (the worker's path: one script call
    /// costs Redis more than the work inside it). Answers one ack per task, in order.
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis fails; the batch is then either wholly recorded or not at
    /// all, and safe to send again.
    pub async fn finish_many(&self, batch: &[(&ClaimedTask, Finish<'_>)]) -> Result<Vec<Ack>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let mut invocation = scripts::FINISH.key(&self.keys.leased);
        invocation
            .key(&self.keys.due)
            .key(&self.keys.dead)
            .key(&self.keys.stats)
            .arg(self.keys.task_prefix())
            .arg(self.policy.max_poll.map_or(0, millis))
            .arg(self.policy.max_attempts)
            .arg(millis(self.policy.dead_ttl));
        for (task, finish) in batch {
            invocation.key(self.keys.task_raw(&task.name));
            let (kind, text, delay, permanent, remote_id) = match *finish {
                Finish::Done(data) => ("done", data, Duration::ZERO, false, ""),
                Finish::Processing { data, delay } => ("processing", data, delay, false, ""),
                Finish::Submitted {
                    remote_id,
                    data,
                    delay,
                } => ("submitted", data, delay, false, remote_id),
                Finish::Throttled { message, delay } => ("throttled", message, delay, false, ""),
                Finish::Failed {
                    error,
                    delay,
                    permanent,
                } => ("failed", error, delay, permanent, ""),
            };
            invocation
                .arg(kind)
                .arg(&task.token)
                .arg(text)
                .arg(millis(delay))
                .arg(u8::from(permanent))
                .arg(remote_id);
        }
        let codes: Vec<i64> = invocation.run(&self.conn).await?;
        if codes.len() != batch.len() {
            return Err(Error::UnexpectedReply(format!(
                "finish: {} acks for {} tasks",
                codes.len(),
                batch.len()
            )));
        }
        codes.into_iter().map(Ack::from_code).collect()
    }

    /// Hands a task back unrun: due at once, no attempt counted.
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis fails; safe to call again.
    pub async fn release(&self, task: &ClaimedTask) -> Result<Ack> {
        let code: i64 = scripts::RELEASE
            .key(self.keys.task_raw(&task.name))
            .key(&self.keys.leased)
            .key(&self.keys.due)
            .key(&self.keys.stats)
            .arg(&task.name)
            .arg(&task.token)
            .run(&self.conn)
            .await?;
        Ack::from_code(code)
    }

    /// Renews the leases of `tasks` for another lease period; answers the positions (in
    /// `tasks`) of those whose lease was lost.
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis fails.
    pub async fn extend(&self, tasks: &[ClaimedTask]) -> Result<Vec<usize>> {
        if tasks.is_empty() {
            return Ok(Vec::new());
        }
        let mut invocation = scripts::EXTEND.key(&self.keys.leased);
        invocation.arg(millis(self.policy.lease));
        for task in tasks {
            invocation
                .key(self.keys.task_raw(&task.name))
                .arg(&task.name)
                .arg(&task.token);
        }
        let lost: Vec<usize> = invocation.run(&self.conn).await?;
        Ok(lost.into_iter().map(|position| position - 1).collect())
    }

    /// One sweep: takes back expired leases and prunes old dead records (each bounded by the
    /// policy's sweep limit). Any process may run it at any time.
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis fails.
    pub async fn sweep(&self) -> Result<Sweep> {
        let limit = self.policy.sweep_limit;
        let (leased, dead): (Vec<String>, Vec<String>) = self
            .earliest(&[(&self.keys.leased, limit), (&self.keys.dead, limit)])
            .await?;
        let mut invocation = scripts::REAP.key(&self.keys.leased);
        invocation
            .key(&self.keys.due)
            .key(&self.keys.dead)
            .key(&self.keys.stats);
        for name in leased.iter().chain(&dead) {
            invocation.key(self.keys.task_raw(name));
        }
        let (reaped, pruned): (u64, u64) = invocation
            .arg(self.keys.task_prefix())
            .arg(leased.len())
            .arg(self.policy.max_attempts)
            .arg(millis(self.policy.dead_ttl))
            .arg(self.policy.dead_max)
            .run(&self.conn)
            .await?;
        Ok(Sweep { reaped, pruned })
    }

    /// Brings a dead task back: due at once with a fresh attempt budget. Answers false when the
    /// task is not dead.
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis fails.
    pub async fn retry_dead(&self, name: &TaskName) -> Result<bool> {
        let code: i64 = scripts::RETRY
            .key(self.keys.task(name))
            .key(&self.keys.dead)
            .key(&self.keys.due)
            .key(&self.keys.stats)
            .arg(name.as_str())
            .run(&self.conn)
            .await?;
        Ok(code == 1)
    }

    /// Counts tasks per set and reads the queue-wide counters, in one round trip.
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis fails.
    pub async fn counts(&self) -> Result<Counts> {
        let (due, running, dead, totals): (u64, u64, u64, BTreeMap<String, u64>) = redis::pipe()
            .zcard(&self.keys.due)
            .zcard(&self.keys.leased)
            .zcard(&self.keys.dead)
            .hgetall(&self.keys.stats)
            .query_async(&mut self.conn())
            .await?;
        Ok(Counts {
            due,
            running,
            dead,
            totals,
        })
    }
}

/// Runs a Redis call once more if the connection had dropped (a killed client connection, a
/// Redis restart): every script is safe to repeat, and the connection manager has reconnected by
/// then. Refusals and timeouts are not repeated: Redis is down or hung, and a second try would
/// only double the caller's wait.
pub(crate) async fn once_more_if_dropped<T, F>(call: impl Fn() -> F) -> redis::RedisResult<T>
where
    F: Future<Output = redis::RedisResult<T>>,
{
    match call().await {
        Err(err)
            if err.is_connection_dropped() && !err.is_connection_refusal() && !err.is_timeout() =>
        {
            tracing::debug!(error = %err, "connection dropped; calling once more");
            call().await
        }
        result => result,
    }
}

/// Runs a script through [`once_more_if_dropped`]: [`RunScript::run`] for a state change (it
/// waits for replicas when the connection asks for it), [`RunScript::read`] for a script that
/// only reads.
pub(crate) trait RunScript {
    async fn run<T: redis::FromRedisValue>(&self, conn: &RedisConnection) -> Result<T>;
    async fn read<T: redis::FromRedisValue>(&self, conn: &RedisConnection) -> Result<T>;
}

impl RunScript for redis::ScriptInvocation<'_> {
    async fn run<T: redis::FromRedisValue>(&self, conn: &RedisConnection) -> Result<T> {
        let Some(wait) = conn.wait_for_replicas() else {
            return self.read(conn).await;
        };
        match run_replicated(self, conn, wait).await {
            Err(Error::Redis(err))
                if err.is_connection_dropped()
                    && !err.is_connection_refusal()
                    && !err.is_timeout() =>
            {
                tracing::debug!(error = %err, "connection dropped; calling once more");
                run_replicated(self, conn, wait).await
            }
            result => result,
        }
    }

    async fn read<T: redis::FromRedisValue>(&self, conn: &RedisConnection) -> Result<T> {
        Ok(once_more_if_dropped(|| {
            let mut conn = conn.clone();
            async move { self.invoke_async(&mut conn).await }
        })
        .await?)
    }
}

/// How many of the earliest lease deadlines a claim checks for expiry on its way (the tick's
/// sweep takes the rest).
const CLAIM_REAP_CANDIDATES: usize = 8;

/// A duration in whole milliseconds, as the scripts take it.
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn parse_claim(reply: Vec<redis::Value>, submits: bool) -> Result<Claim> {
    // Fields per claimed task: six, and two more (remote id, submit token) for a queue whose
    // calls start with a submit.
    let per_task = if submits { 8 } else { 6 };
    let bad = |what: &str| Error::UnexpectedReply(format!("claim reply: {what}"));
    let mut items = reply.into_iter();
    let next_due: i64 = redis::from_redis_value(items.next().ok_or_else(|| bad("empty"))?)
        .map_err(|_| bad("next due"))?;
    let rest: Vec<String> =
        redis::from_redis_value(redis::Value::Array(items.collect())).map_err(|_| bad("tasks"))?;
    if !rest.len().is_multiple_of(per_task) {
        return Err(bad("task fields"));
    }
    let number = |s: &str| s.parse::<u32>().map_err(|_| bad("counter"));
    // Text fields are never empty when set (JSON, ids and tokens): empty means none.
    let text = |s: String| (!s.is_empty()).then_some(s);
    let mut tasks = Vec::with_capacity(rest.len() / per_task);
    let mut fields = rest.into_iter();
    while let Some(name) = fields.next() {
        let mut next = || fields.next().ok_or_else(|| bad("task fields"));
        let token = next()?;
        let attempts = number(&next()?)?;
        let polls = number(&next()?)?;
        let payload = text(next()?);
        let throttled = number(&next()?)?;
        let (remote_id, submit_token) = if submits {
            (text(next()?), text(next()?))
        } else {
            (None, None)
        };
        tasks.push(ClaimedTask {
            name,
            token,
            attempts,
            polls,
            payload,
            remote_id,
            throttled,
            submit_token,
        });
    }
    Ok(Claim {
        tasks,
        next_due_in: u64::try_from(next_due).ok().map(Duration::from_millis),
    })
}
