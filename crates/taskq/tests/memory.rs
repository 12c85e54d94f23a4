//! A queue against a Redis with little memory: admission keeps enqueues under the high-water
//! mark, whatever the burst and however many enqueuers; at `maxmemory` what drains the queue
//! still runs and only what adds data is refused.

mod support;

use std::time::Duration;

use redis::Commands;
use serde_json::value::RawValue;
use support::{name, open};
use taskq::connect::WaitForReplicas;
use taskq::server::Problem;
use taskq::{
    Ack, ConnectOptions, EnqueuePolicy, Error, FinalState, Finish, Full, NewTask, Queue, RunAt,
    State,
};
use testkit::{RedisServer, eventually, unique_queue};

fn info_field(conn: &mut redis::Connection, field: &str) -> u64 {
    let info: String = redis::cmd("INFO").arg("memory").query(conn).unwrap();
    info.lines()
        .find_map(|line| line.strip_prefix(&format!("{field}:")))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn payload(bytes: usize) -> Box<RawValue> {
    RawValue::from_string(format!("\"{}\"", "p".repeat(bytes - 2))).unwrap()
}

fn task(name_: &str, bytes: usize) -> NewTask {
    NewTask {
        name: name(name_),
        payload: (bytes > 0).then(|| payload(bytes)),
        run_at: RunAt::Now,
        callback_url: None,
    }
}

/// Puts Redis at `maxmemory` (behind the queue's back) or back to no limit.
fn set_full(conn: &mut redis::Connection, full: bool) {
    let max = if full { "1" } else { "0" };
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(max)
        .query(conn)
        .unwrap();
}

#[tokio::test]
async fn at_maxmemory_the_queue_drains_and_refuses_only_what_adds_data() {
    let redis = RedisServer::start();
    let mut conn = redis.connection();
    let queue = open(&redis);
    for (task_name, bytes) in [("big", 2000), ("partial", 10), ("bare", 0), ("failing", 0)] {
        queue.submit_task(task(task_name, bytes)).await.unwrap();
    }
    queue.submit_task(task("growing", 0)).await.unwrap();
    queue.submit_task(task("dead", 0)).await.unwrap();
    // Before Redis fills: "partial" and "growing" got partial data, "dead" died.
    for task in queue.claim(10).await.unwrap().tasks {
        let finish = match task.name.as_str() {
            "partial" => Finish::Processing {
                data: &format!("\"{}\"", "d".repeat(300)),
                delay: Duration::ZERO,
            },
            "growing" => Finish::Processing {
                data: "\"small\"",
                delay: Duration::ZERO,
            },
            "dead" => Finish::Failed {
                error: "gone",
                delay: Duration::ZERO,
                permanent: true,
            },
            _ => {
                queue.release(&task).await.unwrap();
                continue;
            }
        };
        queue.finish_many(&[(&task, finish)]).await.unwrap();
    }
    queue.submit_task(task("cancel-me", 0)).await.unwrap();

    set_full(&mut conn, true);

    // What adds data is refused, and nothing is written.
    let refused = queue.submit_task(task("new", 0)).await.unwrap_err();
    assert!(
        matches!(refused, Error::Full(Full::MaxMemory)),
        "{refused:?}"
    );
    let refused = queue.retry_dead(&name("dead")).await.unwrap_err();
    assert!(
        matches!(refused, Error::Full(Full::MaxMemory)),
        "{refused:?}"
    );
    assert!(queue.get(&name("new")).await.unwrap().is_none());
    // A task already there is still answered.
    let again = queue.submit_task(task("big", 2000)).await.unwrap();
    assert!(!again.created);
    assert_eq!(again.view.task, "big");
    let batch = queue
        .submit_many(&[task("big", 0), task("new-in-batch", 0)])
        .await
        .unwrap();
    assert!(batch[0].as_ref().is_ok_and(|answer| !answer.created));
    assert_eq!(batch[1].as_ref().unwrap_err(), &Full::MaxMemory);

    // What drains runs: claims, leases, outcomes, cancels.
    let claimed = queue.claim(10).await.unwrap().tasks;
    let mut names: Vec<&str> = claimed.iter().map(|task| task.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["bare", "big", "cancel-me", "failing", "growing", "partial"]
    );
    assert!(queue.extend(&claimed).await.unwrap().is_empty());
    let by_name = |wanted: &str| {
        claimed
            .iter()
            .find(|task| task.name.as_str() == wanted)
            .unwrap()
    };
    let result_500 = format!("\"{}\"", "r".repeat(498));
    let result_200 = format!("\"{}\"", "r".repeat(198));
    let long_error = "é".repeat(1000);
    let bigger_partial = format!("\"{}\"", "g".repeat(5000));
    let acks = queue
        .finish_many(&[
            (by_name("big"), Finish::Done(&result_500)),
            (by_name("partial"), Finish::Done(&result_200)),
            (by_name("bare"), Finish::Done("{\"no\": \"room\"}")),
            (
                by_name("failing"),
                Finish::Failed {
                    error: &long_error,
                    delay: Duration::ZERO,
                    permanent: false,
                },
            ),
            (
                by_name("growing"),
                Finish::Processing {
                    data: &bigger_partial,
                    delay: Duration::ZERO,
                },
            ),
        ])
        .await
        .unwrap();
    assert_eq!(
        acks,
        [
            Ack::Applied,
            Ack::Applied,
            Ack::Deferred,
            Ack::Applied,
            Ack::Applied
        ]
    );
    assert_eq!(
        queue.release(by_name("cancel-me")).await.unwrap(),
        Ack::Applied
    );

    let view = |task_name: &'static str| {
        let queue = queue.clone();
        async move { queue.get(&name(task_name)).await.unwrap().unwrap() }
    };
    // A result takes the place of the partial data, and of the payload when it must.
    let big = view("big").await;
    assert_eq!(
        (big.state, big.data.unwrap().get()),
        (State::Done, result_500.as_str())
    );
    assert!(
        big.payload.is_none(),
        "the payload made room for the result"
    );
    let partial = view("partial").await;
    assert_eq!(partial.data.unwrap().get(), result_200);
    assert!(
        partial.payload.is_some(),
        "the partial data made room: the payload stays"
    );
    // A result that fits nowhere waits for room, its task due again later, no attempt used.
    let bare = view("bare").await;
    assert_eq!((bare.state, bare.attempts), (State::Queued, 0));
    assert!(bare.data.is_none());
    assert!(bare.run_at_ms.unwrap() >= bare.updated_at_ms + 4_000);
    // An error is cut, between characters; partial data that grows keeps the last.
    let failing = view("failing").await;
    let error = failing.last_error.unwrap();
    assert!(
        error.len() <= 256 && long_error.starts_with(&error),
        "{}",
        error.len()
    );
    let growing = view("growing").await;
    assert_eq!(
        (growing.polls, growing.data.unwrap().get()),
        (2, "\"small\"")
    );
    let stats = queue.stats().await.unwrap();
    assert_eq!(stats.totals["results_deferred"], 1);
    assert_eq!(stats.totals["payloads_dropped"], 1);
    // An operator frees memory with what only deletes.
    assert!(matches!(
        queue.cancel(&name("cancel-me")).await.unwrap(),
        taskq::Cancel::Cancelled(_)
    ));
    assert_eq!(queue.purge(FinalState::Done).await.unwrap(), 2);
    queue.sweep().await.unwrap();

    // With room again, the waiting result is stored at its next call.
    set_full(&mut conn, false);
    let bare = eventually(
        taskq::WAIT_FOR_ROOM * 2,
        "the waiting task due again",
        || {
            let queue = queue.clone();
            async move {
                let tasks = queue.claim(10).await.unwrap().tasks;
                tasks.into_iter().find(|task| task.name.as_str() == "bare")
            }
        },
    )
    .await;
    let bare = &bare;
    assert_eq!(
        queue.complete(bare, "{\"no\": \"room\"}").await.unwrap(),
        Ack::Applied
    );
    assert_eq!(view("bare").await.state, State::Done);
    assert!(queue.retry_dead(&name("dead")).await.unwrap());
}

