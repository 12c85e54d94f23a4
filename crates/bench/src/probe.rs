//! Redis' own view of a workload: commands by name (`INFO commandstats`), all commands run
//! (`total_commands_processed`) and the server's CPU time (`INFO cpu`), read before and after,
//! so a workload's cost per task can be stated in round trips, commands and CPU.
//!
//! `commandstats` also counts the commands a script runs, which tells the scripts apart without
//! instrumenting the library: in a drain only `claim.lua` calls `INCRBY` (once per claim that
//! leased something), and only `finish.lua` calls `PEXPIRE` (once per task done). (`ZRANGE` no
//! longer tells claims apart: the claim's pipelined candidate read, the claim script and the
//! tick's sweep all call it.)
//!
//! Round trips are what a client waits for: every script call, plus the pipelined read of
//! candidates that precedes each claim (two `ZRANGE`s in one round trip), counted here as one per
//! claim that leased something (an empty claim's read is missed: a few per drain). Redis' own
//! count of socket reads (`total_reads_processed`) is beside it: several commands that arrive
//! together on the multiplexed connection cost one read.

use std::collections::BTreeMap;

use anyhow::Result;
use redis::aio::MultiplexedConnection;

use crate::redis_admin::info_field;

/// Redis' counters at one moment.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Calls and microseconds per command name, including those made by scripts.
    pub calls: BTreeMap<String, Command>,
    /// Commands run, those run by scripts included.
    pub commands: u64,
    /// Server CPU seconds, system plus user, all threads.
    pub cpu_s: f64,
    /// Read events on client sockets (`total_reads_processed`).
    pub reads: u64,
}

impl Snapshot {
    /// Reads the counters.
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn take(conn: &mut MultiplexedConnection) -> Result<Self> {
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .arg("stats")
            .arg("cpu")
            .query_async(conn)
            .await?;
        Ok(Self::parse(&info))
    }

    fn parse(info: &str) -> Self {
        let calls = info
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
        let number = |field| info_field(info, field).and_then(|v| v.parse::<f64>().ok());
        Self {
            calls,
            commands: info_field(info, "total_commands_processed")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            cpu_s: number("used_cpu_sys").unwrap_or(0.0) + number("used_cpu_user").unwrap_or(0.0),
            reads: info_field(info, "total_reads_processed")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
        }
    }

    /// What happened between `self` (before) and `after`.
    pub fn until(&self, after: &Self) -> Usage {
        let per_command: BTreeMap<String, Command> = after
            .calls
            .iter()
            .map(|(name, a)| {
                let b = self.calls.get(name).copied().unwrap_or_default();
                let d = Command {
                    calls: a.calls.saturating_sub(b.calls),
                    usec: a.usec.saturating_sub(b.usec),
                };
                (name.clone(), d)
            })
            .filter(|(_, d)| d.calls > 0)
            .collect();
        let delta = |name: &str| per_command.get(name).map_or(0, |d| d.calls);
        Usage {
            evalsha: delta("evalsha") + delta("eval"),
            claims: delta("incrby"),
            completes: delta("pexpire"),
            commands: after.commands.saturating_sub(self.commands),
            reads: after.reads.saturating_sub(self.reads),
            cpu_s: (after.cpu_s - self.cpu_s).max(0.0),
            per_command,
        }
    }
}

/// One command's counters (`INFO commandstats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Command {
    /// Calls.
    pub calls: u64,
    /// Microseconds spent in them; a script's time includes the commands it ran.
    pub usec: u64,
}

/// Redis' work between two snapshots.
#[derive(Debug, Clone, Default)]
pub struct Usage {
    /// Script calls (`EVALSHA`, and `EVAL` when a script had to be loaded).
    pub evalsha: u64,
    /// Claims that leased something (each runs one `INCRBY`).
    pub claims: u64,
    /// Tasks done (each runs one `PEXPIRE`).
    pub completes: u64,
    /// Commands run, those run by scripts included.
    pub commands: u64,
    /// Read events on client sockets.
    pub reads: u64,
    /// Server CPU seconds.
    pub cpu_s: f64,
    /// Every command that ran, with its calls and time.
    pub per_command: BTreeMap<String, Command>,
}

