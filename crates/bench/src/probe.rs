//! Redis' own view of a workload: commands by name (`INFO commandstats`), all commands run
//! (`total_commands_processed`) and the server's CPU time (`INFO cpu`), read before and after,
//! so a workload's cost per task can be stated in round trips, commands and CPU.
//!
//! `commandstats` also counts the commands a script runs, which tells the scripts apart without
//! instrumenting the library: in a drain only `claim.lua` calls `ZRANGE` (once per claim) and
//! `INCRBY` (once per claim that leased something), and only `complete.lua` calls `PEXPIRE`.

use std::collections::BTreeMap;

use anyhow::Result;
use redis::aio::MultiplexedConnection;

use crate::redis_server::info_field;

/// Redis' counters at one moment.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Calls and microseconds per command name, including those made by scripts.
    pub calls: BTreeMap<String, Command>,
    /// Commands run, those run by scripts included.
    pub commands: u64,
    /// Server CPU seconds, system plus user, all threads.
    pub cpu_s: f64,
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
            claims: delta("zrange"),
            completes: delta("pexpire"),
            commands: after.commands.saturating_sub(self.commands),
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
    /// Claim script calls (each runs one `ZRANGE`).
    pub claims: u64,
    /// Complete script calls (each runs one `PEXPIRE`).
    pub completes: u64,
    /// Commands run, those run by scripts included.
    pub commands: u64,
    /// Server CPU seconds.
    pub cpu_s: f64,
    /// Every command that ran, with its calls and time.
    pub per_command: BTreeMap<String, Command>,
}

impl Usage {
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
             # Stats\r\ntotal_commands_processed:100\r\n# CPU\r\nused_cpu_sys:1.5\r\nused_cpu_user:2.0\r\n",
        );
        let after = Snapshot::parse(
            "cmdstat_evalsha:calls=30,usec=5\r\ncmdstat_zrange:calls=4,usec=1\r\n\
             total_commands_processed:150\r\nused_cpu_sys:2.0\r\nused_cpu_user:2.5\r\n",
        );
        let usage = before.until(&after);
        assert_eq!(usage.evalsha, 20);
        assert_eq!(usage.claims, 4);
        assert_eq!(usage.completes, 0);
        assert_eq!(usage.commands, 50);
        assert!((usage.cpu_s - 1.0).abs() < 1e-9);
    }
}
