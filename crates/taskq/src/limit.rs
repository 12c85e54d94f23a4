//! Limits an API's provider sets, held in Redis so that every consumer process, and every queue
//! naming the same limit key, shares one: a rate (`lua/acquire.lua`: GCRA for the pace and the
//! burst, and a count over a sliding window so that no window ever holds more than the rate,
//! whatever the burst), a cap on calls in flight (permits leased like tasks, so a consumer that
//! dies holding some gives them back when their leases end), and a pause (`lua/pause.lua`) that
//! one consumer's 429 imposes on all.
//!
//! A worker asks for permits before it claims, for as many tasks as it may start, so no task is
//! claimed that cannot be called: [`Limiter::wait_for_permits`] makes one round trip per batch of
//! permits. The script grants them for one moment, now or up to [`RESERVE_AHEAD`] later (a
//! reservation: the batch the pace allows within that horizon, so that consumers sharing a limit
//! take turns instead of all asking at every interval), and the worker sleeps until then; when
//! nothing is within reach it sleeps exactly the wait the script names (the next permits of the
//! pace, the end of a pause). Waiting costs no spin and no polling faster than the limit's own
//! pace. Only a full cap on calls in flight has no exact end: the worker then waits for one of its
//! own calls to end, or [`IN_FLIGHT_RECHECK`], whichever comes first.
//!
//! A permit for a call in flight is given back when the call ends ([`Permit`] does it when
//! dropped), and permits granted for calls that will not be made are given back whole (rate and
//! place): both gather here and go back to Redis in one call per batch
//! ([`Limiter::give_back_pending`], run in the background by the worker), so a worker never
//! waits on a give-back between its claim and its calls.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::connect::RedisConnection;
use crate::error::{Error, Result};
use crate::keys::LimitKeys;
use crate::scripts::{self, RunScript, millis};

/// How often a worker asks again while every place in flight is taken by other processes' calls
/// (its own calls' ends wake it at once).
pub const IN_FLIGHT_RECHECK: Duration = Duration::from_millis(25);

/// The most permits one request asks for (the scripts pass them to a single command).
pub const MAX_PERMITS_PER_CALL: usize = 1000;

/// How far ahead a batch of permits may be reserved: at the limit's pace, one script call grants
/// what the pace allows in this long (10 permits at 500 calls/s), and the caller sleeps until
/// their moment.
pub const RESERVE_AHEAD: Duration = Duration::from_millis(20);

/// How much longer than a second the rate's window is. A permit reaches the provider a few
/// milliseconds after it is granted (a claim, a connection), and not always the same few: a
/// provider counting strictly over a sliding second would count that jitter as an excess. At full
/// pace this costs 2.4 % of the rate.
pub const WINDOW_GUARD: Duration = Duration::from_millis(25);

/// What a provider allows, as a profile states it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    /// Calls per second, on average and in any window.
    pub rate: Option<Rate>,
    /// Calls in flight at once, across the fleet.
    pub max_in_flight: Option<u32>,
}

/// Calls per second with a burst.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Calls per second on average (and in any window of a second, at most its ceiling).
    pub per_sec: f64,
    /// Calls back to back at most.
    pub burst: u32,
}

/// What this process did with one limit (the queue-wide truth lives in Redis).
#[derive(Debug, Default)]
pub struct LimiterStats {
    /// Permits granted (calls allowed).
    pub granted: AtomicU64,
    /// Of those, given back unused (fewer tasks were due than permits granted).
    pub returned: AtomicU64,
    /// Time spent waiting for permits (µs).
    pub waited_us: AtomicU64,
    /// Pauses this process started (a 429 or 503 with `Retry-After`).
    pub pauses: AtomicU64,
    /// Permits this process holds for calls in flight now.
    pub in_flight: AtomicU64,
}

/// The handle on one shared limit; one per limit key per process, shared by its queues' workers.
pub struct Limiter {
    conn: RedisConnection,
    keys: LimitKeys,
    limit: Limit,
    /// How long a permit for a call in flight lasts unless given back.
    lease: Duration,
    /// Makes permit ids unique across processes: `<owner>:<n>`.
    owner: String,
    next_id: AtomicU64,
    /// Permits waiting to be given back.
    pending: Mutex<Returns>,
    /// Wakes the background give-back when `pending` fills.
    pending_some: Notify,
    /// Wakes workers waiting for a place in flight once permits went back.
    room: Notify,
    stats: LimiterStats,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("limit_key", &self.keys.limit_key())
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

/// Permits to give back: the grant numbers of unused ones (their rate comes back) and the ids of
/// places in flight (calls ended, or never made).
#[derive(Debug, Default)]
struct Returns {
    unused: Vec<u64>,
    ids: Vec<String>,
}

/// The answer to a request for permits.
enum Grant {
    /// Some permits (at most as many as asked for), for a moment this long from now.
    Granted(Vec<Permit>, Duration),
    /// None now: ask again after this long.
    Wait(Duration, Why),
}

/// Why no permit was granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Why {
    Paused,
    InFlight,
    Pace,
}

