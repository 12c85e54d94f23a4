//! Enqueueing: `enqueue.lua` adds a task unless one of its name is live (one live task per
//! name), in one atomic step. Single enqueues go through the queue handle's batcher
//! ([`crate::batcher`]), which shares script calls between enqueues made at the same time;
//! [`Queue::enqueue_many`] sends its own call.

use serde_json::value::RawValue;
use tracing::instrument;

use crate::batcher::{self, Enqueued};
use crate::error::{Error, Result};
use crate::name::TaskName;
use crate::queue::Queue;
use crate::scripts::{RunScript, millis};

/// The largest payload accepted with a task, in bytes of JSON text.
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;

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
    #[instrument(level = "debug", skip(self, payload), fields(task = %name))]
    pub async fn submit(&self, name: &TaskName, payload: Option<&RawValue>) -> Result<Enqueued> {
        if let Some(payload) = payload {
            let len = payload.get().len();
            if len > MAX_PAYLOAD_BYTES {
                return Err(Error::PayloadTooLarge {
                    len,
                    max: MAX_PAYLOAD_BYTES,
                });
            }
        }
        self.enqueue_one(name, payload.map(ToOwned::to_owned)).await
    }

    /// Adds many tasks in one round trip; answers, per name, whether it was created.
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis fails; the batch is then either wholly written or not at all.
    pub async fn enqueue_many(&self, names: &[TaskName]) -> Result<Vec<bool>> {
        let tasks = names.iter().map(|name| (name, None));
        let reply: Vec<redis::Value> = batcher::invocation(
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
