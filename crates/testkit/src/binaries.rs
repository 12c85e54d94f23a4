//! Where the workspace's binaries are, and where their logs go: a test runs those built beside
//! it and lets them log to its own stderr; the benchmark runs the release ones of its
//! `--bin-dir` and keeps each one's log in a file named for the run. [`Binaries`] starts any of
//! them either way, so the stack the tests and the benchmark run is started by the same code.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::{Error, MockApi, Process, Result, started};

/// The folder of the workspace's binaries built with the running executable: its own folder,
/// or, for a test (`target/<profile>/deps/<test>`), the one above.
///
/// # Errors
/// When the running executable's path is unknown.
pub fn binaries_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe()
        .map_err(|e| Error(format!("finding the running executable: {e}")))?;
    let dir = exe
        .parent()
        .ok_or_else(|| Error(format!("{} has no folder", exe.display())))?;
    Ok(match dir.parent() {
        Some(above) if dir.ends_with("deps") => above.to_owned(),
        _ => dir.to_owned(),
    })
}

/// The binary `name` in `dir`.
///
/// # Errors
/// When it is not there, with the command that builds it.
pub fn binary_in(dir: &Path, name: &str) -> Result<PathBuf> {
    let path = dir.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error(format!(
            "{} is missing: build the binaries first (`cargo build --workspace --bins`; for the \
             benchmark `cargo build --release --bins`)",
            path.display()
        )))
    }
}

/// The path of one of the workspace's binaries, built beside the running test.
pub fn binary(name: &str) -> PathBuf {
    started(binaries_dir().and_then(|dir| binary_in(&dir, name)))
}

/// The workspace's binaries in one folder, each started with its log (stderr) in a file of its
/// own or on this process' stderr.
#[derive(Debug, Clone)]
pub struct Binaries {
    dir: PathBuf,
    /// The folder of the log files (`<label>.log`); none: this process' stderr.
    logs: Option<PathBuf>,
}

impl Binaries {
    /// The binaries built beside the running test, logging to its stderr.
    pub fn beside_this() -> Self {
        started(binaries_dir().map(|dir| Self::in_dir(dir, None)))
    }

    /// The binaries in `dir`, each logging to `<logs>/<label>.log` when `logs` is given.
    pub fn in_dir(dir: PathBuf, logs: Option<PathBuf>) -> Self {
        Self { dir, logs }
    }

    /// Where the log of the process `label` goes, when to a file.
    pub fn log(&self, label: &str) -> Option<PathBuf> {
        self.logs
            .as_ref()
            .map(|dir| dir.join(format!("{label}.log")))
    }

    /// Starts binary `name` with `env`, logging as `label` (see [`Process::try_spawn`]).
    ///
    /// # Errors
    /// When it is missing or cannot start.
    pub fn try_spawn(&self, name: &str, env: &[(&str, String)], label: &str) -> Result<Process> {
        let log = self.log(label);
        Process::try_spawn(&binary_in(&self.dir, name)?, env, log.as_deref())
    }

    /// Starts binary `name` with `env`, logging as `label`, and waits until it listens on `addr`
    /// (see [`Process::try_serve`]).
    ///
    /// # Errors
    /// When it is missing, cannot start, exits, or does not listen in time.
    pub fn try_serve(
        &self,
        name: &str,
        addr: SocketAddr,
        env: &[(&str, String)],
        label: &str,
    ) -> Result<Process> {
        let log = self.log(label);
        Process::try_serve(&binary_in(&self.dir, name)?, addr, env, log.as_deref())
    }

    /// Starts the `mock-api` with `env`, over HTTPS when `https`, logging as `label` (see
    /// [`MockApi::try_start`]).
    ///
    /// # Errors
    /// When it is missing, cannot start, exits, or does not listen in time.
    pub fn try_mock_api(
        &self,
        env: &[(&str, String)],
        https: bool,
        label: &str,
    ) -> Result<MockApi> {
        let log = self.log(label);
        MockApi::try_start(
            &binary_in(&self.dir, "mock-api")?,
            env,
            https,
            log.as_deref(),
        )
    }
}
