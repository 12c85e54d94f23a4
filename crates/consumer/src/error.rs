//! Why the consumer could not start: each setting or resource it builds before it serves, named
//! with the queue it belongs to. Once running, the consumer survives Redis and API failures, so
//! nothing after the start is an error of this kind.

use crate::{client, config, limits};

/// Why the consumer could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The queue could not be opened.
    #[error("opening the queue: {0}")]
    Queue(taskq::Error),
    /// The per-queue settings file could not be used.
    #[error(transparent)]
    QueuesFile(#[from] config::QueuesFileError),
    /// The shared limits could not be set up.
    #[error(transparent)]
    Limits(#[from] limits::LimitsError),
    /// The HTTP client could not be built.
    #[error("queue {queue}: {reason}")]
    Client {
        /// The queue whose client it was.
        queue: String,
        /// Why (in the message, not a source: each cause is printed once).
        reason: client::ClientError,
    },
    /// A profile gives providers hook URLs (`{{webhook_url}}`) and the settings to write them
    /// are missing or wrong.
    #[error("queue {queue}: {reason}")]
    Hooks {
        /// The queue whose profile it is.
        queue: String,
        /// Why (in the message, not a source: each cause is printed once).
        reason: webhooks::HookSettingsError,
    },
    /// The connection cap of `/metrics` does not fit the open-file limit.
    #[error(transparent)]
    Connections(#[from] service_kit::connections::LimitsError),
    /// The callback deliverer could not be built.
    #[error("callbacks: {0}")]
    Callbacks(webhooks::BuildError),
    /// The cron tick could not be scheduled.
    #[error("scheduling the tick {schedule:?}: {reason}")]
    Tick {
        /// The schedule given.
        schedule: String,
        /// What the scheduler said.
        reason: tokio_cron_scheduler::JobSchedulerError,
    },
}

// By hand rather than `#[from]`, which would also make each error its variant's source: the
// message already holds it, and a cause printed as both would show twice.
impl From<taskq::Error> for StartError {
    fn from(error: taskq::Error) -> Self {
        Self::Queue(error)
    }
}

impl From<webhooks::BuildError> for StartError {
    fn from(error: webhooks::BuildError) -> Self {
        Self::Callbacks(error)
    }
}
