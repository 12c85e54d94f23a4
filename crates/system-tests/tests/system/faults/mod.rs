//! Fault injection against real processes, each test printing its figures (`FIGURES ...`) for
//! the record:
//! - [`consumers`]: consumers killed, outnumbered, slower than their lease, and stopped by
//!   SIGTERM.
//! - [`redis`]: Redis killed, hung and cutting connections, behind a password and over TLS.
//! - [`api`]: a third-party API that misbehaves in every way.
//!
//! Every scenario runs twice: on one Redis (`single::`) and on a three-master cluster
//! (`cluster::`), where a fault to "Redis" hits the master that owns the queue's hash slot, or
//! every master.

mod api;
mod consumers;
mod redis;
