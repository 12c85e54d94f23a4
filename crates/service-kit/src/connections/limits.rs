//! The limits an HTTP service holds its connections to, and the settings they come from: the
//! two timeouts and the cap, whose default is sized from the open-file limit (raised first to
//! its hard limit, [`crate::open_files`]). Kept apart from the connections themselves: a
//! binary parses these with its other flags, long before it accepts anything.

use std::time::Duration;

use crate::open_files;

/// The open files the default cap leaves to everything but client connections.
pub const RESERVED_FILES: u64 = 256;

/// The connection settings every HTTP service takes.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnectionArgs {
    /// How long a client may take to send a request's head, from its first byte (from the
    /// accept, on a new connection), and the longest pause in its body (ms). A client that
    /// sends nothing, or drips its request, is disconnected then.
    #[arg(long, env = "HEADER_READ_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub header_read_timeout_ms: u64,
    /// How long a kept-alive connection may wait for its next request (ms).
    #[arg(long, env = "KEEP_ALIVE_TIMEOUT_MS", default_value_t = 75_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub keep_alive_timeout_ms: u64,
    /// Connections open at once at most; at the cap, the connection that waited longest without
    /// a request closes to make room for a new one. 0: as many as the open-file limit allows
    /// (raised to its hard limit at start), less 256.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 0)]
    pub max_connections: u64,
}

/// Why the connection settings cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LimitsError {
    /// The open-file limit could not be read or raised.
    #[error("reading the open-file limit (RLIMIT_NOFILE): {0}")]
    OpenFiles(std::io::Error),
    /// `MAX_CONNECTIONS` is more than the open-file limit allows.
    #[error(
        "MAX_CONNECTIONS is {asked}, more than the open-file limit of {files} allows \
         ({fit}: {RESERVED_FILES} files are kept for everything else); raise the limit \
         (ulimit -n, LimitNOFILE=) or lower MAX_CONNECTIONS"
    )]
    TooMany {
        /// The cap asked for.
        asked: u64,
        /// The open-file limit.
        files: u64,
        /// The most that fits.
        fit: u64,
    },
}

impl ConnectionArgs {
    /// The limits these settings give. A cap left at 0 is the open-file limit less
    /// [`RESERVED_FILES`], at most `default_most` (a service that needs few connections keeps
    /// the rest of its files for other work). Raises the process' soft limit of open files to
    /// its hard limit first, since the cap is sized from it.
    ///
    /// # Errors
    /// [`LimitsError`] when the limit cannot be read, or the cap does not fit it.
    pub fn limits(&self, default_most: u64) -> Result<Limits, LimitsError> {
        let files = open_files::raise_to_hard_limit().map_err(LimitsError::OpenFiles)?;
        let fit = files.saturating_sub(RESERVED_FILES).max(1);
        let max_connections = match self.max_connections {
            0 => fit.min(default_most),
            asked if asked > fit => return Err(LimitsError::TooMany { asked, files, fit }),
            asked => asked,
        };
        Ok(Limits {
            header_read_timeout: Duration::from_millis(self.header_read_timeout_ms),
            keep_alive_timeout: Duration::from_millis(self.keep_alive_timeout_ms),
            max_connections: usize::try_from(max_connections).unwrap_or(usize::MAX),
        })
    }
}

/// The limits an HTTP service holds its connections to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// How long a request's head may take from its first byte, and the longest pause in its
    /// body.
    pub header_read_timeout: Duration,
    /// How long a connection may wait for its next request.
    pub keep_alive_timeout: Duration,
    /// Connections open at once at most.
    pub max_connections: usize,
}

impl Default for Limits {
    /// The settings' defaults, with a cap of 1,024 (tests and embedders that do not size it).
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            keep_alive_timeout: Duration::from_secs(75),
            max_connections: 1024,
        }
    }
}