/// The right to make one call. A permit for a call in flight goes back when dropped.
#[derive(Debug)]
pub struct Permit {
    limiter: Arc<Limiter>,
    /// The id leased in Redis (only with a cap on calls in flight).
    id: Option<String>,
    /// Its number in the rate's log (only with a rate), to take it out if it goes unused.
    grant: Option<u64>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            self.limiter.ended_call(id);
        }
    }
}

impl Limiter {
    /// A limiter for `limit_key` on `conn`; permits for calls in flight last `lease` unless given
    /// back.
    ///
    /// # Errors
    /// [`Error::InvalidLimitKey`] when the key cannot be used in a Redis key.
    pub fn new(
        conn: RedisConnection,
        limit_key: &str,
        limit: Limit,
        lease: Duration,
    ) -> Result<Arc<Self>> {
        Ok(Arc::new(Self {
            conn,
            keys: LimitKeys::new(limit_key)?,
            limit,
            lease,
            owner: format!("{:016x}", fastrand::u64(..)),
            next_id: AtomicU64::new(0),
            pending: Mutex::default(),
            pending_some: Notify::new(),
            room: Notify::new(),
            stats: LimiterStats::default(),
        }))
    }

    /// The limit's key.
    pub fn limit_key(&self) -> &str {
        self.keys.limit_key()
    }

    /// The limit.
    pub fn limit(&self) -> Limit {
        self.limit
    }

    /// How long a place in flight lasts unless given back.
    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// What this process did with the limit.
    pub fn stats(&self) -> &LimiterStats {
        &self.stats
    }

    /// `(per_sec, burst)` as the scripts take them; `(0, 0)` without a rate.
    fn rate_args(&self) -> (f64, u32) {
        self.limit
            .rate
            .map_or((0.0, 0), |rate| (rate.per_sec, rate.burst.max(1)))
    }

    /// Waits until at least one permit is granted, then answers up to `want` of them.
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis fails.
    pub async fn wait_for_permits(self: &Arc<Self>, want: usize) -> Result<Vec<Permit>> {
        if want == 0 {
            return Ok(Vec::new());
        }
        let want = want.min(MAX_PERMITS_PER_CALL);
        let started = Instant::now();
        let permits = loop {
            // Made before asking, so that a place given back meanwhile still wakes this wait.
            let room = self.room.notified();
            match self.acquire(want).await? {
                Grant::Granted(permits, at) => {
                    tokio::time::sleep(at).await;
                    break permits;
                }
                Grant::Wait(wait, Why::InFlight) => {
                    let _ = tokio::time::timeout(wait.min(IN_FLIGHT_RECHECK), room).await;
                }
                Grant::Wait(wait, Why::Paused | Why::Pace) => tokio::time::sleep(wait).await,
            }
        };
        let waited = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.stats.waited_us.fetch_add(waited, Ordering::Relaxed);
        Ok(permits)
    }

