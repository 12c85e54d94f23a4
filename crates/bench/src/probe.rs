//! Redis' own view of a workload: commands by name (`INFO commandstats`), all commands run and
//! socket reads (`INFO stats`) and the server's CPU time (`INFO cpu`), read before and after, so a
//! workload's cost per task can be stated in round trips, commands and CPU.
//!
//! `commandstats` also counts the commands a script runs, which tells the scripts apart without
//! instrumenting the library: in a drain only `claim.lua` calls `INCRBY`, once per claim that
//! leased something. (`ZRANGE` does not: the claim's candidate read, the claim script and the
//! tick's sweep all call it.) Round trips are what a client waits for: every script call, plus
//! the pipelined read of candidates (two `ZRANGE`s in one round trip) that precedes each claim,
//! counted as one per claim that leased something (an empty claim's read is missed: a few per
//! drain). Redis' count of socket reads is beside it: several commands that arrive together on
//! the multiplexed connection cost one read.

use std::collections::BTreeMap;

use anyhow::Result;
use redis::aio::MultiplexedConnection;
use serde_json::json;

use testkit::info_field;

/// Redis' counters at one moment ([`Usage::take`]), what they grew by between two moments
/// ([`Usage::until`]), or several servers' together ([`Usage::sum`]).
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
    /// Reads the counters.
    pub async fn take(conn: &mut MultiplexedConnection) -> Result<Self> {
        let info: String = redis::cmd("INFO")
            .arg(&["commandstats", "stats", "cpu"])
            .query_async(conn)
            .await?;
        Ok(Self::parse(&info))
    }

    fn parse(info: &str) -> Self {
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

    fn command(&self, name: &str) -> Command {
        self.per_command.get(name).copied().unwrap_or_default()
    }

    /// Script calls (`EVALSHA`, and `EVAL` when a script had to be loaded).
    pub fn script_calls(&self) -> u64 {
        self.command("evalsha").calls + self.command("eval").calls
    }

    /// Claims that leased something (each runs one `INCRBY`).
    pub fn claims(&self) -> u64 {
        self.command("incrby").calls
    }

    /// Client round trips: script calls plus one pipelined candidate read per claim.
    pub fn round_trips(&self) -> u64 {
        self.script_calls() + self.claims()
    }

    /// The per-command profile divided by `tasks`, as JSON: what one task costs Redis.
    pub fn profile_per_task(&self, tasks: u64) -> serde_json::Value {
        let n = tasks.max(1) as f64;
        let mut commands = serde_json::Map::new();
        for (name, c) in &self.per_command {
            let (calls, usec) = (c.calls as f64 / n, c.usec as f64 / n);
            let row = json!({
                "calls_per_task": calls, "usec_per_task": usec, "calls": c.calls, "usec": c.usec
            });
            commands.insert(name.clone(), row);
        }
        json!({
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
        assert_eq!((usage.script_calls(), usage.claims()), (20, 4));
        assert_eq!(
            (usage.commands, usage.reads, usage.round_trips()),
            (50, 24, 24)
        );
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
            (total.script_calls(), total.claims(), total.round_trips()),
            (30, 6, 36)
        );
        assert!((total.cpu_s - 1.5).abs() < 1e-9);
        let evalsha = total.command("evalsha");
        assert_eq!((evalsha.calls, evalsha.usec), (30, 21));
    }
}
