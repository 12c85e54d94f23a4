//! The shared limits this consumer's queues call under: one [`Limiter`] per limit key, shared by
//! every queue naming it (their calls count against one limit, in this process as in Redis), and
//! their series on `/metrics`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use service_kit::prometheus::{Exposition, Kind};
use taskq::{Limit, Limiter, Rate, RedisConnection};

/// The fastest rate a limit accepts (calls per second): its sliding window keeps one entry per
/// call of the last second in Redis.
pub const MAX_RATE_PER_SEC: f64 = 100_000.0;

/// A rate of `per_sec` calls per second, `burst` back to back, or why not.
pub fn rate_limit(per_sec: f64, burst: u32) -> Result<Rate, String> {
    if !(per_sec > 0.0 && per_sec <= MAX_RATE_PER_SEC) {
        return Err(format!(
            "per_sec must be above 0 and at most {MAX_RATE_PER_SEC}"
        ));
    }
    if burst == 0 {
        return Err("burst must be at least 1".into());
    }
    Ok(Rate { per_sec, burst })
}

/// A limit and the key it is shared under.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedLimit {
    /// The limit key.
    pub key: String,
    /// What the provider allows.
    pub limit: Limit,
}

/// Why the limits could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LimitsError {
    /// Two queues name one key with different limits (or leases, which its places in flight
    /// last).
    #[error(
        "queues {first} and {second} share limit key {key} with different limits; give them the \
         same rate, max_in_flight and lease_ms, or different keys"
    )]
    Differ {
        /// The key.
        key: String,
        /// The queue that named it first.
        first: String,
        /// The queue that disagrees.
        second: String,
    },
    /// A key that cannot be used in Redis.
    #[error(transparent)]
    Key(#[from] taskq::Error),
}

/// The limiters of a consumer, by limit key.
#[derive(Debug, Default)]
pub struct Limiters {
    /// Each key's limiter and the queue that named it first.
    by_key: BTreeMap<String, (Arc<Limiter>, String)>,
}

impl Limiters {
    /// The limiter of `queue`, whose limit is `shared`: the one already made for its key, or a
    /// new one on `conn` whose permits for calls in flight last `lease`.
    ///
    /// # Errors
    /// [`LimitsError`] when the key is unusable or already holds a different limit.
    pub fn for_queue(
        &mut self,
        queue: &str,
        shared: &SharedLimit,
        conn: impl FnOnce() -> taskq::Result<RedisConnection>,
        lease: Duration,
    ) -> Result<Arc<Limiter>, LimitsError> {
        if let Some((limiter, first)) = self.by_key.get(&shared.key) {
            if limiter.limit() != shared.limit || limiter.lease() != lease {
                return Err(LimitsError::Differ {
                    key: shared.key.clone(),
                    first: first.clone(),
                    second: queue.to_owned(),
                });
            }
            return Ok(Arc::clone(limiter));
        }
        let limiter = Limiter::new(conn()?, &shared.key, shared.limit, lease)?;
        self.by_key
            .insert(shared.key.clone(), (Arc::clone(&limiter), queue.to_owned()));
        Ok(limiter)
    }

    /// Every limiter, by key.
    pub fn all(&self) -> Vec<Arc<Limiter>> {
        self.by_key
            .values()
            .map(|(limiter, _)| Arc::clone(limiter))
            .collect()
    }
}

/// One series family: name, kind, help, and its value for a limiter.
type Series = (&'static str, Kind, &'static str, fn(&Limiter) -> f64);

/// Writes each limit's series: permits granted and given back unused, time spent waiting for
/// them, pauses started, and permits held for calls in flight, by limit key (this process's share; Prometheus sums the
/// fleet).
pub fn write_limits(page: &mut Exposition, limiters: &[Arc<Limiter>]) {
    if limiters.is_empty() {
        return;
    }
    let series: [Series; 5] = [
        (
            "taskq_limit_permits_granted_total",
            Kind::Counter,
            "Permits granted by a shared limit to this process (calls allowed).",
            |l| l.stats().granted.load(Ordering::Relaxed) as f64,
        ),
        (
            "taskq_limit_permits_returned_total",
            Kind::Counter,
            "Permits of a shared limit this process was granted but gave back unused.",
            |l| l.stats().returned.load(Ordering::Relaxed) as f64,
        ),
        (
            "taskq_limit_wait_seconds_total",
            Kind::Counter,
            "Time this process spent waiting for permits of a shared limit.",
            |l| l.stats().waited_us.load(Ordering::Relaxed) as f64 / 1e6,
        ),
        (
            "taskq_limit_pauses_total",
            Kind::Counter,
            "Pauses of a shared limit this process started (the API answered 429 or 503 with Retry-After).",
            |l| l.stats().pauses.load(Ordering::Relaxed) as f64,
        ),
        (
            "taskq_limit_in_flight",
            Kind::Gauge,
            "Calls in flight this process holds permits of a shared limit for.",
            |l| l.stats().in_flight.load(Ordering::Relaxed) as f64,
        ),
    ];
    for (name, kind, help, value) in series {
        page.family(name, kind, help);
        for limiter in limiters {
            page.sample(name, &[("limit_key", limiter.limit_key())], value(limiter));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(key: &str, per_sec: f64) -> SharedLimit {
        SharedLimit {
            key: key.into(),
            limit: Limit {
                rate: Some(Rate { per_sec, burst: 1 }),
                max_in_flight: None,
            },
        }
    }

    fn conn() -> taskq::Result<RedisConnection> {
        // Connections are made on first use: nothing is dialled here.
        taskq::connect::connect(&"redis://127.0.0.1:1".parse()?, &Default::default())
    }

    #[tokio::test]
    async fn queues_naming_one_key_share_one_limiter_and_must_agree_on_it() {
        let mut limiters = Limiters::default();
        let lease = Duration::from_secs(30);
        let a = limiters
            .for_queue("a", &shared("k", 5.0), conn, lease)
            .unwrap();
        let b = limiters
            .for_queue("b", &shared("k", 5.0), conn, lease)
            .unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let other = limiters
            .for_queue("c", &shared("other", 5.0), conn, lease)
            .unwrap();
        assert!(!Arc::ptr_eq(&a, &other));
        let err = limiters
            .for_queue("d", &shared("k", 6.0), conn, lease)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "queues a and d share limit key k with different limits; give them the same rate, \
             max_in_flight and lease_ms, or different keys"
        );
        assert_eq!(limiters.all().len(), 2);
    }
}
