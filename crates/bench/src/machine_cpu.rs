//! The whole machine's CPU over a measured window, from the aggregate `cpu` line of `/proc/stat`.
//!
//! Redis' and the services' own CPU say what they cost; this says what was left. On a 2-core
//! machine a throughput figure means little until one knows whether both cores were busy (then
//! the machine bounds it, whoever used them) or not (then something waits: a round trip, a
//! single thread). Busy is everything but `idle` and `iowait`; `steal` (time the hypervisor gave
//! to others) counts as busy, since it was not ours to use either.

use anyhow::{Context, Result};

/// The machine's CPU counters at one moment, in USER_HZ ticks (100 a second for `/proc`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MachineCpu {
    /// Ticks not idle and not waiting for I/O, all CPUs together.
    busy: u64,
    /// All ticks, all CPUs together: the window's length times the CPUs.
    total: u64,
    /// CPUs counted (`cpuN` lines), so a busy share becomes cores.
    cpus: u32,
}

impl MachineCpu {
    /// Reads `/proc/stat`.
    ///
    /// # Errors
    /// When it is unreadable or not in the expected shape.
    pub fn read() -> Result<Self> {
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
        let cpus = lines
            .filter(|l| {
                l.strip_prefix("cpu")
                    .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()))
            })
            .count();
        Some(Self {
            busy: total.saturating_sub(idle),
            total,
            cpus: u32::try_from(cpus).ok()?.max(1),
        })
    }

    /// Cores busy on average between `self` (before) and `after`: the busy share of all ticks,
    /// times the CPUs (0 to the CPU count).
    pub fn busy_cores_until(&self, after: &Self) -> f64 {
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
        let before = MachineCpu::parse(
            "cpu  100 0 50 800 50 0 0 0 7 0\ncpu0 50 0 25 400 25 0 0 0 0 0\ncpu1 50 0 25 400 25 0 0 0 0 0\nintr 1\n",
        )
        .unwrap();
        // 200 more ticks (1 s of 2 CPUs): 150 busy (user 100, system 30, steal 20), 50 idle.
        let after = MachineCpu::parse(
            "cpu  200 0 80 840 60 0 0 20 9 0\ncpu0 1 0 0 0 0 0 0 0 0 0\ncpu1 1 0 0 0 0 0 0 0 0 0\n",
        )
        .unwrap();
        assert_eq!(before.cpus, 2);
        assert!((before.busy_cores_until(&after) - 1.5).abs() < 1e-9);
    }

    #[test]
    fn this_machine_has_its_counters() {
        assert!(MachineCpu::read().is_ok_and(|m| m.total > m.busy && m.cpus >= 1));
    }
}
