//! taskq: a task queue on Redis for polling slow, asynchronous third-party APIs.
//!
//! A task is a name. Enqueue it once; a worker calls the API for it until the API answers
//! "done", keeping the partial data of every "processing" answer and the final result at the
//! end, retrying failures with backoff until a limit, then keeping the task as dead.
//!
//! # Layout
//! - [`keys`]: every Redis key name of a queue, all under one hash tag.
//! - [`name`]: task names, validated at the edge.
//! - [`task`]: the state machine (a task's life, drawn in its module doc), the states, and the
//!   record as clients see it.
//! - [`queue`]: the handle on one queue (connection, keys, policies).
//! - [`policy`]: what the enqueuing side and what the workers decide (result ttl; lease,
//!   attempts, polling time), and the dead ttl both apply.
//! - One module per operation, each opening with the Lua script it runs (`lua/*.lua`, loaded
//!   and run by `scripts`): `enqueue` (concurrent enqueues share script calls: `batcher`),
//!   `claim`, `finish` (and release, extend), `sweep`, `cancel`, `list` (one task, or a state's
//!   tasks page by page), `stats`, `retry`, `purge`.
//! - [`worker`]: the claim loop that runs any async [`Handler`] on due tasks.
//! - [`limit`]: a provider's limits shared by every consumer (rate, calls in flight, pauses),
//!   with their own scripts (`acquire`, `give_back`, `pause`).
//! - [`backoff`]: retry delays.
//! - [`server`]: what the Redis holding a queue says about itself (memory, eviction policy,
//!   persistence), watched in the background by every binary.
//! - [`connect`]: the Redis URL and connection (one Redis, a cluster, or a master found
//!   through Sentinel).
//! - `replication`: waiting for replicas to hold each state change (`WAIT`).
//!
//! # Guarantees
//! Every state change is one script, so it is atomic. A claim gives each task a fresh token and
//! a lease; only the token's holder can record an answer. A worker that dies leaves its tasks to
//! come back when their leases end. Delivery is at-least-once; one live task per name.

pub mod backoff;
mod batcher;
pub mod callback;
mod cancel;
mod claim;
pub mod connect;
mod enqueue;
pub mod error;
pub mod events;
mod finish;
mod hurry;
pub mod keys;
pub mod limit;
mod list;
pub mod name;
pub mod policy;
mod purge;
pub mod queue;
mod replication;
mod retry;
mod scripts;
mod sentinel;
pub mod server;
mod stats;
mod sweep;
pub mod task;
pub mod worker;

pub use backoff::Backoff;
pub use cancel::Cancel;
pub use claim::Claim;
pub use connect::{ConnectOptions, RedisConnection, RedisUrl, WaitForReplicas};
pub use enqueue::{EnqueueCall, MAX_PAYLOAD_BYTES, MAX_TASKS_PER_CALL, check_payload};
pub use error::{Error, Full, NameError, Result};
pub use finish::{Ack, Finish, WAIT_FOR_ROOM};
pub use hurry::Hurry;
pub use limit::{Limit, Limiter, LimiterStats, Permit, Rate};
pub use list::{MAX_PAGE_SIZE, Page};
pub use name::{MAX_TASK_NAME_LEN, TaskName};
pub use policy::{EnqueuePolicy, WorkerPolicy};
pub use purge::FinalState;
pub use queue::Queue;
pub use stats::{QueueStats, StateCounts};
pub use sweep::Sweep;
pub use task::{
    CallbackState, CallbackView, ClaimedTask, Enqueued, MAX_RUN_AT_MS, NewTask, RunAt, State,
    TaskView,
};
pub use worker::{Failure, Handler, Outcome, Step, WakeHandle, Worker, WorkerConfig, WorkerStats};
