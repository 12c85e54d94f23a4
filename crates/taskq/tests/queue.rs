//! The queue's scripts against a real redis-server: dedup, ownership, leases, retries, death.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use redis::Commands;
use support::{name, open};
use taskq::{Ack, EnqueuePolicy, State, TaskName, WorkerPolicy};
use testkit::{RedisServer, eventually};

fn short_lease() -> WorkerPolicy {
    WorkerPolicy {
        lease: Duration::from_millis(200),
        max_attempts: 3,
        ..WorkerPolicy::default()
    }
}

#[tokio::test]
async fn concurrent_duplicate_enqueues_give_one_task() {
    let redis = RedisServer::start();
    let queue = open(&redis);

    let attempts: Vec<_> = (0..50)
        .map(|_| {
            let queue = queue.clone();
            tokio::spawn(async move { queue.enqueue(&name("same")).await.unwrap().created })
        })
        .collect();
    let mut created = 0;
    for attempt in attempts {
        created += usize::from(attempt.await.unwrap());
    }

    assert_eq!(created, 1);
    let stats = queue.stats().await.unwrap();
    assert_eq!(stats.counts.due, 1);
    assert_eq!(stats.totals["enqueued"], 1);
    assert_eq!(stats.totals["duplicates"], 49);
}

#[tokio::test]
async fn a_running_or_dead_task_is_not_enqueued_again() {
    let redis = RedisServer::start();
    let queue = open(&redis).with_worker_policy(WorkerPolicy {
        max_attempts: 1,
        ..WorkerPolicy::default()
    });
    queue.enqueue(&name("t")).await.unwrap();

    let claimed = queue.claim(10).await.unwrap().tasks;
    let again = queue.enqueue(&name("t")).await.unwrap();
    assert!(!again.created);
    assert_eq!(again.view.state, State::Running);

    queue
        .fail(&claimed[0], "boom", Duration::ZERO, false)
        .await
        .unwrap();
    let again = queue.enqueue(&name("t")).await.unwrap();
    assert!(!again.created);
    assert_eq!(again.view.state, State::Dead);
    assert_eq!(queue.stats().await.unwrap().counts.due, 0);
}

#[tokio::test]
async fn racing_claimers_never_share_a_task() {
    let redis = RedisServer::start();
    let queue = open(&redis);
    let names: Vec<TaskName> = (0..2000).map(|i| name(&format!("t{i}"))).collect();
    for chunk in names.chunks(500) {
        queue.enqueue_many(chunk).await.unwrap();
    }

    let claimers: Vec<_> = (0..8)
        .map(|_| {
            let queue = queue.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let tasks = queue.claim(37).await.unwrap().tasks;
                    if tasks.is_empty() {
                        return mine;
                    }
                    mine.extend(tasks.into_iter().map(|t| t.name));
                }
            })
        })
        .collect();
    let mut seen = HashSet::new();
    let mut total = 0;
    for claimer in claimers {
        for task in claimer.await.unwrap() {
            total += 1;
            assert!(seen.insert(task.clone()), "{task} claimed twice");
        }
    }

    assert_eq!(total, 2000);
    assert_eq!(queue.stats().await.unwrap().counts.running, 2000);
}

#[tokio::test]
async fn an_expired_lease_comes_back_with_a_new_token_and_the_old_one_is_refused() {
    let redis = RedisServer::start();
    let queue = open(&redis).with_worker_policy(short_lease());
    queue.enqueue(&name("slow")).await.unwrap();
    let first = queue.claim(1).await.unwrap().tasks.remove(0);

    let second = eventually(Duration::from_secs(5), "the lease to expire", || async {
        queue.claim(1).await.unwrap().tasks.pop()
    })
    .await;

    assert_eq!(second.name, "slow");
    assert_ne!(second.token, first.token);
    assert_eq!(second.attempts, 1, "an expired lease counts as an attempt");
    assert_eq!(queue.complete(&first, "1").await.unwrap(), Ack::Stale);
    assert_eq!(queue.complete(&second, "2").await.unwrap(), Ack::Applied);
    let stats = queue.stats().await.unwrap();
    assert_eq!(stats.totals["stale"], 1);
    assert_eq!(stats.totals["reaped"], 1);
    let view = queue.get(&name("slow")).await.unwrap().unwrap();
    assert_eq!(view.data.unwrap().get(), "2");
}

