//! A child process of the project's binaries (`producer`, `consumer`, `mock-api`), and what a
//! process used, read from `/proc`: its peak resident memory and its CPU time.
//!
//! `VmHWM` is the kernel's high-water mark of a process' resident set: read just before the
//! process stops, it is the peak of its whole life, with no sampling gap.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use crate::{Error, Result, binary, listening, started};

/// A running binary, stopped (SIGKILL) when dropped.
pub struct Process {
    child: Option<Child>,
    name: String,
    /// Where its log (stderr) goes, when not to this process' stderr: named in errors.
    log: Option<PathBuf>,
}

impl Process {
    /// Starts binary `name` with `env` added to the environment (`RUST_LOG` defaults to `warn`
    /// so test output stays readable).
    pub fn spawn(name: &str, env: &[(&str, String)]) -> Self {
        started(Self::try_spawn(&binary(name), env, None))
    }

    /// Starts binary `name` with its log (stderr) written to the file `log`.
    pub fn spawn_logged(name: &str, env: &[(&str, String)], log: &Path) -> Self {
        started(Self::try_spawn(&binary(name), env, Some(log)))
    }

    /// Starts binary `name` and waits until it listens on `addr`.
    pub fn serve(name: &str, addr: SocketAddr, env: &[(&str, String)]) -> Self {
        started(Self::try_serve(&binary(name), addr, env, None))
    }

