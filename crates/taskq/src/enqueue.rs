//! Enqueueing: `enqueue.lua` adds a task unless one of its name is live (one live task per
//! name), in one atomic step, due at once or later ([`RunAt`]). Single enqueues go through the
//! queue handle's batcher ([`crate::batcher`]), which shares script calls between enqueues made
//! at the same time; [`Queue::enqueue_many`] and [`Queue::submit_many`] send their own calls.

use serde_json::value::RawValue;
use tracing::instrument;

use crate::batcher::{self, Enqueued, MAX_CALL_PAYLOAD_BYTES};
use crate::error::{Error, Result};
use crate::name::TaskName;
use crate::queue::Queue;
use crate::scripts::{RunScript, millis};
use crate::task::{NewTask, RunAt};

/// The largest payload accepted with a task, in bytes of JSON text.
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;

/// The most tasks one call of [`Queue::submit_many`] writes (it makes more calls for more).
pub const MAX_TASKS_PER_CALL: usize = 1000;

impl NewTask {
    fn args(&self) -> batcher::TaskArgs<'_> {
        batcher::TaskArgs {
            name: &self.name,
            payload: self.payload.as_deref(),
            run_at: self.run_at,
            callback_url: self.callback_url.as_deref(),
        }
    }
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
    /// [`Error::Redis`] when Redis fails; nothing is written then.
    pub async fn enqueue(&self, name: &TaskName) -> Result<Enqueued> {
        self.submit(name, None).await
    }

    /// Adds the task `name` with a `payload` (JSON, kept in the record and shown with the task)
    /// unless a task of that name is live or done with its result kept; either way answers the
    /// task as it now is. A duplicate keeps the first payload.
    ///
    /// # Errors
    /// [`Error::PayloadTooLarge`] over [`MAX_PAYLOAD_BYTES`]; [`Error::Redis`] when Redis fails,
    /// and nothing is written then.
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
        self.enqueue_one(task).await
    }

    /// Adds many tasks, each with its payload and time, in as few calls as their size allows (up
    /// to [`MAX_TASKS_PER_CALL`] tasks and about 1 MiB of payload per call, in order); answers
    /// each task as [`Queue::submit`] does, in order. A name given twice is created once: the
    /// second answer is the first's task.
    ///
    /// # Errors
    /// [`Error::PayloadTooLarge`] or [`Error::InvalidRunAt`] (before anything is written) when a
    /// payload is over [`MAX_PAYLOAD_BYTES`] or a time out of range; [`Error::Redis`] when Redis fails: each call is written whole or not
    /// at all, and the calls before it stay written.
    pub async fn submit_many(&self, tasks: &[NewTask]) -> Result<Vec<Enqueued>> {
        for task in tasks {
            check_payload(task.payload.as_deref())?;
            task.run_at.check()?;
        }
        let mut answers = Vec::with_capacity(tasks.len());
        let mut rest = tasks;
        while !rest.is_empty() {
            let (call, after) = rest.split_at(call_size(rest));
            rest = after;
            let invocation = batcher::invocation(
                self.redis(),
                self.keys(),
                millis(self.enqueue_policy().result_ttl),
                true,
                call.iter().map(NewTask::args),
            );
            let reply: Vec<redis::Value> = invocation.run(self.redis()).await?;
            let (created_at_ms, replies) = batcher::split(reply, call.len())?;
            for (task, reply) in call.iter().zip(replies) {
                answers.push(batcher::answer(
                    &task.args(),
                    task.payload.clone(),
                    created_at_ms,
                    reply,
                )?);
            }
        }
        Ok(answers)
    }

    /// Adds many tasks in one round trip; answers, per name, whether it was created.
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis fails; the batch is then either wholly written or not at all.
    pub async fn enqueue_many(&self, names: &[TaskName]) -> Result<Vec<bool>> {
        let tasks = names.iter().map(|name| batcher::TaskArgs {
            name,
            payload: None,
            run_at: RunAt::Now,
            callback_url: None,
        });
        let reply: Vec<redis::Value> = batcher::invocation(
            self.redis(),
            self.keys(),
            millis(self.enqueue_policy().result_ttl),
            false,
            tasks,
        )
        .run(self.redis())
        .await?;
        let (_, flags) = batcher::split(reply, names.len())?;
        Ok(flags
            .into_iter()
            .map(|flag| flag == redis::Value::Int(1))
            .collect())
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