impl Usage {
    /// Client round trips: script calls plus one pipelined candidate read per claim.
    pub fn round_trips(&self) -> u64 {
        self.evalsha + self.claims
    }

    /// The sum of several servers' usage (the masters of a cluster).
    pub fn sum<'a>(all: impl IntoIterator<Item = &'a Self>) -> Self {
        let mut total = Self::default();
        for u in all {
            total.evalsha += u.evalsha;
            total.claims += u.claims;
            total.completes += u.completes;
            total.commands += u.commands;
            total.reads += u.reads;
            total.cpu_s += u.cpu_s;
            for (name, c) in &u.per_command {
                let entry = total.per_command.entry(name.clone()).or_default();
                entry.calls += c.calls;
                entry.usec += c.usec;
            }
        }
        total
    }

    /// The per-command profile divided by `tasks`, as JSON: what one task costs Redis.
    pub fn profile_per_task(&self, tasks: u64) -> serde_json::Value {
        let n = tasks.max(1) as f64;
        let commands: serde_json::Map<String, serde_json::Value> = self
            .per_command
            .iter()
            .map(|(name, c)| {
                let row = serde_json::json!({
                    "calls_per_task": c.calls as f64 / n,
                    "usec_per_task": c.usec as f64 / n,
                    "calls": c.calls,
                    "usec": c.usec,
                });
                (name.clone(), row)
            })
            .collect();
        serde_json::json!({
            "tasks": tasks,
            "commands_per_task": self.commands as f64 / n,
            "round_trips_per_task": self.round_trips() as f64 / n,
            "socket_reads_per_task": self.reads as f64 / n,
            "redis_cpu_us_per_task": self.cpu_s * 1e6 / n,
            "commands": commands,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_parsed_and_subtracted() {
        let before = Snapshot::parse(
            "# Commandstats\r\ncmdstat_evalsha:calls=10,usec=5,usec_per_call=0.5,rejected_calls=0,failed_calls=0\r\n\
             # Stats\r\ntotal_commands_processed:100\r\ntotal_reads_processed:40\r\n# CPU\r\nused_cpu_sys:1.5\r\nused_cpu_user:2.0\r\n",
        );
        let after = Snapshot::parse(
            "cmdstat_evalsha:calls=30,usec=5\r\ncmdstat_incrby:calls=4,usec=1\r\n\
             total_commands_processed:150\r\ntotal_reads_processed:64\r\n\
             used_cpu_sys:2.0\r\nused_cpu_user:2.5\r\n",
        );
        let usage = before.until(&after);
        assert_eq!(usage.evalsha, 20);
        assert_eq!(usage.claims, 4);
        assert_eq!(usage.completes, 0);
        assert_eq!(usage.commands, 50);
        assert_eq!(usage.reads, 24);
        assert_eq!(usage.round_trips(), 24);
        assert!((usage.cpu_s - 1.0).abs() < 1e-9);
    }

    #[test]
    fn the_usage_of_several_servers_adds_up() {
        let one = Usage {
            evalsha: 10,
            claims: 2,
            cpu_s: 0.5,
            per_command: BTreeMap::from([("evalsha".into(), Command { calls: 10, usec: 7 })]),
            ..Usage::default()
        };
        let total = Usage::sum([&one, &one, &one]);
        assert_eq!(
            (total.evalsha, total.claims, total.round_trips()),
            (30, 6, 36)
        );
        assert!((total.cpu_s - 1.5).abs() < 1e-9);
        assert_eq!(
            total.per_command["evalsha"],
            Command {
                calls: 30,
                usec: 21
            }
        );
    }
}
