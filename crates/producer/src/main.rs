//! The producer binary: parses its settings and serves until SIGINT or SIGTERM.

use anyhow::Context;
use clap::Parser;
use service_kit::{HealthcheckArgs, LogArgs, runtime, shutdown_signal};

/// HTTP front door of taskq: GET /?task-name=NAME (or POST /tasks) enqueues a task and answers
/// at once; an admin API, /metrics and /openapi.json besides.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    config: producer::Config,
    #[command(flatten)]
    log: LogArgs,
    /// Threads serving requests (0: one per core, 1: all on one thread).
    #[arg(long, env = "RUNTIME_THREADS", default_value_t = 0)]
    runtime_threads: usize,
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
    cli.log.init();
    runtime(cli.runtime_threads)
        .context("starting the runtime")?
        .block_on(serve(cli))
}

async fn serve(cli: Cli) -> anyhow::Result<()> {
    let state = cli.config.state().context("starting")?;
    let listener = tokio::net::TcpListener::bind(cli.config.addr)
        .await
        .with_context(|| format!("binding {}", cli.config.addr))?;
    tracing::info!(
        addr = %listener.local_addr()?,
        config = ?cli.config,
        connections = ?state.connections.limits(),
        "producer listening"
    );
    if state.tokens.admin.is_none() {
        tracing::warn!(
            "ADMIN_TOKEN is not set: the admin routes are open to anyone who can reach this address"
        );
    }
    producer::serve(listener, state, shutdown_signal())
        .await
        .context("serving")?;
    tracing::info!("producer stopped");
    Ok(())
}
