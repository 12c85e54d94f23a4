//! Why enqueues made at the same time share one script call, and the background task that
//! gathers them.
//!
//! An enqueue is a run of `enqueue.lua`: it looks for a live task of the name and writes the
//! record in one atomic step, so there is one live task per name. Redis spends most of a small
//! script call on the call itself (dispatching `EVALSHA`, setting the script up, framing the
//! reply), not on the few commands inside: the bench measured 17.5 µs of Redis CPU per enqueue
//! sent alone, against 6.7 µs per task in calls of 1,000. So each queue handle runs a small
//! background task that gathers the enqueues waiting when a call may start (up to
//! [`MAX_TASKS`] tasks and about [`MAX_CALL_PAYLOAD_BYTES`] of payload) into one call.
//!
//! Nothing waits on a timer: a lone enqueue is sent at once, and enqueues gather only while
//! [`CALLS_IN_FLIGHT`] earlier calls are on their way. Each task keeps the guarantees it has alone:
//! the call is one script, so a batch is written whole or not at all, and a name given twice in
//! one call is created once. A caller that stops waiting does not stop its enqueue, as with any
//! command already sent.

use std::sync::{Arc, Mutex, PoisonError};

use redis::{ScriptInvocation, Value};
use serde_json::value::RawValue;
use tokio::sync::mpsc::error::SendError;
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::connect::RedisConnection;
use crate::error::{Error, Result};
use crate::keys::QueueKeys;
use crate::name::TaskName;
use crate::scripts::{self, RunScript};
use crate::task::{RunAt, TaskView};

/// The answer to an enqueue.
#[derive(Debug, Clone)]
pub struct Enqueued {
    /// Whether this call created the task (false: a task of that name was already there).
    pub created: bool,
    /// The task as it is now.
    pub view: TaskView,
}

/// The most tasks one shared call carries.
pub(crate) const MAX_TASKS: usize = 256;
/// A shared call stops gathering once its payloads reach this many bytes.
pub(crate) const MAX_CALL_PAYLOAD_BYTES: usize = 1024 * 1024;
/// Shared calls on their way at once, per queue handle (and its clones).
pub(crate) const CALLS_IN_FLIGHT: usize = 4;

/// One task of an enqueue call.
pub(crate) struct TaskArgs<'a> {
    pub name: &'a TaskName,
    pub payload: Option<&'a RawValue>,
    pub run_at: RunAt,
    pub callback_url: Option<&'a str>,
}

/// The enqueue script for `tasks`. With `records`, a task already there answers its record;
/// without, 0.
pub(crate) fn invocation<'a>(
    conn: &RedisConnection,
    keys: &QueueKeys,
    result_ttl_ms: u64,
    records: bool,
    tasks: impl IntoIterator<Item = TaskArgs<'a>>,
) -> ScriptInvocation<'static> {
    let mut invocation = scripts::ENQUEUE.on(conn).key(&keys.due);
    invocation
        .key(&keys.stats)
        .key(&keys.wake)
        .arg(result_ttl_ms)
        .arg(if records { "1" } else { "0" })
        .arg(keys.task_prefix());
    for task in tasks {
        invocation
            .key(keys.task(task.name))
            .arg(task.payload.map_or("", RawValue::get))
            .arg(task.run_at.as_arg())
            .arg(task.callback_url.unwrap_or(""));
    }
    invocation
}

/// Splits the script's reply into the creation time and one reply per task.
pub(crate) fn split(reply: Vec<Value>, tasks: usize) -> Result<(u64, Vec<Value>)> {
    let mut items = reply.into_iter();
    let created = items
        .next()
        .and_then(|value| redis::from_redis_value(value).ok())
        .ok_or_else(|| bad("creation time"))?;
    let replies: Vec<Value> = items.collect();
    if replies.len() != tasks {
        return Err(bad(&format!("{} answers for {tasks} tasks", replies.len())));
    }
    Ok((created, replies))
}

/// One task's answer: 1 when created now, else its record (or 0 without records).
pub(crate) fn answer(
    task: &TaskArgs<'_>,
    payload: Option<Box<RawValue>>,
    created_at_ms: u64,
    reply: Value,
) -> Result<Enqueued> {
    let name = task.name;
    if reply == Value::Int(1) {
        return Ok(Enqueued {
            created: true,
            view: TaskView::enqueued(
                name.as_str(),
                created_at_ms,
                task.run_at.resolve(created_at_ms),
                payload,
                task.callback_url.is_some(),
            ),
        });
    }
    let fields: Vec<(String, String)> =
        redis::from_redis_value(reply).map_err(|_| bad("record"))?;
    Ok(Enqueued {
        created: false,
        view: TaskView::from_fields(name.as_str(), fields)?,
    })
}

