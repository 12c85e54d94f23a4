//! Callbacks out: the handler of a queue's callback lane ([`taskq::Queue::callbacks`]), which
//! POSTs an ended task's view to the `callback_url` it was submitted with.
//!
//! The lane's deliveries are tasks, claimed, leased, retried with the queue's backoff and buried
//! by the same scripts as the queue's own tasks, with their own attempt limit
//! (`CALLBACK_MAX_ATTEMPTS`): a delivery survives a crash or a restart of every binary, and is
//! made at least once. Each attempt at one callback carries the same `webhook-id` (made of the
//! queue, the task and the time it ended), so a receiver can drop the repeats that "at least
//! once" implies.
//!
//! The body is the task's view as it is when the delivery runs, which is the view it ended
//! with: a final task changes no more. The exception is a task an operator retried (or purged)
//! before its callback went out: its delivery gives up, since the view it would carry is not
//! an ending; the task's next end hands over a callback of its own.

use serde::Deserialize;
use taskq::{ClaimedTask, Failure, Handler, Outcome, Queue, TaskView};
use webhooks::{Deliverer, DeliveryError, Destination, message_id};

use crate::api::failure::clip;

/// The most of a receiver's refusal kept in the delivery's last error.
const MAX_SNIPPET_SHOWN: usize = 200;

/// Delivers the callbacks of one queue's tasks.
#[derive(Debug, Clone)]
pub struct Courier {
    /// The queue whose tasks ended (the lane's deliveries are named like them).
    tasks: Queue,
    /// Signs and sends, refusing non-public addresses unless allowed.
    deliverer: Deliverer,
}

/// A delivery's payload, as the script that ended the task wrote it.
#[derive(Deserialize)]
struct Payload {
    url: String,
}

impl Courier {
    /// A courier for the callbacks of `tasks`' tasks.
    pub fn new(tasks: Queue, deliverer: Deliverer) -> Self {
        Self { tasks, deliverer }
    }

    /// Where delivery `delivery` goes, and the view it carries.
    async fn prepare(&self, delivery: &ClaimedTask) -> Result<(Destination, TaskView), Failure> {
        let url = delivery
            .payload
            .as_deref()
            .and_then(|payload| serde_json::from_str::<Payload>(payload).ok())
            .ok_or_else(|| Failure::permanent("the delivery names no callback url"))?
            .url;
        let destination = Destination::parse(&url, self.deliverer.allows_private())
            .map_err(|err| Failure::permanent(format!("callback url refused: {err}")))?;
        match self.tasks.callback_body(&delivery.name).await {
            Ok(Some(view)) if view.state.is_final() => Ok((destination, view)),
            Ok(Some(_)) => Err(Failure::permanent(
                "the task was retried before its callback went out; its next end calls back",
            )),
            Ok(None) => Err(Failure::permanent(
                "the task is gone (purged or expired) before its callback went out",
            )),
            Err(err) => Err(Failure::retryable(format!("reading the task: {err}"))),
        }
    }
}

impl Handler for Courier {
    async fn handle(&self, delivery: &ClaimedTask) -> Outcome {
        let (destination, view) = match self.prepare(delivery).await {
            Ok(prepared) => prepared,
            Err(failure) => return Outcome::Failed(failure),
        };
        let body = match serde_json::to_vec(&view) {
            Ok(body) => body,
            Err(err) => return Outcome::Failed(Failure::permanent(format!("the view: {err}"))),
        };
        let ended_at = view.updated_at_ms.to_string();
        let id = message_id(&[
            self.tasks.keys().queue().as_bytes(),
            view.task.as_bytes(),
            ended_at.as_bytes(),
        ]);
        match self.deliverer.deliver(&destination, &id, &body).await {
            Ok(delivered) => Outcome::Done(format!("{{\"status\":{}}}", delivered.status)),
            Err(err) => Outcome::Failed(Failure {
                message: describe(&err),
                permanent: err.is_permanent(),
                retry_after: None,
            }),
        }
    }
}

/// A failed delivery for its record: the error, and the start of what a refusing receiver said.
fn describe(err: &DeliveryError) -> String {
    match err {
        DeliveryError::Status { body_snippet, .. } if !body_snippet.trim().is_empty() => {
            format!("{err}: {}", clip(body_snippet, MAX_SNIPPET_SHOWN).trim())
        }
        _ => err.to_string(),
    }
}

/// The lane's worker policy: the queue's, with `max_attempts` deliveries and no polling
/// deadline (a delivery never answers "processing").
pub fn lane_policy(queue: &taskq::WorkerPolicy, max_attempts: u32) -> taskq::WorkerPolicy {
    taskq::WorkerPolicy {
        max_attempts,
        max_poll: None,
        submit_keys: false,
        ..queue.clone()
    }
}

/// The lane's worker settings: the queue's, without its API's shared limit.
pub fn lane_worker(queue: &taskq::WorkerConfig) -> taskq::WorkerConfig {
    taskq::WorkerConfig {
        limiter: None,
        ..queue.clone()
    }
}
