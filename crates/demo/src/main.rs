//! The demo binary: parses its settings, runs the demo against a running producer, prints the
//! summary. `scripts/demo` starts the services first.

use clap::Parser;

/// Submits tasks to a running taskq producer, shows them move through their states, and prints
/// a summary.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    config: demo::Config,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli: Cli = service_kit::parse();
    let url = cli.config.producer_url.trim_end_matches('/').to_owned();
    println!(
        "submitting {} tasks, each twice, to {url}/tasks (the dashboard: {url}/ui)",
        cli.config.tasks
    );
    let summary = demo::run(&cli.config).await?;
    println!("\n{}", summary.table());
    Ok(())
}
