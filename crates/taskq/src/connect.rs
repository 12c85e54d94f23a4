//! Connecting to Redis: the URL (with its secret kept out of logs) and the connection settings.
//!
//! One `ConnectionManager` is shared by every task of a process: it multiplexes concurrent
//! commands over one socket (pipelining them for free) and reconnects in the background after a
//! failure. Every command has a response timeout, so a hung or unreachable Redis shows up as an
//! error within that time instead of a request that never ends.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::error::{Error, Result};

/// A Redis URL (`redis://`, `rediss://` for TLS, `unix://`), whose password never shows in
/// `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl(String);

impl RedisUrl {
    /// The URL with its password, for the client only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with any password replaced by `***`.
    pub fn redacted(&self) -> String {
        let Some((scheme, rest)) = self.0.split_once("://") else {
            return self.0.clone();
        };
        match rest.rsplit_once('@') {
            Some((userinfo, host)) => {
                let user = userinfo.split_once(':').map_or("", |(user, _)| user);
                format!("{scheme}://{user}:***@{host}")
            }
            None => self.0.clone(),
        }
    }
}

impl FromStr for RedisUrl {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        redis::Client::open(s)
            .map_err(|e| Error::InvalidUrl(format!("{}: {e}", Self(s.into()).redacted())))?;
        Ok(Self(s.to_owned()))
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// How to talk to Redis: patience, and whom to trust over TLS.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// How long one command may take before it fails: bounds how long a caller waits on a hung
    /// or unreachable Redis.
    pub response_timeout: Duration,
    /// How long one connection attempt may take.
    pub connect_timeout: Duration,
    /// For `rediss://`: the PEM certificate(s) of the authority that signed the server's
    /// certificate, when it is not one the system trusts.
    pub tls_root_cert: Option<Vec<u8>>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            response_timeout: Duration::from_millis(500),
            connect_timeout: Duration::from_millis(500),
            tls_root_cert: None,
        }
    }
}

/// Opens a connection manager without waiting for Redis: the first command connects, so a
/// service can start (and report itself unhealthy) while Redis is still down.
///
/// # Errors
/// [`Error::Redis`] when the URL is unusable.
pub fn connect(url: &RedisUrl, options: &ConnectOptions) -> Result<ConnectionManager> {
    let client = match &options.tls_root_cert {
        Some(root_cert) => redis::Client::build_with_tls(
            url.expose(),
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(root_cert.clone()),
            },
        )?,
        None => redis::Client::open(url.expose())?,
    };
    let config = ConnectionManagerConfig::new()
        .set_response_timeout(Some(options.response_timeout))
        .set_connection_timeout(Some(options.connect_timeout))
        // One connection attempt per failure: while Redis is down each command fails within the
        // connect timeout instead of waiting out a retry schedule; the next command tries again.
        .set_number_of_retries(0);
    Ok(ConnectionManager::new_lazy_with_config(client, config)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        let url: RedisUrl = "redis://user:s3cret@host:6379/0".parse().unwrap();
        assert_eq!(format!("{url:?}"), "redis://user:***@host:6379/0");
        assert_eq!(url.to_string(), "redis://user:***@host:6379/0");
        let bare: RedisUrl = "redis://:s3cret@host".parse().unwrap();
        assert!(!format!("{bare:?}").contains("s3cret"));
        assert_eq!(url.expose(), "redis://user:s3cret@host:6379/0");
    }

    #[test]
    fn urls_without_secrets_are_shown_as_they_are() {
        let url: RedisUrl = "redis://127.0.0.1:6379".parse().unwrap();
        assert_eq!(url.to_string(), "redis://127.0.0.1:6379");
    }

    #[test]
    fn a_bad_url_is_refused_without_echoing_its_password() {
        let err = "http://u:s3cret@x".parse::<RedisUrl>().unwrap_err();
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }
}
