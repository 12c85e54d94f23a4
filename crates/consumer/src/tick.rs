//! The cron tick (tokio-cron-scheduler): wakes the claim loop and sweeps expired leases.
//!
//! The tick never paces the work: the claim loop claims on its own whenever slots are free and
//! tasks are due. The tick covers what the loop cannot see coming (tasks enqueued by the
//! producer while the loop sleeps) and runs the reaper. The scheduler starts every run without
//! waiting for the last one, so a flag keeps two sweeps from overlapping.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use taskq::{Queue, WakeHandle};
use tokio_cron_scheduler::{Job, JobScheduler, JobSchedulerError};

/// Starts a scheduler that runs one tick per `schedule` (6-field cron with seconds) for every
/// queue served: wake its worker, sweep its expired leases.
///
/// # Errors
/// When the schedule does not parse or the scheduler cannot start.
pub async fn start(
    schedule: &str,
    queues: Vec<(Queue, WakeHandle)>,
) -> Result<JobScheduler, JobSchedulerError> {
    let queues = Arc::new(queues);
    let sweeping = Arc::new(AtomicBool::new(false));
    let job = Job::new_async(schedule, move |_, _| {
        for (_, wake) in queues.iter() {
            wake.wake();
        }
        let queues = Arc::clone(&queues);
        let sweeping = Arc::clone(&sweeping);
        Box::pin(async move {
            if sweeping.swap(true, Ordering::AcqRel) {
                return;
            }
            for (queue, _) in queues.iter() {
                match queue.sweep().await {
                    Ok(sweep) if sweep.reaped > 0 || sweep.pruned > 0 => {
                        tracing::info!(
                            queue = queue.keys().queue(),
                            reaped = sweep.reaped,
                            pruned = sweep.pruned,
                            "swept"
                        );
                    }
                    Ok(_) => {}
                    Err(err) => {
                        tracing::warn!(queue = queue.keys().queue(), error = %err, "sweep failed")
                    }
                }
            }
            sweeping.store(false, Ordering::Release);
        })
    })?;
    let scheduler = JobScheduler::new().await?;
    scheduler.add(job).await?;
    scheduler.start().await?;
    Ok(scheduler)
}
