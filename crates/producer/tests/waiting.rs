//! Waiting for results over real sockets against a real redis-server: long-polls (`?wait=`) that
//! answer the moment a task is final and at their deadline when it is not, a thousand of them at
//! once, a lost subscription and a Redis restart in the middle, a producer stopping under them;
//! and the server-sent events of a task, in order, resumable.
//!
//! The test plays the consumer through the library (claim, snooze, complete), so it knows the
//! instant each task changes.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use support::{get, metrics, spawn_producer};
use taskq::{Finish, Queue, TaskName};
use testkit::{RedisServer, eventually};

const PATIENCE: Duration = Duration::from_secs(20);

fn name(s: &str) -> TaskName {
    TaskName::parse(s).unwrap()
}

/// The producer's `taskq_waiting_requests`.
async fn waiting(addr: SocketAddr) -> u64 {
    let text = metrics(addr).await;
    text.lines()
        .find_map(|line| line.strip_prefix("taskq_waiting_requests "))
        .and_then(|n| n.parse().ok())
        .expect("taskq_waiting_requests in /metrics")
}

async fn until_waiting(addr: SocketAddr, n: u64) {
    eventually(PATIENCE, "requests waiting", || async {
        (waiting(addr).await == n).then_some(())
    })
    .await;
}

/// Claims every due task (the test is the only consumer), `batch` at a time as a consumer would,
/// and finishes each: dead (a permanent failure) when `dies` says so, else done with its name as
/// its result. Answers how many it finished.
async fn finish_all(queue: &Queue, batch: usize, dies: impl Fn(&TaskName) -> bool) -> usize {
    let mut finished = 0;
    loop {
        let claim = queue.claim(batch).await.unwrap();
        if claim.tasks.is_empty() {
            return finished;
        }
        let results: Vec<String> = claim
            .tasks
            .iter()
            .map(|task| format!(r#"{{"for":"{}"}}"#, task.name.as_str()))
            .collect();
        let outcomes: Vec<_> = claim
            .tasks
            .iter()
            .zip(&results)
            .map(|(task, result)| {
                let finish = if dies(&task.name) {
                    Finish::Failed {
                        error: "gone wrong",
                        delay: Duration::ZERO,
                        permanent: true,
                    }
                } else {
                    Finish::Done(result)
                };
                (task, finish)
            })
            .collect();
        queue.finish_many(&outcomes).await.unwrap();
        finished += outcomes.len();
    }
}

/// Completes every due task: [`finish_all`] with none dying.
async fn complete_all(queue: &Queue) -> usize {
    finish_all(queue, 500, |_| false).await
}

#[tokio::test]
async fn a_long_poll_answers_the_moment_its_task_is_done() {
    let redis = RedisServer::start();
    let (addr, _stop, queue) = spawn_producer(&redis).await;
    until_waiting(addr, 0).await;

    let poll = tokio::spawn(async move {
        let answer = get(addr, "/?task-name=soon&wait=30").await;
        (answer, Instant::now())
    });
    until_waiting(addr, 1).await;
    let claim = queue.claim(1).await.unwrap();
    let finished = Instant::now();
    queue.complete(&claim.tasks[0], r#"{"r":1}"#).await.unwrap();
    let ((status, headers, body), answered) = poll.await.unwrap();

    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["state"], "done");
    assert_eq!(body["data"]["r"], 1);
    assert_eq!(body["enqueued"], true, "this request created the task");
    assert!(headers.get("retry-after").is_none());
    let late = answered - finished;
    eprintln!("FIGURES long-poll: answered {late:?} after the result was stored");
    assert!(late < Duration::from_millis(500), "{late:?}");
    assert_eq!(waiting(addr).await, 0);
}

#[tokio::test]
async fn a_long_poll_answers_at_its_deadline_when_nothing_happens_and_bad_waits_are_400() {
    let redis = RedisServer::start();
    let (addr, _stop, queue) = spawn_producer(&redis).await;
    queue.enqueue(&name("slow")).await.unwrap();
    // A change that is not final (the task runs) does not end a long-poll.
    let poll = tokio::spawn(async move {
        let started = Instant::now();
        (get(addr, "/tasks/slow?wait=1.5").await, started.elapsed())
    });
    until_waiting(addr, 1).await;
    let claim = queue.claim(1).await.unwrap();
    assert_eq!(claim.tasks.len(), 1);
    let ((status, _, body), took) = poll.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["state"], "running");
    assert!(took >= Duration::from_millis(1500), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");

    // A final task answers at once, wait or not; a name never seen is 404 at once.
    queue.complete(&claim.tasks[0], r#"{"r":2}"#).await.unwrap();
    let started = Instant::now();
    let (status, _, body) = get(addr, "/tasks/slow?wait=60").await;
    assert_eq!(
        (status, body["state"].as_str()),
        (StatusCode::OK, Some("done"))
    );
    let (status, _, _) = get(addr, "/tasks/never?wait=60").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(started.elapsed() < Duration::from_secs(2));

    for bad in [
        "wait=61",
        "wait=-1",
        "wait=abc",
        "wait=1&wait=2",
        "wait=0.0001",
    ] {
        let (status, _, body) = get(addr, &format!("/tasks/slow?{bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(body["error"].as_str().unwrap().contains("wait"), "{bad}");
        let (status, _, _) = get(addr, &format!("/?task-name=new-{bad}&{bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    }
    assert_eq!(
        get(addr, "/tasks/new-wait=61").await.0,
        StatusCode::NOT_FOUND,
        "a bad wait enqueues nothing"
    );
}

#[tokio::test]
async fn a_thousand_concurrent_long_polls_are_each_answered_with_their_own_final_view() {
    let redis = RedisServer::start();
    let (addr, _stop, queue) = spawn_producer(&redis).await;
    let names: Vec<TaskName> = (0..1000).map(|i| name(&format!("t{i}"))).collect();
    queue.enqueue_many(&names).await.unwrap();
    let polls: Vec<_> = (0..1000)
        .map(|i| tokio::spawn(async move { get(addr, &format!("/tasks/t{i}?wait=60")).await }))
        .collect();
    until_waiting(addr, 1000).await;

    // A third die, one is cancelled, the rest are done, in batches as a consumer would.
    queue.cancel(&name("t7")).await.unwrap();
    finish_all(&queue, 100, |name| {
        name.as_str()[1..]
            .parse::<usize>()
            .unwrap()
            .is_multiple_of(3)
    })
    .await;

    for (i, poll) in polls.into_iter().enumerate() {
        let (status, _, body) = tokio::time::timeout(PATIENCE, poll)
            .await
            .expect("answered")
            .unwrap();
        assert_eq!(status, StatusCode::OK, "t{i}");
        assert_eq!(body["task"], format!("t{i}"));
        match i {
            7 => assert_eq!(body["state"], "cancelled"),
            i if i.is_multiple_of(3) => assert_eq!(body["state"], "dead", "t{i}"),
            i => {
                assert_eq!(body["state"], "done", "t{i}");
                assert_eq!(body["data"]["for"], format!("t{i}"));
            }
        }
    }
    assert_eq!(waiting(addr).await, 0);
}

#[tokio::test]
async fn a_change_made_while_the_subscription_was_lost_still_ends_the_long_poll() {
    let redis = RedisServer::start();
    let (addr, _stop, queue) = spawn_producer(&redis).await;
    queue.enqueue(&name("missed")).await.unwrap();
    let poll = tokio::spawn(async move { get(addr, "/tasks/missed?wait=30").await });
    until_waiting(addr, 1).await;

    // Cut the producer's pub/sub connection and finish the task before it subscribes again:
    // the message is published to nobody.
    let mut admin = redis.connection();
    let cut: u64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query(&mut admin)
        .unwrap();
    assert!(cut >= 1);
    complete_all(&queue).await;

    let (status, _, body) = tokio::time::timeout(Duration::from_secs(10), poll)
        .await
        .expect("answered once subscribed again, long before its 30 s")
        .unwrap();
    assert_eq!(
        (status, body["state"].as_str()),
        (StatusCode::OK, Some("done"))
    );
}

#[tokio::test]
async fn long_polls_live_through_a_redis_restart() {
    let mut redis = RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let (addr, _stop, queue) = spawn_producer(&redis).await;
    let names: Vec<TaskName> = (0..20).map(|i| name(&format!("r{i}"))).collect();
    queue.enqueue_many(&names).await.unwrap();
    let polls: Vec<_> = (0..20)
        .map(|i| tokio::spawn(async move { get(addr, &format!("/tasks/r{i}?wait=60")).await }))
        .collect();
    until_waiting(addr, 20).await;

    redis.restart();
    eventually(PATIENCE, "queue reachable again", || async {
        queue.claim(0).await.ok()
    })
    .await;
    assert_eq!(
        complete_all(&queue).await,
        20,
        "the tasks outlived the restart"
    );
    for poll in polls {
        let (status, _, body) = tokio::time::timeout(PATIENCE, poll)
            .await
            .expect("answered")
            .unwrap();
        assert_eq!(
            (status, body["state"].as_str()),
            (StatusCode::OK, Some("done"))
        );
    }
}

#[tokio::test]
async fn a_stopping_producer_answers_its_long_polls_at_once() {
    let redis = RedisServer::start();
    let (addr, stop, queue) = spawn_producer(&redis).await;
    queue.enqueue(&name("pending")).await.unwrap();
    let poll = tokio::spawn(async move { get(addr, "/tasks/pending?wait=60").await });
    until_waiting(addr, 1).await;

    let started = Instant::now();
    drop(stop);
    let (status, _, body) = tokio::time::timeout(Duration::from_secs(5), poll)
        .await
        .expect("answered at shutdown, not after 60 s")
        .unwrap();
    assert_eq!(
        (status, body["state"].as_str()),
        (StatusCode::OK, Some("queued"))
    );
    assert!(started.elapsed() < Duration::from_secs(5));

    // A client that polls again meets a new producer, and its task's news.
    let (addr, _stop, _) =
        support::spawn_producer_with(&redis, &["--queue-name", queue.keys().queue()]).await;
    let poll = tokio::spawn(async move { get(addr, "/tasks/pending?wait=30").await });
    until_waiting(addr, 1).await;
    complete_all(&queue).await;
    let (_, _, body) = poll.await.unwrap();
    assert_eq!(body["state"], "done");
}

/// One server-sent event.
#[derive(Debug, Clone, PartialEq)]
struct SseEvent {
    id: String,
    event: String,
    data: Value,
}

/// The events of `GET /tasks/NAME/events` as they come, on a channel; the stream's end closes
/// it. Parsed by the spec's rules for the fields used here.
async fn events(
    addr: SocketAddr,
    task: &str,
    last_event_id: Option<&str>,
) -> (StatusCode, tokio::sync::mpsc::UnboundedReceiver<SseEvent>) {
    let mut request = testkit::http_client().get(format!("http://{addr}/tasks/{task}/events"));
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    if status == StatusCode::OK {
        assert_eq!(
            response.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
    }
    let mut response = response;
    tokio::spawn(async move {
        let mut buffer = String::new();
        while let Ok(Some(chunk)) = response.chunk().await {
            buffer.push_str(std::str::from_utf8(&chunk).unwrap());
            while let Some(end) = buffer.find("\n\n") {
                let block: String = buffer.drain(..end + 2).collect();
                let mut event = SseEvent {
                    id: String::new(),
                    event: "message".into(),
                    data: Value::Null,
                };
                let mut data = String::new();
                for line in block.lines() {
                    match line.split_once(':') {
                        Some(("id", v)) => event.id = v.trim_start().to_owned(),
                        Some(("event", v)) => event.event = v.trim_start().to_owned(),
                        Some(("data", v)) => data.push_str(v.trim_start()),
                        _ => {}
                    }
                }
                if data.is_empty() {
                    continue; // a keep-alive comment
                }
                event.data = serde_json::from_str(&data).unwrap();
                if sender.send(event).is_err() {
                    return;
                }
            }
        }
    });
    (status, receiver)
}

async fn next_event(events: &mut tokio::sync::mpsc::UnboundedReceiver<SseEvent>) -> SseEvent {
    tokio::time::timeout(PATIENCE, events.recv())
        .await
        .expect("an event in time")
        .expect("the stream is open")
}

#[tokio::test]
async fn server_sent_events_follow_a_task_in_order_to_its_end_and_resume_without_repeating() {
    let redis = RedisServer::start();
    let (addr, _stop, queue) = spawn_producer(&redis).await;
    queue.enqueue(&name("s")).await.unwrap();
    let (status, mut stream) = events(addr, "s", None).await;
    assert_eq!(status, StatusCode::OK);

    let first = next_event(&mut stream).await;
    assert_eq!(
        (first.event.as_str(), &first.data["state"]),
        ("queued", &Value::from("queued"))
    );
    let claim = queue.claim(1).await.unwrap();
    assert_eq!(next_event(&mut stream).await.event, "running");
    queue
        .finish_many(&[(
            &claim.tasks[0],
            Finish::Processing {
                data: r#"{"progress":50}"#,
                delay: Duration::ZERO,
            },
        )])
        .await
        .unwrap();
    let partial = next_event(&mut stream).await;
    assert_eq!(partial.event, "processing");
    assert_eq!(partial.data["data"]["progress"], 50);

    // A client that dropped here resumes from its last id: it gets what came after, only.
    let resume_from = partial.id.clone();
    let claim = queue.claim(1).await.unwrap();
    assert_eq!(next_event(&mut stream).await.event, "running");
    queue
        .complete(&claim.tasks[0], r#"{"progress":100}"#)
        .await
        .unwrap();
    let done = next_event(&mut stream).await;
    assert_eq!(done.event, "done");
    assert_eq!(done.data["data"]["progress"], 100);
    assert!(
        tokio::time::timeout(PATIENCE, stream.recv())
            .await
            .unwrap()
            .is_none(),
        "the stream ends after the final state"
    );

    let (status, mut resumed) = events(addr, "s", Some(&resume_from)).await;
    assert_eq!(status, StatusCode::OK);
    let news = next_event(&mut resumed).await;
    assert_eq!(
        news, done,
        "the final view, and not the processing one again"
    );
    assert!(resumed.recv().await.is_none());

    // A client that saw the end is told there is nothing more (204 stops an EventSource).
    let (status, _) = events(addr, "s", Some(&done.id)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = events(addr, "nobody", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(waiting(addr).await, 0);
}
