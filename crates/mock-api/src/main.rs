//! The mock-api binary: parses its settings and serves until SIGINT or SIGTERM.

use anyhow::Context;
use clap::Parser;
use service_kit::{LogArgs, shutdown_signal};

/// A simulated slow third-party API: answers "processing", then "done".
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    config: mock_api::Config,
    #[command(flatten)]
    log: LogArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    cli.log.init();
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