fn bad(what: &str) -> Error {
    Error::UnexpectedReply(format!("enqueue reply: {what}"))
}

/// One enqueue waiting for a call.
struct Request {
    name: TaskName,
    payload: Option<Box<RawValue>>,
    run_at: RunAt,
    callback_url: Option<String>,
    answer: oneshot::Sender<Result<Enqueued>>,
}

impl Request {
    fn args(&self) -> TaskArgs<'_> {
        TaskArgs {
            name: &self.name,
            payload: self.payload.as_deref(),
            run_at: self.run_at,
            callback_url: self.callback_url.as_deref(),
        }
    }

    fn payload_len(&self) -> usize {
        self.payload
            .as_ref()
            .map_or(0, |payload| payload.get().len())
    }
}

/// Where the background task sends its calls.
pub(crate) struct CallTarget {
    pub conn: RedisConnection,
    pub keys: Arc<QueueKeys>,
    pub result_ttl_ms: u64,
}

/// The enqueues of one queue handle and its clones; starts its background task on first use,
/// and again if the runtime that ran it has gone.
#[derive(Default)]
pub(crate) struct Enqueuer {
    requests: Mutex<Option<mpsc::UnboundedSender<Request>>>,
}

impl Enqueuer {
    /// Enqueues `name` in the next call to `target` and waits for its answer.
    pub async fn enqueue(
        &self,
        task: crate::task::NewTask,
        target: impl FnOnce() -> CallTarget,
    ) -> Result<Enqueued> {
        let (answer, answered) = oneshot::channel();
        self.send(
            Request {
                name: task.name,
                payload: task.payload,
                run_at: task.run_at,
                callback_url: task.callback_url,
                answer,
            },
            target,
        );
        answered.await.unwrap_or(Err(Error::Interrupted))
    }

    fn send(&self, request: Request, target: impl FnOnce() -> CallTarget) {
        let mut requests = self.requests.lock().unwrap_or_else(PoisonError::into_inner);
        let request = match requests.as_ref() {
            Some(sender) => match sender.send(request) {
                Ok(()) => return,
                Err(SendError(request)) => request,
            },
            None => request,
        };
        let (sender, receiver) = mpsc::unbounded_channel();
        // The receiver is alive: it has not been handed to the task yet.
        let _ = sender.send(request);
        tokio::spawn(gather_and_call(receiver, Arc::new(target())));
        *requests = Some(sender);
    }
}

/// The background task: waits for a free call, gathers what is waiting, calls. Ends when every
/// handle of the queue is gone.
async fn gather_and_call(mut requests: mpsc::UnboundedReceiver<Request>, target: Arc<CallTarget>) {
    let calls = Arc::new(Semaphore::new(CALLS_IN_FLIGHT));
    loop {
        let Ok(call) = Arc::clone(&calls).acquire_owned().await else {
            return;
        };
        let Some(first) = requests.recv().await else {
            return;
        };
        let mut bytes = first.payload_len();
        let mut batch = vec![first];
        while batch.len() < MAX_TASKS && bytes < MAX_CALL_PAYLOAD_BYTES {
            let Ok(next) = requests.try_recv() else { break };
            bytes += next.payload_len();
            batch.push(next);
        }
        let target = Arc::clone(&target);
        tokio::spawn(async move {
            target.call(batch).await;
            drop(call);
        });
    }
}

impl CallTarget {
    /// Runs one call for `batch` and hands each caller its answer.
    async fn call(&self, batch: Vec<Request>) {
        let tasks = batch.iter().map(Request::args);
        let reply: Result<Vec<Value>> =
            invocation(&self.conn, &self.keys, self.result_ttl_ms, true, tasks)
                .run(&self.conn)
                .await;
        let answers = reply.and_then(|reply| split(reply, batch.len()));
        match answers {
            Ok((created_at_ms, replies)) => {
                for (mut request, reply) in batch.into_iter().zip(replies) {
                    let payload = request.payload.take();
                    let answer = answer(&request.args(), payload, created_at_ms, reply);
                    let _ = request.answer.send(answer);
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
