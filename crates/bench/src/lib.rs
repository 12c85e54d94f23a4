//! bench: the benchmark command of issues 4 and 5. It starts a `redis-server` of its own (and a
//! three-master Redis Cluster for S2), runs each workload several times, and writes the median,
//! min and max of every metric to `bench/results.json` and `bench/results.md`.
//!
//! Two kinds of workload, because the question is twofold. The library ones (W1b, W2, W4) measure
//! the queue apart from HTTP: is `taskq` bound by Redis or by its own code? The process ones (W1,
//! W2h, W3d, S1, S2, W5 to W8) run the release binaries exactly as a user does, with their
//! environment contract, so the figures are comparable with the anchors in `shared/anchors`, which
//! time the same things the same way. Peak memory is `VmHWM` of the process that does the work.
//! Redis, the cluster and the binaries are started by `testkit`'s fallible constructors: a run
//! that cannot start something fails with the reason and the others go on.
//!
//! # Layout
//! - `command`: `wrk`, `redis-benchmark` and the `drain` child, run to their end.
//! - `probe`: what Redis' own counters (testkit's `Usage`, read by its `Window` with the
//!   machine's and a process' CPU) say of taskq's scripts: claims, round trips, a profile.
//! - `redis_limit`: `redis-benchmark` running the library's enqueue script: Redis' own limit.
//! - [`drain`]: the library worker with a no-op handler until N more tasks are done, and the
//!   wait until queues count their tasks done.
//! - [`workload`]: the workloads, what each measures, and the sizes of a run.
//! - [`workloads`]: one module per workload behind [`workloads::run`]; a run answers named metrics.
//! - [`report`]: median, min and max over runs, the machine's facts, and the two result files.

mod command;
pub mod drain;
mod probe;
mod redis_limit;
pub mod report;
pub mod workload;
pub mod workloads;
