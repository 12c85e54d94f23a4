//! Every Redis key name of a queue and of a shared limit, and nowhere else.
//!
//! All keys of one queue share the hash tag `{taskq:<queue>}`, so on Redis Cluster they live in one
//! slot and every script may touch all of them; a limit, shared by queues that may live in other
//! slots, has its own tag, `{taskq-limit:<key>}`. A task's record is `{taskq:<queue>}:task:<name>`:
//! the name comes after the tag, so no name (not even one holding `{` or `}`) can move a key to
//! another slot or name a key outside its own record.
//!
//! A queue's callbacks ([`QueueKeys::callbacks`]) are a queue of their own, a lane beside the
//! queue's tasks under the same tag (`{taskq:<queue>}:callback:...`): the script that ends a task
//! hands its callback to the lane in the same atomic step, and the lane's deliveries are claimed,
//! retried and buried by the same scripts as any task.

use crate::error::Error;
use crate::name::TaskName;

/// The part of a key name that says it belongs to a queue's callback lane.
const CALLBACK_LANE: &str = "callback:";

/// The latest reading of Redis' memory and what enqueues wrote since (see `enqueue.lua`), shared
/// by every queue of a Redis that is not a cluster: memory is the whole server's, so every queue
/// must count every enqueue. On a cluster a script may touch one slot only: there each queue
/// keeps its own ([`QueueKeys::memory`]).
const SHARED_MEMORY: &str = "taskq:memory";

/// The longest queue name accepted, in bytes.
pub const MAX_QUEUE_NAME_LEN: usize = 128;

/// The key names of one queue.
#[derive(Debug, Clone)]
pub struct QueueKeys {
    queue: String,
    /// `{taskq:<queue>}`, and the lane's part of every key name ("" for the tasks).
    tag: String,
    lane: String,
    /// The prefix of every task record: `{taskq:<queue>}:task:`.
    task_prefix: String,
    /// Due tasks, scored by the time (ms) they may run.
    pub(crate) due: String,
    /// Leased tasks, scored by their lease deadline (ms).
    pub(crate) leased: String,
    /// Dead tasks, scored by the time (ms) they died.
    pub(crate) dead: String,
    /// Cancelled tasks, scored by the time (ms) they were cancelled.
    pub(crate) cancelled: String,
    /// The counter that issues claim tokens.
    pub(crate) seq: String,
    /// Queue-wide counters written by the scripts (enqueued, done, dead, ...).
    pub(crate) stats: String,
    /// The pub/sub channel of the queue's task changes (see [`crate::events`]): what the producer
    /// listens to, to answer a waiting client the moment its task changes.
    pub(crate) events: String,
    /// The pub/sub channel that says work is due now (a new task, a provider's webhook): what
    /// idle consumers listen to, so they claim at once instead of at their next tick.
    pub(crate) wake: String,
    /// The prefix of the callback lane's records (see [`QueueKeys::callbacks`]): where a task that
    /// ends hands its callback.
    pub(crate) callback_prefix: String,
    /// The callback lane's due set.
    pub(crate) callback_due: String,
    /// The callback lane's wake channel.
    pub(crate) callback_wake: String,
    /// The queue's own memory reading, on a cluster (see [`QueueKeys::memory`]).
    memory: String,
}

impl QueueKeys {
    /// Builds the key names for `queue`.
    ///
    /// # Errors
    /// [`Error::InvalidQueueName`] unless the name is 1 to 128 bytes of ASCII letters, digits,
    /// `-`, `_`, `.` or `:`.
    pub fn new(queue: &str) -> Result<Self, Error> {
        if !fits_a_tag(queue) {
            return Err(Error::InvalidQueueName(queue.to_owned()));
        }
        Ok(Self::in_lane(queue, &format!("{{taskq:{queue}}}"), ""))
    }

    /// The keys of one lane of `queue` under `tag`: `lane` is "" for the tasks, `callback:` for
    /// their callbacks. A lane's own callbacks would go to `callback:callback:`, never written:
    /// a delivery has no callback.
    fn in_lane(queue: &str, tag: &str, lane: &str) -> Self {
        let key = |name: &str| format!("{tag}:{lane}{name}");
        Self {
            queue: queue.to_owned(),
            tag: tag.to_owned(),
            lane: lane.to_owned(),
            task_prefix: key("task:"),
            due: key("due"),
            leased: key("leased"),
            dead: key("dead"),
            cancelled: key("cancelled"),
            seq: key("seq"),
            stats: key("stats"),
            events: key("events"),
            wake: key("wake"),
            callback_prefix: format!("{tag}:{lane}{CALLBACK_LANE}task:"),
            callback_due: format!("{tag}:{lane}{CALLBACK_LANE}due"),
            callback_wake: format!("{tag}:{lane}{CALLBACK_LANE}wake"),
            memory: format!("{tag}:memory"),
        }
    }

    /// The keys of this queue's callback lane: a queue of deliveries, one per task that ended
    /// with a `callback_url`, named like its task.
    pub fn callbacks(&self) -> Self {
        Self::in_lane(
            &self.queue,
            &self.tag,
            &format!("{}{CALLBACK_LANE}", self.lane),
        )
    }

    /// The record of the callback of task `name`.
    pub(crate) fn callback_of(&self, name: &str) -> String {
        format!("{}{name}", self.callback_prefix)
    }

