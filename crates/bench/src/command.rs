//! Other programs run to their end: the load generators (`wrk`, `redis-benchmark`) and the
//! `drain` child.

use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use tokio::process::Command;

/// Runs `command` to its end (`within` at most; killed after) and answers its standard output
/// (see [`testkit::try_run_to_end`]).
///
/// # Errors
/// When it cannot start (`install` then says where it comes from), does not end in time, or
/// exits with failure (its output, and its errors when captured, are in the message).
pub async fn output_of(command: &mut Command, within: Duration, install: &str) -> Result<String> {
    let program = command
        .as_std()
        .get_program()
        .to_string_lossy()
        .into_owned();
    let output = testkit::try_run_to_end(command, within)
        .await
        .map_err(|e| anyhow!("{e} ({install})"))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        bail!("{program} failed ({}): {stdout}{stderr}", output.status);
    }
    Ok(stdout)
}
