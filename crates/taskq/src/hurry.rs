//! Hurrying: `hurry.lua` makes a waiting task due at once, because a provider's webhook said its
//! job moved. The poll that follows fetches the provider's own answer: a webhook's body is never
//! taken as the result (it is unsigned by most providers, and the poll is authoritative), so a
//! forged or repeated webhook costs one early poll at most. A hook is for one run of a task, the
//! one its submit token names: once that run has ended, been purged or retried, or before a new
//! run of the name has been submitted, the hook changes nothing.

use tracing::instrument;

use crate::error::{Error, Result};
use crate::name::TaskName;
use crate::queue::Queue;
use crate::scripts::{self, RunScript};

/// What a hurry did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hurry {
    /// The task is due now (or, its call being on its way, due again as soon as it ends).
    Hurried,
    /// The task is done, dead or cancelled: nothing changed.
    Finished,
    /// No task of that name.
    NotFound,
    /// The task is another run of the name than the one the hook was written for (that one
    /// was purged or retried, or this one is not yet submitted): nothing changed.
    Replaced,
}

impl Queue {
    /// Makes the task `name` due at once, and wakes idle consumers, when it is the run whose
    /// submit token is `submit_token` (see [`crate::ClaimedTask::submit_token`]). Safe to
    /// repeat.
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis fails.
    #[instrument(level = "debug", skip(self, submit_token), fields(task = %name))]
    pub async fn hurry(&self, name: &TaskName, submit_token: &str) -> Result<Hurry> {
        let keys = self.keys();
        let code: i64 = scripts::HURRY
            .on(self.redis())
            .key(keys.task(name))
            .key(&keys.due)
            .key(&keys.stats)
            .key(&keys.wake)
            .arg(keys.task_prefix())
            .arg(submit_token)
            .run(self.redis())
            .await?;
        match code {
            0 => Ok(Hurry::NotFound),
            1 => Ok(Hurry::Hurried),
            2 => Ok(Hurry::Finished),
            3 => Ok(Hurry::Replaced),
            other => Err(Error::UnexpectedReply(format!("hurry code {other}"))),
        }
    }
}
