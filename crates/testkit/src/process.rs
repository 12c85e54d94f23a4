//! The project's real binaries, run as child processes for end-to-end tests.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::listening;

/// The path of one of the workspace's binaries (`producer`, `consumer`, `mock-api`), built next to
/// the running test (`cargo build --workspace --bins` builds them).
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the target folder")
        .join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` first",
        path.display()
    );
    path
}

/// A running binary, stopped (SIGKILL) when dropped.
pub struct Process {
    child: Option<Child>,
    name: String,
}

impl Process {
    /// Starts binary `name` with `env` added to a clean-ish environment (`RUST_LOG` defaults to
    /// `warn` so test output stays readable).
    pub fn spawn(name: &str, env: &[(&str, String)]) -> Self {
        Self::spawn_to(name, env, Stdio::inherit())
    }

    /// Starts binary `name` with its log (stderr) written to the file `log`.
    pub fn spawn_logged(name: &str, env: &[(&str, String)], log: &std::path::Path) -> Self {
        let file = std::fs::File::create(log).expect("create the log file");
        Self::spawn_to(name, env, Stdio::from(file))
    }

    fn spawn_to(name: &str, env: &[(&str, String)], stderr: Stdio) -> Self {
        let mut command = Command::new(binary(name));
        command
            .env(
                "RUST_LOG",
                std::env::var("TEST_RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        Self {
            child: Some(child),
            name: name.to_owned(),
        }
    }

    /// Starts binary `name` and waits until it listens on `addr`.
    pub fn serve(name: &str, addr: SocketAddr, env: &[(&str, String)]) -> Self {
        let mut process = Self::spawn(name, env);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !listening(addr) {
            assert!(
                process.running(),
                "{name} exited before listening on {addr}"
            );
            assert!(Instant::now() < deadline, "{name} did not listen on {addr}");
            std::thread::sleep(Duration::from_millis(10));
        }
        // Something else may have been listening there (then this one exits, unable to bind).
        assert!(process.running(), "{name} exited: is {addr} taken?");
        process
    }

    /// Peak resident memory (`VmHWM`) in KiB, read from `/proc`.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Whether the process still runs.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Sends `signal` (`TERM`, `INT`, `KILL`, `STOP`, `CONT`) with the system's `kill`.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(
            status.success(),
            "kill -{signal} {} ({})",
            self.pid(),
            self.name
        );
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
        self.signal("TERM");
        self.wait_exit(within)
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