#[tokio::test]
async fn extended_leases_are_not_reaped_and_lost_ones_are_reported() {
    let redis = RedisServer::start();
    // Renewed every 150 ms, a 600 ms lease has 450 ms of slack for a loaded machine.
    let lease = Duration::from_millis(600);
    let queue = open(&redis).with_worker_policy(WorkerPolicy {
        lease,
        ..short_lease()
    });
    queue
        .enqueue_many(&[name("kept"), name("lost")])
        .await
        .unwrap();
    let tasks = queue.claim(2).await.unwrap().tasks;
    let kept = tasks.iter().find(|t| t.name == "kept").unwrap().clone();
    let mut lost = tasks.iter().find(|t| t.name == "lost").unwrap().clone();
    lost.token = "not-the-token".into();

    let claimed = std::time::Instant::now();
    while claimed.elapsed() < 2 * lease {
        assert_eq!(
            queue.extend(&[kept.clone(), lost.clone()]).await.unwrap(),
            vec![1]
        );
        tokio::time::sleep(lease / 4).await;
    }

    // Twice the lease has passed: only the renewed one is still held.
    let reclaimed = queue.claim(10).await.unwrap().tasks;
    assert_eq!(
        reclaimed
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>(),
        ["lost"]
    );
    assert_eq!(queue.complete(&kept, "{}").await.unwrap(), Ack::Applied);
    // A renewal that races the task's own answer does not report the lease lost.
    assert_eq!(queue.extend(&[kept]).await.unwrap(), Vec::<usize>::new());
}

