//! A measured window: its wall time, and where the CPU went during it (Redis' own counters, the
//! whole machine's, and a chosen process'), read at both ends.
//!
//! A throughput figure alone cannot say what bounds it. Beside each one the bench therefore
//! states how busy Redis was (one thread: near one core means Redis is the limit), how busy the
//! process doing the work was, and how busy the machine was (near every core means the machine
//! is, whoever used it). Every workload reads these the same way, through this type.

use std::time::Duration;

use anyhow::{Context, Result};
use redis::aio::MultiplexedConnection;
use tokio::time::Instant;

use crate::machine_cpu::MachineCpu;
use crate::probe::Usage;

/// The counters at the start of a window.
pub struct Window {
    redis: Usage,
    machine: MachineCpu,
    /// The watched process' id and CPU seconds at the start.
    process: Option<(u32, f64)>,
    started: Instant,
}

/// What a window cost.
#[derive(Debug, Clone)]
pub struct Spent {
    /// Its wall time.
    pub elapsed: Duration,
    /// Redis' work.
    pub redis: Usage,
    /// Cores of the machine busy on average (out of its CPU count).
    pub machine_busy_cores: f64,
    /// CPU seconds of the watched process (0 when none was).
    pub process_cpu_s: f64,
}

impl Window {
    /// Reads the counters of Redis (on `conn`), of the machine, and of process `pid`.
    ///
    /// # Errors
    /// When Redis fails or the process is gone.
    pub async fn open(conn: &mut MultiplexedConnection, pid: Option<u32>) -> Result<Self> {
        Ok(Self {
            redis: Usage::take(conn).await?,
            process: pid
                .map(|pid| cpu_seconds(pid).map(|cpu| (pid, cpu)))
                .transpose()?,
            machine: MachineCpu::read()?,
            started: Instant::now(),
        })
    }

    /// Reads them again, in the opposite order, and answers the differences.
    ///
    /// # Errors
    /// When Redis fails or the process is gone.
    pub async fn close(self, conn: &mut MultiplexedConnection) -> Result<Spent> {
        let elapsed = self.started.elapsed();
        let machine = MachineCpu::read()?;
        let process_cpu_s = match self.process {
            Some((pid, before)) => (cpu_seconds(pid)? - before).max(0.0),
            None => 0.0,
        };
        Ok(Spent {
            elapsed,
            redis: self.redis.until(&Usage::take(conn).await?),
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
///
/// # Errors
/// When it is gone.
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    testkit::cpu_seconds(pid)
        .with_context(|| format!("no CPU time for process {pid}: has it exited?"))
}
