//! Submit, cancel, list, stats, retry-all and purge against a real redis-server.

mod support;

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use redis::Commands;
use serde_json::value::RawValue;
use support::name;
use taskq::{Ack, Error, Queue, State, TaskName, WorkerPolicy};
use taskq::{Cancel, FinalState, MAX_PAYLOAD_BYTES};
use testkit::{RedisServer, eventually};

fn open(redis: &RedisServer) -> Queue {
    support::open(redis)
        .with_worker_policy(WorkerPolicy {
            max_attempts: 1,
            ..WorkerPolicy::default()
        })
        .with_dead_ttl(Duration::from_secs(600))
}

fn names(prefix: &str, n: usize) -> Vec<TaskName> {
    (0..n).map(|i| name(&format!("{prefix}-{i:04}"))).collect()
}

/// Claims every due task and finishes each: the first `done` complete, the rest die.
async fn finish_all(queue: &Queue, done: usize) {
    let mut finished = 0;
    loop {
        let tasks = queue.claim(1000).await.unwrap().tasks;
        if tasks.is_empty() {
            return;
        }
        for task in &tasks {
            if finished < done {
                queue.complete(task, "1").await.unwrap();
            } else {
                queue
                    .fail(task, "boom", Duration::ZERO, true)
                    .await
                    .unwrap();
            }
            finished += 1;
        }
    }
}

/// Every task of `state`, paging `limit` at a time; panics on a repeated task.
async fn list_all(queue: &Queue, state: State, limit: usize) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut cursor = None;
    loop {
        let page = queue.list(state, cursor.as_deref(), limit).await.unwrap();
        for task in page.tasks {
            assert_eq!(task.state, state);
            assert!(task.data.is_none(), "lists leave data out");
            assert!(seen.insert(task.task.clone()), "{} repeated", task.task);
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return seen,
        }
    }
}

#[tokio::test]
async fn cancelling_a_running_task_revokes_its_lease_and_the_workers_answers_are_stale() {
    let redis = RedisServer::start();
    let queue = open(&redis);
    queue.enqueue(&name("t")).await.unwrap();
    let task = queue.claim(1).await.unwrap().tasks.remove(0);

    let cancelled = queue.cancel(&name("t")).await.unwrap();

    let Cancel::Cancelled(view) = cancelled else {
        panic!("{cancelled:?}")
    };
    assert_eq!(view.state, State::Cancelled);
    assert!(view.cancelled_at_ms.is_some());
    assert_eq!(queue.complete(&task, "1").await.unwrap(), Ack::Stale);
    assert_eq!(
        queue.snooze(&task, "1", Duration::ZERO).await.unwrap(),
        Ack::Stale
    );
    assert_eq!(
        queue.fail(&task, "x", Duration::ZERO, false).await.unwrap(),
        Ack::Stale
    );
    assert_eq!(queue.release(&task).await.unwrap(), Ack::Stale);
    assert_eq!(
        queue.extend(std::slice::from_ref(&task)).await.unwrap(),
        [0]
    );
    assert!(queue.claim(10).await.unwrap().tasks.is_empty());
    let again = queue.enqueue(&name("t")).await.unwrap();
    assert!(!again.created, "a cancelled name dedups like a dead one");
    assert_eq!(again.view.state, State::Cancelled);
    let stats = queue.stats().await.unwrap();
    assert_eq!(
        (
            stats.counts.due,
            stats.counts.running,
            stats.counts.cancelled
        ),
        (0, 0, 1)
    );
    assert_eq!(stats.totals["stale"], 4);
    assert_eq!(stats.totals["cancelled"], 1);
    let ttl: i64 = redis
        .connection()
        .pttl(queue.keys().task(&name("t")))
        .unwrap();
    assert!(
        (590_000..=600_000).contains(&ttl),
        "kept for the dead ttl: {ttl}"
    );
}

