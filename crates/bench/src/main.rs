//! The `bench` binary: parses flags, starts Redis, runs the workloads, writes the results.
//! See the library's docs for what each workload measures and why.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use bench::drain::run_child;
use bench::report::{
    Derived, Machine, MetricResult, Results, WorkloadResult, git_commit, load_avg, now_utc,
};
use bench::workload::{S_CONCURRENCY, S1_DELAY_MS, Settings, Workload};
use bench::workloads::{self, Bench, Metric};
use clap::{Parser, Subcommand, ValueEnum};
use service_kit::{LogFormat, init_tracing};
use testkit::{Binaries, RedisServer};
use tracing::{info, warn};

/// Benchmarks taskq (issues 4 and 5): starts its own redis-server (and, for S2, a 3-master Redis
/// Cluster), runs each workload several times, writes median/min/max to bench/results.json and
/// bench/results.md. Needs the release binaries (`cargo build --release`; scripts/bench builds
/// them), redis-server on the PATH, wrk for W1 and redis-benchmark for W1b.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
    /// Runs per workload.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    runs: u32,
    /// Workloads to run, comma-separated, in any case; default all.
    #[arg(long, value_delimiter = ',', ignore_case = true)]
    only: Vec<Workload>,
    /// The JSON results; the markdown table goes beside it (.md).
    #[arg(long, default_value = "bench/results.json")]
    out: PathBuf,
    #[command(flatten)]
    settings: Settings,
    /// Load the capacity figures are worked out for (API polls per second).
    #[arg(long, default_value_t = 50_000.0)]
    capacity_load: f64,
    /// Where producer, consumer and mock-api are (default: beside this executable).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Child logs and scratch files (git-ignored).
    #[arg(long, default_value = "bench/raw")]
    raw_dir: PathBuf,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Internal: drain a queue with the library worker and print a report (run by bench itself).
    #[command(hide = true)]
    Drain {
        /// What to drain, as JSON (see `DrainArgs`).
        orders: String,
    },
}

#[tokio::main]
async fn main() -> Result<()> {
    init_tracing(LogFormat::Text);
    let cli: Cli = service_kit::parse();
    match &cli.command {
        Some(Cmd::Drain { orders }) => run_child(orders).await,
        None => run(cli).await,
    }
}

async fn run(cli: Cli) -> Result<()> {
    let started = Instant::now();
    let workloads: Vec<Workload> = Workload::value_variants()
        .iter()
        .filter(|w| cli.only.is_empty() || cli.only.contains(w))
        .copied()
        .collect();
    let bin_dir = cli.bin_dir.clone().map_or_else(testkit::binaries_dir, Ok)?;
    for name in workloads.iter().flat_map(|w| w.binaries()) {
        testkit::binary_in(&bin_dir, name)?;
    }
    std::fs::create_dir_all(&cli.raw_dir)
        .with_context(|| format!("creating {}", cli.raw_dir.display()))?;

    let redis = RedisServer::try_start()?;
    let redis_version = redis.try_info("server", "redis_version")?;
    info!(url = %redis.url(), version = %redis_version, "redis-server started");
    let bench = Bench {
        redis: &redis,
        binaries: Binaries::in_dir(bin_dir, Some(cli.raw_dir.clone())),
        raw: cli.raw_dir.clone(),
        settings: cli.settings.clone(),
        http: testkit::http_client(),
    };
    let date = now_utc();
    let load_avg_at_start = load_avg();

    let mut results = Vec::new();
    for workload in workloads {
        results.push(measure(&bench, workload, cli.runs).await);
    }
    drop(redis);

    let mut results = Results {
        machine: Machine::detect(),
        date,
        git_commit: git_commit(),
        redis_version,
        runs: cli.runs,
        duration_s: started.elapsed().as_secs_f64(),
        load_avg_at_start,
        workloads: results,
        derived: Vec::new(),
    };
    results.derived = derived(&results, cli.capacity_load);
    results.write(&cli.out)?;
    println!("{}", results.markdown());
    info!(json = %cli.out.display(), "results written");
    let failed: usize = results.workloads.iter().map(|w| w.failures.len()).sum();
    if failed > 0 {
        bail!("{failed} run(s) failed; see the FAILED RUN rows");
    }
    Ok(())
}

