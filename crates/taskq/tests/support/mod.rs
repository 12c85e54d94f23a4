//! What every library test file does first: open a queue of its own on the test's Redis, and
//! name tasks.

use taskq::{ConnectOptions, Queue, TaskName};
use testkit::{RedisServer, unique_queue};

/// A queue no other test uses, on `redis`, with the default policies.
pub fn open(redis: &RedisServer) -> Queue {
    let url = redis.url().parse().unwrap();
    Queue::open(&url, &ConnectOptions::default(), &unique_queue("q")).unwrap()
}

/// A task name the test knows to be valid.
pub fn name(s: &str) -> TaskName {
    TaskName::parse(s).unwrap()
}
