//! A measured window: its wall time, and where the CPU went during it (Redis' own counters, the
//! whole machine's, and the processes named), read at both ends.
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
use crate::probe::{Snapshot, Usage};

/// The counters at the start of a window.
pub struct Window {
    redis: Snapshot,
    machine: MachineCpu,
    /// Each watched process' id and CPU seconds at the start.
    processes: Vec<(u32, f64)>,
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
    /// CPU seconds of each watched process, in the order given to [`Window::open`].
    pub processes_cpu_s: Vec<f64>,
}

impl Window {
    /// Reads the counters of Redis (on `conn`), of the machine, and of the processes `pids`.
    ///
    /// # Errors
    /// When Redis fails or a process is gone.
    pub async fn open(conn: &mut MultiplexedConnection, pids: &[u32]) -> Result<Self> {
        let redis = Snapshot::take(conn).await?;
        let processes = pids
            .iter()
            .map(|&pid| Ok((pid, cpu_seconds(pid)?)))
            .collect::<Result<_>>()?;
        Ok(Self {
            redis,
            processes,
            machine: MachineCpu::read()?,
            started: Instant::now(),
        })
    }

    /// Reads them again, in the opposite order, and answers the differences.
    ///
    /// # Errors
    /// When Redis fails or a process is gone.
    pub async fn close(self, conn: &mut MultiplexedConnection) -> Result<Spent> {
        let elapsed = self.started.elapsed();
        let machine = MachineCpu::read()?;
        let processes_cpu_s = self
            .processes
            .iter()
            .map(|&(pid, before)| Ok((cpu_seconds(pid)? - before).max(0.0)))
            .collect::<Result<_>>()?;
        let redis = self.redis.until(&Snapshot::take(conn).await?);
        Ok(Spent {
            elapsed,
            redis,
            machine_busy_cores: self.machine.busy_cores_until(&machine),
            processes_cpu_s,
        })
    }
}

impl Spent {
    /// `cpu_s` as a share of one core over the window.
    pub fn share(&self, cpu_s: f64) -> f64 {
        cpu_s / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Redis' CPU as a share of one core over the window.
    pub fn redis_share(&self) -> f64 {
        self.share(self.redis.cpu_s)
    }

    /// The CPU seconds of the `i`-th watched process (0 when none was watched).
    pub fn process_cpu_s(&self, i: usize) -> f64 {
        self.processes_cpu_s.get(i).copied().unwrap_or(0.0)
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
