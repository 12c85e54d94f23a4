//! The `bench` binary: parses flags, starts Redis, runs the workloads, writes the results.
//! See the library's docs for what each workload measures and why.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use bench::drain::{DrainArgs, run_child};
use bench::process::Binaries;
use bench::redis_server::RedisServer;
use bench::report::{
    Derived, Machine, MetricResult, Results, WorkloadResult, git_commit, load_avg, now_utc,
};
use bench::summary::summarize;
use bench::workloads::{
    Bench, Metric, Settings, Workload, enqueue, full_stack, http_enqueue, library_drain,
};
use clap::{Parser, Subcommand};
use taskq::service::{LogFormat, init_tracing};
use tracing::{info, warn};

/// Benchmarks taskq (issue 4): starts its own redis-server, runs each workload several times,
/// writes median/min/max to bench/results.json and bench/results.md. Needs the release binaries
/// (`cargo build --release`; scripts/bench builds them) and wrk for W1.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
    /// Runs per workload.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    runs: u32,
    /// Workloads to run, comma-separated (W1, W1b, W2, W2h, W3d, W4); default all.
    #[arg(long, value_delimiter = ',')]
    only: Vec<Workload>,
    /// The JSON results; the markdown table goes beside it (.md).
    #[arg(long, default_value = "bench/results.json")]
    out: PathBuf,
    /// Task count of W1b, W2, W2h and W3d instead of theirs (20,000; W3d 2,000), for quick runs.
    #[arg(long)]
    tasks: Option<u64>,
    /// W4: tasks queued.
    #[arg(long, default_value_t = 1_000_000)]
    w4_depth: u64,
    /// W4: completions timed.
    #[arg(long, default_value_t = 100_000)]
    w4_measure: u64,
    /// W1: seconds of each measured wrk run.
    #[arg(long, default_value_t = 10)]
    wrk_duration_s: u64,
    /// W2 and W4: worker concurrency.
    #[arg(long, default_value_t = 50)]
    w2_concurrency: usize,
    /// W2 and W4: worker batch size (tasks per claim at most).
    #[arg(long, default_value_t = 50)]
    w2_batch_size: usize,
    /// Where producer, consumer and mock-api are (default: beside this executable).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// The redis-server to start.
    #[arg(long, default_value = "redis-server")]
    redis_server: String,
    /// Child logs and scratch files (git-ignored).
    #[arg(long, default_value = "bench/raw")]
    raw_dir: PathBuf,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Internal: drain a queue with the library worker and print a report (run by bench itself).
    #[command(hide = true)]
    Drain(DrainArgs),
}

#[tokio::main]
async fn main() -> Result<()> {
    init_tracing(LogFormat::Text);
    let cli = Cli::parse();
    match &cli.command {
        Some(Cmd::Drain(args)) => run_child(args).await,
        None => run(cli).await,
    }
}

async fn run(cli: Cli) -> Result<()> {
    let started = Instant::now();
    let workloads = if cli.only.is_empty() {
        Workload::ALL.to_vec()
    } else {
        Workload::ALL
            .into_iter()
            .filter(|w| cli.only.contains(w))
            .collect()
    };
    let exe = std::env::current_exe().context("finding this executable")?;
    let bin_dir = match &cli.bin_dir {
        Some(dir) => dir.clone(),
        None => exe.parent().context("this executable's folder")?.to_owned(),
    };
    let needed: Vec<&str> = workloads
        .iter()
        .flat_map(|w| w.binaries())
        .copied()
        .collect();
    let bins = Binaries::find(&bin_dir, &needed)?;
    std::fs::create_dir_all(&cli.raw_dir)
        .with_context(|| format!("creating {}", cli.raw_dir.display()))?;

    let redis = RedisServer::start(&cli.redis_server).await?;
    let redis_version = redis.version().await?;
    info!(url = %redis.url(), version = %redis_version, "redis-server started");
    let bench = Bench {
        redis: &redis,
        bins: &bins,
        exe,
        raw: cli.raw_dir.clone(),
        settings: Settings {
            tasks: cli.tasks,
            w4_depth: cli.w4_depth,
            w4_measure: cli.w4_measure,
            wrk_duration_s: cli.wrk_duration_s,
            w2_concurrency: cli.w2_concurrency,
            w2_batch_size: cli.w2_batch_size,
        },
        http: reqwest::Client::new(),
    };
    let date = now_utc();
    let load_avg_at_start = load_avg();

    let mut results = Vec::new();
    for workload in workloads {
        results.push(measure(&bench, workload, cli.runs).await);
    }
    redis.stop().await;

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
    results.derived = derived(&results);
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
    let mut values: Vec<Metric> = Vec::new();
    let mut failures = Vec::new();
    for run in 1..=runs {
        let started = Instant::now();
        let outcome = match workload {
            Workload::W1 => http_enqueue::run(bench, run).await,
            Workload::W1b => enqueue::run(bench, run).await,
            Workload::W2 => library_drain::w2(bench, run).await,
            Workload::W2h => full_stack::w2h(bench, run).await,
            Workload::W3d => full_stack::w3d(bench, run).await,
            Workload::W4 => library_drain::w4(bench, run).await,
        };
        match outcome {
            Ok(metrics) => {
                let line: Vec<String> = metrics
                    .iter()
                    .map(|m| format!("{}={:.3}", m.name, m.value))
                    .collect();
                info!(
                    workload = workload.id(),
                    run,
                    took_s = started.elapsed().as_secs(),
                    "{}",
                    line.join(" ")
                );
                values.extend(metrics);
            }
            Err(err) => {
                warn!(
                    workload = workload.id(),
                    run,
                    error = format!("{err:#}"),
                    "run failed"
                );
                failures.push(format!("run {run}: {err:#}"));
            }
        }
    }
    let mut names: Vec<(&'static str, &'static str)> = Vec::new();
    for m in &values {
        if !names.iter().any(|(name, _)| *name == m.name) {
            names.push((m.name, m.unit));
        }
    }
    let metrics = names
        .into_iter()
        .filter_map(|(name, unit)| {
            let runs: Vec<f64> = values
                .iter()
                .filter(|m| m.name == name)
                .map(|m| m.value)
                .collect();
            Some(MetricResult {
                name: name.into(),
                unit: unit.into(),
                summary: summarize(&runs)?,
            })
        })
        .collect();
    WorkloadResult {
        id: workload.id().into(),
        description: workload.describe(&bench.settings),
        metrics,
        failures,
    }
}

/// Ratios of medians the issue asks for: W4 against W2, and M (peak RSS of the services).
fn derived(results: &Results) -> Vec<Derived> {
    let mut out = Vec::new();
    if let (Some(w4), Some(w2)) = (
        results.median("W4", "tasks_per_s"),
        results.median("W2", "tasks_per_s"),
    ) {
        out.push(Derived {
            name: "W4 / W2".into(),
            formula: "median tasks/s of W4 over median tasks/s of W2".into(),
            value: w4 / w2,
        });
    }
    if let Some(rss) = results.median("W1", "producer_peak_rss_mib") {
        out.push(Derived {
            name: "M producer (MiB)".into(),
            formula: "W1 producer peak RSS, median".into(),
            value: rss,
        });
    }
    if let Some(rss) = results.median("W3d", "consumer_peak_rss_mib") {
        out.push(Derived {
            name: "M consumer (MiB)".into(),
            formula: "W3d consumer peak RSS, median".into(),
            value: rss,
        });
    }
    out
}