#[tokio::test]
async fn cancel_is_safe_to_repeat_leaves_done_tasks_alone_and_knows_unknown_names() {
    let redis = RedisServer::start();
    let queue = open(&redis);
    queue.enqueue(&name("queued")).await.unwrap();
    queue.enqueue(&name("done")).await.unwrap();
    let tasks = queue.claim(2).await.unwrap().tasks;
    let done = tasks.iter().find(|t| t.name == "done").unwrap();
    queue.complete(done, "1").await.unwrap();
    let queued = tasks.iter().find(|t| t.name == "queued").unwrap();
    queue.release(queued).await.unwrap();

    assert!(matches!(
        queue.cancel(&name("queued")).await.unwrap(),
        Cancel::Cancelled(_)
    ));
    assert!(matches!(
        queue.cancel(&name("queued")).await.unwrap(),
        Cancel::AlreadyCancelled(_)
    ));
    assert!(matches!(
        queue.cancel(&name("done")).await.unwrap(),
        Cancel::Done(v) if v.state == State::Done
    ));
    assert!(matches!(
        queue.cancel(&name("never")).await.unwrap(),
        Cancel::NotFound
    ));
    assert_eq!(queue.stats().await.unwrap().totals["cancelled"], 1);
}

#[tokio::test]
async fn a_dead_task_can_be_cancelled_and_then_is_not_retried() {
    let redis = RedisServer::start();
    let queue = open(&redis);
    queue.enqueue(&name("d")).await.unwrap();
    finish_all(&queue, 0).await;

    queue.cancel(&name("d")).await.unwrap();

    assert_eq!(queue.retry_all_dead().await.unwrap(), 0);
    let stats = queue.stats().await.unwrap();
    assert_eq!((stats.counts.dead, stats.counts.cancelled), (0, 1));
}

