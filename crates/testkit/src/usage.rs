//! What the servers the harness started, and the machine under them, did: a Redis server's own
//! counters (commands by name, all commands run and socket reads, `INFO commandstats`, `stats`;
//! its CPU time, `INFO cpu`) and the machine's busy CPU (`/proc/stat`), each read at two moments
//! and subtracted; a [`Window`] reads them, with a process' CPU time, at both ends of a stretch
//! of work.
//!
//! `commandstats` counts the commands a script runs too, so a workload's cost can be told apart
//! by command without instrumenting the code under test (the benchmark's figures per task, a
//! test's count of script calls).
//!
//! A throughput figure alone cannot say what bounds it. Beside each one the benchmark therefore
//! states how busy Redis was (one thread: near one core means Redis is the limit), how busy the
//! process doing the work was, and how busy the machine was: near every core means the machine
//! bounds it, whoever used the cores; fewer means something waits (a round trip, a single
//! thread). Busy is everything but `idle` and `iowait`; `steal` (time the hypervisor gave to
//! others) counts as busy, since it was not ours to use either.

use std::collections::BTreeMap;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use tokio::time::Instant;

use crate::{Error, RedisServer, Result, cpu_seconds, info_field, started};

/// The sections [`Usage::parse`] reads.
const USAGE_SECTIONS: [&str; 3] = ["commandstats", "stats", "cpu"];

/// Redis' counters at one moment ([`Usage::parse`], [`RedisServer::try_usage`]), what they grew
/// by between two moments ([`Usage::until`]), or several servers' together ([`Usage::sum`]).
#[derive(Debug, Clone, Default)]
pub struct Usage {
    /// Calls and microseconds per command name, those run by scripts included.
    pub per_command: BTreeMap<String, Command>,
    /// Commands run, those run by scripts included.
    pub commands: u64,
    /// Read events on client sockets (`total_reads_processed`).
    pub reads: u64,
    /// Server CPU seconds, system plus user, all threads.
    pub cpu_s: f64,
}

/// One command's counters (`INFO commandstats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Command {
    /// Calls.
    pub calls: u64,
    /// Microseconds spent in them; a script's time includes the commands it ran.
    pub usec: u64,
}

impl Usage {
    /// Reads the counters of the Redis at `conn`.
    ///
    /// # Errors
    /// When it does not answer.
    pub async fn take(conn: &mut MultiplexedConnection) -> Result<Self> {
        let info: String = redis::cmd("INFO")
            .arg(&USAGE_SECTIONS)
            .query_async(conn)
            .await
            .map_err(|e| Error(format!("INFO {USAGE_SECTIONS:?}: {e}")))?;
        Ok(Self::parse(&info))
    }

