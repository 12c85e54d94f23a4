//! The results: `results.json` (every run's value, for machines) and `results.md` (medians with
//! min and max, for people), both headed by what they were measured on: machine, date, commit and
//! Redis version. Figures from a noisy shared machine mean little without those.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::workloads::Metric;

/// Everything one benchmark invocation measured.
#[derive(Debug, Serialize)]
pub struct Results {
    /// What it ran on.
    pub machine: Machine,
    /// When it started (UTC, ISO 8601).
    pub date: String,
    /// The commit measured (`-dirty` when the work tree had changes).
    pub git_commit: String,
    /// `redis_version` of the private server.
    pub redis_version: String,
    /// Runs per workload asked for.
    pub runs: u32,
    /// The whole invocation's duration.
    pub duration_s: f64,
    /// `/proc/loadavg` (1, 5, 15 min) when the run started: other work on the machine skews
    /// every figure.
    pub load_avg_at_start: String,
    /// One entry per workload run.
    pub workloads: Vec<WorkloadResult>,
    /// Figures computed across workloads (ratios of medians).
    pub derived: Vec<Derived>,
}

/// The machine's facts.
#[derive(Debug, Serialize)]
pub struct Machine {
    hostname: String,
    cpu: String,
    /// Cores this process may use.
    cores: usize,
    memory_mib: u64,
    kernel: String,
}

/// One workload's figures.
#[derive(Debug, Serialize)]
pub struct WorkloadResult {
    /// The id (W1, W1b, ...).
    pub id: String,
    /// What was measured, with the sizes used.
    pub description: String,
    /// Each metric over the runs that succeeded.
    pub metrics: Vec<MetricResult>,
    /// Why the other runs failed (a failed run counts no figure).
    pub failures: Vec<String>,
}

/// One metric over all runs: the median is what a noisy shared machine can repeat, the range
/// says how noisy it was.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricResult {
    name: String,
    unit: String,
    /// The middle value (the mean of the two middle ones for an even count).
    pub median: f64,
    /// The smallest value.
    pub min: f64,
    /// The largest value.
    pub max: f64,
    /// Every run's value, in run order.
    pub runs: Vec<f64>,
}

/// A figure computed from two workloads' medians.
#[derive(Debug, Serialize)]
pub struct Derived {
    /// Its name.
    pub name: String,
    /// How it is computed.
    pub formula: String,
    /// Its value.
    pub value: f64,
}

impl MetricResult {
    /// The metrics of every run summarised by name, in the order the names first appear.
    pub fn by_name(measured: Vec<Metric>) -> Vec<Self> {
        let mut runs: Vec<(Metric, Vec<f64>)> = Vec::new();
        for metric in measured {
            match runs.iter_mut().find(|(first, _)| first.name == metric.name) {
                Some((_, values)) => values.push(metric.value),
                None => runs.push((metric.clone(), vec![metric.value])),
            }
        }
        runs.into_iter()
            .filter_map(|(metric, values)| Self::summarize(metric.name, metric.unit, values))
            .collect()
    }

    /// Metric `name` in `unit` over `values`; `None` when there are none.
    fn summarize(name: String, unit: &str, values: Vec<f64>) -> Option<Self> {
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        let (first, last) = (*sorted.first()?, *sorted.last()?);
        let mid = sorted.len() / 2;
        let median = if sorted.len() % 2 == 1 {
            sorted[mid]
        } else {
            f64::midpoint(sorted[mid - 1], sorted[mid])
        };
        Some(Self {
            name,
            unit: unit.into(),
            median,
            min: first,
            max: last,
            runs: values,
        })
    }
}

impl Machine {
    /// Reads `/proc` (fields it cannot read say "unknown").
    pub fn detect() -> Self {
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        let cpuinfo = read("/proc/cpuinfo");
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
            .map_or("unknown", |(_, model)| model.trim())
            .to_owned();
        let memory_mib = read("/proc/meminfo")
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kib| kib / 1024);
        let known = |s: String| {
            let s = s.trim().to_owned();
            if s.is_empty() { "unknown".into() } else { s }
        };
        Self {
            hostname: known(read("/proc/sys/kernel/hostname")),
            cpu,
            cores: std::thread::available_parallelism().map_or(0, usize::from),
            memory_mib,
            kernel: known(read("/proc/sys/kernel/osrelease")),
        }
    }
}

/// The commit of the work tree in the current folder, `-dirty` when it has changes to tracked
/// files; "unknown" outside git.
pub fn git_commit() -> String {
    let Some(commit) = stdout_of("git", &["rev-parse", "HEAD"]) else {
        return "unknown".into();
    };
    match stdout_of("git", &["status", "--porcelain", "--untracked-files=no"]) {
        Some(changes) if !changes.is_empty() => format!("{commit}-dirty"),
        _ => commit,
    }
}

