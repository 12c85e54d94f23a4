//! The system tests: the real `producer`, `consumer` and `mock-api` binaries, started as child
//! processes, against real `redis-server` processes (one, a three-master cluster, or a master
//! under Sentinel), over real sockets. One test binary, so that [`stack`] (the system under test)
//! is compiled once and every part of it is used by some suite.
//!
//! The binaries must be built first (`cargo build --workspace --bins`; `scripts/test` does).
//!
//! # Suites
//! - [`end_to_end`]: the three binaries working together, on one Redis and on a cluster.
//! - [`faults`]: fault injection (consumers, Redis, the API misbehaving: a module each), on both
//!   backends.
//! - [`cluster`]: what only a cluster has (a slot migrated under load, queues on three masters).
//! - [`failover`]: Sentinel failovers under load, with and without `WAIT`.
//! - [`connections`]: a flood of idle and dripping connections beyond the producer's cap.
//! - [`limits`]: limits shared across consumers and queues, pauses, scheduled tasks.
//! - [`redis_ops`]: Redis at `maxmemory`, over it, and evicting without persistence.
//! - [`full_redis`]: bursts against a small Redis, and a Redis filled behind taskq's back.
//! - [`real_apis`]: each real-API shape over HTTPS, from its profile.
//! - [`api_steps`]: profiles' steps beyond submit-and-poll: fetches, uploads, pages, push-only.
//! - [`profiles`]: the ready profiles of `profiles/`, checked and run against the mock; `--check`.
//! - [`notifications`]: callbacks to clients and provider webhooks in.
//! - [`metrics`]: `/metrics` of every binary under load.
//! - [`deploy`]: every series the alert rules and the dashboard name is served.
//! - [`ui`]: the dashboard in headless Chromium.
//! - [`docs`]: `README.md` and `docs/` against the code: links, settings, examples, references.

mod stack;

mod api_steps;
mod cluster;
mod connections;
mod credentials;
mod deploy;
mod docs;
mod end_to_end;
mod failover;
mod faults;
mod full_redis;
mod limits;
mod metrics;
mod notifications;
mod profiles;
mod real_apis;
mod redis_ops;
mod ui;
