//! A measured window: its wall time, and where the CPU went during it (Redis' own counters, the
//! whole machine's from `/proc/stat`, and a chosen process'), read at both ends.
//!
//! A throughput figure alone cannot say what bounds it. Beside each one the bench therefore
//! states how busy Redis was (one thread: near one core means Redis is the limit), how busy the
//! process doing the work was, and how busy the machine was: near every core means the machine
//! bounds it, whoever used the cores; fewer means something waits (a round trip, a single
//! thread). Busy is everything but `idle` and `iowait`; `steal` (time the hypervisor gave to
//! others) counts as busy, since it was not ours to use either.

use std::time::Duration;

use anyhow::{Context, Result};
use redis::aio::MultiplexedConnection;
use testkit::{MachineCpu, RedisServer, Usage};
use tokio::time::Instant;

use crate::probe;
use crate::redis_admin;

/// The counters at the start of a window, and the connections to read them again on.
pub struct Window {
    /// Each watched Redis server's connection and counters.
    redis: Vec<(MultiplexedConnection, Usage)>,
    machine: MachineCpu,
    /// The watched process' id and CPU seconds.
    process: Option<(u32, f64)>,
    started: Instant,
}

/// What a window cost.
#[derive(Debug, Clone)]
pub struct Spent {
    /// Its wall time.
    pub elapsed: Duration,
    /// Redis' work, summed over the servers watched.
    pub redis: Usage,
    /// Each server's work, in the order given to [`Window::open`].
    pub redis_each: Vec<Usage>,
    /// Cores of the machine busy on average (out of its CPU count).
    pub machine_busy_cores: f64,
    /// CPU seconds of the watched process (0 when none was).
    pub process_cpu_s: f64,
}

impl Window {
    /// Reads the counters of `servers` (on connections of its own), of the machine, and of
    /// process `pid`.
    pub async fn open(servers: &[&RedisServer], pid: Option<u32>) -> Result<Self> {
        let mut redis = Vec::new();
        for server in servers {
            let mut conn = redis_admin::connect(server).await?;
            let usage = probe::take(&mut conn).await?;
            redis.push((conn, usage));
        }
        let process = pid.map(|pid| cpu_seconds(pid).map(|cpu| (pid, cpu)));
        Ok(Self {
            redis,
            process: process.transpose()?,
            machine: MachineCpu::read()?,
            started: Instant::now(),
        })
    }

    /// Reads them again, in the opposite order, and answers the differences.
    pub async fn close(self) -> Result<Spent> {
        let elapsed = self.started.elapsed();
        let machine = MachineCpu::read()?;
        let process_cpu_s = match self.process {
            Some((pid, before)) => (cpu_seconds(pid)? - before).max(0.0),
            None => 0.0,
        };
        let mut redis_each = Vec::new();
        for (mut conn, before) in self.redis {
            redis_each.push(before.until(&probe::take(&mut conn).await?));
        }
        Ok(Spent {
            elapsed,
            redis: Usage::sum(&redis_each),
            redis_each,
            machine_busy_cores: self.machine.busy_cores_until(&machine),
            process_cpu_s,
        })
    }
}

impl Spent {
    /// `cpu_s` as a share of one core over the window.
    pub fn share(&self, cpu_s: f64) -> f64 {
        cpu_s / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// The CPU seconds process `pid` has used.
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    testkit::cpu_seconds(pid)
        .with_context(|| format!("no CPU time for process {pid}: has it exited?"))
}
