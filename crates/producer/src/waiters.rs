//! Requests waiting on tasks: long-polls (`?wait=`) and event streams, woken by the queues'
//! events rather than by reading Redis in a loop.
//!
//! One subscription serves every waiter of the process (see [`taskq::events`]): each events
//! message names the tasks that changed and their new states, and wakes the waiters of those
//! tasks. A long-poll cares only for a final state, so it sleeps through the rest; an event
//! stream wakes at every change. A woken waiter reads its task once, so it answers with the record
//! as Redis holds it, never with what a message said.
//!
//! Pub/sub may drop a message while the subscription is down. So when it is live again (and when
//! it is first made) every waiter is woken once and reads its task anew: none hangs past a change
//! it missed. A waiter also re-reads at its own deadline. At shutdown every waiter is woken and
//! answers at once, so that a graceful shutdown does not wait out the longest long-poll.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use service_kit::prometheus::{Exposition, Kind};
use taskq::events::{self, Signal};
use taskq::{Queue, TaskName};
use tokio::sync::Notify;

/// What wakes a waiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interest {
    /// Only a final state (done, dead, cancelled): a long-poll.
    Final,
    /// Every change: an event stream.
    Every,
}

/// The requests waiting on tasks of the queues served.
#[derive(Default)]
pub struct Waiters {
    /// By queue name, then task name.
    waiting: Mutex<HashMap<(String, String), Vec<Waiter>>>,
    next_id: AtomicU64,
    /// Set at shutdown: every waiter answers at once.
    closed: AtomicBool,
    /// Waiters now, for `/metrics`.
    count: AtomicU64,
}

struct Waiter {
    id: u64,
    interest: Interest,
    wake: Arc<Notify>,
}

/// One waiter's registration; it leaves the registry when dropped.
pub struct Watch {
    waiters: Arc<Waiters>,
    key: (String, String),
    id: u64,
    wake: Arc<Notify>,
}

impl Watch {
    /// Resolves when the task may have changed as this watch cares (or the subscription came
    /// back, or the producer is stopping). A wake that came before this call is kept, so none is
    /// missed between a read and the wait that follows it.
    pub async fn changed(&self) {
        self.wake.notified().await;
    }

    /// Whether the producer is stopping: waiters answer now.
    pub fn closing(&self) -> bool {
        self.waiters.closed.load(Ordering::Acquire)
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let mut waiting = self.waiters.lock();
        if let Some(list) = waiting.get_mut(&self.key) {
            list.retain(|waiter| waiter.id != self.id);
            if list.is_empty() {
                waiting.remove(&self.key);
            }
        }
        self.waiters.count.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Waiters {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Vec<Waiter>>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a waiter on the task `name` of `queue`. Register before reading the task, so
    /// that a change between the read and the wait still wakes it.
    pub fn watch(self: &Arc<Self>, queue: &str, name: &TaskName, interest: Interest) -> Watch {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let wake = Arc::new(Notify::new());
        let key = (queue.to_owned(), name.as_str().to_owned());
        self.lock().entry(key.clone()).or_default().push(Waiter {
            id,
            interest,
            wake: Arc::clone(&wake),
        });
        self.count.fetch_add(1, Ordering::Relaxed);
        if self.closed.load(Ordering::Acquire) {
            wake.notify_one();
        }
        Watch {
            waiters: Arc::clone(self),
            key,
            id,
            wake,
        }
    }

    /// Requests waiting now.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Writes the waiters' gauge to `/metrics`.
    pub fn write_metrics(&self, page: &mut Exposition) {
        page.family(
            "taskq_waiting_requests",
            Kind::Gauge,
            "Requests waiting on a task now: long-polls (?wait=) and event streams.",
        )
        .sample("taskq_waiting_requests", &[], self.count());
    }

    /// Wakes every waiter, now and from now on: the producer is stopping.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.wake_all();
    }

    fn wake_all(&self) {
        for waiter in self.lock().values().flatten() {
            waiter.wake.notify_one();
        }
    }

    /// Wakes the waiters of the tasks an events message of `queue` names.
    fn tell(&self, queue: &str, payload: &str) {
        let waiting = self.lock();
        if waiting.is_empty() {
            return;
        }
        let mut key = (queue.to_owned(), String::new());
        for change in events::changes(payload) {
            change.name.clone_into(&mut key.1);
            for waiter in waiting.get(&key).into_iter().flatten() {
                if waiter.interest == Interest::Every || change.state.is_final() {
                    waiter.wake.notify_one();
                }
            }
        }
    }

    /// Listens to the events of `queues` (all on one Redis) and wakes waiters, until aborted.
    pub async fn listen(self: Arc<Self>, queues: Vec<Queue>) {
        let Some(first) = queues.first() else { return };
        let channels = queues
            .iter()
            .map(|queue| queue.keys().events_channel().to_owned())
            .collect();
        let mut signals = events::subscribe(first.redis_connection(), channels);
        while let Some(signal) = signals.recv().await {
            match signal {
                Signal::Message { channel, payload } => {
                    if let Some(queue) = queues.get(channel) {
                        self.tell(queue.keys().queue(), &payload);
                    }
                }
                Signal::Live => self.wake_all(),
                Signal::Lost => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> TaskName {
        TaskName::parse(s).unwrap()
    }

    async fn woken(watch: &Watch) -> bool {
        tokio::time::timeout(std::time::Duration::from_millis(50), watch.changed())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn a_long_poll_wakes_on_a_final_state_and_a_stream_on_every_change() {
        let waiters = Arc::new(Waiters::default());
        let poll = waiters.watch("q", &name("a"), Interest::Final);
        let stream = waiters.watch("q", &name("a"), Interest::Every);
        let other = waiters.watch("q", &name("b"), Interest::Every);
        let elsewhere = waiters.watch("r", &name("a"), Interest::Every);

        waiters.tell("q", "running a\nprocessing c");
        assert!(!woken(&poll).await);
        assert!(woken(&stream).await);
        assert!(!woken(&other).await);
        assert!(!woken(&elsewhere).await);

        waiters.tell("q", "done a");
        assert!(woken(&poll).await);
        assert!(woken(&stream).await);
        assert_eq!(waiters.count(), 4);
    }

    #[tokio::test]
    async fn dropped_watches_leave_and_closing_wakes_everyone_even_later_ones() {
        let waiters = Arc::new(Waiters::default());
        let poll = waiters.watch("q", &name("a"), Interest::Final);
        drop(waiters.watch("q", &name("a"), Interest::Final));
        assert_eq!(waiters.count(), 1);
        assert_eq!(
            waiters.lock().get(&("q".into(), "a".into())).unwrap().len(),
            1
        );

        waiters.close();
        assert!(woken(&poll).await);
        assert!(poll.closing());
        let late = waiters.watch("q", &name("z"), Interest::Final);
        assert!(woken(&late).await);
        drop((poll, late));
        assert!(waiters.lock().is_empty());
    }
}