/// Queues sharing one Redis, each with its own connection and batcher, as producers do.
fn enqueuers(redis: &RedisServer, queue_name: &str, count: usize) -> Vec<Queue> {
    let url = redis.url().parse().unwrap();
    (0..count)
        .map(|_| Queue::open(&url, &ConnectOptions::default(), queue_name).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_from_several_enqueuers_stops_at_the_high_water_mark() {
    const MAXMEMORY: u64 = 12 << 20;
    let redis = RedisServer::start_with(&[
        "--maxmemory",
        &MAXMEMORY.to_string(),
        "--maxmemory-policy",
        "noeviction",
    ]);
    let mut conn = redis.connection();
    let before = info_field(&mut conn, "used_memory");
    let queue_name = unique_queue("burst");
    // Three enqueuers at once, 40 KB payloads: 120 tasks one by one and 6 batches of 20, about
    // 11 MB in all, while about 9 MB fit under the mark.
    let mut calls = tokio::task::JoinSet::new();
    for (e, queue) in enqueuers(&redis, &queue_name, 3).into_iter().enumerate() {
        for i in 0..40 {
            let queue = queue.clone();
            calls.spawn(async move {
                vec![
                    queue
                        .submit_task(task(&format!("one-{e}-{i}"), 40_000))
                        .await,
                ]
            });
        }
        for b in 0..2 {
            let queue = queue.clone();
            calls.spawn(async move {
                let tasks: Vec<NewTask> = (0..20)
                    .map(|i| task(&format!("batch-{e}-{b}-{i}"), 40_000))
                    .collect();
                queue
                    .submit_many(&tasks)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|answer| answer.map_err(Error::Full))
                    .collect()
            });
        }
    }
    let (mut created, mut refused) = (0, 0);
    while let Some(answers) = calls.join_next().await {
        for answer in answers.unwrap() {
            match answer {
                Ok(enqueued) => created += usize::from(enqueued.created),
                Err(Error::Full(Full::Memory { used, mark })) => {
                    assert!(used > mark);
                    refused += 1;
                }
                Err(other) => panic!("{other:?}"),
            }
        }
    }

    let mark = MAXMEMORY * 85 / 100;
    let peak = info_field(&mut conn, "used_memory_peak");
    let used = info_field(&mut conn, "used_memory");
    eprintln!(
        "{created} created, {refused} refused; Redis used {before} bytes before, {used} after, \
         {peak} at its peak; mark {mark}, maxmemory {MAXMEMORY}"
    );
    assert_eq!(created + refused, 240);
    assert!(
        refused > 0 && created > 100,
        "{created} created, {refused} refused"
    );
    assert!(used <= mark, "{used} bytes in use, past the mark of {mark}");
    assert!(
        peak <= MAXMEMORY,
        "Redis peaked at {peak} bytes, past maxmemory"
    );
}

#[tokio::test]
async fn memory_freed_is_seen_by_the_next_enqueue() {
    let redis =
        RedisServer::start_with(&["--maxmemory", "4mb", "--maxmemory-policy", "noeviction"]);
    let mut conn = redis.connection();
    let queue = open(&redis);
    // 2.5 MB in 25 keys: Redis (about 1 MB empty) passes the mark of 3.4 MB, not maxmemory.
    let filler: String = "f".repeat(100 << 10);
    for i in 0..25 {
        let () = conn.set(format!("filler-{i}"), &filler).unwrap();
    }
    let refused = queue
        .submit_task(task("after-filler", 40_000))
        .await
        .unwrap_err();
    assert!(
        matches!(refused, Error::Full(Full::Memory { .. })),
        "{refused:?}"
    );

    for i in 0..25 {
        let () = conn.del(format!("filler-{i}")).unwrap();
    }
    // No watch runs here: the refusal read memory afresh, and so will the next enqueue.
    let created = eventually(
        Duration::from_secs(2),
        "the freed memory to be seen",
        || {
            let queue = queue.clone();
            async move { queue.submit_task(task("after-filler", 40_000)).await.ok() }
        },
    )
    .await;
    assert!(created.created);
}

#[tokio::test]
async fn max_queued_holds_exactly_under_concurrent_enqueues() {
    let redis = RedisServer::start();
    let queue_name = unique_queue("max");
    let policy = EnqueuePolicy {
        max_queued: Some(10),
        ..EnqueuePolicy::default()
    };
    let mut calls = tokio::task::JoinSet::new();
    for (e, queue) in enqueuers(&redis, &queue_name, 2).into_iter().enumerate() {
        let queue = queue.with_enqueue_policy(policy.clone());
        for i in 0..20 {
            let queue = queue.clone();
            calls.spawn(async move { queue.enqueue(&name(&format!("t-{e}-{i}"))).await });
        }
    }
    let (mut created, mut refused) = (0, 0);
    while let Some(answer) = calls.join_next().await {
        match answer.unwrap() {
            Ok(enqueued) => created += usize::from(enqueued.created),
            Err(Error::Full(Full::MaxQueued {
                queued: 10,
                max: 10,
            })) => refused += 1,
            Err(other) => panic!("{other:?}"),
        }
    }
    assert_eq!((created, refused), (10, 30));
}

/// The report's problem of too few replicas, if it has one.
fn too_few(report: &taskq::server::ServerReport) -> Option<Problem> {
    report
        .problems()
        .into_iter()
        .find(|problem| matches!(problem, Problem::TooFewReplicas { .. }))
}

#[tokio::test]
async fn fewer_replicas_than_every_change_waits_for_is_a_problem_until_one_is_back() {
    let master = RedisServer::start();
    let url = master.url().parse().unwrap();
    let options = ConnectOptions {
        wait_for_replicas: Some(WaitForReplicas {
            replicas: 1,
            timeout: Duration::from_millis(100),
        }),
        ..ConnectOptions::default()
    };
    let queue = Queue::open(&url, &options, &unique_queue("replicas")).unwrap();
    let report = queue.server_report().await.unwrap();
    assert_eq!((report.replicas, report.wait_replicas), (0, 1));
    let problem = too_few(&report).expect("too few replicas is a problem");
    assert_eq!(
        problem,
        Problem::TooFewReplicas {
            online: 0,
            wanted: 1
        }
    );
    assert!(
        problem.to_string().contains("one more replica"),
        "{problem}"
    );

    let port = master.port().to_string();
    let mut replica = RedisServer::start_with(&["--replicaof", "127.0.0.1", &port]);
    let report = |queue: &Queue| {
        let queue = queue.clone();
        async move { queue.server_report().await.unwrap() }
    };
    eventually(Duration::from_secs(10), "the replica to be online", || {
        let report = report(&queue);
        async move { too_few(&report.await).is_none().then_some(()) }
    })
    .await;
    replica.kill();
    eventually(
        Duration::from_secs(10),
        "the lost replica to be seen",
        || {
            let report = report(&queue);
            async move { too_few(&report.await).map(|_| ()) }
        },
    )
    .await;
}
