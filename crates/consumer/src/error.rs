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
    Queue(#[from] taskq::Error),
    /// The per-queue settings file could not be used.
    #[error(transparent)]
    QueuesFile(#[from] config::QueuesFileError),
    /// The shared limits could not be set up.
    #[error(transparent)]
    Limits(#[from] limits::LimitsError),
    /// The HTTP client could not be built.
    #[error("queue {queue}: {source}")]
    Client {
        /// The queue whose client it was.
        queue: String,
        /// Why.
        source: client::ClientError,
    },
    /// A profile gives providers hook URLs (`{{webhook_url}}`) and the settings to write them
    /// are missing or wrong.
    #[error("queue {queue}: {source}")]
    Hooks {
        /// The queue whose profile it is.
        queue: String,
        /// Why.
        source: webhooks::HookSettingsError,
    },
    /// The connection cap of `/metrics` does not fit the open-file limit.
    #[error(transparent)]
    Connections(#[from] service_kit::connections::LimitsError),
    /// The callback deliverer could not be built.
    #[error("callbacks: {0}")]
    Callbacks(#[from] webhooks::BuildError),
    /// The cron tick could not be scheduled.
    #[error("scheduling the tick {schedule:?}: {source}")]
    Tick {
        /// The schedule given.
        schedule: String,
        /// What the scheduler said.
        source: tokio_cron_scheduler::JobSchedulerError,
    },
}
