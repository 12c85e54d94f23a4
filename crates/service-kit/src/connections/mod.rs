//! The connections an HTTP service holds open, bounded so that no client, however hostile, can
//! take them all: how long a client may take to send a request, how long a kept-alive
//! connection may wait for its next one, and how many may be open at once.
//!
//! Each connection is in one of three phases, and only the first two can be closed by the
//! service:
//!
//! | phase | closed when |
//! |---|---|
//! | waiting: no request in progress | no byte for `KEEP_ALIVE_TIMEOUT_MS` since its last answer; a head not whole `HEADER_READ_TIMEOUT_MS` after its first byte (after the accept, for a new connection); or to make room at the cap |
//! | receiving: a request whose body is still arriving | no byte for `HEADER_READ_TIMEOUT_MS`; or to make room at the cap |
//! | busy: a whole request in progress (a long-poll, an event stream) | never by the service: the request ends by its own rules |
//!
//! **At the cap** (`MAX_CONNECTIONS`) a new connection is still accepted: the open connection
//! that has waited longest without sending anything closes to make room for it, one that never
//! completed a request before any that was answered one. So a flood of idle or dripping
//! connections only ever evicts itself, while every client that sends its request at once gets
//! in, and a kept-alive client between two requests keeps its connection while the flood lasts
//! (a flood's connections, evicted as fast as they come, are always younger than it). Refusing new connections would instead hand the service to whoever
//! opened the cap's worth first, and merely waiting would queue clients behind the flood for a
//! whole timeout. Only when every open connection has a request in progress do new ones wait
//! (in the kernel's listen queue, as TCP backpressure) until one ends.
//!
//! The cap's default fits the process' open-file limit, raised at start to its hard limit
//! ([`crate::open_files`]), less [`RESERVED_FILES`] for everything else (Redis, files, the
//! listener).
//!
//! Here: the open connections together, the cap and what was closed ([`Connections`]); in
//! `held`, one connection's phase and timers; in `limits`, the settings.

mod held;
mod limits;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

pub(crate) use held::Due;
pub use held::Held;
use held::{Connection, Phase};
pub use limits::{ConnectionArgs, Limits, LimitsError, RESERVED_FILES};

use crate::prometheus::{Exposition, Kind};

/// How often a cap full of requests in progress is looked at again for a connection that has
/// finished its request (a close is noticed at once).
const FULL_RECHECK: Duration = Duration::from_millis(100);

/// How long a connection must have waited before it may be closed to make room: a client
/// sends its request as soon as it connects, but its connection's task may not have read it
/// yet, and a kept-alive client's next request may be on its way.
const GRACE_MS: u64 = 100;

/// How many open connections are compared to pick the one to close at the cap: the oldest
/// among a few drawn at random, rather than a scan of every connection for every accept.
const SAMPLE: usize = 8;

/// Why a connection was closed by the service rather than by its client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// A request's head took too long, or its body paused too long.
    HeaderTimeout,
    /// No next request within the keep-alive timeout.
    KeepAliveTimeout,
    /// Closed to make room for a new connection at the cap.
    Evicted,
}

impl Closed {
    const ALL: [Self; 3] = [Self::HeaderTimeout, Self::KeepAliveTimeout, Self::Evicted];

    fn label(self) -> &'static str {
        match self {
            Self::HeaderTimeout => "header_timeout",
            Self::KeepAliveTimeout => "keep_alive_timeout",
            Self::Evicted => "evicted",
        }
    }
}

/// The open connections of one service, and what became of them.
#[derive(Debug)]
pub struct Connections {
    limits: Limits,
    /// The clock connections note their phases on (ms since this instant).
    epoch: Instant,
    open: Mutex<Slots>,
    /// Told when a connection closes: the accept loop may be waiting for room.
    room: Notify,
    /// Connections closed by the service, by [`Closed`] (in that order).
    closed: [AtomicU64; 3],
    /// Times no connection at the cap could make room (every one had a request in progress or
    /// had only just arrived), so that accepting waited.
    full: AtomicU64,
}

/// The open connections, in slots reused as connections come and go.
#[derive(Debug, Default)]
struct Slots {
    slots: Vec<Option<Arc<Connection>>>,
    free: Vec<usize>,
    count: usize,
}

