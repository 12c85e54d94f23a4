//! The third-party load generators (`wrk`, `redis-benchmark`), run to their end.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::process::Command;
use tokio::time::timeout;

/// Runs `command` to its end (`within` at most; killed after) and answers its standard output.
///
/// # Errors
/// When it cannot start (`install` then says where it comes from), does not end in time, or
/// exits with failure (its output and errors are in the message).
pub async fn output_of(command: &mut Command, within: Duration, install: &str) -> Result<String> {
    let program = command
        .as_std()
        .get_program()
        .to_string_lossy()
        .into_owned();
    let output = timeout(within, command.kill_on_drop(true).output())
        .await
        .with_context(|| format!("{program} did not finish within {within:?}"))?
        .with_context(|| format!("running {program} ({install})"))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        bail!(
            "{program} failed ({}): {stdout}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(stdout)
}
