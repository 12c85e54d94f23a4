//! The consumer binary: parses its settings and runs until SIGINT or SIGTERM, then drains.

use anyhow::Context;
use clap::Parser;
use service_kit::{HealthcheckArgs, LogArgs, runtime, shutdown_signal};

/// Claims due tasks, polls the third-party API for each, and records the answers.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    config: consumer::Config,
    #[command(flatten)]
    log: LogArgs,
    /// Threads running the consumer (0: one per core). Waiting on the API costs no thread, so
    /// one thread keeps thousands of calls a second in flight, with the least memory; more help
    /// only when parsing the API's answers is the limit.
    #[arg(long, env = "RUNTIME_THREADS", default_value_t = 1)]
    runtime_threads: usize,
    /// Check the settings and QUEUES_FILE with this environment and exit: every queue's calls
    /// as they will be made (headers by name only), or every mistake (exit code 1).
    #[arg(long)]
    check: bool,
    #[command(flatten)]
    health: HealthcheckArgs,
}

fn main() -> anyhow::Result<()> {
    let cli: Cli = service_kit::parse();
    if cli.health.healthcheck {
        return Ok(service_kit::healthcheck::probe(
            cli.config.addr,
            "/healthz",
        )?);
    }
    if cli.check {
        return match consumer::config::check(&cli.config) {
            Ok(report) => {
                print!("{report}");
                Ok(())
            }
            Err(mistakes) => {
                eprint!("{mistakes}");
                std::process::exit(1);
            }
        };
    }
    cli.log.init();
    let runtime = runtime(cli.runtime_threads).context("starting the runtime")?;
    tracing::info!(config = ?cli.config, threads = cli.runtime_threads, "consumer starting");
    // Bound in a call of its own: wrapping `run` in an async block that binds first cost a
    // second copy of its large future on the stack (0.4 MiB more peak RSS).
    let addr = cli.config.addr;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(addr))
        .with_context(|| format!("binding CONSUMER_ADDR {addr}"))?;
    tracing::info!(addr = %listener.local_addr()?, "serving /metrics and /healthz");
    runtime
        .block_on(consumer::run(cli.config, listener, shutdown_signal()))
        .context("running the consumer")?;
    tracing::info!("consumer stopped");
    Ok(())
}