#[tokio::test]
async fn concurrent_enqueues_share_script_calls_and_each_gets_its_own_answer() {
    let redis = RedisServer::start();
    let queue = open(&redis);
    let before = redis.usage().script_calls();

    // 400 enqueues at once: 100 names, each submitted 4 times with a payload naming its caller.
    let submits: Vec<_> = (0..400)
        .map(|i| {
            let queue = queue.clone();
            tokio::spawn(async move {
                let payload = RawValue::from_string(format!(r#"{{"by":{i}}}"#)).unwrap();
                let task = name(&format!("t-{}", i % 100));
                (i, queue.submit(&task, Some(&payload)).await.unwrap())
            })
        })
        .collect();
    let mut answers = Vec::new();
    for submit in submits {
        answers.push(submit.await.unwrap());
    }

    let calls = redis.usage().script_calls() - before;
    assert!(
        calls < 100,
        "400 concurrent enqueues took {calls} script calls"
    );
    let creators: Vec<_> = answers.iter().filter(|(_, a)| a.created).collect();
    assert_eq!(creators.len(), 100, "one task per name");
    let json = |view: &taskq::TaskView| serde_json::to_value(view).unwrap();
    for (i, answer) in &answers {
        let task = name(&answer.view.task);
        assert_eq!(
            task.as_str(),
            format!("t-{}", i % 100),
            "each caller gets its own task"
        );
        let stored = queue.get(&task).await.unwrap().unwrap();
        assert_eq!(json(&answer.view), json(&stored), "{task}");
        let creator = creators
            .iter()
            .find(|(_, a)| a.view.task == answer.view.task);
        let by = creator.unwrap().0;
        assert_eq!(stored.payload.unwrap().get(), format!(r#"{{"by":{by}}}"#));
    }
    let stats = queue.stats().await.unwrap();
    assert_eq!(
        (
            stats.counts.due,
            stats.totals["enqueued"],
            stats.totals["duplicates"]
        ),
        (100, 100, 300)
    );
    eprintln!("FIGURES shared-enqueue: enqueues=400 script_calls={calls}");
}

#[test]
fn a_queue_handle_enqueues_again_after_its_first_runtime_is_gone() {
    let redis = RedisServer::start();
    let runtime = || tokio::runtime::Runtime::new().unwrap();
    let queue = runtime().block_on(async { open(&redis) });
    for task in ["first", "second"] {
        // Each runtime is dropped after its turn, with the connection's and the enqueuer's tasks
        // in it: the next runtime's enqueues start new ones (the first call may meet the dead
        // connection and fail while it is replaced).
        runtime().block_on(eventually(Duration::from_secs(5), task, || async {
            queue
                .enqueue(&name(task))
                .await
                .ok()
                .filter(|answer| answer.created)
        }));
    }
}

#[tokio::test]
async fn submit_keeps_the_payload_and_a_duplicate_keeps_the_first() {
    let redis = RedisServer::start();
    let queue = open(&redis);
    let first = RawValue::from_string(r#"{"region": "eu", "n": [1, 2]}"#.into()).unwrap();
    let second = RawValue::from_string("2".into()).unwrap();

    let created = queue.submit(&name("p"), Some(&first)).await.unwrap();
    let duplicate = queue.submit(&name("p"), Some(&second)).await.unwrap();

    assert!(created.created && !duplicate.created);
    let shown = queue.get(&name("p")).await.unwrap().unwrap();
    // The view a new task's enqueue answers is built without reading the record back: it must
    // be the record as stored, as a duplicate's (read back) is.
    let json = |view: &taskq::TaskView| serde_json::to_value(view).unwrap();
    assert_eq!(json(&created.view), json(&shown));
    assert_eq!(json(&duplicate.view), json(&shown));
    let plain = queue.enqueue(&name("plain")).await.unwrap();
    assert_eq!(
        json(&plain.view),
        json(&queue.get(&name("plain")).await.unwrap().unwrap())
    );
    assert_eq!(shown.payload.unwrap().get(), first.get());
    let huge = RawValue::from_string(format!("\"{}\"", "x".repeat(MAX_PAYLOAD_BYTES))).unwrap();
    assert!(matches!(
        queue.submit(&name("huge"), Some(&huge)).await,
        Err(Error::PayloadTooLarge { .. })
    ));
    assert!(queue.get(&name("huge")).await.unwrap().is_none());
}

#[tokio::test]
async fn paging_never_skips_or_repeats_a_task_even_with_equal_scores_and_tasks_leaving() {
    let redis = RedisServer::start();
    let queue = open(&redis);
    // One script call gives every task the same run-at: the cursor must order by name too.
    let all = names("t", 1000);
    queue.enqueue_many(&all).await.unwrap();
    let mut seen = BTreeSet::new();
    let mut left = HashSet::new();
    let mut cursor: Option<String> = None;

    loop {
        let page = queue
            .list(State::Queued, cursor.as_deref(), 70)
            .await
            .unwrap();
        assert!(page.tasks.len() <= 70);
        for task in &page.tasks {
            assert!(seen.insert(task.task.clone()), "{} repeated", task.task);
        }
        // Tasks leave the set between pages, among them the cursor's own task.
        for task in queue.claim(7).await.unwrap().tasks {
            left.insert(task.name);
        }
        if let Some(last) = page.tasks.last() {
            let own = queue.cancel(&name(&last.task)).await.unwrap();
            assert!(matches!(own, Cancel::Cancelled(_)));
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }

    for task in &all {
        let name = task.as_str();
        assert!(
            seen.contains(name) || left.contains(name),
            "{name} was skipped"
        );
    }
}

#[tokio::test]
async fn each_state_lists_its_own_tasks() {
    let redis = RedisServer::start();
    let queue = open(&redis);
    queue.enqueue_many(&names("done", 30)).await.unwrap();
    queue.enqueue_many(&names("dead", 20)).await.unwrap();
    finish_all(&queue, 30).await;
    queue.enqueue_many(&names("run", 4)).await.unwrap();
    assert_eq!(queue.claim(4).await.unwrap().tasks.len(), 4);
    queue.enqueue_many(&names("proc", 5)).await.unwrap();
    for task in queue.claim(5).await.unwrap().tasks {
        let ack = queue.snooze(&task, "{}", Duration::from_secs(60)).await;
        assert_eq!(ack.unwrap(), Ack::Applied);
    }
    queue.enqueue_many(&names("queued", 12)).await.unwrap();
    queue.enqueue_many(&names("gone", 3)).await.unwrap();
    for gone in names("gone", 3) {
        queue.cancel(&gone).await.unwrap();
    }

    let counts = [
        (State::Queued, 12),
        (State::Processing, 5),
        (State::Done, 30),
        (State::Dead, 20),
        (State::Cancelled, 3),
    ];
    for (state, expected) in counts {
        let listed = list_all(&queue, state, 7).await;
        assert_eq!(listed.len(), expected, "{state}: {listed:?}");
    }
    assert_eq!(list_all(&queue, State::Running, 3).await.len(), 4);
    let due = list_all(&queue, State::Queued, 500).await.len()
        + list_all(&queue, State::Processing, 500).await.len();
    let stats = queue.stats().await.unwrap();
    assert_eq!(stats.counts.due as usize, due);
    assert!(matches!(
        queue.list(State::Dead, Some("not-a-cursor"), 10).await,
        Err(Error::InvalidCursor(_))
    ));
}

#[tokio::test]
async fn stats_count_each_set_and_the_age_of_the_oldest_due_task() {
    let redis = RedisServer::start();
    let queue = open(&redis);
    queue.enqueue_many(&names("a", 3)).await.unwrap();
    let before = queue.stats().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let stats = queue.stats().await.unwrap();

    assert_eq!((stats.counts.due, stats.counts.due_now), (3, 3));
    assert!(
        stats.oldest_due_age_ms >= 300,
        "{}",
        stats.oldest_due_age_ms
    );
    assert!(stats.server_time_ms >= before.server_time_ms + 300);
    assert_eq!(stats.totals["enqueued"], 3);
    let task = queue.claim(1).await.unwrap().tasks.remove(0);
    queue
        .snooze(&task, "{}", Duration::from_secs(60))
        .await
        .unwrap();
    let later = queue.stats().await.unwrap();
    assert_eq!((later.counts.due, later.counts.due_now), (3, 2));
}

#[tokio::test]
async fn retry_all_brings_back_every_dead_task_and_drops_stale_entries() {
    let redis = RedisServer::start();
    let queue = open(&redis);
    queue.enqueue_many(&names("d", 1200)).await.unwrap();
    finish_all(&queue, 0).await;
    // A stale entry: the record expired while the name stayed in the dead set.
    let stale = queue.keys().task(&name("d-0000"));
    let _: () = redis.connection().del(&stale).unwrap();

    let revived = queue.retry_all_dead().await.unwrap();

    assert_eq!(revived, 1199);
    let stats = queue.stats().await.unwrap();
    assert_eq!((stats.counts.dead, stats.counts.due), (0, 1199));
    assert_eq!(stats.totals["revived"], 1199);
    assert_eq!(queue.claim(1000).await.unwrap().tasks[0].attempts, 0);
}

#[tokio::test]
async fn purge_deletes_only_the_records_in_that_state_and_frees_their_names() {
    let redis = RedisServer::start();
    let queue = open(&redis);
    queue.enqueue_many(&names("done", 700)).await.unwrap();
    queue.enqueue_many(&names("dead", 600)).await.unwrap();
    finish_all(&queue, 700).await;
    queue.enqueue_many(&names("c", 2)).await.unwrap();
    for c in names("c", 2) {
        queue.cancel(&c).await.unwrap();
    }
    queue.enqueue_many(&names("live", 5)).await.unwrap();

    assert_eq!(queue.purge(FinalState::Done).await.unwrap(), 700);
    assert_eq!(queue.purge(FinalState::Dead).await.unwrap(), 600);
    assert_eq!(queue.purge(FinalState::Cancelled).await.unwrap(), 2);

    let keys: Vec<String> = redis.connection().keys("*").unwrap();
    let records: Vec<&String> = keys
        .iter()
        .filter(|k| k.starts_with(queue.keys().task_prefix()))
        .collect();
    assert_eq!(
        records.len(),
        5,
        "only the live tasks are left: {records:?}"
    );
    let stats = queue.stats().await.unwrap();
    assert_eq!((stats.counts.dead, stats.counts.cancelled), (0, 0));
    assert_eq!(stats.totals["purged"], 1302);
    assert!(queue.enqueue(&name("done-0001")).await.unwrap().created);
    assert!(queue.enqueue(&name("c-0001")).await.unwrap().created);
}
