//! The scripts' side of APIs that are submitted to, then polled, and that throttle: the remote
//! id and the values of the submit's answer kept in the record, the submit token fixed for a
//! task's life, webhook bodies kept for the next call, throttled answers that use no attempt.
//! Against a real redis-server.

mod support;

use std::time::Duration;

use support::{name, open};
use taskq::{Ack, ClaimedTask, Finish, Queue, State, WorkerPolicy};
use testkit::RedisServer;

fn submitting() -> WorkerPolicy {
    WorkerPolicy {
        submit_keys: true,
        max_attempts: 2,
        ..WorkerPolicy::default()
    }
}

async fn claim_one(queue: &Queue) -> ClaimedTask {
    let mut tasks = queue.claim(1).await.unwrap().tasks;
    assert_eq!(tasks.len(), 1, "one task is due");
    tasks.remove(0)
}

async fn finish(queue: &Queue, task: &ClaimedTask, finish: Finish<'_>) -> Ack {
    queue.finish_many(&[(task, finish)]).await.unwrap()[0]
}

#[tokio::test]
async fn a_submit_keeps_the_remote_id_which_every_later_claim_carries() {
    let redis = RedisServer::start();
    let queue = open(&redis).with_worker_policy(submitting());
    queue.enqueue(&name("job")).await.unwrap();

    let first = claim_one(&queue).await;
    assert_eq!(first.remote_id, None, "the first call is the submit");
    let ack = finish(
        &queue,
        &first,
        Finish::Submitted {
            remote_id: "operations/7",
            data: r#"{"id":"operations/7","status":"starting"}"#,
            kept: "",
            delay: Duration::ZERO,
        },
    )
    .await;
    assert_eq!(ack, Ack::Applied);

    let view = queue.get(&name("job")).await.unwrap().unwrap();
    assert_eq!(view.state, State::Processing, "the API holds a job for it");
    assert_eq!(view.remote_id.as_deref(), Some("operations/7"));
    assert_eq!(
        (view.polls, view.attempts),
        (0, 0),
        "a submit is not a poll"
    );
    assert_eq!(
        view.data.unwrap().get(),
        r#"{"id":"operations/7","status":"starting"}"#
    );

    let poll = claim_one(&queue).await;
    assert_eq!(poll.remote_id.as_deref(), Some("operations/7"));
    queue.snooze(&poll, "{}", Duration::ZERO).await.unwrap();
    let again = claim_one(&queue).await;
    assert_eq!(again.remote_id.as_deref(), Some("operations/7"));
    assert_eq!(again.polls, 1);
}

#[tokio::test]
async fn the_submit_token_is_fixed_for_the_tasks_life_and_renewed_by_a_retry() {
    let redis = RedisServer::start();
    let queue = open(&redis).with_worker_policy(submitting());
    queue.enqueue(&name("job")).await.unwrap();

    let first = claim_one(&queue).await;
    let token = first
        .submit_token
        .clone()
        .expect("a submitting queue gives one");
    assert_eq!(token, first.token, "the first submitting claim's token");
    queue
        .fail(&first, "connection reset", Duration::ZERO, false)
        .await
        .unwrap();

    let second = claim_one(&queue).await;
    assert_ne!(second.token, first.token, "a new claim, a new lease token");
    assert_eq!(
        second.submit_token.as_deref(),
        Some(token.as_str()),
        "the same submit key"
    );
    queue
        .fail(&second, "connection reset", Duration::ZERO, false)
        .await
        .unwrap();
    assert_eq!(
        queue.get(&name("job")).await.unwrap().unwrap().state,
        State::Dead
    );

    assert!(queue.retry_dead(&name("job")).await.unwrap());
    let revived = claim_one(&queue).await;
    assert_eq!(revived.remote_id, None);
    assert_eq!(
        revived.submit_token.as_deref(),
        Some(revived.token.as_str())
    );
    assert_ne!(
        revived.submit_token.as_deref(),
        Some(token.as_str()),
        "a retry makes a new job"
    );
}

#[tokio::test]
async fn a_retried_task_submits_anew_and_queues_that_do_not_submit_store_no_token() {
    let redis = RedisServer::start();
    let queue = open(&redis).with_worker_policy(submitting());
    queue.enqueue(&name("job")).await.unwrap();
    let task = claim_one(&queue).await;
    finish(
        &queue,
        &task,
        Finish::Submitted {
            remote_id: "r1",
            data: "null",
            kept: "",
            delay: Duration::ZERO,
        },
    )
    .await;
    let poll = claim_one(&queue).await;
    queue
        .fail(
            &poll,
            "the API reported the job failed",
            Duration::ZERO,
            true,
        )
        .await
        .unwrap();
    assert!(queue.retry_dead(&name("job")).await.unwrap());
    let view = queue.get(&name("job")).await.unwrap().unwrap();
    assert_eq!((view.state, view.remote_id), (State::Queued, None));

    let plain = open(&redis);
    plain.enqueue(&name("plain")).await.unwrap();
    assert_eq!(claim_one(&plain).await.submit_token, None);
}

