//! Scheduled and batch enqueues against a real redis-server: a task due later is queued and not
//! claimed before its time; a batch answers each task in order, duplicates included.

mod support;

use std::time::Duration;

use serde_json::value::RawValue;
use support::{name, open};
use taskq::{NewTask, RunAt, State};
use testkit::{RedisServer, eventually};

#[tokio::test]
async fn a_task_due_later_is_queued_and_not_claimed_before_its_time() {
    let redis = RedisServer::start();
    let queue = open(&redis);
    let later = queue
        .schedule(
            &name("later"),
            None,
            RunAt::After(Duration::from_millis(700)),
        )
        .await
        .unwrap();
    assert!(later.created);
    assert_eq!(later.view.state, State::Queued);
    let created = later.view.created_at_ms;
    assert_eq!(later.view.run_at_ms, Some(created + 700));
    // Read back, the record agrees with what the enqueue answered.
    let stored = queue.get(&name("later")).await.unwrap().unwrap();
    assert_eq!(stored.run_at_ms, Some(created + 700));

    let claim = queue.claim(10).await.unwrap();
    assert!(claim.tasks.is_empty(), "not before its time");
    let due_in = claim.next_due_in.expect("the task is in the due set");
    assert!(due_in <= Duration::from_millis(700), "{due_in:?}");

    let claimed = eventually(Duration::from_secs(5), "the task comes due", || async {
        let tasks = queue.claim(10).await.unwrap().tasks;
        (!tasks.is_empty()).then_some(tasks)
    })
    .await;
    let server_now = queue.stats().await.unwrap().server_time_ms;
    assert!(
        server_now >= created + 700,
        "claimed at {server_now}, due at {}",
        created + 700
    );
    assert_eq!(claimed[0].name, *"later");

    // An absolute time already past is now; a duplicate keeps the first task's time.
    let past = queue
        .schedule(&name("past"), None, RunAt::At(1))
        .await
        .unwrap();
    assert_eq!(past.view.run_at_ms, Some(past.view.created_at_ms));
    let again = queue
        .schedule(&name("past"), None, RunAt::After(Duration::from_secs(60)))
        .await
        .unwrap();
    assert!(!again.created);
    assert_eq!(again.view.run_at_ms, past.view.run_at_ms);
}

#[tokio::test]
async fn a_batch_answers_each_task_in_order_and_a_name_given_twice_is_created_once() {
    let redis = RedisServer::start();
    let queue = open(&redis);
    queue.enqueue(&name("old")).await.unwrap();
    let payload = |text: &str| Some(RawValue::from_string(text.to_owned()).unwrap());
    let mut tasks: Vec<NewTask> = (0..1500)
        .map(|i| NewTask {
            name: name(&format!("b{i:04}")),
            payload: payload(&format!("{{\"i\":{i}}}")),
            run_at: if i % 2 == 0 {
                RunAt::Now
            } else {
                RunAt::After(Duration::from_secs(60))
            },
            callback_url: None,
        })
        .collect();
    tasks.push(NewTask {
        name: name("b0001"),
        payload: payload("{\"i\":\"again\"}"),
        run_at: RunAt::Now,
        callback_url: None,
    });
    tasks.push(NewTask {
        name: name("old"),
        payload: None,
        run_at: RunAt::Now,
        callback_url: None,
    });
    let answers: Vec<_> = queue
        .submit_many(&tasks)
        .await
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(answers.len(), 1502);
    for (i, answer) in answers.iter().take(1500).enumerate() {
        assert!(answer.created, "{i}");
        assert_eq!(answer.view.task, format!("b{i:04}"));
        assert_eq!(
            answer.view.payload.as_ref().unwrap().get(),
            format!("{{\"i\":{i}}}")
        );
        let later = answer.view.run_at_ms.unwrap() > answer.view.created_at_ms;
        assert_eq!(later, i % 2 == 1, "{i}");
    }
    let duplicate = &answers[1500];
    assert!(!duplicate.created);
    assert_eq!(
        duplicate.view.payload.as_ref().unwrap().get(),
        "{\"i\":1}",
        "the first payload stays"
    );
    assert!(!answers[1501].created);
    let stats = queue.stats().await.unwrap();
    assert_eq!(stats.counts.due, 1501);
    assert_eq!(stats.counts.due_now, 751);
    assert_eq!(stats.totals["duplicates"], 2);
}
