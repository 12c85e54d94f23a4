//! Enqueueing: `enqueue.lua` adds a task unless one of its name is live (one live task per
//! name), in one atomic step, due at once or later ([`RunAt`]), and unless the queue is full
//! ([`Full`]: Redis' memory past the enqueuing side's high-water mark, or the most tasks it may
//! hold). Single enqueues are gathered by the queue handle's batcher ([`crate::batcher`]), which
//! shares script calls between enqueues made at the same time; [`Queue::enqueue_many`] and
//! [`Queue::submit_many`] send their own calls. Every call goes through [`Writer::write`];
//! [`Queue::enqueue_call`] hands the same call, as text, to a tool that sends it itself (the
//! benchmark's `redis-benchmark` run), built by the same filler so that it cannot drift.
//!
//! Admission lives in the script, where every enqueue of every producer passes: the estimate is
//! the latest reading of Redis' memory plus what enqueues wrote since, so neither a burst nor
//! several producers can pass the mark between two readings (the script's header says how).

use std::sync::Arc;

use redis::{ToRedisArgs, Value};
use serde_json::value::RawValue;
use tracing::instrument;

use crate::batcher::{self, MAX_CALL_PAYLOAD_BYTES, Request};
use crate::connect::RedisConnection;
use crate::error::{Error, Full, Result};
use crate::keys::QueueKeys;
use crate::name::TaskName;
use crate::policy::EnqueuePolicy;
use crate::queue::Queue;
use crate::scripts::{self, RunScript, millis};
use crate::task::{Enqueued, NewTask, RunAt, TaskView};

/// The largest payload accepted with a task, in bytes of JSON text.
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;

/// The most tasks one call of [`Queue::submit_many`] writes (it makes more calls for more).
pub const MAX_TASKS_PER_CALL: usize = 1000;

/// One task of an enqueue call.
pub(crate) struct TaskArgs<'a> {
    pub name: &'a TaskName,
    pub payload: Option<&'a RawValue>,
    pub run_at: RunAt,
    pub callback_url: Option<&'a str>,
}

impl<'a> TaskArgs<'a> {
    /// Task `name` alone: no payload, due at once, no callback.
    fn bare(name: &'a TaskName) -> Self {
        Self {
            name,
            payload: None,
            run_at: RunAt::Now,
            callback_url: None,
        }
    }
}

impl NewTask {
    fn args(&self) -> TaskArgs<'_> {
        TaskArgs {
            name: &self.name,
            payload: self.payload.as_deref(),
            run_at: self.run_at,
            callback_url: self.callback_url.as_deref(),
        }
    }
}

/// What an enqueue call needs: the queue's connection, keys and enqueuing policy.
pub(crate) struct Writer {
    pub conn: RedisConnection,
    pub keys: Arc<QueueKeys>,
    pub policy: Arc<EnqueuePolicy>,
}

/// What a task already there answers in a call.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Existing {
    /// Its record, as a view.
    Record,
    /// Nothing: only whether each task was created.
    Nothing,
}

/// One task's reply in a call.
pub(crate) enum Reply {
    /// Created now, at this server time (ms).
    Created(u64),
    /// A task of that name was there; its view when the call asked for records.
    Existing(Option<Box<TaskView>>),
    /// Refused: the queue is full.
    Refused(Full),
}

