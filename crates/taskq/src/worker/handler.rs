//! What a handler answers for one call: done, processing, submitted, throttled or failed.

use std::future::Future;
use std::time::Duration;

use crate::task::ClaimedTask;

/// What a handler concluded about one call for a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Finished: store `data` (JSON text) as the final result.
    Done(String),
    /// Not finished yet: store `data` (JSON text) as partial data and call again after
    /// `poll_in` (default: the worker's poll interval). Not a failed attempt.
    Processing {
        /// Partial data, JSON text.
        data: String,
        /// When to call again, when the handler knows better than the poll interval.
        poll_in: Option<Duration>,
    },
    /// The API accepted the task's job and named it `remote_id`: store it with `data` (JSON
    /// text, the submit's answer) as partial data, and poll after `poll_in` (default: the poll
    /// interval). Not a failed attempt.
    Submitted {
        /// The API's id for the job, which every later call of the task polls.
        remote_id: String,
        /// The submit's answer, JSON text.
        data: String,
        /// When to poll first, when the API said (`Retry-After`).
        poll_in: Option<Duration>,
    },
    /// The API asked to slow down (HTTP 429 or 503): call again after `retry_after` (default:
    /// the backoff, growing with the task's throttled answers). Not a failed attempt.
    Throttled {
        /// What the API answered, kept as the task's last error.
        message: String,
        /// When the API asked to be called again.
        retry_after: Option<Duration>,
    },
    /// The call failed.
    Failed(Failure),
}

/// A failed call, typed by what should follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// What went wrong; kept in the task's record.
    pub message: String,
    /// A failure that retrying cannot fix (the task dies without using its other attempts).
    pub permanent: bool,
    /// When the other side asked to be called again (`Retry-After`); otherwise the backoff.
    pub retry_after: Option<Duration>,
}

impl Failure {
    /// A failure worth retrying after a backoff.
    pub fn retryable(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            permanent: false,
            retry_after: None,
        }
    }

    /// A failure no retry can fix.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            permanent: true,
            retry_after: None,
        }
    }
}

/// The work done for one task. The consumer's third-party poller is one; a benchmark's no-op is
/// another.
pub trait Handler: Send + Sync + 'static {
    /// Makes one call for `task` and says how it went. A panic is caught and counts as a
    /// retryable failure.
    fn handle(&self, task: &ClaimedTask) -> impl Future<Output = Outcome> + Send;
}
