//! What every library test file does first: open a queue of its own on the test's Redis, and
//! name tasks.

use taskq::{ConnectOptions, Policy, Queue, TaskName};
use testkit::{RedisServer, unique_queue};

/// A queue no other test uses, on `redis`, with `policy`.
pub fn open(redis: &RedisServer, policy: Policy) -> Queue {
    let url = redis.url().parse().unwrap();
    Queue::open(&url, &ConnectOptions::default(), &unique_queue("q"), policy).unwrap()
}

/// A task name the test knows to be valid.
pub fn name(s: &str) -> TaskName {
    TaskName::parse(s).unwrap()
}
