//! Other programs run to their end: the load generators (`wrk`, `redis-benchmark`) and the
//! `drain` child.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::process::Command;
use tokio::time::timeout;

/// Runs `command` to its end (`within` at most; killed after) and answers its standard output.
/// Its standard error goes where `command` sends it (the parent's by default).
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
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("running {program} ({install})"))?;
    let output = timeout(within, child.wait_with_output())
        .await
        .with_context(|| format!("{program} did not finish within {within:?}"))??;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        bail!("{program} failed ({}): {stdout}{stderr}", output.status);
    }
    Ok(stdout)
}