    /// Starts `program` with `env` added to the environment (`RUST_LOG` is `TEST_RUST_LOG`, or
    /// `warn`); its stderr goes to the file `log`, or to this process' stderr.
    ///
    /// # Errors
    /// When the log file cannot be made or the program cannot start.
    pub fn try_spawn(program: &Path, env: &[(&str, String)], log: Option<&Path>) -> Result<Self> {
        let name = program.file_name().map_or_else(
            || program.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let stderr = match log {
            Some(log) => Stdio::from(
                std::fs::File::create(log)
                    .map_err(|e| Error(format!("creating the log {}: {e}", log.display())))?,
            ),
            None => Stdio::inherit(),
        };
        let mut command = Command::new(program);
        command
            .env(
                "RUST_LOG",
                std::env::var("TEST_RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .envs(env.iter().map(|(key, value)| (key, value)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        let child = command
            .spawn()
            .map_err(|e| Error(format!("starting {}: {e}", program.display())))?;
        Ok(Self {
            child: Some(child),
            name,
            log: log.map(Path::to_owned),
        })
    }

    /// Starts `program` as [`Process::try_spawn`] does and waits (10 s at most) until it
    /// listens on `addr`.
    ///
    /// # Errors
    /// When it cannot start, exits, or does not listen in time.
    pub fn try_serve(
        program: &Path,
        addr: SocketAddr,
        env: &[(&str, String)],
        log: Option<&Path>,
    ) -> Result<Self> {
        let mut process = Self::try_spawn(program, env, log)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !listening(addr) {
            process.check_running()?;
            if Instant::now() >= deadline {
                return Err(Error(format!(
                    "{} did not listen on {addr} within 10 s",
                    process.name
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // Something else may have been listening there (then this one exits, unable to bind).
        process.check_running()?;
        Ok(process)
    }

    /// Fails when the process has exited: one that could not start (its port taken, say) must
    /// fail the test or the run, not leave the others to do its share unnoticed.
    ///
    /// # Errors
    /// When it has exited, naming its log.
    pub fn check_running(&mut self) -> Result<()> {
        let status = match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => return Ok(()),
            Some(Ok(Some(status))) => status.to_string(),
            Some(Err(e)) => e.to_string(),
            None => "killed".to_owned(),
        };
        let log = self
            .log
            .as_ref()
            .map_or_else(String::new, |log| format!("; see {}", log.display()));
        Err(Error(format!("{} exited ({status}){log}", self.name)))
    }

    /// Peak resident memory in KiB, so far.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        peak_rss_kib(self.pid())
    }

    /// Resident memory in KiB, now.
    pub fn rss_kib(&self) -> Option<u64> {
        rss_kib(self.pid())
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Whether the process still runs.
    pub fn running(&mut self) -> bool {
        self.check_running().is_ok()
    }

    /// Sends `signal` (`TERM`, `INT`, `KILL`, `STOP`, `CONT`) with the system's `kill`.
    pub fn signal(&self, signal: &str) {
        started(self.try_signal(signal));
    }

    /// Sends `signal` with the system's `kill` (this crate forbids unsafe code, so no
    /// `libc::kill`).
    ///
    /// # Errors
    /// When `kill` fails (the process is gone).
    pub fn try_signal(&self, signal: &str) -> Result<()> {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .map_err(|e| Error(format!("running kill: {e}")))?;
        if status.success() {
            Ok(())
        } else {
            Err(Error(format!(
                "kill -{signal} {} ({}) failed",
                self.pid(),
                self.name
            )))
        }
    }

    /// Waits up to `within` for the process to exit; answers its status, or `None` if it still
    /// runs.
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        let child = self.child.as_mut()?;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends SIGTERM and waits up to `within` for the exit status.
    pub fn terminate(&mut self, within: Duration) -> Option<ExitStatus> {
        started(self.try_terminate(within))
    }

    /// Sends SIGTERM (so it drains as in production) and gives it 10 s to exit; dropping it
    /// then kills it if it still runs.
    ///
    /// # Errors
    /// When the signal cannot be sent (it is gone).
    pub fn try_stop(&mut self) -> Result<()> {
        self.try_terminate(Duration::from_secs(10)).map(drop)
    }

    /// Sends SIGTERM (so it drains as in production) and waits up to `within` for the exit
    /// status; `None` if it still runs (dropping it then kills it).
    ///
    /// # Errors
    /// When the signal cannot be sent.
    pub fn try_terminate(&mut self, within: Duration) -> Result<Option<ExitStatus>> {
        self.try_signal("TERM")?;
        Ok(self.wait_exit(within))
    }

    /// Kills the process at once (SIGKILL).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `command` to its end, `within` at most (it is killed after), with no input and its
/// standard output captured (its standard error goes where `command` sends it).
///
/// # Errors
/// When it cannot start or does not end in time.
pub async fn try_run_to_end(
    command: &mut tokio::process::Command,
    within: Duration,
) -> Result<Output> {
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
        .map_err(|e| Error(format!("running {program}: {e}")))?;
    tokio::time::timeout(within, child.wait_with_output())
        .await
        .map_err(|_| Error(format!("{program} did not finish within {within:?}")))?
        .map_err(|e| Error(format!("running {program}: {e}")))
}

/// Runs binary `name` with `args` and `env` added to the environment, to its end (a minute at
/// most); answers what it printed (both streams) and its status.
pub async fn run_to_end(name: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = tokio::process::Command::new(binary(name));
    command
        .args(args)
        .envs(env.iter().copied())
        .stderr(Stdio::piped());
    started(try_run_to_end(&mut command, Duration::from_secs(60)).await)
}

/// Peak resident memory (`VmHWM`) of process `pid` in KiB, while it runs.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status_kib(&status, "VmHWM")
}

/// Resident memory (`VmRSS`) of process `pid` in KiB, now.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status_kib(&status, "VmRSS")
}

/// CPU time (user plus system, all threads) process `pid` has used, in seconds, while it runs.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    stat_cpu_seconds(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// A `kB` field of `/proc/<pid>/status`.
fn status_kib(status: &str, field: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.trim().trim_end_matches("kB").trim().parse().ok()
    })
}

/// `utime + stime` of a `/proc/<pid>/stat` line, in seconds. They are fields 14 and 15, counted
/// in USER_HZ, which Linux fixes at 100 for `/proc` whatever the kernel's tick.
fn stat_cpu_seconds(stat: &str) -> Option<f64> {
    // The command name (field 2) may hold spaces: count from its closing parenthesis.
    let mut fields = stat
        .get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_hwm_is_read_in_kib() {
        let status = "Name:\tbench\nVmPeak:\t  20000 kB\nVmHWM:\t    6612 kB\nVmRSS:\t 6000 kB\n";
        assert_eq!(status_kib(status, "VmHWM"), Some(6612));
        assert_eq!(status_kib(status, "VmRSS"), Some(6000));
        assert_eq!(status_kib(status, "VmSwap"), None);
    }

    #[test]
    fn cpu_time_is_read_after_the_command_name() {
        let stat = "42 (a b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0";
        assert_eq!(stat_cpu_seconds(stat), Some(3.0));
    }

    #[test]
    fn this_process_has_a_peak_rss_and_a_cpu_time() {
        assert!(peak_rss_kib(std::process::id()).is_some_and(|kib| kib > 0));
        assert!(cpu_seconds(std::process::id()).is_some());
    }
}
