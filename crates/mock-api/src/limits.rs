//! The provider's limits, enforced as a real provider does: at most `rate_limit_per_sec` calls
//! admitted in any one-second window, and at most `max_in_flight` calls being answered at once;
//! a call beyond either is refused with 429, a JSON error and a `Retry-After` in seconds. The
//! consumer's fleet-wide limiter is tested and measured against this.
//!
//! The check is one layer in front of every API call route (not `/stats` or `/reset`), so it
//! runs before the handler: a refused call is not counted in `calls`, polls no task, makes no
//! job, takes no delay and draws nothing from the failure generator; `throttled` counts it
//! instead. An admitted call is one that will be served. The rate is checked first, then the
//! calls in flight, and a call refused by either takes nothing from the other.
//!
//! The window holds the instants of the admissions of the last second, oldest first: exact,
//! where a fixed one-second bucket would admit twice the limit across its edge. It sits behind
//! a lock, taken only when a rate limit is set and only for a few comparisons, never across an
//! await. The calls in flight are an atomic count; the slot a call takes is given back when its
//! guard drops, once the answer is made, or when the client hung up and hyper dropped the call
//! mid-delay. With no limit set the hot path is three atomic operations and no lock.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// The rate limit's window.
const WINDOW: Duration = Duration::from_secs(1);

/// The limits, the calls in flight and what `/stats` reports of them.
#[derive(Debug)]
pub struct Limits {
    /// The admissions of the last second; `None` without a rate limit, so that no call takes
    /// the lock then.
    window: Option<Mutex<Window>>,
    /// Calls answered at once, at most (`u32::MAX` without a limit: one code path either way).
    max_in_flight: u32,
    /// Calls admitted whose answer is not made yet.
    in_flight: AtomicU32,
    /// The most calls in flight at once since start or reset: the concurrency a client reached,
    /// limited or not.
    max_in_flight_seen: AtomicU32,
    /// Calls refused by a limit.
    throttled: AtomicU64,
}

/// What `/stats` shows of the limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitStats {
    /// Calls refused by a limit (answered 429).
    pub throttled: u64,
    /// The most calls in flight at once since start or reset.
    pub max_in_flight_seen: u32,
    /// Calls in flight now.
    pub in_flight: u32,
}

/// Why a call was refused: its 429.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The window holds as many admissions as the rate allows; one leaves it in this many
    /// seconds (rounded up, at least 1).
    RateLimited {
        /// The `Retry-After`.
        retry_after_secs: u64,
    },
    /// As many calls as allowed are being answered.
    TooManyInFlight,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let (error, retry_after_secs) = match self {
            Self::RateLimited { retry_after_secs } => ("rate limited", retry_after_secs),
            Self::TooManyInFlight => ("too many in flight", 1),
        };
        let mut response =
            (StatusCode::TOO_MANY_REQUESTS, Json(json!({"error": error}))).into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
        response
    }
}

/// A call's slot among those in flight, given back when dropped.
#[derive(Debug)]
pub struct InFlight<'a>(&'a AtomicU32);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Limits {
    /// Limits of `rate_per_sec` calls admitted per second and `max_in_flight` at once; 0 is no
    /// limit.
    pub fn new(rate_per_sec: u32, max_in_flight: u32) -> Self {
        Self {
            window: (rate_per_sec > 0).then(|| Mutex::new(Window::new(rate_per_sec))),
            max_in_flight: if max_in_flight == 0 {
                u32::MAX
            } else {
                max_in_flight
            },
            in_flight: AtomicU32::new(0),
            max_in_flight_seen: AtomicU32::new(0),
            throttled: AtomicU64::new(0),
        }
    }

    /// Admits a call now, or refuses it (and counts the refusal).
    ///
    /// # Errors
    /// The limit the call is beyond.
    pub fn admit(&self) -> Result<InFlight<'_>, Refusal> {
        self.try_admit().inspect_err(|_| {
            self.throttled.fetch_add(1, Ordering::Relaxed);
        })
    }

    fn try_admit(&self) -> Result<InFlight<'_>, Refusal> {
        let Some(window) = &self.window else {
            return self.enter();
        };
        let mut window = window.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        window.room(now).map_err(|wait| Refusal::RateLimited {
            retry_after_secs: whole_secs(wait),
        })?;
        // Entered under the lock, so that a call refused for its concurrency leaves no
        // admission in the window.
        let slot = self.enter()?;
        window.admitted.push_back(now);
        Ok(slot)
    }

    /// Takes a slot among the calls in flight, if one is free.
    fn enter(&self) -> Result<InFlight<'_>, Refusal> {
        let before = self
            .in_flight
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < self.max_in_flight).then_some(n + 1)
            })
            .map_err(|_| Refusal::TooManyInFlight)?;
        self.max_in_flight_seen
            .fetch_max(before + 1, Ordering::Relaxed);
        Ok(InFlight(&self.in_flight))
    }

    /// The counts `/stats` shows.
    pub fn stats(&self) -> LimitStats {
        LimitStats {
            throttled: self.throttled.load(Ordering::Relaxed),
            max_in_flight_seen: self.max_in_flight_seen.load(Ordering::Relaxed),
            in_flight: self.in_flight.load(Ordering::Relaxed),
        }
    }

    /// Forgets the refusals, the window and the most seen in flight (the calls in flight now
    /// are that most, and keep their slots).
    pub fn reset(&self) {
        if let Some(window) = &self.window {
            window
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .admitted
                .clear();
        }
        self.throttled.store(0, Ordering::Relaxed);
        self.max_in_flight_seen
            .store(self.in_flight.load(Ordering::Relaxed), Ordering::Relaxed);
    }
}

