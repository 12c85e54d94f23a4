//! The consumer binary: parses its settings and runs until SIGINT or SIGTERM, then drains.

use anyhow::Context;
use clap::Parser;
use taskq::service::{LogFormat, init_tracing, shutdown_signal};

/// Claims due tasks, polls the third-party API for each, and records the answers.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    config: consumer::Config,
    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    tracing::info!(config = ?cli.config, "consumer starting");
    consumer::run(cli.config, shutdown_signal())
        .await
        .context("running the consumer")?;
    tracing::info!("consumer stopped");
    Ok(())
}
