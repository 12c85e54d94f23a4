//! taskq: a task queue on Redis for polling slow, asynchronous third-party APIs.
//!
//! A task is a name. Enqueue it once; a worker calls the API for it until the API answers
//! "done", keeping the partial data of every "processing" answer and the final result at the
//! end, retrying failures with backoff until a limit, then keeping the task as dead.
//!
//! # Layout
//! - [`keys`]: every Redis key name of a queue, all under one hash tag.
//! - [`name`]: task names, validated at the edge.
//! - [`task`]: a task's states and its record as clients see it.
//! - [`queue`]: the operations, each one Lua script (`scripts`, `lua/*.lua`); concurrent
//!   enqueues share script calls (`enqueue`).
//! - [`admin`]: submit with a payload, cancel, and what operators need: list by state, stats,
//!   retry dead tasks, purge finished records.
//! - [`metrics`]: the Prometheus text format, and the queue-wide series every `/metrics` shows.
//! - [`worker`]: the claim loop that runs any async [`Handler`] on due tasks.
//! - [`backoff`]: retry delays.
//! - [`server`]: what the Redis holding a queue says about itself (memory, eviction policy,
//!   persistence), watched in the background by every binary.
//! - [`connect`]: the Redis URL and connection (one Redis, a cluster, or a master found
//!   through Sentinel).
//! - [`replication`]: waiting for replicas to hold each state change (`WAIT`).
//! - [`service`] (feature `service`): what the binaries share: Redis flags, logging, shutdown.
//!
//! # Guarantees
//! Every state change is one script, so it is atomic. A claim gives each task a fresh token and
//! a lease; only the token's holder can record an answer. A worker that dies leaves its tasks to
//! come back when their leases end. Delivery is at-least-once; one live task per name.

pub mod admin;
pub mod backoff;
pub mod connect;
mod enqueue;
pub mod error;
pub mod keys;
pub mod metrics;
pub mod name;
pub mod queue;
pub mod replication;
mod scripts;
mod sentinel;
pub mod server;
#[cfg(feature = "service")]
pub mod service;
pub mod task;
pub mod worker;

pub use backoff::Backoff;
pub use connect::{ConnectOptions, RedisConnection, RedisUrl};
pub use error::{Error, NameError, Result};
pub use name::{MAX_TASK_NAME_LEN, TaskName};
pub use queue::{Ack, Claim, Counts, Enqueued, Finish, Policy, Queue, Sweep};
pub use replication::WaitForReplicas;
pub use task::{ClaimedTask, State, TaskView};
pub use worker::{Failure, Handler, Outcome, WakeHandle, Worker, WorkerConfig, WorkerStats};
