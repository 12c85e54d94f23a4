//! The workspace's release binaries (`producer`, `consumer`, `mock-api`) and `wrk` as child
//! processes, free loopback ports, and peak memory (`VmHWM`) read from `/proc`.
//!
//! `VmHWM` is the kernel's high-water mark of a process' resident set: read just before a
//! process stops, it is the peak RSS of its whole life, with no sampling gap.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::time::{Instant, sleep, timeout};

/// A loopback port free at the time of asking.
///
/// # Errors
/// When the system has none to give.
pub fn free_port() -> Result<u16> {
    Ok(free_addr()?.port())
}

/// A loopback address with a port free at the time of asking.
///
/// # Errors
/// When the system has none to give.
pub fn free_addr() -> Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// Peak resident memory of process `pid` in KiB (`VmHWM`; `pid` "self" for this process).
///
/// # Errors
/// When the process is gone or `/proc` is unreadable.
pub fn peak_rss_kib(pid: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status_field_kib(&status, "VmHWM").context("no VmHWM in /proc/<pid>/status")
}

/// CPU time (user plus system, all threads) process `pid` has used, in seconds.
///
/// # Errors
/// When the process is gone or `/proc` is unreadable.
pub fn cpu_s(pid: &str) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    stat_cpu_s(&stat).context("unreadable /proc/<pid>/stat")
}

/// `utime + stime` of a `/proc/<pid>/stat` line, in seconds. They are fields 14 and 15, counted
/// in USER_HZ, which Linux fixes at 100 for `/proc` whatever the kernel's tick.
fn stat_cpu_s(stat: &str) -> Option<f64> {
    // The command name (field 2) may hold spaces: count from its closing parenthesis.
    let mut fields = stat
        .get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

fn status_field_kib(status: &str, field: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.trim().trim_end_matches("kB").trim().parse().ok()
    })
}

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

/// Where the release binaries are, checked before any workload starts.
#[derive(Debug, Clone)]
pub struct Binaries {
    dir: PathBuf,
}

impl Binaries {
    /// The binaries in `dir`; each of `names` must be there.
    ///
    /// # Errors
    /// When one is missing, with the command that builds them.
    pub fn find(dir: &Path, names: &[&str]) -> Result<Self> {
        for name in names {
            let path = dir.join(name);
            if !path.is_file() {
                bail!(
                    "{} is missing: run `cargo build --release` first (scripts/bench does)",
                    path.display()
                );
            }
        }
        Ok(Self {
            dir: dir.to_owned(),
        })
    }

    /// The path of binary `name`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// A child process the benchmark started; killed if dropped without [`Service::stop`].
pub struct Service {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Service {
    /// Starts `program` with `env` added (and `RUST_LOG=warn`: logging is not what is measured);
    /// its stderr goes to `log`.
    ///
    /// # Errors
    /// When it cannot be started.
    pub fn spawn(program: &Path, env: &[(&str, String)], log: &Path) -> Result<Self> {
        let name = program
            .file_name()
            .map_or_else(|| "child".into(), |n| n.to_string_lossy().into_owned());
        let stderr = std::fs::File::create(log)
            .with_context(|| format!("creating the log {}", log.display()))?;
        let mut command = Command::new(program);
        command
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .kill_on_drop(true);
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        Ok(Self {
            name,
            child,
            log: log.to_owned(),
        })
    }

    /// Starts `program` and waits (10 s at most) until it accepts connections on `addr`.
    ///
    /// # Errors
    /// When it cannot be started, exits, or does not listen in time.
    pub async fn serve(
        program: &Path,
        env: &[(&str, String)],
        addr: SocketAddr,
        log: &Path,
    ) -> Result<Self> {
        let mut service = Self::spawn(program, env, log)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(addr).await.is_err() {
            if let Some(status) = service.child.try_wait()? {
                bail!(
                    "{} exited ({status}) before listening on {addr}; see {}",
                    service.name,
                    log.display()
                );
            }
            if Instant::now() > deadline {
                bail!("{} did not listen on {addr} within 10 s", service.name);
            }
            sleep(Duration::from_millis(10)).await;
        }
        Ok(service)
    }

    /// Fails when the process has exited: a consumer that could not start (a port in use, say)
    /// must fail the run, not leave the others to do its share unnoticed.
    ///
    /// # Errors
    /// When it has exited, or its state cannot be read.
    pub fn check_running(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "{} exited early ({status}); see {}",
                self.name,
                self.log.display()
            );
        }
        Ok(())
    }

    /// The process id.
    ///
    /// # Errors
    /// When the process has already been reaped.
    pub fn pid(&self) -> Result<u32> {
        self.child
            .id()
            .with_context(|| format!("{} has exited", self.name))
    }

    /// Its peak resident memory so far, in KiB.
    ///
    /// # Errors
    /// When it has exited.
    pub fn peak_rss_kib(&self) -> Result<u64> {
        peak_rss_kib(&self.pid()?.to_string())
    }

    /// Asks it to stop (SIGTERM, so it drains as in production), waits 10 s, then kills it.
    ///
    /// # Errors
    /// When waiting for it fails.
    pub async fn stop(mut self) -> Result<()> {
        if let Some(pid) = self.child.id() {
            // `kill` the command: this crate forbids unsafe code, so no libc::kill.
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await;
        }
        if timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            self.child.kill().await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_hwm_is_read_in_kib() {
        let status = "Name:\tbench\nVmPeak:\t  20000 kB\nVmHWM:\t    6612 kB\nVmRSS:\t 6000 kB\n";
        assert_eq!(status_field_kib(status, "VmHWM"), Some(6612));
        assert_eq!(status_field_kib(status, "VmSwap"), None);
    }

    #[test]
    fn cpu_time_is_read_after_the_command_name() {
        let stat = "42 (a b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0";
        assert_eq!(stat_cpu_s(stat), Some(3.0));
    }

    #[test]
    fn this_process_has_a_peak_rss() {
        assert!(peak_rss_kib("self").is_ok_and(|kib| kib > 0));
    }
}