impl Connections {
    /// No connections yet, held to `limits`.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            epoch: Instant::now(),
            open: Mutex::default(),
            room: Notify::new(),
            closed: Default::default(),
            full: AtomicU64::new(0),
        }
    }

    /// The limits connections are held to.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.slots().count
    }

    /// Connections the service closed so far for `why`.
    pub fn closed(&self, why: Closed) -> u64 {
        self.closed[why as usize].load(Ordering::Relaxed)
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, Slots> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The time on the connections' clock.
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// `ms` on the connections' clock as an instant.
    fn instant(&self, ms: u64) -> Instant {
        self.epoch + Duration::from_millis(ms)
    }

    /// Returns once a new connection can be held: at once below the cap; at the cap, once the
    /// connection that waited longest for a request has closed to make room, or, when every
    /// connection has a request in progress (or has only just arrived), once one closes or
    /// finishes its request.
    pub async fn room(&self) {
        let mut counted_full = false;
        loop {
            let closed = self.room.notified();
            tokio::pin!(closed);
            closed.as_mut().enable();
            let victim = {
                let slots = self.slots();
                if slots.count < self.limits.max_connections {
                    return;
                }
                self.oldest_waiting(&slots)
            };
            match victim {
                Some(victim) => victim.evict(),
                None if !counted_full => {
                    counted_full = true;
                    self.full.fetch_add(1, Ordering::Relaxed);
                }
                None => {}
            }
            let _ = tokio::time::timeout(FULL_RECHECK, closed).await;
        }
    }

    /// The connection to close to make room: of those without a request in progress (and
    /// waiting at least [`GRACE_MS`]), one that never completed a request before one that was
    /// answered, the one waiting longest first. Picked among a few drawn at random, or among
    /// all of them when those hold none that never completed a request.
    fn oldest_waiting(&self, slots: &Slots) -> Option<Arc<Connection>> {
        let before = self.now_ms().checked_sub(GRACE_MS)?;
        let oldest = |candidates: &mut dyn Iterator<Item = &Arc<Connection>>| {
            candidates
                .filter(|c| c.phase() != Phase::Busy && !c.evicted.load(Ordering::Relaxed))
                .map(|c| {
                    let served = c.served.load(Ordering::Relaxed);
                    ((served, c.since.load(Ordering::Relaxed)), c)
                })
                .filter(|((_, since), _)| *since <= before)
                .min_by_key(|(key, _)| *key)
                .map(|(_, c)| Arc::clone(c))
        };
        let len = slots.slots.len();
        let mut sample =
            (0..SAMPLE.min(len)).filter_map(|_| slots.slots[fastrand::usize(..len)].as_ref());
        match oldest(&mut sample) {
            Some(never_served) if !never_served.served.load(Ordering::Relaxed) => {
                Some(never_served)
            }
            _ => oldest(&mut slots.slots.iter().flatten()),
        }
    }

    /// Registers a connection just accepted; it leaves when the handle drops.
    pub fn accepted(self: &Arc<Self>) -> Held {
        let connection = Arc::new(Connection::new(self.now_ms()));
        let mut slots = self.slots();
        let slot = match slots.free.pop() {
            Some(slot) => {
                slots.slots[slot] = Some(Arc::clone(&connection));
                slot
            }
            None => {
                slots.slots.push(Some(Arc::clone(&connection)));
                slots.slots.len() - 1
            }
        };
        slots.count += 1;
        Held {
            connections: Arc::clone(self),
            connection,
            slot,
        }
    }

    /// The connection series: open now, the cap, closed by the service (by reason), and times
    /// the cap was full of requests in progress.
    pub fn write_metrics(&self, page: &mut Exposition) {
        page.family(
            "taskq_http_connections",
            Kind::Gauge,
            "HTTP connections open now.",
        )
        .sample("taskq_http_connections", &[], self.open());
        page.family(
            "taskq_http_connections_max",
            Kind::Gauge,
            "The most HTTP connections held open at once (MAX_CONNECTIONS).",
        )
        .sample(
            "taskq_http_connections_max",
            &[],
            self.limits.max_connections,
        );
        let name = "taskq_http_connections_closed_total";
        page.family(
            name,
            Kind::Counter,
            "HTTP connections the service closed: a request too slow to arrive, a kept-alive \
             connection idle too long, or the connection waiting longest closed for a new one \
             at the cap.",
        );
        for why in Closed::ALL {
            page.sample(name, &[("reason", why.label())], self.closed(why));
        }
        page.family(
            "taskq_http_accept_full_total",
            Kind::Counter,
            "Times no connection at the cap could make room (each had a request in progress or \
             had just arrived), so new connections waited in the listen queue.",
        )
        .sample(
            "taskq_http_accept_full_total",
            &[],
            self.full.load(Ordering::Relaxed),
        );
    }
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt;

    use super::*;

    fn limits(max_connections: usize) -> Limits {
        Limits {
            header_read_timeout: Duration::from_millis(100),
            keep_alive_timeout: Duration::from_millis(300),
            max_connections,
        }
    }

    fn due(held: &Held) -> Due {
        held.due(std::task::Waker::noop())
    }

    #[tokio::test(start_paused = true)]
    async fn each_phase_has_its_own_clock_and_a_request_in_progress_has_none() {
        let connections = Arc::new(Connections::new(limits(10)));
        let held = connections.accepted();
        let start = connections.epoch;
        assert_eq!(
            due(&held),
            Due::At(start + Duration::from_millis(100)),
            "a new connection must send its head"
        );

        held.request_started(false);
        tokio::time::advance(Duration::from_millis(80)).await;
        held.heard();
        assert_eq!(
            due(&held),
            Due::At(start + Duration::from_millis(180)),
            "a body's pause counts from its last byte"
        );
        held.body_received();
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert_eq!(
            due(&held),
            Due::Nothing,
            "a long-poll is a request in progress"
        );

        held.request_ended();
        let ended = connections.now_ms();
        assert_eq!(
            due(&held),
            Due::At(connections.instant(ended + 300)),
            "kept alive"
        );
        tokio::time::advance(Duration::from_millis(50)).await;
        held.heard();
        assert_eq!(
            due(&held),
            Due::At(connections.instant(ended + 150)),
            "the next head's clock starts at its first byte"
        );
        held.heard();
        assert_eq!(
            due(&held),
            Due::At(connections.instant(ended + 150)),
            "and dripping does not restart it"
        );
        tokio::time::advance(Duration::from_millis(100)).await;
        assert_eq!(due(&held), Due::Close(Closed::HeaderTimeout));
    }

    #[tokio::test(start_paused = true)]
    async fn at_the_cap_the_connection_waiting_longest_makes_room_and_busy_ones_never_do() {
        let connections = Arc::new(Connections::new(limits(2)));
        let oldest = connections.accepted();
        let busy = connections.accepted();
        busy.request_started(true);

        let mut room = std::pin::pin!(connections.room());
        assert!(room.as_mut().now_or_never().is_none());
        assert_ne!(
            due(&oldest),
            Due::Close(Closed::Evicted),
            "it has only just arrived"
        );
        tokio::time::advance(FULL_RECHECK).await;
        assert!(room.as_mut().now_or_never().is_none());
        assert_eq!(due(&oldest), Due::Close(Closed::Evicted));
        assert_ne!(due(&busy), Due::Close(Closed::Evicted));
        drop(oldest);
        room.await;

        let newest = connections.accepted();
        newest.request_started(true);
        let mut room = std::pin::pin!(connections.room());
        assert!(
            room.as_mut().now_or_never().is_none(),
            "every connection is busy: wait"
        );
        assert_eq!(connections.full.load(Ordering::Relaxed), 2);
        newest.request_ended();
        tokio::time::advance(FULL_RECHECK).await;
        assert!(room.as_mut().now_or_never().is_none());
        assert_eq!(
            due(&newest),
            Due::Close(Closed::Evicted),
            "once its request ended"
        );
        drop(newest);
        room.await;
        assert_eq!(connections.open(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn at_the_cap_a_connection_that_never_completed_a_request_goes_before_an_answered_one() {
        let connections = Arc::new(Connections::new(limits(2)));
        let answered = connections.accepted();
        answered.request_started(true);
        answered.request_ended();
        tokio::time::advance(Duration::from_millis(500)).await;
        let silent = connections.accepted();
        tokio::time::advance(FULL_RECHECK * 2).await;

        let mut room = std::pin::pin!(connections.room());
        assert!(room.as_mut().now_or_never().is_none());
        assert_eq!(
            due(&silent),
            Due::Close(Closed::Evicted),
            "never completed a request, though younger"
        );
        assert_ne!(due(&answered), Due::Close(Closed::Evicted));
        drop(silent);
        room.await;

        let busy = connections.accepted();
        busy.request_started(true);
        let mut room = std::pin::pin!(connections.room());
        assert!(room.as_mut().now_or_never().is_none());
        assert_eq!(
            due(&answered),
            Due::Close(Closed::Evicted),
            "once no other is left"
        );
    }
}