impl Writer {
    /// Runs one call of the enqueue script for `tasks`; answers each task, in order. At
    /// `maxmemory`, where Redis refuses the script, the call is made again in its looking-up
    /// form: a task already there is answered, a new one refused ([`Full::MaxMemory`]).
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis fails: nothing was written then.
    pub(crate) async fn write(
        &self,
        tasks: &[TaskArgs<'_>],
        existing: Existing,
    ) -> Result<Vec<Reply>> {
        let reply: Vec<Value> = match self
            .invocation(tasks, existing, false)
            .run(&self.conn)
            .await
        {
            Err(Error::Full(Full::MaxMemory)) => {
                self.invocation(tasks, existing, true)
                    .read(&self.conn)
                    .await?
            }
            reply => reply?,
        };
        replies(reply, tasks)
    }

    /// The `enqueue.lua` call for `tasks`, in its `looking_up` form or not.
    fn invocation(
        &self,
        tasks: &[TaskArgs<'_>],
        existing: Existing,
        looking_up: bool,
    ) -> redis::ScriptInvocation<'static> {
        let script = if looking_up {
            &scripts::ENQUEUE_LOOKUP
        } else {
            &scripts::ENQUEUE
        };
        let mut invocation = script.on(&self.conn).prepare_invoke();
        self.fill(&mut invocation, tasks, existing, looking_up);
        invocation
    }

    /// Puts the script's keys and arguments for `tasks` into `call`, in order.
    fn fill(
        &self,
        call: &mut impl CallParts,
        tasks: &[TaskArgs<'_>],
        existing: Existing,
        looking_up: bool,
    ) {
        call.key(&self.keys.due)
            .key(&self.keys.stats)
            .key(&self.keys.wake)
            .key(&self.keys.leased)
            .key(self.keys.memory(self.conn.is_cluster()))
            .arg(millis(self.policy.result_ttl))
            .arg(if existing == Existing::Record {
                "1"
            } else {
                "0"
            })
            .arg(self.keys.task_prefix())
            .arg(self.policy.high_water_ppm())
            .arg(self.policy.max_queued.unwrap_or(0))
            .arg(u8::from(looking_up));
        for task in tasks {
            call.key(self.keys.task(task.name))
                .arg(task.payload.map_or("", RawValue::get))
                .arg(task.run_at.as_arg())
                .arg(task.callback_url.unwrap_or(""));
        }
    }
}

/// Where [`Writer::fill`] puts a call's keys and arguments: the invocation the library sends, or
/// an [`EnqueueCall`] for a tool that sends the call itself. One filler for both, so the two
/// cannot drift apart.
trait CallParts {
    fn key<T: ToRedisArgs>(&mut self, key: T) -> &mut Self;
    fn arg<T: ToRedisArgs>(&mut self, arg: T) -> &mut Self;
}

impl CallParts for redis::ScriptInvocation<'_> {
    fn key<T: ToRedisArgs>(&mut self, key: T) -> &mut Self {
        redis::ScriptInvocation::key(self, key)
    }

    fn arg<T: ToRedisArgs>(&mut self, arg: T) -> &mut Self {
        redis::ScriptInvocation::arg(self, arg)
    }
}

/// The script call that enqueues one task, for a tool that drives Redis itself: the benchmark
/// measures Redis' own limit by having `redis-benchmark` repeat it. Its parts are text: every key
/// and argument of an enqueue without a payload is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnqueueCall {
    /// The SHA1 of the script, for `EVALSHA`: Redis knows it once this process has enqueued.
    pub sha: String,
    /// `KEYS`, in order.
    pub keys: Vec<String>,
    /// `ARGV`, in order.
    pub args: Vec<String>,
}

impl CallParts for EnqueueCall {
    fn key<T: ToRedisArgs>(&mut self, key: T) -> &mut Self {
        self.keys.extend(text(&key));
        self
    }

    fn arg<T: ToRedisArgs>(&mut self, arg: T) -> &mut Self {
        self.args.extend(text(&arg));
        self
    }
}

/// The Redis arguments `value` makes, as text.
fn text(value: &impl ToRedisArgs) -> impl Iterator<Item = String> {
    value
        .to_redis_args()
        .into_iter()
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
}

