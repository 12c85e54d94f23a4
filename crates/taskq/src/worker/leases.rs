//! The leases a worker holds: renewed each third of the lease period, handed back at shutdown.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard, PoisonError};

use tokio::task::JoinSet;
use tokio::time::sleep;
use tracing::{error, info, warn};

use super::handler::Handler;
use super::{Shared, WorkerStats};
use crate::task::ClaimedTask;

impl<H: Handler> Shared<H> {
    /// Renews every held lease each third of the lease period, in one call per 500 tasks.
    pub(super) async fn renew_leases(self: Arc<Self>) {
        let every = self.queue.worker_policy().lease / 3;
        loop {
            sleep(every).await;
            let held: Vec<ClaimedTask> = self.held_map().values().cloned().collect();
            for chunk in held.chunks(500) {
                match self.queue.extend(chunk).await {
                    Ok(lost) => {
                        for position in lost {
                            let task = &chunk[position];
                            warn!(task = %task.name, attempt = task.attempts + 1, "lease lost; another worker may run the task");
                            self.held_map().remove(&task.token);
                        }
                    }
                    Err(err) => {
                        WorkerStats::bump(&self.stats.redis_errors);
                        warn!(error = %err, "renewing leases failed");
                    }
                }
            }
        }
    }

    /// Hands back every task still held (shutdown): due at once, no attempt counted.
    pub(super) async fn hand_back_held(&self) {
        let held: Vec<ClaimedTask> = self.held_map().drain().map(|(_, task)| task).collect();
        if held.is_empty() {
            return;
        }
        let mut releases = JoinSet::new();
        for task in held {
            let queue = self.queue.clone();
            releases.spawn(async move { (queue.release(&task).await, task) });
        }
        while let Some(Ok((result, task))) = releases.join_next().await {
            match result {
                Ok(_) => WorkerStats::bump(&self.stats.released),
                Err(err) => {
                    error!(task = %task.name, error = %err, "could not hand the task back; it returns when its lease ends")
                }
            }
        }
        info!(
            released = self.stats.released.load(Ordering::Relaxed),
            "handed back unfinished tasks"
        );
    }

    pub(super) fn held_map(&self) -> MutexGuard<'_, HashMap<String, ClaimedTask>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