    /// Where the latest reading of Redis' memory is kept, with what enqueues wrote since: one
    /// key for every queue of a Redis, or, on a `cluster` (whose scripts reach one slot only),
    /// one per queue.
    pub fn memory(&self, cluster: bool) -> &str {
        if cluster { &self.memory } else { SHARED_MEMORY }
    }

    /// The queue's name.
    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// The due set's key (every key of the queue lives in its hash slot).
    pub fn due_key(&self) -> &str {
        &self.due
    }

    /// The channel of the queue's task changes.
    pub fn events_channel(&self) -> &str {
        &self.events
    }

    /// The channel that says work is due now.
    pub fn wake_channel(&self) -> &str {
        &self.wake
    }

    /// The prefix of every task record.
    pub fn task_prefix(&self) -> &str {
        &self.task_prefix
    }

    /// The record of one task.
    pub fn task(&self, name: &TaskName) -> String {
        self.task_raw(name.as_str())
    }

    /// The record of a task whose name came from Redis itself (already valid).
    pub(crate) fn task_raw(&self, name: &str) -> String {
        let mut key = String::with_capacity(self.task_prefix.len() + name.len());
        key.push_str(&self.task_prefix);
        key.push_str(name);
        key
    }
}

/// Whether `part` may go inside a hash tag: 1 to 128 bytes of ASCII letters, digits, `-`, `_`,
/// `.` or `:` (no brace can end the tag early, no space or control character reaches a log).
fn fits_a_tag(part: &str) -> bool {
    !part.is_empty()
        && part.len() <= MAX_QUEUE_NAME_LEN
        && part
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

/// The key names of one shared limit (see `lua/acquire.lua` for what each holds).
#[derive(Debug, Clone)]
pub struct LimitKeys {
    limit_key: String,
    /// The GCRA arrival time and the grant counter.
    pub(crate) state: String,
    /// The sliding window's log of grants.
    pub(crate) granted: String,
    /// Permits in flight, scored by lease deadline.
    pub(crate) in_flight: String,
    /// Present while the API asked everyone to wait.
    pub(crate) paused: String,
}

impl LimitKeys {
    /// Builds the key names for the limit `limit_key`.
    ///
    /// # Errors
    /// [`Error::InvalidLimitKey`] on the terms of [`QueueKeys::new`].
    pub fn new(limit_key: &str) -> Result<Self, Error> {
        if !fits_a_tag(limit_key) {
            return Err(Error::InvalidLimitKey(limit_key.to_owned()));
        }
        let tag = format!("{{taskq-limit:{limit_key}}}");
        Ok(Self {
            limit_key: limit_key.to_owned(),
            state: format!("{tag}:state"),
            granted: format!("{tag}:granted"),
            in_flight: format!("{tag}:in_flight"),
            paused: format!("{tag}:paused"),
        })
    }

    /// The limit's key, as configured.
    pub fn limit_key(&self) -> &str {
        &self.limit_key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_shares_the_queue_hash_tag() {
        let keys = QueueKeys::new("example").unwrap();
        let name = TaskName::parse("a}b{c").unwrap();
        for key in [
            keys.task(&name),
            keys.due.clone(),
            keys.leased.clone(),
            keys.dead.clone(),
            keys.cancelled.clone(),
            keys.seq.clone(),
            keys.stats.clone(),
            keys.events.clone(),
            keys.wake.clone(),
        ] {
            assert!(key.starts_with("{taskq:example}:"), "{key}");
        }
        assert_eq!(keys.task(&name), "{taskq:example}:task:a}b{c");
    }

    #[test]
    fn the_callback_lane_shares_the_tag_and_its_records_are_named_like_their_tasks() {
        let keys = QueueKeys::new("q").unwrap();
        let lane = keys.callbacks();
        assert_eq!(lane.due, "{taskq:q}:callback:due");
        assert_eq!(lane.task_prefix(), keys.callback_prefix);
        assert_eq!(lane.task_raw("a"), keys.callback_of("a"));
        assert_eq!(lane.due, keys.callback_due);
        assert_eq!(lane.wake, keys.callback_wake);
        assert_eq!(lane.queue(), "q");
        assert_eq!(lane.callbacks().due, "{taskq:q}:callback:callback:due");
        for key in [
            &lane.leased,
            &lane.dead,
            &lane.stats,
            &lane.seq,
            &lane.events,
        ] {
            assert!(key.starts_with("{taskq:q}:callback:"), "{key}");
        }
    }

    #[test]
    fn queue_names_that_could_break_the_tag_are_refused() {
        for bad in ["", "a}b", "a{b", "a b", "x\n", &"q".repeat(129)] {
            assert!(QueueKeys::new(bad).is_err(), "{bad:?}");
        }
        assert!(QueueKeys::new("api-1.v2:prod_x").is_ok());
    }

    #[test]
    fn a_limit_has_its_own_tag() {
        let keys = LimitKeys::new("replicate").unwrap();
        for key in [&keys.state, &keys.granted, &keys.in_flight, &keys.paused] {
            assert!(key.starts_with("{taskq-limit:replicate}:"), "{key}");
        }
        assert!(LimitKeys::new("a}b").is_err());
    }
}