/// Runs `workload` `runs` times; a failed run is recorded with its reason and counts no figure.
async fn measure(bench: &Bench<'_>, workload: Workload, runs: u32) -> WorkloadResult {
    let mut measured: Vec<Metric> = Vec::new();
    let mut failures = Vec::new();
    for run in 1..=runs {
        let started = Instant::now();
        let outcome = workloads::run(bench, workload, run).await;
        let (id, took_s) = (workload.id(), started.elapsed().as_secs());
        let id = id.as_str();
        match outcome {
            Ok(metrics) => {
                let line: Vec<String> = metrics
                    .iter()
                    .map(|m| format!("{}={:.3}", m.name, m.value))
                    .collect();
                info!(workload = id, run, took_s, "{}", line.join(" "));
                measured.extend(metrics);
            }
            Err(err) => {
                warn!(workload = id, run, error = format!("{err:#}"), "run failed");
                failures.push(format!("run {run}: {err:#}"));
            }
        }
    }
    WorkloadResult {
        id: workload.id(),
        description: workload.describe(&bench.settings),
        metrics: MetricResult::by_name(measured),
        failures,
    }
}

/// Share of one core a shard is planned to use at most: Redis runs commands on one thread, and
/// latency grows fast as that thread nears saturation.
const SHARD_HEADROOM: f64 = 0.7;

/// Figures computed from several workloads' medians: the ratios issue 4 asks for, and the
/// capacity maths of issue 5 for `l` API polls per second.
fn derived(results: &Results, l: f64) -> Vec<Derived> {
    let median = |id: &str, metric: &str| results.median(id, metric);
    let mut out = Vec::new();
    let mut push = |name: String, formula: String, value: f64| {
        out.push(Derived {
            name,
            formula,
            value,
        });
    };
    if let (Some(w4), Some(w2)) = (median("W4", "tasks_per_s"), median("W2", "tasks_per_s")) {
        let formula = "median tasks/s of W4 over median tasks/s of W2";
        push("W4 / W2".into(), formula.into(), w4 / w2);
    }
    for (what, id) in [("producer", "W1"), ("consumer", "W3d")] {
        if let Some(rss) = median(id, &format!("{what}_peak_rss_mib")) {
            let name = format!("M {what} (MiB)");
            push(name, format!("{id} {what} peak RSS, median"), rss);
        }
    }

    // Capacity: what one Redis core does, from the CPU Redis spent per task (W2, W2h) and per
    // API call (W3d: two "processing" answers and one "done" per task).
    let mut costliest: Option<(&str, f64)> = None;
    for (id, what) in [("W2", "task"), ("W2h", "task"), ("W3d", "poll")] {
        let metric = format!("redis_cpu_us_per_{what}");
        if let Some(us) = median(id, &metric) {
            let name = format!("one shard, {what}s/s at 100 % of a core ({id})");
            push(name, format!("1e6 / {id} {metric} ({us:.1} µs)"), 1e6 / us);
            if id != "W2" && costliest.is_none_or(|(_, most)| us > most) {
                costliest = Some((id, us));
            }
        }
    }
    if let Some((id, us)) = costliest {
        let cores = l * us / 1e6;
        let formula = format!("{l:.0} × {us:.1} µs ({id}, the costlier full-stack figure) / 1e6");
        push(format!("Redis cores for {l:.0} polls/s"), formula, cores);
        let headroom = SHARD_HEADROOM * 100.0;
        let formula = format!(
            "ceil(Redis cores / {SHARD_HEADROOM}): each shard at most {headroom:.0} % of its core"
        );
        let shards = (cores / SHARD_HEADROOM).ceil();
        push(format!("shards for {l:.0} polls/s"), formula, shards);
    }
    for (id, what) in [("W2h", "task"), ("W3d", "poll"), ("S1", "task")] {
        let metric = format!("consumer_cpu_us_per_{what}");
        if let Some(us) = median(id, &metric) {
            let name = format!("consumer cores for {l:.0} polls/s ({id})");
            let formula = format!("{l:.0} × {us:.1} µs ({id} {metric}) / 1e6");
            push(name, formula, l * us / 1e6);
        }
    }
    if let Some(one) = median("S1", "n1_tasks_per_s") {
        let name = format!(
            "consumers for {l:.0} polls/s at {S1_DELAY_MS} ms, CONCURRENCY={S_CONCURRENCY} (S1)"
        );
        let formula = format!(
            "ceil({l:.0} / {one:.0} tasks/s, one consumer's rate in S1; S1 shows it adds up)"
        );
        push(name, formula, (l / one).ceil());
    }
    out
}
