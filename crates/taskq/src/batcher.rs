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
//! the call is one atomic script, a name given twice in one call is created once, and each task
//! gets its own answer (created, there already, or refused because the queue is full). A caller
//! that stops waiting does not stop its enqueue, as with any command already sent. This module
//! only gathers; the call itself is the enqueue's ([`Call`], made by `crate::enqueue`).

use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::mpsc::error::SendError;
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::error::{Error, Result};
use crate::task::{Enqueued, NewTask};

/// The most tasks one shared call carries.
pub(crate) const MAX_TASKS: usize = 256;
/// A shared call stops gathering once its payloads reach this many bytes.
pub(crate) const MAX_CALL_PAYLOAD_BYTES: usize = 1024 * 1024;
/// Shared calls on their way at once, per queue handle (and its clones).
pub(crate) const CALLS_IN_FLIGHT: usize = 4;

/// One enqueue waiting for a call.
pub(crate) struct Request {
    /// The task to add.
    pub task: NewTask,
    /// Where its answer goes.
    pub answer: oneshot::Sender<Result<Enqueued>>,
}

impl Request {
    fn payload_len(&self) -> usize {
        self.task
            .payload
            .as_ref()
            .map_or(0, |payload| payload.get().len())
    }
}

/// What a gathered batch is handed to: one script call for all its tasks, which answers each
/// request (see [`crate::enqueue`]).
pub(crate) trait Call: Send + Sync + 'static {
    /// Writes `batch` in one call and sends each request its answer.
    fn call(&self, batch: Vec<Request>) -> impl Future<Output = ()> + Send;
}

/// The enqueues of one queue handle and its clones; starts its background task on first use,
/// and again if the runtime that ran it has gone.
#[derive(Default)]
pub(crate) struct Enqueuer {
    requests: Mutex<Option<mpsc::UnboundedSender<Request>>>,
}

impl Enqueuer {
    /// Enqueues `task` in the next call made by `target` and waits for its answer.
    pub async fn enqueue<C: Call>(
        &self,
        task: NewTask,
        target: impl FnOnce() -> C,
    ) -> Result<Enqueued> {
        let (answer, answered) = oneshot::channel();
        self.send(Request { task, answer }, target);
        answered.await.unwrap_or(Err(Error::Interrupted))
    }

    fn send<C: Call>(&self, request: Request, target: impl FnOnce() -> C) {
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
async fn gather_and_call<C: Call>(mut requests: mpsc::UnboundedReceiver<Request>, target: Arc<C>) {
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
