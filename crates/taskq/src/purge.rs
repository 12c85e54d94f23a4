//! Purging: `purge.lua` deletes finished records (done, dead or cancelled), a batch per call,
//! re-checking each record's state, so that their names may be enqueued anew.

use tracing::instrument;

use crate::error::Result;
use crate::list::{BATCH, Cursor};
use crate::queue::Queue;
use crate::scripts::{self, RunScript};
use crate::task::State;

/// The finished states whose records can be purged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum FinalState {
    /// Done tasks: their results go before their ttl ends.
    Done,
    /// Dead tasks.
    Dead,
    /// Cancelled tasks.
    Cancelled,
}

impl FinalState {
    fn state(self) -> State {
        match self {
            Self::Done => State::Done,
            Self::Dead => State::Dead,
            Self::Cancelled => State::Cancelled,
        }
    }
}

impl Queue {
    /// Deletes the records of every task in `state`, in batches; their names may then be
    /// enqueued anew. Answers how many were deleted.
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis fails; the batches before it stay applied.
    #[instrument(level = "debug", skip(self))]
    pub async fn purge(&self, state: FinalState) -> Result<u64> {
        let keys = self.keys();
        let index = match state {
            FinalState::Done => &keys.stats,
            FinalState::Dead => &keys.dead,
            FinalState::Cancelled => &keys.cancelled,
        };
        // An index shrinks by each batch, so it is read from its start every time; a scan moves on.
        let mut left = match state {
            FinalState::Done => u64::MAX,
            _ => self.index_len(index).await?,
        };
        let mut cursor = Cursor::Start;
        let mut deleted = 0;
        while left > 0 {
            let batch = self.batch(state.state(), &cursor, BATCH).await?;
            left = left.saturating_sub(batch.names.len() as u64);
            let mut invocation = scripts::PURGE.on(self.redis()).key(&keys.stats);
            invocation
                .key(index)
                .arg(state.state().as_str())
                .arg(keys.task_prefix());
            for name in &batch.names {
                invocation.key(keys.task_raw(name));
            }
            deleted += invocation.run::<u64>(self.redis()).await?;
            match (state, batch.next) {
                (FinalState::Done, Some(next)) => cursor = next,
                (FinalState::Done, None) => break,
                _ if batch.names.is_empty() => break,
                _ => {}
            }
        }
        Ok(deleted)
    }
}
