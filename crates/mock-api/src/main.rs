//! The mock-api binary: parses its settings and serves until SIGINT or SIGTERM.

use anyhow::Context;
use clap::Parser;
use taskq::service::{LogFormat, init_tracing, shutdown_signal};

/// A simulated slow third-party API: answers "processing", then "done".
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    config: mock_api::Config,
    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    let listener = tokio::net::TcpListener::bind(cli.config.addr)
        .await
        .with_context(|| format!("binding {}", cli.config.addr))?;
    tracing::info!(addr = %listener.local_addr()?, config = ?cli.config, "mock-api listening");
    mock_api::serve(listener, cli.config, shutdown_signal())
        .await
        .context("serving")?;
    tracing::info!("mock-api stopped");
    Ok(())
}
