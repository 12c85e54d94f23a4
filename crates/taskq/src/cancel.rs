//! Cancelling: `cancel.lua` takes a task out of the due, leased and dead sets and revokes its
//! claim token, so a worker still calling the API for it has its answer refused as stale. The
//! record stays, state [`State::Cancelled`](crate::State::Cancelled), for the queue's dead ttl,
//! and while it stays its name dedups like a dead task's. Cancelled tasks have their own sorted
//! set so that they can be listed and purged.

use tracing::instrument;

use crate::error::{Error, Result};
use crate::name::TaskName;
use crate::policy::SWEEP_LIMIT;
use crate::queue::Queue;
use crate::scripts::{self, RunScript, millis};
use crate::task::TaskView;

/// What a cancel did.
#[derive(Debug, Clone)]
pub enum Cancel {
    /// The task is cancelled now; its view as it now is.
    Cancelled(TaskView),
    /// It was cancelled before; nothing changed.
    AlreadyCancelled(TaskView),
    /// It is done: a finished task cannot be cancelled; nothing changed.
    Done(TaskView),
    /// No task of that name.
    NotFound,
}

impl Queue {
    /// Cancels the task `name` unless it is done: it leaves every set, its claim token is revoked
    /// (a worker running it has its answer refused as stale), and its record is kept, state
    /// cancelled, for the queue's dead ttl. Safe to repeat.
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis fails.
    #[instrument(level = "debug", skip(self), fields(task = %name))]
    pub async fn cancel(&self, name: &TaskName) -> Result<Cancel> {
        let keys = self.keys();
        let (code, fields): (i64, Vec<(String, String)>) = scripts::CANCEL
            .on(self.redis())
            .key(keys.task(name))
            .key(&keys.due)
            .key(&keys.leased)
            .key(&keys.dead)
            .key(&keys.cancelled)
            .key(&keys.stats)
            .key(&keys.events)
            .key(keys.callback_of(name.as_str()))
            .key(&keys.callback_due)
            .key(&keys.callback_wake)
            .arg(keys.task_prefix())
            .arg(millis(self.dead_ttl()))
            .arg(SWEEP_LIMIT)
            .run(self.redis())
            .await?;
        let view = || TaskView::from_fields(name.as_str(), fields);
        Ok(match code {
            0 => Cancel::NotFound,
            1 => Cancel::Cancelled(view()?),
            2 => Cancel::AlreadyCancelled(view()?),
            3 => Cancel::Done(view()?),
            other => return Err(Error::UnexpectedReply(format!("cancel code {other}"))),
        })
    }
}