/// The 1, 5 and 15 minute load averages.
pub fn load_avg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// Now, as `YYYY-MM-DDTHH:MM:SSZ` (UTC).
pub fn now_utc() -> String {
    stdout_of("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]).unwrap_or_else(|| "unknown".into())
}

/// The trimmed standard output of `program` when it succeeds.
fn stdout_of(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program).args(args).output().ok()?;
    let stdout = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    output.status.success().then_some(stdout)
}

impl Results {
    /// The median of `metric` of workload `id`, when it was measured.
    pub fn median(&self, id: &str, metric: &str) -> Option<f64> {
        let workload = self.workloads.iter().find(|w| w.id == id)?;
        let metric = workload.metrics.iter().find(|m| m.name == metric)?;
        Some(metric.median)
    }

    /// Writes `json_path` and the markdown table beside it (`.md`).
    pub fn write(&self, json_path: &Path) -> Result<()> {
        if let Some(dir) = json_path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let json = serde_json::to_string_pretty(self)?;
        std::fs::write(json_path, json + "\n")
            .with_context(|| format!("writing {}", json_path.display()))?;
        let md_path = json_path.with_extension("md");
        std::fs::write(&md_path, self.markdown())
            .with_context(|| format!("writing {}", md_path.display()))?;
        Ok(())
    }

    /// The markdown report.
    pub fn markdown(&self) -> String {
        let m = &self.machine;
        let (cpu, cores, mem, kernel) = (&m.cpu, m.cores, m.memory_mib, &m.kernel);
        let (date, commit, redis) = (&self.date, &self.git_commit, &self.redis_version);
        let (runs, secs, load) = (self.runs, self.duration_s, &self.load_avg_at_start);
        let mut out = format!(
            "# taskq benchmark\n\n\
             {date} · commit `{commit}` · Redis {redis} · {cores} cores ({cpu}), {mem} MiB, \
             Linux {kernel} · load average at start {load} · {runs} run(s) per workload · \
             whole run {secs:.0} s\n\n\
             | workload | metric | median | min | max | unit |\n|---|---|---:|---:|---:|---|\n",
        );
        for w in &self.workloads {
            for metric in &w.metrics {
                let (id, name, unit, s) = (&w.id, &metric.name, &metric.unit, metric);
                let (median, min, max) = (number(s.median), number(s.min), number(s.max));
                out += &format!("| {id} | {name} | {median} | {min} | {max} | {unit} |\n");
            }
            for failure in &w.failures {
                out += &format!("| {} | FAILED RUN | | | | {failure} |\n", w.id);
            }
        }
        if !self.derived.is_empty() {
            out += "\n| derived | value | formula |\n|---|---:|---|\n";
            for d in &self.derived {
                out += &format!("| {} | {} | {} |\n", d.name, number(d.value), d.formula);
            }
        }
        out += "\n## Workloads\n\n";
        for w in &self.workloads {
            out += &format!("- **{}**: {}\n", w.id, w.description);
        }
        out
    }
}

/// A figure with as many digits as it deserves: thousands grouped, small values with decimals.
fn number(x: f64) -> String {
    match x.abs() {
        a if !a.is_finite() => x.to_string(),
        a if a >= 1000.0 => {
            let digits = format!("{a:.0}");
            let mut grouped = String::from(if x < 0.0 { "-" } else { "" });
            for (i, c) in digits.chars().enumerate() {
                if i > 0 && (digits.len() - i).is_multiple_of(3) {
                    grouped.push(',');
                }
                grouped.push(c);
            }
            grouped
        }
        a if a >= 100.0 => format!("{x:.0}"),
        a if a >= 10.0 => format!("{x:.1}"),
        _ => format!("{x:.2}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_keep_the_digits_that_matter() {
        assert_eq!(number(18_728.4), "18,728");
        assert_eq!(number(1_000_000.0), "1,000,000");
        assert_eq!(number(123.4), "123");
        assert_eq!(number(13.63), "13.6");
        assert_eq!(number(1.234), "1.23");
        assert_eq!(number(-12_345.0), "-12,345");
    }

    #[test]
    fn odd_counts_take_the_middle_value() {
        let s =
            MetricResult::summarize("x".into(), "u", vec![3.0, 1.0, 2.0]).expect("three values");
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        assert_eq!(s.runs, vec![3.0, 1.0, 2.0]);
    }

    #[test]
    fn even_counts_average_the_two_middle_values() {
        let s = MetricResult::summarize("x".into(), "u", vec![4.0, 1.0]).expect("two values");
        assert_eq!(s.median, 2.5);
    }

    #[test]
    fn no_runs_no_summary() {
        assert_eq!(MetricResult::summarize("x".into(), "u", Vec::new()), None);
    }
}