#[tokio::test]
async fn a_throttled_answer_uses_no_attempt_and_is_counted_and_done_clears_its_error() {
    let redis = RedisServer::start();
    let queue = open(&redis).with_worker_policy(WorkerPolicy {
        max_attempts: 1,
        ..WorkerPolicy::default()
    });
    queue.enqueue(&name("busy")).await.unwrap();

    for n in 1..=3 {
        let task = claim_one(&queue).await;
        assert_eq!(task.throttled, n - 1);
        let throttled = Finish::Throttled {
            message: "the API answered HTTP 429",
            delay: Duration::ZERO,
        };
        assert_eq!(finish(&queue, &task, throttled).await, Ack::Applied);
    }

    let view = queue.get(&name("busy")).await.unwrap().unwrap();
    assert_eq!(
        view.state,
        State::Queued,
        "alive after three throttles with MAX_ATTEMPTS=1"
    );
    assert_eq!((view.attempts, view.throttled), (0, 3));
    assert_eq!(
        view.last_error.as_deref(),
        Some("the API answered HTTP 429")
    );
    let stats = queue.stats().await.unwrap();
    assert_eq!(stats.totals["throttled"], 3);
    assert!(!stats.totals.contains_key("retried"));

    let task = claim_one(&queue).await;
    queue.complete(&task, "{}").await.unwrap();
    let view = queue.get(&name("busy")).await.unwrap().unwrap();
    assert_eq!(
        (view.state, view.last_error),
        (State::Done, None),
        "a done task shows no error"
    );
}

#[tokio::test]
async fn a_throttled_answer_waits_and_past_the_poll_deadline_the_task_dies() {
    let redis = RedisServer::start();
    let queue = open(&redis).with_worker_policy(WorkerPolicy {
        max_poll: Some(Duration::from_secs(2)),
        ..WorkerPolicy::default()
    });
    queue.enqueue(&name("busy")).await.unwrap();
    let task = claim_one(&queue).await;
    let wait = Finish::Throttled {
        message: "slow down",
        delay: Duration::from_secs(60),
    };
    finish(&queue, &task, wait).await;
    let claim = queue.claim(1).await.unwrap();
    assert!(claim.tasks.is_empty(), "not due before its Retry-After");
    assert!(claim.next_due_in.unwrap() > Duration::from_secs(50));

    let redis_key = queue.keys().due_key().to_owned();
    let mut conn = redis.connection();
    let _: i64 = redis::cmd("ZADD")
        .arg(&redis_key)
        .arg(0)
        .arg("busy")
        .query(&mut conn)
        .unwrap();
    // Past the poll deadline, counted from the task's creation (a wait for time itself to pass).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let late = claim_one(&queue).await;
    let ack = finish(
        &queue,
        &late,
        Finish::Throttled {
            message: "slow down",
            delay: Duration::ZERO,
        },
    )
    .await;
    assert_eq!(ack, Ack::Dead);
    let view = queue.get(&name("busy")).await.unwrap().unwrap();
    assert_eq!(view.state, State::Dead);
    assert!(
        view.last_error
            .unwrap()
            .starts_with("poll deadline passed: throttled 2 times")
    );
}

#[tokio::test]
async fn values_kept_from_the_submit_and_a_webhooks_body_reach_the_next_calls() {
    let redis = RedisServer::start();
    let mut conn = redis.connection();
    let queue = open(&redis).with_worker_policy(submitting());
    queue.enqueue(&name("job")).await.unwrap();
    let first = claim_one(&queue).await;
    assert_eq!((first.kept.as_deref(), first.hook.as_deref()), (None, None));
    let kept = r#"{"status_url":"https://api.test/r/1/status"}"#;
    let submitted = Finish::Submitted {
        remote_id: "r1",
        data: "{}",
        kept,
        delay: Duration::from_secs(60),
    };
    assert_eq!(finish(&queue, &first, submitted).await, Ack::Applied);

    // A webhook for the run hurries the task and leaves its body for the call.
    let run = first.submit_token.clone().unwrap();
    let body = r#"{"status":"OK","payload":{"n":1}}"#;
    let hurried = queue.hurry(&name("job"), &run, Some(body)).await.unwrap();
    assert_eq!(hurried, taskq::Hurry::Hurried);
    let call = claim_one(&queue).await;
    assert_eq!(call.kept.as_deref(), Some(kept));
    assert_eq!(call.hook.as_deref(), Some(body));
    // The body stays until the task ends, then goes with it.
    queue.snooze(&call, "{}", Duration::ZERO).await.unwrap();
    let again = claim_one(&queue).await;
    assert_eq!(again.hook.as_deref(), Some(body));
    queue.complete(&again, "{}").await.unwrap();
    let hook: Option<String> = redis::cmd("HGET")
        .arg(queue.keys().task(&name("job")))
        .arg("hook")
        .query(&mut conn)
        .unwrap();
    assert_eq!(hook, None, "a done record keeps no webhook body");

    // At maxmemory a webhook still hurries, without its body.
    queue.enqueue(&name("full")).await.unwrap();
    let first = claim_one(&queue).await;
    let submitted = Finish::Submitted {
        remote_id: "r2",
        data: "{}",
        kept: "",
        delay: Duration::from_secs(60),
    };
    finish(&queue, &first, submitted).await;
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg("1")
        .query(&mut conn)
        .unwrap();
    let run = first.submit_token.clone().unwrap();
    let hurried = queue.hurry(&name("full"), &run, Some(body)).await.unwrap();
    assert_eq!(hurried, taskq::Hurry::Hurried);
    let call = claim_one(&queue).await;
    assert_eq!((call.name.as_str(), call.hook.as_deref()), ("full", None));
}