/// Reads the script's reply: `{created, reason, figure, limit, r1, r2, ...}`.
fn replies(reply: Vec<Value>, tasks: &[TaskArgs<'_>]) -> Result<Vec<Reply>> {
    if reply.len() != tasks.len() + 4 {
        return Err(bad(&format!(
            "{} values for {} tasks",
            reply.len(),
            tasks.len()
        )));
    }
    let mut items = reply.into_iter();
    let mut header = |what: &str| items.next().ok_or_else(|| bad(what));
    let (created, reason, figure, limit) = (
        header("creation time")?,
        header("reason")?,
        header("figure")?,
        header("limit")?,
    );
    let number = |value: Value, what: &str| -> Result<u64> {
        redis::from_redis_value(value).map_err(|_| bad(what))
    };
    let created_at_ms = number(created, "creation time")?;
    let reason: String = redis::from_redis_value(reason).map_err(|_| bad("reason"))?;
    let (figure, limit) = (number(figure, "figure")?, number(limit, "limit")?);
    let full = match reason.as_str() {
        "" => None,
        "memory" => Some(Full::Memory {
            used: figure,
            mark: limit,
        }),
        "max_queued" => Some(Full::MaxQueued {
            queued: figure,
            max: limit,
        }),
        "maxmemory" => Some(Full::MaxMemory),
        other => return Err(bad(&format!("reason {other:?}"))),
    };
    tasks
        .iter()
        .zip(items)
        .map(|(task, value)| match value {
            Value::Int(1) => Ok(Reply::Created(created_at_ms)),
            Value::Int(0) => Ok(Reply::Existing(None)),
            Value::Int(-1) => full
                .map(Reply::Refused)
                .ok_or_else(|| bad("refused, no reason")),
            record => {
                let fields: Vec<(String, String)> =
                    redis::from_redis_value(record).map_err(|_| bad("record"))?;
                Ok(Reply::Existing(Some(Box::new(TaskView::from_fields(
                    task.name.as_str(),
                    fields,
                )?))))
            }
        })
        .collect()
}

impl Reply {
    /// The answer to `task`, whose `payload` goes into the view of a task created now.
    ///
    /// # Errors
    /// [`Error::Full`] for a refused task.
    pub(crate) fn enqueued(
        self,
        task: &TaskArgs<'_>,
        payload: Option<Box<RawValue>>,
    ) -> Result<Enqueued> {
        match self {
            Self::Created(created_at_ms) => Ok(Enqueued {
                created: true,
                view: TaskView::enqueued(
                    task.name.as_str(),
                    created_at_ms,
                    task.run_at.resolve(created_at_ms),
                    payload,
                    task.callback_url.is_some(),
                ),
            }),
            Self::Existing(Some(view)) => Ok(Enqueued {
                created: false,
                view: *view,
            }),
            Self::Existing(None) => Err(bad("no record")),
            Self::Refused(full) => Err(Error::Full(full)),
        }
    }
}

impl batcher::Call for Writer {
    async fn call(&self, batch: Vec<Request>) {
        let args: Vec<TaskArgs<'_>> = batch.iter().map(|request| request.task.args()).collect();
        match self.write(&args, Existing::Record).await {
            Ok(replies) => {
                for (request, reply) in batch.into_iter().zip(replies) {
                    let Request { mut task, answer } = request;
                    let payload = task.payload.take();
                    let _ = answer.send(reply.enqueued(&task.args(), payload));
                }
            }
            Err(err) => {
                for request in batch {
                    let _ = request.answer.send(Err(again(&err)));
                }
            }
        }
    }
}

/// The failure of a call, once more for each of its callers.
fn again(err: &Error) -> Error {
    match err {
        Error::Redis(err) => Error::Redis(err.clone()),
        &Error::Full(full) => Error::Full(full),
        Error::UnexpectedReply(text) => Error::UnexpectedReply(text.clone()),
        &Error::NotReplicated {
            wanted,
            acknowledged,
            timeout,
        } => Error::NotReplicated {
            wanted,
            acknowledged,
            timeout,
        },
        other => Error::UnexpectedReply(other.to_string()),
    }
}

fn bad(what: &str) -> Error {
    Error::UnexpectedReply(format!("enqueue reply: {what}"))
}

/// Refuses a payload over [`MAX_PAYLOAD_BYTES`] ([`Error::PayloadTooLarge`]), as every enqueue
/// does; for an edge that checks a task before it is sent with others.
///
/// # Errors
/// [`Error::PayloadTooLarge`].
pub fn check_payload(payload: Option<&RawValue>) -> Result<()> {
    match payload.map(|payload| payload.get().len()) {
        Some(len) if len > MAX_PAYLOAD_BYTES => Err(Error::PayloadTooLarge {
            len,
            max: MAX_PAYLOAD_BYTES,
        }),
        _ => Ok(()),
    }
}

impl Queue {
    /// Adds the task `name` unless a task of that name is live (queued, running, processing,
    /// dead, cancelled) or done with its result still kept; either way answers the task as it now
    /// is. [`Queue::submit`] adds a payload.
    ///
    /// # Errors
    /// [`Error::Full`] when the queue is full; [`Error::Redis`] (or [`Full::MaxMemory`]) when
    /// Redis fails; nothing is written then.
    pub async fn enqueue(&self, name: &TaskName) -> Result<Enqueued> {
        self.submit(name, None).await
    }

    /// Adds the task `name` with a `payload` (JSON, kept in the record and shown with the task)
    /// unless a task of that name is live or done with its result kept; either way answers the
    /// task as it now is. A duplicate keeps the first payload.
    ///
    /// # Errors
    /// [`Error::PayloadTooLarge`] over [`MAX_PAYLOAD_BYTES`]; [`Error::Full`] when the queue is
    /// full; [`Error::Redis`] (or [`Full::MaxMemory`]) when Redis fails; nothing is written then.
    pub async fn submit(&self, name: &TaskName, payload: Option<&RawValue>) -> Result<Enqueued> {
        self.schedule(name, payload, RunAt::Now).await
    }

    /// [`Queue::submit`], the new task due at `run_at` rather than at once (a duplicate keeps its
    /// own time). It is queued meanwhile and no claim takes it before then.
    ///
    /// # Errors
    /// As [`Queue::submit`].
    pub async fn schedule(
        &self,
        name: &TaskName,
        payload: Option<&RawValue>,
        run_at: RunAt,
    ) -> Result<Enqueued> {
        self.submit_task(NewTask {
            name: name.clone(),
            payload: payload.map(ToOwned::to_owned),
            run_at,
            callback_url: None,
        })
        .await
    }

    /// Adds `task` as [`Queue::schedule`] does, with its callback URL if it has one (a duplicate
    /// keeps the first task's).
    ///
    /// # Errors
    /// As [`Queue::submit`], and [`Error::InvalidRunAt`] for a time out of range.
    #[instrument(level = "debug", skip_all, fields(task = %task.name))]
    pub async fn submit_task(&self, task: NewTask) -> Result<Enqueued> {
        check_payload(task.payload.as_deref())?;
        task.run_at.check()?;
        self.enqueuer().enqueue(task, || self.writer()).await
    }

    /// Adds many tasks, each with its payload and time, in as few calls as their size allows (up
    /// to [`MAX_TASKS_PER_CALL`] tasks and about 1 MiB of payload per call, in order); answers
    /// each task as [`Queue::submit`] does, in order, or why the queue refused it ([`Full`]:
    /// within a call, every new task after the first refused one is refused too, while a task
    /// already there is still answered). A name given twice is created once: the second answer
    /// is the first's task.
    ///
    /// # Errors
    /// [`Error::PayloadTooLarge`] or [`Error::InvalidRunAt`] (before anything is written) when a
    /// payload is over [`MAX_PAYLOAD_BYTES`] or a time out of range; [`Error::Redis`] when Redis
    /// fails: each call is written whole or not at all, and the calls before it stay written.
    pub async fn submit_many(&self, tasks: &[NewTask]) -> Result<Vec<Result<Enqueued, Full>>> {
        for task in tasks {
            check_payload(task.payload.as_deref())?;
            task.run_at.check()?;
        }
        let writer = self.writer();
        let mut answers = Vec::with_capacity(tasks.len());
        let mut rest = tasks;
        while !rest.is_empty() {
            let (call, after) = rest.split_at(call_size(rest));
            rest = after;
            let args: Vec<TaskArgs<'_>> = call.iter().map(NewTask::args).collect();
            let replies = writer.write(&args, Existing::Record).await?;
            for ((task, args), reply) in call.iter().zip(&args).zip(replies) {
                answers.push(match reply {
                    Reply::Refused(full) => Err(full),
                    reply => Ok(reply.enqueued(args, task.payload.clone())?),
                });
            }
        }
        Ok(answers)
    }

    /// Adds many tasks in one round trip; answers, per name, whether it was created.
    ///
    /// # Errors
    /// [`Error::Full`] when the queue refused a task (the tasks before it are written);
    /// [`Error::Redis`] when Redis fails: the batch is then either wholly written or not at all.
    pub async fn enqueue_many(&self, names: &[TaskName]) -> Result<Vec<bool>> {
        let tasks: Vec<TaskArgs<'_>> = names.iter().map(TaskArgs::bare).collect();
        self.writer()
            .write(&tasks, Existing::Nothing)
            .await?
            .into_iter()
            .map(|reply| match reply {
                Reply::Created(_) => Ok(true),
                Reply::Existing(_) => Ok(false),
                Reply::Refused(full) => Err(Error::Full(full)),
            })
            .collect()
    }

    /// The script call [`Queue::enqueue`] makes for a new task `name` alone (no payload, due at
    /// once, no callback), for a tool that sends it itself.
    pub fn enqueue_call(&self, name: &TaskName) -> EnqueueCall {
        let task = TaskArgs::bare(name);
        let mut call = EnqueueCall {
            sha: scripts::ENQUEUE.on(&self.conn).get_hash().to_owned(),
            keys: Vec::new(),
            args: Vec::new(),
        };
        self.writer()
            .fill(&mut call, &[task], Existing::Record, false);
        call
    }

    /// What an enqueue call of this handle needs.
    pub(crate) fn writer(&self) -> Writer {
        Writer {
            conn: self.conn.clone(),
            keys: Arc::clone(&self.keys),
            policy: Arc::clone(&self.enqueue_policy),
        }
    }
}

/// How many of `tasks` (at least one) the next call of [`Queue::submit_many`] carries.
fn call_size(tasks: &[NewTask]) -> usize {
    let mut bytes = 0;
    tasks
        .iter()
        .take(MAX_TASKS_PER_CALL)
        .take_while(|task| {
            let fits = bytes < MAX_CALL_PAYLOAD_BYTES;
            bytes += task
                .payload
                .as_ref()
                .map_or(0, |payload| payload.get().len());
            fits
        })
        .count()
        .max(1)
}
