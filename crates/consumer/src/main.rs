//! The consumer binary: parses its settings and runs until SIGINT or SIGTERM, then drains.

use anyhow::Context;
use clap::Parser;
use service::{LogArgs, runtime, shutdown_signal};

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
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    cli.log.init();
    let runtime = runtime(cli.runtime_threads).context("starting the runtime")?;
    tracing::info!(config = ?cli.config, threads = cli.runtime_threads, "consumer starting");
    runtime.block_on(async {
        let addr = cli.config.addr;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding CONSUMER_ADDR {addr}"))?;
        tracing::info!(addr = %listener.local_addr()?, "serving /metrics and /healthz");
        consumer::run(cli.config, listener, shutdown_signal())
            .await
            .context("running the consumer")
    })?;
    tracing::info!("consumer stopped");
    Ok(())
}
