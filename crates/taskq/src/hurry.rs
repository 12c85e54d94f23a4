//! Hurrying: `hurry.lua` makes a waiting task due at once, because a provider's webhook said its
//! job moved, and keeps the webhook's body for the task's next call. The call that follows
//! reads the provider's own answer (a poll), unless the queue's profile says to read webhooks
//! (a push-only provider has nothing to poll): webhooks are unsigned by most providers, so only
//! a profile that asks takes a body as an answer, and the hook URL itself is signed. A hook is
//! for one run of a task, the one its submit token names: once that run has ended, been purged
//! or retried, or before a new run of the name has been submitted, the hook changes nothing. At
//! `maxmemory` the body is dropped and the task only hurried (see `crate::scripts`).

use tracing::instrument;

use crate::error::{Error, Full, Result};
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
    /// submit token is `submit_token` (see [`crate::ClaimedTask::submit_token`]), keeping the
    /// webhook's `body` (JSON text) for its next call ([`crate::ClaimedTask::hook`]). Safe to
    /// repeat. At `maxmemory` the body is not kept.
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis fails.
    #[instrument(level = "debug", skip(self, submit_token, body), fields(task = %name))]
    pub async fn hurry(
        &self,
        name: &TaskName,
        submit_token: &str,
        body: Option<&str>,
    ) -> Result<Hurry> {
        let code = match self.hurrying(name, submit_token, body, false).await {
            Err(Error::Full(Full::MaxMemory)) => {
                self.hurrying(name, submit_token, None, true).await?
            }
            code => code?,
        };
        match code {
            0 => Ok(Hurry::NotFound),
            1 => Ok(Hurry::Hurried),
            2 => Ok(Hurry::Finished),
            3 => Ok(Hurry::Replaced),
            other => Err(Error::UnexpectedReply(format!("hurry code {other}"))),
        }
    }

    /// One run of `hurry.lua`, in its `draining` form or not.
    async fn hurrying(
        &self,
        name: &TaskName,
        submit_token: &str,
        body: Option<&str>,
        draining: bool,
    ) -> Result<i64> {
        let keys = self.keys();
        let script = if draining {
            &scripts::HURRY_DRAINING
        } else {
            &scripts::HURRY
        };
        script
            .on(self.redis())
            .key(keys.task(name))
            .key(&keys.due)
            .key(&keys.stats)
            .key(&keys.wake)
            .arg(keys.task_prefix())
            .arg(submit_token)
            .arg(body.unwrap_or(""))
            .run(self.redis())
            .await
    }
}
