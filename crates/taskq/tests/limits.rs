//! Shared limits against a real redis-server: the rate's burst and pace and its sliding window,
//! the cap on calls in flight (given back when calls end, or when a dead holder's leases end),
//! pauses, and a worker that claims only what it holds permits for.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use support::{name, open};
use taskq::{
    ClaimedTask, Handler, Limit, Limiter, Outcome, Rate, Step, TaskName, Worker, WorkerConfig,
};
use testkit::{RedisCluster, RedisServer, unique_queue};

fn limiter(redis: &RedisServer, key: &str, limit: Limit, lease: Duration) -> Arc<Limiter> {
    limiter_at(&redis.url(), key, limit, lease)
}

fn limiter_at(url: &str, key: &str, limit: Limit, lease: Duration) -> Arc<Limiter> {
    let conn = taskq::connect::connect(&url.parse().unwrap(), &Default::default()).unwrap();
    Limiter::new(conn, key, limit, lease).unwrap()
}

fn rate(per_sec: f64, burst: u32) -> Limit {
    Limit {
        rate: Some(Rate { per_sec, burst }),
        max_in_flight: None,
    }
}

fn cap(max_in_flight: u32) -> Limit {
    Limit {
        rate: None,
        max_in_flight: Some(max_in_flight),
    }
}

const LEASE: Duration = Duration::from_secs(30);

#[tokio::test]
async fn a_rate_grants_its_burst_at_once_then_one_permit_per_interval() {
    let redis = RedisServer::start();
    let key = unique_queue("rate");
    let limiter = limiter(&redis, &key, rate(20.0, 5), LEASE);

    let started = Instant::now();
    let first = limiter.wait_for_permits(100).await.unwrap();
    assert_eq!(first.len(), 5, "the burst, at once");
    // Twenty more, one per 50 ms: a second at the least.
    let mut granted = 0;
    while granted < 20 {
        granted += limiter.wait_for_permits(100).await.unwrap().len();
    }
    assert_eq!(granted, 20);
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(950), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert_eq!(limiter.stats().granted.load(Ordering::Relaxed), 25);
    assert!(limiter.stats().waited_us.load(Ordering::Relaxed) >= 900_000);
}

#[tokio::test]
async fn two_limiters_on_one_key_share_one_rate_and_no_window_exceeds_it() {
    let redis = RedisServer::start();
    let key = unique_queue("shared");
    // A burst as large as the rate: only the sliding window keeps the first second at 40.
    let (a, b) = (
        limiter(&redis, &key, rate(40.0, 40), LEASE),
        limiter(&redis, &key, rate(40.0, 40), LEASE),
    );
    let grants = Arc::new(std::sync::Mutex::new(Vec::new()));
    let deadline = Instant::now() + Duration::from_millis(2500);
    let take = |limiter: Arc<Limiter>, grants: Arc<std::sync::Mutex<Vec<Instant>>>| async move {
        while Instant::now() < deadline {
            let permits = limiter.wait_for_permits(7).await.unwrap();
            let at = Instant::now();
            grants.lock().unwrap().extend(permits.iter().map(|_| at));
        }
    };
    tokio::join!(
        take(Arc::clone(&a), Arc::clone(&grants)),
        take(Arc::clone(&b), Arc::clone(&grants))
    );
    let by_each = [&a, &b].map(|l| l.stats().granted.load(Ordering::Relaxed));
    let mut grants = grants.lock().unwrap().clone();
    assert_eq!(by_each.iter().sum::<u64>(), grants.len() as u64);
    assert!(
        by_each.iter().all(|n| *n > 0),
        "both were served: {by_each:?}"
    );
    // The last waits end after the deadline; what the rate allowed is what came before it.
    grants.retain(|at| *at < deadline);
    grants.sort();
    // Any one second of grants holds at most 40 (measured here, so allow the clock's slack).
    for (i, at) in grants.iter().enumerate() {
        let within = grants[i..]
            .iter()
            .take_while(|t| t.duration_since(*at) < Duration::from_millis(990))
            .count();
        assert!(within <= 40, "{within} grants within a second");
    }
    let total = grants.len();
    assert!(
        (80..=120).contains(&total),
        "{total} grants in 2.5 s at 40/s"
    );
}

#[tokio::test]
async fn places_in_flight_come_back_when_calls_end_or_when_a_dead_holders_leases_end() {
    let redis = RedisServer::start();
    let key = unique_queue("flight");
    let short = Duration::from_millis(400);
    let dead = limiter(&redis, &key, cap(3), short);
    let alive = limiter(&redis, &key, cap(3), short);

    let held = dead.wait_for_permits(10).await.unwrap();
    assert_eq!(held.len(), 3, "the cap");
    assert_eq!(dead.stats().in_flight.load(Ordering::Relaxed), 3);
    // The holder dies: its permits are never given back.
    std::mem::forget(held);
    let started = Instant::now();
    let mine = alive.wait_for_permits(10).await.unwrap();
    let waited = started.elapsed();
    assert_eq!(mine.len(), 3);
    assert!(waited >= Duration::from_millis(300), "{waited:?}");
    assert!(waited < Duration::from_secs(2), "{waited:?}");

    // A call that ends gives its place back at once.
    let mut mine = mine;
    drop(mine.pop());
    alive.give_back_pending().await.unwrap();
    let started = Instant::now();
    let next = alive.wait_for_permits(10).await.unwrap();
    assert_eq!(next.len(), 1);
    assert!(started.elapsed() < Duration::from_millis(200));
}