#[tokio::test]
async fn processing_reschedules_without_using_an_attempt_and_done_stores_the_result() {
    let redis = RedisServer::start();
    let queue = open(&redis);
    queue.enqueue(&name("t")).await.unwrap();

    let task = queue.claim(1).await.unwrap().tasks.remove(0);
    let ack = queue
        // Long enough that no stall of a loaded machine makes the next claim see it due.
        .snooze(&task, r#"{"p":1}"#, Duration::from_millis(300))
        .await
        .unwrap();
    assert_eq!(ack, Ack::Applied);
    let view = queue.get(&name("t")).await.unwrap().unwrap();
    assert_eq!(
        (view.state, view.polls, view.attempts),
        (State::Processing, 1, 0)
    );
    assert_eq!(view.data.unwrap().get(), r#"{"p":1}"#);
    let claim = queue.claim(1).await.unwrap();
    assert!(claim.tasks.is_empty(), "not due before the poll interval");
    assert!(claim.next_due_in.unwrap() <= Duration::from_millis(300));

    let task = eventually(Duration::from_secs(2), "the re-poll", || async {
        queue.claim(1).await.unwrap().tasks.pop()
    })
    .await;
    assert_eq!(task.polls, 1);
    assert_eq!(
        queue.complete(&task, r#"{"full":true}"#).await.unwrap(),
        Ack::Applied
    );

    let view = queue.get(&name("t")).await.unwrap().unwrap();
    assert_eq!(view.state, State::Done);
    assert_eq!(view.data.unwrap().get(), r#"{"full":true}"#);
    let stats = queue.stats().await.unwrap();
    assert_eq!((stats.counts.due, stats.counts.running), (0, 0));
    let mut conn = redis.connection();
    let ttl: i64 = conn.pttl(queue.keys().task(&name("t"))).unwrap();
    assert!(
        ttl > 3_500_000 && ttl <= 3_600_000,
        "result kept for its ttl: {ttl}"
    );
    assert!(
        !queue.enqueue(&name("t")).await.unwrap().created,
        "a stored result dedups"
    );
}

#[tokio::test]
async fn failures_back_off_then_the_task_dies_with_its_last_error() {
    let redis = RedisServer::start();
    let queue = open(&redis).with_worker_policy(short_lease());
    queue.enqueue(&name("t")).await.unwrap();

    for attempt in 1..=3 {
        let task = eventually(Duration::from_secs(2), "the retry", || async {
            queue.claim(1).await.unwrap().tasks.pop()
        })
        .await;
        assert_eq!(task.attempts, attempt - 1);
        let ack = queue
            .fail(
                &task,
                &format!("error {attempt}"),
                // Long enough that no stall of a loaded machine makes the next claim see it due.
                Duration::from_millis(300),
                false,
            )
            .await
            .unwrap();
        if attempt < 3 {
            assert_eq!(ack, Ack::Applied);
            let claim = queue.claim(1).await.unwrap();
            assert!(
                claim.tasks.is_empty(),
                "retried at once instead of after the backoff"
            );
        } else {
            assert_eq!(ack, Ack::Dead);
        }
    }

    let view = queue.get(&name("t")).await.unwrap().unwrap();
    assert_eq!(view.state, State::Dead);
    assert_eq!(view.attempts, 3);
    assert_eq!(view.last_error.as_deref(), Some("error 3"));
    let stats = queue.stats().await.unwrap();
    assert_eq!(
        (stats.counts.due, stats.counts.running, stats.counts.dead),
        (0, 0, 1)
    );
    assert_eq!(stats.totals["retried"], 2);
}

#[tokio::test]
async fn a_permanent_failure_dies_at_once_and_a_dead_task_can_be_retried() {
    let redis = RedisServer::start();
    let queue = open(&redis);
    queue.enqueue(&name("t")).await.unwrap();
    let task = queue.claim(1).await.unwrap().tasks.remove(0);

    assert_eq!(
        queue
            .fail(&task, "404", Duration::ZERO, true)
            .await
            .unwrap(),
        Ack::Dead
    );
    assert!(!queue.retry_dead(&name("never-seen")).await.unwrap());
    assert!(queue.retry_dead(&name("t")).await.unwrap());

    let view = queue.get(&name("t")).await.unwrap().unwrap();
    assert_eq!((view.state, view.attempts), (State::Queued, 0));
    let again = queue.claim(1).await.unwrap().tasks.remove(0);
    assert_eq!(again.name, "t");
    assert_eq!(queue.stats().await.unwrap().counts.dead, 0);
}

#[tokio::test]
async fn answers_are_safe_to_repeat_after_a_lost_reply() {
    let redis = RedisServer::start();
    let queue = open(&redis);
    queue.enqueue(&name("t")).await.unwrap();
    let task = queue.claim(1).await.unwrap().tasks.remove(0);

    assert_eq!(queue.complete(&task, "1").await.unwrap(), Ack::Applied);
    assert_eq!(queue.complete(&task, "1").await.unwrap(), Ack::Applied);

    let stats = queue.stats().await.unwrap();
    assert_eq!(stats.totals["done"], 1);
    assert!(!stats.totals.contains_key("stale"));
}

#[tokio::test]
async fn a_released_task_is_due_at_once_without_an_attempt() {
    let redis = RedisServer::start();
    let queue = open(&redis);
    queue.enqueue(&name("t")).await.unwrap();
    let task = queue.claim(1).await.unwrap().tasks.remove(0);

    assert_eq!(queue.release(&task).await.unwrap(), Ack::Applied);

    let again = queue.claim(1).await.unwrap().tasks.remove(0);
    assert_eq!((again.name.as_str(), again.attempts), ("t", 0));
    assert_eq!(queue.complete(&task, "1").await.unwrap(), Ack::Stale);
}

#[tokio::test]
async fn the_poll_deadline_ends_a_task_that_never_finishes() {
    let redis = RedisServer::start();
    let queue = open(&redis).with_worker_policy(WorkerPolicy {
        max_poll: Some(Duration::from_millis(100)),
        ..WorkerPolicy::default()
    });
    queue.enqueue(&name("t")).await.unwrap();
    let task = queue.claim(1).await.unwrap().tasks.remove(0);
    assert_eq!(
        queue.snooze(&task, "{}", Duration::ZERO).await.unwrap(),
        Ack::Applied
    );
    tokio::time::sleep(Duration::from_millis(120)).await;

    let task = queue.claim(1).await.unwrap().tasks.remove(0);
    assert_eq!(
        queue.snooze(&task, "{}", Duration::ZERO).await.unwrap(),
        Ack::Dead
    );

    let view = queue.get(&name("t")).await.unwrap().unwrap();
    assert_eq!(view.state, State::Dead);
    assert!(view.last_error.unwrap().contains("poll deadline"));
}

#[tokio::test]
async fn the_sweep_prunes_the_dead_set_by_count() {
    let redis = RedisServer::start();
    let queue = open(&redis).with_worker_policy(WorkerPolicy {
        dead_max: 3,
        ..WorkerPolicy::default()
    });
    let names: Vec<TaskName> = (0..5).map(|i| name(&format!("d{i}"))).collect();
    queue.enqueue_many(&names).await.unwrap();
    for task in queue.claim(5).await.unwrap().tasks {
        queue.fail(&task, "x", Duration::ZERO, true).await.unwrap();
    }

    let sweep = queue.sweep().await.unwrap();

    assert_eq!(sweep.pruned, 2);
    assert_eq!(queue.stats().await.unwrap().counts.dead, 3);
    let mut conn = redis.connection();
    let records: usize = conn
        .keys::<_, Vec<String>>(format!("{}*", queue.keys().task_prefix()))
        .unwrap()
        .len();
    assert_eq!(records, 3, "pruned records are deleted too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completion_racing_the_reaper_either_wins_whole_or_is_refused_and_counted() {
    let redis = RedisServer::start();
    let queue = open(&redis).with_worker_policy(WorkerPolicy {
        lease: Duration::from_millis(50),
        ..WorkerPolicy::default()
    });
    let (mut won, mut refused) = (0, 0);
    for round in 0..10 {
        let names: Vec<TaskName> = (0..100).map(|i| name(&format!("r{round}-{i}"))).collect();
        queue.enqueue_many(&names).await.unwrap();
        let tasks = queue.claim(100).await.unwrap().tasks;
        tokio::time::sleep(Duration::from_millis(60)).await; // every lease has now expired

        let completions: Vec<_> = tasks
            .iter()
            .map(|task| {
                let (queue, task) = (queue.clone(), task.clone());
                tokio::spawn(async move { (queue.complete(&task, "1").await.unwrap(), task) })
            })
            .collect();
        let reaper = {
            let queue = queue.clone();
            tokio::spawn(async move {
                for _ in 0..3 {
                    queue.sweep().await.unwrap();
                }
            })
        };
        reaper.await.unwrap();

        for completion in completions {
            let (ack, task) = completion.await.unwrap();
            let view = queue.get(&task.name).await.unwrap().unwrap();
            match ack {
                Ack::Applied => {
                    won += 1;
                    assert_eq!(view.state, State::Done, "{}", task.name);
                }
                Ack::Stale => {
                    refused += 1;
                    assert_eq!(
                        (view.state, view.attempts),
                        (State::Queued, 1),
                        "{}",
                        task.name
                    );
                }
                Ack::Dead | Ack::Deferred => {
                    panic!("a completion on a Redis with room is recorded or stale: {ack:?}")
                }
            }
        }
        // Reaped tasks are due again; take them out of the way for the next round.
        for task in queue.claim(100).await.unwrap().tasks {
            queue.complete(&task, "2").await.unwrap();
        }
    }
    let stats = queue.stats().await.unwrap();
    assert_eq!(stats.totals["done"], 1000);
    assert_eq!(stats.totals.get("stale").copied().unwrap_or(0), refused);
    assert_eq!(stats.totals.get("reaped").copied().unwrap_or(0), refused);
    eprintln!("FIGURES reaper-race: completions won={won} refused-as-stale={refused}");
}

#[tokio::test]
async fn dead_records_expire_and_the_sweep_prunes_them_by_age() {
    let redis = RedisServer::start();
    let queue = open(&redis).with_dead_ttl(Duration::from_millis(100));
    let names: Vec<TaskName> = (0..5).map(|i| name(&format!("old{i}"))).collect();
    queue.enqueue_many(&names).await.unwrap();
    for task in queue.claim(5).await.unwrap().tasks {
        queue.fail(&task, "x", Duration::ZERO, true).await.unwrap();
    }

    // The five died a few milliseconds apart, so one sweep may prune some and the next the rest.
    let pruned = std::cell::Cell::new(0);
    eventually(
        Duration::from_secs(5),
        "the dead set to be pruned",
        || async {
            pruned.set(pruned.get() + queue.sweep().await.unwrap().pruned);
            (queue.stats().await.unwrap().counts.dead == 0).then_some(())
        },
    )
    .await;

    assert_eq!(pruned.get(), 5);
    assert!(queue.get(&names[0]).await.unwrap().is_none());
}

/// No-op work, as fast as the queue allows.
struct Instant;

impl taskq::Handler for Instant {
    async fn handle(&self, _: &taskq::ClaimedTask) -> taskq::Outcome {
        taskq::Outcome::Done(r#"{"ok":true}"#.into())
    }
}

#[tokio::test]
async fn one_worker_step_runs_every_due_task_then_finds_none() {
    let redis = RedisServer::start();
    let queue = open(&redis);
    queue
        .enqueue_many(&[name("a"), name("b"), name("c")])
        .await
        .unwrap();
    let worker = taskq::Worker::new(queue.clone(), Instant, taskq::WorkerConfig::default());

    assert_eq!(worker.run_once().await.unwrap(), taskq::Step::Processed(3));
    assert_eq!(worker.run_once().await.unwrap(), taskq::Step::Empty);

    let view = queue.get(&name("b")).await.unwrap().unwrap();
    assert_eq!(view.state, State::Done);
    assert_eq!(queue.stats().await.unwrap().totals["done"], 3);
}

fn used_memory(conn: &mut redis::Connection) -> u64 {
    let info: String = redis::cmd("INFO").arg("memory").query(conn).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_results_expire_and_redis_memory_returns_near_its_start() {
    let redis = RedisServer::start();
    let mut conn = redis.connection();
    let queue = open(&redis).with_enqueue_policy(EnqueuePolicy {
        result_ttl: Duration::from_secs(2),
        ..EnqueuePolicy::default()
    });
    let start = used_memory(&mut conn);
    let names: Vec<TaskName> = (0..100_000).map(|i| name(&format!("m{i}"))).collect();
    for chunk in names.chunks(1000) {
        queue.enqueue_many(chunk).await.unwrap();
    }
    let worker = taskq::Worker::new(
        queue.clone(),
        Instant,
        taskq::WorkerConfig {
            concurrency: 200,
            batch_size: 200,
            ..taskq::WorkerConfig::default()
        },
    );
    while worker.run_once().await.unwrap() != taskq::Step::Empty {}
    assert_eq!(queue.stats().await.unwrap().totals["done"], 100_000);
    let peak = used_memory(&mut conn);
    let prefix = queue.keys().task_prefix().to_owned();
    let keys: Vec<String> = conn
        .scan_match(format!("{prefix}*"))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let without_expiry = keys
        .iter()
        .filter(|key| conn.pttl::<_, i64>(key.as_str()).unwrap() == -1)
        .count();
    assert_eq!(without_expiry, 0, "done records without an expiry");

    let end = eventually(Duration::from_secs(30), "the results to expire", || {
        let mut conn = redis.connection();
        async move {
            let keys: u64 = redis::cmd("DBSIZE").query(&mut conn).unwrap();
            // What stays: the counters, the token sequence and the memory reading.
            (keys <= 3).then(|| used_memory(&mut conn))
        }
    })
    .await;
    let stats: Vec<redis::Value> = redis::cmd("MEMORY").arg("STATS").query(&mut conn).unwrap();
    assert!(
        end < start + 1024 * 1024 && end - start < (peak - start) / 10,
        "memory went from {start} to {peak} and back to {end} bytes: {stats:?}"
    );

    eprintln!(
        "FIGURES bounded-memory: tasks=100000 redis used_memory start={start} peak={peak} after-expiry={end}"
    );
}
