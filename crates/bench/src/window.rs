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
use testkit::RedisServer;
use tokio::time::Instant;

use crate::probe::Usage;
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
            let usage = Usage::take(&mut conn).await?;
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
            redis_each.push(before.until(&Usage::take(&mut conn).await?));
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

/// The machine's CPU counters at one moment, in USER_HZ ticks (100 a second for `/proc`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct MachineCpu {
    /// Ticks not idle and not waiting for I/O, all CPUs together.
    busy: u64,
    /// All ticks, all CPUs together: the window's length times the CPUs.
    total: u64,
    /// CPUs counted (`cpuN` lines), so a busy share becomes cores.
    cpus: u32,
}

impl MachineCpu {
    /// Reads `/proc/stat`.
    fn read() -> Result<Self> {
        let stat = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
        Self::parse(&stat).context("no aggregate cpu line in /proc/stat")
    }

    fn parse(stat: &str) -> Option<Self> {
        let mut lines = stat.lines();
        let ticks: Vec<u64> = lines
            .next()?
            .strip_prefix("cpu ")?
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()
            .ok()?;
        // user nice system idle iowait irq softirq steal; guest and guest_nice (after them) are
        // already counted in user and nice.
        let total: u64 = ticks.iter().take(8).sum();
        let idle = ticks.get(3)? + ticks.get(4)?;
        // After the aggregate line, every line naming a cpu is one CPU's (`cpuN`).
        let cpus = lines.filter(|l| l.starts_with("cpu")).count();
        Some(Self {
            busy: total.saturating_sub(idle),
            total,
            cpus: u32::try_from(cpus).ok()?.max(1),
        })
    }

    /// Cores busy on average between `self` (before) and `after`: the busy share of all ticks,
    /// times the CPUs (0 to the CPU count).
    fn busy_cores_until(&self, after: &Self) -> f64 {
        let total = after.total.saturating_sub(self.total);
        if total == 0 {
            return 0.0;
        }
        after.busy.saturating_sub(self.busy) as f64 / total as f64 * f64::from(after.cpus)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_cores_are_the_busy_share_times_the_cpus() {
        let cpus = "cpu0 50 0 25 400 25 0 0 0 0 0\ncpu1 50 0 25 400 25 0 0 0 0 0\nintr 1\n";
        let before = MachineCpu::parse(&format!("cpu  100 0 50 800 50 0 0 0 7 0\n{cpus}")).unwrap();
        // 200 more ticks (1 s of 2 CPUs): 150 busy (user 100, system 30, steal 20), 50 idle.
        let after = MachineCpu::parse(&format!("cpu  200 0 80 840 60 0 0 20 9 0\n{cpus}")).unwrap();
        assert_eq!(before.cpus, 2);
        assert!((before.busy_cores_until(&after) - 1.5).abs() < 1e-9);
    }

    #[test]
    fn this_machine_has_its_counters() {
        assert!(MachineCpu::read().is_ok_and(|m| m.total > m.busy && m.cpus >= 1));
    }
}
