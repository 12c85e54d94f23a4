//! One open connection as its timers and the cap see it: its phase (waiting, receiving, busy;
//! see the table of [`super`]), when its current timer started, and whether the cap asked it to make
//! room. The connection's own task notes what happens on it through [`Held`] and asks it what
//! is [`Due`]; the accept loop only reads it, to pick the connection to evict.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};

use futures_util::task::AtomicWaker;
use tokio::time::Instant;

use super::{Closed, Connections};

/// Where a connection is between its requests (see the module's table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum Phase {
    Waiting = 0,
    Receiving = 1,
    Busy = 2,
}

/// One open connection, as its timers and the cap see it. Only its own task changes it (the
/// accept loop only marks it evicted), so plain atomic loads and stores suffice.
#[derive(Debug)]
pub(super) struct Connection {
    phase: AtomicU8,
    /// Waiting: whether a byte of the next request has arrived.
    heard: AtomicBool,
    /// When its timer started, on the connections' clock (ms): the last answer's end (waiting,
    /// nothing heard), the next request's first byte (waiting, heard), the body's last byte
    /// (receiving).
    pub(super) since: AtomicU64,
    /// Whether it has been answered a request: a client that has proven itself, closed to make
    /// room only when no connection that never completed a request is left to close.
    pub(super) served: AtomicBool,
    /// Asked to close to make room at the cap.
    pub(super) evicted: AtomicBool,
    /// Wakes its task when it is evicted.
    waker: AtomicWaker,
}

impl Connection {
    /// A connection just accepted at `now_ms`: waiting for its first request.
    pub(super) fn new(now_ms: u64) -> Self {
        Self {
            phase: AtomicU8::new(Phase::Waiting as u8),
            heard: AtomicBool::new(true),
            since: AtomicU64::new(now_ms),
            served: AtomicBool::new(false),
            evicted: AtomicBool::new(false),
            waker: AtomicWaker::new(),
        }
    }

    pub(super) fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Relaxed) {
            0 => Phase::Waiting,
            1 => Phase::Receiving,
            _ => Phase::Busy,
        }
    }

    pub(super) fn evict(&self) {
        self.evicted.store(true, Ordering::Relaxed);
        self.waker.wake();
    }
}

/// A connection while it is open: what its task, its IO and its requests note on it.
#[derive(Debug)]
pub struct Held {
    pub(super) connections: Arc<Connections>,
    pub(super) connection: Arc<Connection>,
    pub(super) slot: usize,
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut slots = self.connections.slots();
        slots.slots[self.slot] = None;
        slots.free.push(self.slot);
        slots.count -= 1;
        drop(slots);
        self.connections.room.notify_one();
    }
}

/// What the service should do with a connection now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Due {
    /// Nothing until it changes (a request in progress).
    Nothing,
    /// Check again at this instant.
    At(Instant),
    /// Close it.
    Close(Closed),
}

impl Held {
    /// Bytes arrived from the client.
    pub(crate) fn heard(&self) {
        let c = &self.connection;
        match c.phase() {
            Phase::Waiting if !c.heard.load(Ordering::Relaxed) => {
                c.heard.store(true, Ordering::Relaxed);
                c.since.store(self.connections.now_ms(), Ordering::Relaxed);
            }
            Phase::Receiving => c.since.store(self.connections.now_ms(), Ordering::Relaxed),
            _ => {}
        }
    }

    /// A request's head arrived; `whole` when it has no body to wait for.
    pub(crate) fn request_started(&self, whole: bool) {
        let c = &self.connection;
        if whole {
            c.phase.store(Phase::Busy as u8, Ordering::Relaxed);
        } else {
            c.since.store(self.connections.now_ms(), Ordering::Relaxed);
            c.phase.store(Phase::Receiving as u8, Ordering::Relaxed);
        }
    }

    /// The request's body has arrived (or will not be read).
    pub(crate) fn body_received(&self) {
        let c = &self.connection;
        let _ = c.phase.compare_exchange(
            Phase::Receiving as u8,
            Phase::Busy as u8,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    /// The request's answer has been sent (or dropped): waiting for the next one.
    pub(crate) fn request_ended(&self) {
        let c = &self.connection;
        c.served.store(true, Ordering::Relaxed);
        c.heard.store(false, Ordering::Relaxed);
        c.since.store(self.connections.now_ms(), Ordering::Relaxed);
        c.phase.store(Phase::Waiting as u8, Ordering::Relaxed);
    }

    /// Whether no request is in progress (an idle connection closes at once at shutdown).
    pub(crate) fn is_waiting(&self) -> bool {
        self.connection.phase() == Phase::Waiting
    }

    /// What is due now, noting `waker` as the one to wake on eviction. An eviction that finds
    /// the connection busy is dropped, and the accept loop looks again.
    pub(crate) fn due(&self, waker: &std::task::Waker) -> Due {
        let (c, connections) = (&self.connection, &self.connections);
        c.waker.register(waker);
        let phase = c.phase();
        if c.evicted.load(Ordering::Relaxed) {
            if phase != Phase::Busy {
                return Due::Close(Closed::Evicted);
            }
            c.evicted.store(false, Ordering::Relaxed);
            connections.room.notify_one();
        }
        let limits = &connections.limits;
        let (timeout, why) = match phase {
            Phase::Busy => return Due::Nothing,
            Phase::Waiting if !c.heard.load(Ordering::Relaxed) => {
                (limits.keep_alive_timeout, Closed::KeepAliveTimeout)
            }
            Phase::Waiting | Phase::Receiving => {
                (limits.header_read_timeout, Closed::HeaderTimeout)
            }
        };
        let since = c.since.load(Ordering::Relaxed);
        let deadline = since.saturating_add(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX));
        if connections.now_ms() >= deadline {
            Due::Close(why)
        } else {
            Due::At(connections.instant(deadline))
        }
    }

    /// Counts the connection as closed by the service for `why`.
    pub(crate) fn count_closed(&self, why: Closed) {
        self.connections.closed[why as usize].fetch_add(1, Ordering::Relaxed);
    }
}
