//! Consumers that fail the queue: killed mid-call (`kill -9`), four sharing the work, a call
//! slower than the lease, and SIGTERM with tasks unfinished or calls in flight.

use std::time::{Duration, Instant};

use testkit::eventually;

use crate::stack::{Backend, Stack, names};

crate::stack::on_both_backends! {
    a_consumer_killed_mid_call_loses_nothing_and_only_its_tasks_are_called_twice,
    a_call_slower_than_the_lease_is_never_handed_to_a_second_consumer,
    four_consumers_share_five_thousand_tasks_with_exactly_one_call_per_poll,
    sigterm_hands_back_unfinished_tasks_due_at_once_and_exits_zero,
    sigterm_lets_calls_in_flight_finish_within_the_grace_period,
}

async fn a_consumer_killed_mid_call_loses_nothing_and_only_its_tasks_are_called_twice<
    R: Backend,
>() {
    let stack = Stack::start_on(
        R::start(),
        &[("MOCK_DELAY_MS", "2000"), ("MOCK_POLLS_UNTIL_DONE", "1")],
    );
    let fast_lease = [
        ("CONCURRENCY", "300"),
        ("BATCH_SIZE", "100"),
        ("LEASE_MS", "1000"),
    ];
    let mut first = stack.consumer(&fast_lease);
    stack.enqueue_all(&names("crash", 300)).await;
    eventually(Duration::from_secs(15), "300 calls in flight", || async {
        (stack.mock_calls().await >= 300).then_some(())
    })
    .await;

    first.kill();
    let killed = Instant::now();
    // The survivor's own leases are long: recovery depends only on the dead consumer's leases,
    // and a loaded CI machine must not make the survivor lose a lease of its own.
    let _second = stack.consumer(&[("CONCURRENCY", "300"), ("BATCH_SIZE", "100")]);
    let stats = stack.wait_done(300, Duration::from_secs(30)).await;

    let recovery = killed.elapsed();
    let calls = stack.mock_calls().await;
    assert_eq!(
        (stats.counts.due, stats.counts.running, stats.counts.dead),
        (0, 0, 0),
        "{stats:?}"
    );
    assert_eq!(stats.totals["done"], 300, "no task lost: {stats:?}");
    assert!(
        calls <= 600,
        "only tasks in flight at the kill may be called twice: {calls} calls, {stats:?}"
    );
    assert_eq!(stats.totals["reaped"], 300, "{stats:?}");
    eprintln!(
        "FIGURES crash: tasks=300 calls={calls} lost=0 duplicated={} recovery={recovery:?}",
        calls - 300
    );
}

async fn a_call_slower_than_the_lease_is_never_handed_to_a_second_consumer<R: Backend>() {
    let stack = Stack::start_on(
        R::start(),
        &[("MOCK_DELAY_MS", "2000"), ("MOCK_POLLS_UNTIL_DONE", "2")],
    );
    // Each call outlasts three leases; renewals every 200 ms leave 400 ms of slack for a loaded
    // machine.
    let env = [
        ("LEASE_MS", "600"),
        ("POLL_INTERVAL_MS", "10"),
        ("CONCURRENCY", "100"),
    ];
    let _consumers = [stack.consumer(&env), stack.consumer(&env)];
    stack.enqueue_all(&names("slow", 100)).await;

    let stats = stack.wait_done(100, Duration::from_secs(30)).await;

    let calls = stack.mock_calls().await;
    assert_eq!(calls, 200, "exactly one call per poll");
    assert!(!stats.totals.contains_key("reaped"), "{:?}", stats.totals);
    assert!(!stats.totals.contains_key("stale"), "{:?}", stats.totals);
    eprintln!("FIGURES slow-calls: tasks=100 polls=2 calls={calls} lease=600ms call=2000ms");
}

async fn four_consumers_share_five_thousand_tasks_with_exactly_one_call_per_poll<R: Backend>() {
    let stack = Stack::start_on(
        R::start(),
        &[("MOCK_DELAY_MS", "5"), ("MOCK_POLLS_UNTIL_DONE", "2")],
    );
    let env = [("POLL_INTERVAL_MS", "20"), ("CONCURRENCY", "50")];
    let _consumers: Vec<_> = (0..4).map(|_| stack.consumer(&env)).collect();
    let started = Instant::now();
    stack.enqueue_all(&names("many", 5000)).await;

    let stats = stack.wait_done(5000, Duration::from_secs(60)).await;

    let calls = stack.mock_calls().await;
    assert_eq!(calls, 10_000);
    assert_eq!(
        (stats.counts.due, stats.counts.running, stats.counts.dead),
        (0, 0, 0)
    );
    assert!(!stats.totals.contains_key("stale"));
    eprintln!(
        "FIGURES many-consumers: consumers=4 tasks=5000 calls={calls} wall={:?}",
        started.elapsed()
    );
}

async fn sigterm_hands_back_unfinished_tasks_due_at_once_and_exits_zero<R: Backend>() {
    let stack = Stack::start_on(R::start(), &[("MOCK_DELAY_MS", "30000")]);
    let mut consumer = stack.consumer(&[
        ("CONCURRENCY", "300"),
        ("BATCH_SIZE", "100"),
        ("SHUTDOWN_GRACE_MS", "500"),
    ]);
    stack.enqueue_all(&names("inflight", 300)).await;
    eventually(Duration::from_secs(15), "300 calls in flight", || async {
        (stack.mock_calls().await >= 300).then_some(())
    })
    .await;

    let asked = Instant::now();
    let status = consumer.terminate(Duration::from_secs(10));
    let took = asked.elapsed();

    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    assert!(took < Duration::from_secs(3), "shutdown took {took:?}");
    let stats = stack.queue().stats().await.unwrap();
    assert_eq!((stats.counts.due, stats.counts.running), (300, 0));
    assert_eq!(stats.totals["released"], 300);
    let claim = stack.queue().claim(300).await.unwrap();
    assert_eq!(claim.tasks.len(), 300, "handed-back tasks are due at once");
    assert!(
        claim.tasks.iter().all(|t| t.attempts == 0),
        "a hand-back is not a failed attempt"
    );
    eprintln!("FIGURES shutdown: in-flight=300 exit=0 took={took:?} handed-back=300");
}

async fn sigterm_lets_calls_in_flight_finish_within_the_grace_period<R: Backend>() {
    let stack = Stack::start_on(
        R::start(),
        &[("MOCK_DELAY_MS", "500"), ("MOCK_POLLS_UNTIL_DONE", "1")],
    );
    let mut consumer = stack.consumer(&[("CONCURRENCY", "200"), ("SHUTDOWN_GRACE_MS", "10000")]);
    stack.enqueue_all(&names("finish", 200)).await;
    eventually(Duration::from_secs(15), "200 calls in flight", || async {
        (stack.mock_calls().await >= 200).then_some(())
    })
    .await;

    let status = consumer.terminate(Duration::from_secs(10));

    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    let stats = stack.queue().stats().await.unwrap();
    assert_eq!(stats.totals["done"], 200);
    assert!(!stats.totals.contains_key("released"));
}
