//! Which queue a request is about. One producer serves every queue of `QUEUES` (for example one
//! per third-party API) over one Redis connection; a request names its queue with the `queue`
//! query parameter and, without it, gets the first one listed (or `QUEUE_NAME`). So clients of a
//! single queue never see the parameter, and a producer in front of several queues needs no
//! routes of its own per queue.

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts, Query};
use axum::http::request::Parts;
use serde::Deserialize;
use taskq::Queue;

use crate::admission::Admission;
use crate::error::AppError;
use crate::throughput::Throughput;

/// A queue the producer serves, with its throughput samples and its admission control.
#[derive(Clone)]
pub struct ServedQueue {
    /// The queue.
    pub queue: Queue,
    /// A minute of samples of its totals, for `/stats`.
    pub throughput: Arc<Throughput>,
    /// Its refused enqueues and its Redis' latest report.
    pub admission: Arc<Admission>,
}

impl ServedQueue {
    fn new(queue: Queue) -> Self {
        Self {
            admission: Arc::new(Admission::new(queue.enqueue_policy())),
            queue,
            throughput: Arc::default(),
        }
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        self.queue.keys().queue()
    }
}

/// The queues served, the default first; never empty.
#[derive(Clone)]
pub struct Queues(Arc<[ServedQueue]>);

impl Queues {
    /// `default` and `others` (each named once), each admitting enqueues by its own policy.
    pub fn new(default: Queue, others: impl IntoIterator<Item = Queue>) -> Self {
        Self(
            std::iter::once(default)
                .chain(others)
                .map(ServedQueue::new)
                .collect(),
        )
    }

    /// The queue of requests that name none.
    pub fn default(&self) -> &ServedQueue {
        &self.0[0]
    }

    /// The queue called `name`, when served.
    pub fn get(&self, name: &str) -> Option<&ServedQueue> {
        self.0.iter().find(|served| served.name() == name)
    }

    /// Every queue, the default first.
    pub fn iter(&self) -> impl Iterator<Item = &ServedQueue> {
        self.0.iter()
    }
}

/// The `queue` query parameter.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct QueueParam {
    /// The queue (one of the producer's `QUEUES`); the first one when absent.
    pub queue: Option<String>,
}

/// The queue a request names (extractor): 404 for a queue not served here.
pub struct Target {
    /// The queue.
    pub served: ServedQueue,
    /// Whether it is not the default queue, so links to its tasks must name it.
    pub named: bool,
}

impl Target {
    /// The queue.
    pub fn queue(&self) -> &Queue {
        &self.served.queue
    }

    /// The query string that names this queue in a link: empty for the default queue.
    pub fn link_query(&self) -> String {
        if self.named {
            format!("?queue={}", self.served.name())
        } else {
            String::new()
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Target
where
    Queues: FromRef<S>,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        let queues = Queues::from_ref(state);
        let Query(QueueParam { queue }) = Query::try_from_uri(&parts.uri)?;
        let Some(name) = queue else {
            return Ok(Self {
                served: queues.default().clone(),
                named: false,
            });
        };
        let served = queues
            .get(&name)
            .ok_or_else(|| AppError::NotFound(format!("no queue named {name:?} is served here")))?;
        Ok(Self {
            named: served.name() != queues.default().name(),
            served: served.clone(),
        })
    }
}