    /// The counters in an `INFO commandstats stats cpu` answer.
    pub fn parse(info: &str) -> Self {
        let per_command = info
            .lines()
            .filter_map(|line| {
                let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(':')?;
                let field = |key: &str| {
                    rest.split(',')
                        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))?
                        .parse()
                        .ok()
                };
                let command = Command {
                    calls: field("calls")?,
                    usec: field("usec")?,
                };
                Some((name.to_owned(), command))
            })
            .collect();
        let count = |field| info_field(info, field).and_then(|v| v.parse().ok());
        let secs = |field| info_field(info, field).and_then(|v| v.parse::<f64>().ok());
        Self {
            per_command,
            commands: count("total_commands_processed").unwrap_or(0),
            reads: count("total_reads_processed").unwrap_or(0),
            cpu_s: secs("used_cpu_sys").unwrap_or(0.0) + secs("used_cpu_user").unwrap_or(0.0),
        }
    }

    /// What happened between `self` (before) and `after`.
    pub fn until(&self, after: &Self) -> Self {
        let cpu_s = (after.cpu_s - self.cpu_s).max(0.0);
        after.combine(self, u64::saturating_sub, cpu_s)
    }

    /// The sum of several servers' usage (the masters of a cluster).
    pub fn sum<'a>(all: impl IntoIterator<Item = &'a Self>) -> Self {
        all.into_iter().fold(Self::default(), |total, u| {
            total.combine(u, |a, b| a + b, total.cpu_s + u.cpu_s)
        })
    }

    /// Every counter of `self` and `other` put together by `op`, the commands `op` leaves
    /// uncalled dropped.
    fn combine(&self, other: &Self, op: impl Fn(u64, u64) -> u64, cpu_s: f64) -> Self {
        let mut per_command = BTreeMap::new();
        for name in self.per_command.keys().chain(other.per_command.keys()) {
            let (a, b) = (self.command(name), other.command(name));
            let calls = op(a.calls, b.calls);
            if calls > 0 {
                let usec = op(a.usec, b.usec);
                per_command.insert(name.clone(), Command { calls, usec });
            }
        }
        Self {
            per_command,
            commands: op(self.commands, other.commands),
            reads: op(self.reads, other.reads),
            cpu_s,
        }
    }

    /// The counters of the command `name` (zero when it never ran).
    pub fn command(&self, name: &str) -> Command {
        self.per_command.get(name).copied().unwrap_or_default()
    }

    /// Script calls (`EVALSHA`, and `EVAL` when a script had to be loaded).
    pub fn script_calls(&self) -> u64 {
        self.command("evalsha").calls + self.command("eval").calls
    }
}
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
    /// When it cannot be read or has no aggregate `cpu` line.
    pub fn read() -> Result<Self> {
        let stat = std::fs::read_to_string("/proc/stat")
            .map_err(|e| Error(format!("reading /proc/stat: {e}")))?;
        Self::parse(&stat).ok_or_else(|| Error("no aggregate cpu line in /proc/stat".into()))
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
    pub fn busy_cores_until(&self, after: &Self) -> f64 {
        let total = after.total.saturating_sub(self.total);
        if total == 0 {
            return 0.0;
        }
        after.busy.saturating_sub(self.busy) as f64 / total as f64 * f64::from(after.cpus)
    }
}

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
    ///
    /// # Errors
    /// When a server does not answer, or the machine's or the process' counters cannot be read.
    pub async fn open(servers: &[&RedisServer], pid: Option<u32>) -> Result<Self> {
        let mut redis = Vec::new();
        for server in servers {
            let mut conn = server.try_async_connection().await?;
            let usage = Usage::take(&mut conn).await?;
            redis.push((conn, usage));
        }
        let process = pid.map(|pid| process_cpu_s(pid).map(|cpu| (pid, cpu)));
        Ok(Self {
            redis,
            process: process.transpose()?,
            machine: MachineCpu::read()?,
            started: Instant::now(),
        })
    }

    /// Reads them again, in the opposite order, and answers the differences.
    ///
    /// # Errors
    /// As [`Window::open`].
    pub async fn close(self) -> Result<Spent> {
        let elapsed = self.started.elapsed();
        let machine = MachineCpu::read()?;
        let process_cpu_s = match self.process {
            Some((pid, before)) => (process_cpu_s(pid)? - before).max(0.0),
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
fn process_cpu_s(pid: u32) -> Result<f64> {
    cpu_seconds(pid).ok_or_else(|| Error(format!("no CPU time for process {pid}: has it exited?")))
}

impl RedisServer {
    /// The server's counters now (see [`Usage`]).
    ///
    /// # Errors
    /// When the server does not answer within 60 s.
    pub fn try_usage(&self) -> Result<Usage> {
        Ok(Usage::parse(&self.try_info_text(&USAGE_SECTIONS)?))
    }

    /// [`RedisServer::try_usage`] for tests: panics with the reason.
    pub fn usage(&self) -> Usage {
        started(self.try_usage())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_parsed_and_subtracted() {
        let before = Usage::parse(
            "# Commandstats\r\n\
             cmdstat_evalsha:calls=10,usec=5,usec_per_call=0.5,rejected_calls=0,failed_calls=0\r\n\
             # Stats\r\ntotal_commands_processed:100\r\ntotal_reads_processed:40\r\n\
             # CPU\r\nused_cpu_sys:1.5\r\nused_cpu_user:2.0\r\n",
        );
        let after = Usage::parse(
            "cmdstat_evalsha:calls=30,usec=5\r\ncmdstat_incrby:calls=4,usec=1\r\n\
             total_commands_processed:150\r\ntotal_reads_processed:64\r\n\
             used_cpu_sys:2.0\r\nused_cpu_user:2.5\r\n",
        );
        let usage = before.until(&after);
        assert_eq!(
            (usage.script_calls(), usage.command("incrby").calls),
            (20, 4)
        );
        assert_eq!((usage.commands, usage.reads), (50, 24));
        assert!((usage.cpu_s - 1.0).abs() < 1e-9);
    }

    #[test]
    fn the_usage_of_several_servers_adds_up() {
        let one = Usage {
            cpu_s: 0.5,
            per_command: BTreeMap::from([
                ("evalsha".into(), Command { calls: 10, usec: 7 }),
                ("incrby".into(), Command { calls: 2, usec: 1 }),
            ]),
            ..Usage::default()
        };
        let total = Usage::sum([&one, &one, &one]);
        assert_eq!(
            (total.script_calls(), total.command("incrby").calls),
            (30, 6)
        );
        assert!((total.cpu_s - 1.5).abs() < 1e-9);
        let evalsha = total.command("evalsha");
        assert_eq!((evalsha.calls, evalsha.usec), (30, 21));
    }

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
