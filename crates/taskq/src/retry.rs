//! Bringing dead tasks back: `retry.lua` for one task, `retry_all.lua` for the dead set, a batch
//! per call. Each re-checks the records it is given, so a task that moved meanwhile is left
//! alone; a retried task is due at once with a fresh attempt budget (and a new submit token).

use tracing::instrument;

use crate::error::Result;
use crate::list::{BATCH, Cursor};
use crate::name::TaskName;
use crate::queue::Queue;
use crate::scripts::{self, RunScript};
use crate::task::State;

impl Queue {
    /// Brings a dead task back: due at once with a fresh attempt budget. Answers false when the
    /// task is not dead.
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis fails.
    pub async fn retry_dead(&self, name: &TaskName) -> Result<bool> {
        let code: i64 = scripts::RETRY
            .on(self.redis())
            .key(self.keys().task(name))
            .key(&self.keys().dead)
            .key(&self.keys().due)
            .key(&self.keys().stats)
            .key(&self.keys().events)
            .arg(self.keys().task_prefix())
            .run(self.redis())
            .await?;
        Ok(code == 1)
    }

    /// Brings every dead task back, due at once with a fresh attempt budget, in batches; answers
    /// how many came back. Tasks that die again meanwhile wait for the next call.
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis fails; the batches before it stay applied.
    #[instrument(level = "debug", skip(self))]
    pub async fn retry_all_dead(&self) -> Result<u64> {
        let keys = self.keys();
        let mut left = self.index_len(&keys.dead).await?;
        let mut revived = 0;
        while left > 0 {
            let batch = self.batch(State::Dead, &Cursor::Start, BATCH).await?;
            if batch.names.is_empty() {
                break;
            }
            left = left.saturating_sub(batch.names.len() as u64);
            let mut invocation = scripts::RETRY_ALL.on(self.redis()).key(&keys.dead);
            invocation
                .key(&keys.due)
                .key(&keys.stats)
                .key(&keys.events)
                .arg(keys.task_prefix());
            for name in &batch.names {
                invocation.key(keys.task_raw(name));
            }
            revived += invocation.run::<u64>(self.redis()).await?;
        }
        Ok(revived)
    }
}