    /// One request for up to `want` permits.
    async fn acquire(self: &Arc<Self>, want: usize) -> Result<Grant> {
        let (per_sec, burst) = self.rate_args();
        let cap = self.limit.max_in_flight.unwrap_or(0);
        let ids: Vec<String> = if cap > 0 {
            let first = self.next_id.fetch_add(want as u64, Ordering::Relaxed);
            (first..first + want as u64)
                .map(|n| format!("{}:{n}", self.owner))
                .collect()
        } else {
            Vec::new()
        };
        let window = Duration::from_secs(1) + WINDOW_GUARD;
        let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        type Reply = (usize, u64, u8, u64);
        let (granted, wait_ms, why, first_grant): Reply = scripts::ACQUIRE
            .on(&self.conn)
            .key(&self.keys.state)
            .key(&self.keys.granted)
            .key(&self.keys.in_flight)
            .key(&self.keys.paused)
            .arg(want)
            .arg(per_sec)
            .arg(burst)
            .arg(micros(window))
            .arg(micros(RESERVE_AHEAD))
            .arg(cap)
            .arg(millis(self.lease))
            .arg(&ids)
            .run(&self.conn)
            .await?;
        let wait = Duration::from_millis(wait_ms);
        let why = match why {
            0 => {
                self.stats
                    .granted
                    .fetch_add(granted as u64, Ordering::Relaxed);
                let mut ids = ids.into_iter().take(granted);
                let rated = per_sec > 0.0;
                let permits = (0..granted as u64)
                    .map(|i| Permit {
                        limiter: Arc::clone(self),
                        id: ids.next(),
                        grant: rated.then_some(first_grant + i),
                    })
                    .collect::<Vec<_>>();
                if cap > 0 {
                    self.stats
                        .in_flight
                        .fetch_add(granted as u64, Ordering::Relaxed);
                }
                return Ok(Grant::Granted(permits, wait));
            }
            1 => Why::Paused,
            2 => Why::InFlight,
            3 => Why::Pace,
            other => return Err(Error::UnexpectedReply(format!("acquire reason {other}"))),
        };
        Ok(Grant::Wait(wait, why))
    }

    /// Gives back permits granted for calls that will not be made (fewer tasks were due than
    /// permits granted): their places in flight and the rate they spent.
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis fails (the places in flight then come back with their leases).
    pub fn give_back_unused(&self, permits: Vec<Permit>) {
        if permits.is_empty() {
            return;
        }
        self.stats
            .returned
            .fetch_add(permits.len() as u64, Ordering::Relaxed);
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        for mut permit in permits {
            pending.unused.extend(permit.grant);
            pending.ids.extend(permit.id.take());
        }
        drop(pending);
        self.pending_some.notify_one();
    }

    /// Notes that the call holding permit `id` ended.
    fn ended_call(&self, id: String) {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .ids
            .push(id);
        self.pending_some.notify_one();
    }

    /// Gives back, in one call, every permit waiting to go back: the places in flight of ended
    /// calls, and unused permits whole.
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis fails (they are kept for the next try).
    pub async fn give_back_pending(&self) -> Result<()> {
        let pending =
            std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner));
        if pending.unused.is_empty() && pending.ids.is_empty() {
            return Ok(());
        }
        let result = self.give_back(&pending.unused, &pending.ids).await;
        if result.is_err() {
            let mut kept = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
            kept.unused.extend(pending.unused);
            kept.ids.extend(pending.ids);
        }
        result
    }

    /// Gives back pending permits as they come, in batches, until dropped.
    pub async fn give_back_in_background(self: Arc<Self>) {
        loop {
            self.pending_some.notified().await;
            if let Err(err) = self.give_back_pending().await {
                tracing::warn!(error = %err, limit_key = self.limit_key(), "giving back permits failed");
                tokio::time::sleep(IN_FLIGHT_RECHECK).await;
                self.pending_some.notify_one();
            }
        }
    }

    /// `give_back.lua`: the rate of the unused permits numbered `grants`, and the places in
    /// flight `ids`.
    async fn give_back(&self, grants: &[u64], ids: &[String]) -> Result<()> {
        let (per_sec, _) = self.rate_args();
        let () = scripts::GIVE_BACK
            .on(&self.conn)
            .key(&self.keys.state)
            .key(&self.keys.granted)
            .key(&self.keys.in_flight)
            .key(&self.keys.paused)
            .arg(per_sec)
            .arg(grants.len())
            .arg(grants)
            .arg(ids)
            .run(&self.conn)
            .await?;
        self.stats
            .in_flight
            .fetch_sub(ids.len() as u64, Ordering::Relaxed);
        self.room.notify_waiters();
        Ok(())
    }

    /// Pauses the limit for everyone for `wait` (the API's `Retry-After`), unless a pause at
    /// least as long is on; calls resume at the limit's pace.
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis fails.
    pub async fn pause(&self, wait: Duration) -> Result<()> {
        let (per_sec, burst) = self.rate_args();
        let started: u8 = scripts::PAUSE
            .on(&self.conn)
            .key(&self.keys.paused)
            .key(&self.keys.state)
            .arg(millis(wait).max(1))
            .arg(per_sec)
            .arg(burst)
            .run(&self.conn)
            .await?;
        if started == 1 {
            self.stats.pauses.fetch_add(1, Ordering::Relaxed);
            tracing::info!(
                limit_key = self.limit_key(),
                ?wait,
                "the API asked to wait: limit paused"
            );
        }
        Ok(())
    }
}
