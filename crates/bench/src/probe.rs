//! Redis' own view of a workload (testkit's [`Usage`]: commands by name, all commands run, socket
//! reads, the server's CPU time), read before and after, so that a workload's cost per task can be
//! stated in round trips, commands and CPU.
//!
//! `commandstats` also counts the commands a script runs, which tells the scripts apart without
//! instrumenting the library: in a drain only `claim.lua` calls `INCRBY`, once per claim that
//! leased something. (`ZRANGE` does not: the claim's candidate read, the claim script and the
//! tick's sweep all call it.) Round trips are what a client waits for: every script call, plus
//! the pipelined read of candidates (two `ZRANGE`s in one round trip) that precedes each claim,
//! counted as one per claim that leased something (an empty claim's read is missed: a few per
//! drain). Redis' count of socket reads is beside it: several commands that arrive together on
//! the multiplexed connection cost one read.

use serde_json::json;
use testkit::Usage;

/// What Redis' counters say of taskq's scripts.
pub trait ScriptCosts {
    /// Claims that leased something (each runs one `INCRBY`).
    fn claims(&self) -> u64;
    /// Client round trips: script calls plus one pipelined candidate read per claim.
    fn round_trips(&self) -> u64;
    /// The per-command profile divided by `tasks`, as JSON: what one task costs Redis.
    fn profile_per_task(&self, tasks: u64) -> serde_json::Value;
}

impl ScriptCosts for Usage {
    fn claims(&self) -> u64 {
        self.command("incrby").calls
    }

    fn round_trips(&self) -> u64 {
        self.script_calls() + self.claims()
    }

    fn profile_per_task(&self, tasks: u64) -> serde_json::Value {
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
    fn round_trips_are_script_calls_and_one_read_per_claim() {
        let before = Usage::parse("cmdstat_evalsha:calls=10,usec=5\r\n");
        let after =
            Usage::parse("cmdstat_evalsha:calls=30,usec=5\r\ncmdstat_incrby:calls=4,usec=1\r\n");
        let usage = before.until(&after);
        assert_eq!((usage.script_calls(), usage.claims()), (20, 4));
        assert_eq!(usage.round_trips(), 24);
        let total = Usage::sum([&usage, &usage, &usage]);
        assert_eq!(
            (total.script_calls(), total.claims(), total.round_trips()),
            (60, 12, 72)
        );
    }
}
