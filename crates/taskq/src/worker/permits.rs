//! A worker under a shared limit ([`crate::limit`]): it asks for permits before it claims, so it
//! never claims a task it may not call; gives back those it could not use; and turns an API's
//! request to wait (429 or 503 with `Retry-After`) into a pause of the limit for every consumer.

use tracing::warn;

use super::Shared;
use super::handler::{Handler, Outcome};
use crate::claim::Claim;
use crate::limit::Permit;

impl<H: Handler> Shared<H> {
    /// Claims up to `want` due tasks; under a limit, only as many as it was granted permits for,
    /// waiting for the first one. Answers the claim and each task's permit (none without a
    /// limit), in the claim's order.
    pub(super) async fn claim_with_permits(
        &self,
        want: usize,
    ) -> crate::Result<(Claim, Vec<Option<Permit>>)> {
        let Some(limiter) = &self.config.limiter else {
            return Ok((self.queue.claim(want).await?, Vec::new()));
        };
        let mut permits = limiter.wait_for_permits(want).await?;
        let claimed = self.queue.claim(permits.len()).await;
        let used = claimed.as_ref().map_or(0, |claim| claim.tasks.len());
        // Given back in the background: nothing may stand between a claim and the tasks' entry
        // among the held leases, or a shutdown there would strand them.
        limiter.give_back_unused(permits.split_off(used.min(permits.len())));
        Ok((claimed?, permits.into_iter().map(Some).collect()))
    }

    /// Pauses the limit when `outcome` is the API asking everyone to wait.
    pub(super) async fn pause_if_asked(&self, outcome: &Outcome) {
        let (
            Some(limiter),
            Outcome::Throttled {
                retry_after: Some(wait),
                ..
            },
        ) = (&self.config.limiter, outcome)
        else {
            return;
        };
        if let Err(err) = limiter.pause(*wait).await {
            warn!(error = %err, limit_key = limiter.limit_key(), "pausing the limit failed");
        }
    }
}
