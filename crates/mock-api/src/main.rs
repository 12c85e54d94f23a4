//! The mock-api binary: parses its settings and serves until SIGINT or SIGTERM.

use anyhow::Context;
use clap::Parser;
use service_kit::{HealthcheckArgs, LogArgs, shutdown_signal};

/// A simulated slow third-party API: answers "processing", then "done".
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    config: mock_api::Config,
    #[command(flatten)]
    log: LogArgs,
    #[command(flatten)]
    health: HealthcheckArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli: Cli = service_kit::parse();
    if cli.health.healthcheck {
        // The mock has no /healthz: /stats answers 200 whenever it serves.
        return Ok(service_kit::healthcheck::probe(cli.config.addr, "/stats")?);
    }
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