/// The layer in front of the call routes: a call the limits admit is served, holding its slot
/// until its answer is made; any other is answered its [`Refusal`].
pub async fn enforce(State(limits): State<Arc<Limits>>, request: Request, next: Next) -> Response {
    let slot = match limits.admit() {
        Ok(slot) => slot,
        Err(refusal) => return refusal.into_response(),
    };
    let response = next.run(request).await;
    drop(slot);
    response
}

/// The admissions of the last [`WINDOW`], oldest first.
#[derive(Debug)]
struct Window {
    limit: usize,
    admitted: VecDeque<Instant>,
}

impl Window {
    fn new(limit: u32) -> Self {
        Self {
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
            admitted: VecDeque::new(),
        }
    }

    /// Whether a call at `now` may be admitted; if not, how long until the oldest admission
    /// leaves the window. Forgets the admissions that have left it.
    fn room(&mut self, now: Instant) -> Result<(), Duration> {
        while let Some(&oldest) = self.admitted.front() {
            if now.saturating_duration_since(oldest) < WINDOW {
                break;
            }
            self.admitted.pop_front();
        }
        match self.admitted.front() {
            Some(&oldest) if self.admitted.len() >= self.limit => {
                Err((oldest + WINDOW).saturating_duration_since(now))
            }
            _ => Ok(()),
        }
    }
}

/// `wait` in whole seconds, rounded up, at least 1 (a `Retry-After` of 0 asks for a retry
/// storm).
fn whole_secs(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_window_slides_instead_of_resetting_each_second() {
        let start = Instant::now();
        let mut window = Window::new(4);
        for at in [0, 0, 900, 900] {
            assert_eq!(window.room(start + ms(at)), Ok(()));
            window.admitted.push_back(start + ms(at));
        }

        assert_eq!(window.room(start + ms(950)), Err(ms(50)));
        // A fixed bucket would admit four more from 1 s on; two have left the window by then.
        assert_eq!(window.room(start + ms(1000)), Ok(()));
        window.admitted.push_back(start + ms(1000));
        assert_eq!(window.room(start + ms(1000)), Ok(()));
        window.admitted.push_back(start + ms(1000));
        assert_eq!(window.room(start + ms(1000)), Err(ms(900)));
    }

    #[test]
    fn retry_after_rounds_up_to_a_whole_second_at_least() {
        assert_eq!(whole_secs(Duration::ZERO), 1);
        assert_eq!(whole_secs(ms(1)), 1);
        assert_eq!(whole_secs(ms(1000)), 1);
        assert_eq!(whole_secs(ms(1001)), 2);
    }

    #[test]
    fn a_slot_is_given_back_when_its_guard_drops() {
        let limits = Limits::new(0, 2);
        let first = limits.admit();
        let second = limits.admit();
        assert!(first.is_ok() && second.is_ok());
        assert_eq!(limits.admit().err(), Some(Refusal::TooManyInFlight));

        drop(first);
        let third = limits.admit();

        assert!(third.is_ok());
        assert_eq!(
            limits.stats(),
            LimitStats {
                throttled: 1,
                max_in_flight_seen: 2,
                in_flight: 2
            }
        );
    }

    #[test]
    fn a_call_refused_for_its_concurrency_takes_no_place_in_the_window() {
        let limits = Limits::new(2, 1);
        let held = limits.admit();
        assert!(held.is_ok());
        assert_eq!(limits.admit().err(), Some(Refusal::TooManyInFlight));
        drop(held);

        assert!(limits.admit().is_ok());
        assert_eq!(
            limits.admit().err(),
            Some(Refusal::RateLimited {
                retry_after_secs: 1
            })
        );
        assert_eq!(limits.stats().throttled, 2);
    }

    #[test]
    fn without_limits_every_call_is_admitted_and_the_concurrency_still_counted() {
        let limits = Limits::new(0, 0);
        let slots: Vec<_> = (0..100).map(|_| limits.admit()).collect();
        assert!(slots.iter().all(Result::is_ok));
        assert_eq!(limits.stats().max_in_flight_seen, 100);
        drop(slots);

        limits.reset();

        assert_eq!(
            limits.stats(),
            LimitStats {
                throttled: 0,
                max_in_flight_seen: 0,
                in_flight: 0
            }
        );
    }
}