#[tokio::test]
async fn a_pause_holds_every_permit_until_it_ends_then_calls_resume_at_the_pace() {
    let redis = RedisServer::start();
    let key = unique_queue("pause");
    let (one, other) = (
        limiter(&redis, &key, rate(20.0, 10), LEASE),
        limiter(&redis, &key, rate(20.0, 10), LEASE),
    );
    let taken = one.wait_for_permits(8).await.unwrap();
    assert_eq!(taken.len(), 8);
    one.pause(Duration::from_millis(600)).await.unwrap();
    one.pause(Duration::from_millis(100)).await.unwrap();
    // Permits given back during the pause return to the log, not to the pace the pause set.
    one.give_back_unused(taken);
    one.give_back_pending().await.unwrap();
    assert_eq!(
        one.stats().pauses.load(Ordering::Relaxed),
        1,
        "a shorter pause changes nothing"
    );

    let started = Instant::now();
    let first = other.wait_for_permits(10).await.unwrap();
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(550), "{waited:?}");
    assert!(waited < Duration::from_secs(2), "{waited:?}");
    assert_eq!(first.len(), 1, "no burst right after a pause");
    let second = other.wait_for_permits(10).await.unwrap();
    assert_eq!(second.len(), 1, "then one per interval");
}

#[tokio::test]
async fn unused_permits_give_their_rate_back() {
    let redis = RedisServer::start();
    let key = unique_queue("unused");
    let limiter = limiter(&redis, &key, rate(5.0, 3), LEASE);
    let permits = limiter.wait_for_permits(3).await.unwrap();
    assert_eq!(permits.len(), 3);
    limiter.give_back_unused(permits);
    limiter.give_back_pending().await.unwrap();
    let started = Instant::now();
    let again = limiter.wait_for_permits(3).await.unwrap();
    assert_eq!(again.len(), 3, "the burst is whole again");
    assert!(started.elapsed() < Duration::from_millis(200));
}

/// Counts calls running at once, and the most seen.
#[derive(Default)]
struct Gauge {
    now: AtomicUsize,
    most: AtomicUsize,
}

struct Slow(Arc<Gauge>);

impl Handler for Slow {
    async fn handle(&self, _task: &ClaimedTask) -> Outcome {
        let now = self.0.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.0.most.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.0.now.fetch_sub(1, Ordering::SeqCst);
        Outcome::Done("{}".into())
    }
}

#[tokio::test]
async fn a_worker_under_a_cap_claims_only_what_it_may_call() {
    let redis = RedisServer::start();
    let queue = open(&redis);
    let names: Vec<TaskName> = (0..12).map(|i| name(&format!("t{i}"))).collect();
    queue.enqueue_many(&names).await.unwrap();
    let gauge = Arc::new(Gauge::default());
    let limiter = limiter(&redis, &unique_queue("worker"), cap(3), LEASE);
    let worker = Worker::new(
        queue.clone(),
        Slow(Arc::clone(&gauge)),
        WorkerConfig {
            concurrency: 10,
            batch_size: 10,
            limiter: Some(Arc::clone(&limiter)),
            ..WorkerConfig::default()
        },
    );
    assert_eq!(worker.run_once().await.unwrap(), Step::Processed(3));
    let stats = queue.stats().await.unwrap();
    assert_eq!(stats.counts.due, 9, "nothing claimed beyond the permits");
    while worker.run_once().await.unwrap() != Step::Empty {}
    assert_eq!(queue.stats().await.unwrap().totals["done"], 12);
    assert_eq!(gauge.most.load(Ordering::SeqCst), 3);
    assert_eq!(
        limiter.stats().in_flight.load(Ordering::Relaxed),
        0,
        "every place went back"
    );
    let stats = limiter.stats();
    let used = stats.granted.load(Ordering::Relaxed) - stats.returned.load(Ordering::Relaxed);
    assert_eq!(used, 12, "one permit per call; the unused ones went back");
}

#[tokio::test]
async fn on_a_cluster_each_limit_lives_in_its_own_slot_and_works_the_same() {
    let cluster = RedisCluster::start();
    let both = Limit {
        rate: Some(Rate {
            per_sec: 50.0,
            burst: 4,
        }),
        max_in_flight: Some(3),
    };
    // Keys of different slots: every script call must route by the limit's own tag.
    for key in ["alpha", "beta", "gamma"] {
        let limiter = limiter_at(&cluster.url(), key, both, LEASE);
        let permits = limiter.wait_for_permits(10).await.unwrap();
        assert_eq!(permits.len(), 3, "{key}: the cap, within the burst");
        drop(permits);
        limiter.give_back_pending().await.unwrap();
        assert_eq!(limiter.stats().in_flight.load(Ordering::Relaxed), 0);
        limiter.pause(Duration::from_millis(300)).await.unwrap();
        let started = Instant::now();
        assert_eq!(limiter.wait_for_permits(1).await.unwrap().len(), 1);
        assert!(
            started.elapsed() >= Duration::from_millis(250),
            "{key}: paused"
        );
    }
}
