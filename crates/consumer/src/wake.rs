//! Waking idle workers the moment work is due: the wake channels of the queues served, on one
//! subscription (see [`taskq::events`]). A new task due now, or a provider's webhook that hurried
//! a task, is claimed within a round trip instead of at the worker's next tick or idle poll; the
//! tick stays the fallback for a wake lost while the subscription was down, and the subscription
//! coming back live wakes every worker once.

use taskq::events::{self, Signal};
use taskq::{Queue, WakeHandle};

/// Wakes the worker of each of `queues` (all on one Redis) whenever its wake channel speaks, until
/// the returned task is aborted.
pub fn spawn(queues: Vec<(Queue, WakeHandle)>) -> Option<tokio::task::JoinHandle<()>> {
    let first = queues.first()?.0.clone();
    let channels = queues
        .iter()
        .map(|(queue, _)| queue.keys().wake_channel().to_owned())
        .collect();
    let mut signals = events::subscribe(first.redis_connection(), channels);
    Some(tokio::spawn(async move {
        while let Some(signal) = signals.recv().await {
            match signal {
                Signal::Message { channel, .. } => {
                    if let Some((_, wake)) = queues.get(channel) {
                        wake.wake();
                    }
                }
                Signal::Live => queues.iter().for_each(|(_, wake)| wake.wake()),
                Signal::Lost => {}
            }
        }
    }))
}
