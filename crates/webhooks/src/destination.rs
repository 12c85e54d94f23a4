//! Where a callback may go. A client names the URL, and the consumer then POSTs from inside
//! taskq's network: without a policy, a callback URL is a way to make taskq call its own Redis
//! host, an admin port, or the cloud's metadata service (server-side request forgery).
//!
//! The policy has two halves. [`Destination::parse`] refuses what can be judged from the text:
//! a scheme other than `http`/`https`, a missing host, credentials (a URL is logged; the error
//! never repeats them), more than [`MAX_URL_BYTES`], a host that is an IP literal in a
//! forbidden range, and a host name that can only name a host inside the network
//! ([`is_internal_name`]: `localhost`, cloud metadata names, a name without a dot). Any other
//! host *name* can only be judged once resolved, at each delivery: that is the delivering
//! client's resolver (`resolver`), which refuses a name when any of its addresses is forbidden,
//! and the connection then uses exactly the addresses it judged. Both halves judge by the lists
//! of [`crate::forbidden`]: [`is_forbidden`] is anything that is not a public unicast address
//! (an IPv4 address carried inside an IPv6 one is judged as that IPv4 address).
//!
//! A URL's query string often carries a token, so what is logged and put in errors is
//! [`Destination::redacted`]: scheme, host, port and path only.

use std::fmt;
use std::net::IpAddr;

use reqwest::Url;

use crate::forbidden::{is_forbidden, is_internal_name};

/// The longest callback URL taken, in bytes.
pub const MAX_URL_BYTES: usize = 2048;

/// A callback URL that passed the policy.
#[derive(Clone, PartialEq, Eq)]
pub struct Destination {
    /// The URL as parsed (normalized by the WHATWG rules, so `http://2130706433/` is already
    /// `http://127.0.0.1/` here and judged as such).
    url: Url,
}

/// Why a callback URL was refused. No variant holds the URL's credentials or query.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DestinationError {
    /// Longer than [`MAX_URL_BYTES`].
    #[error("the callback URL is {bytes} bytes; at most {MAX_URL_BYTES} are taken")]
    TooLong {
        /// Its length.
        bytes: usize,
    },
    /// Not a URL at all.
    #[error("the callback URL is not a URL: {reason}")]
    Invalid {
        /// The parser's words (they never quote the input).
        reason: String,
    },
    /// A scheme other than http and https.
    #[error("a callback URL is http:// or https://, not {scheme}://")]
    Scheme {
        /// The scheme given.
        scheme: String,
    },
    /// No host.
    #[error("the callback URL has no host")]
    NoHost,
    /// A user name or password in the URL.
    #[error(
        "no credentials in a callback URL (it is logged and shown): the receiver checks the \
         signature instead"
    )]
    Credentials,
    /// The host is a name that only means something inside the network.
    #[error(
        "the callback URL's host {host} names a host inside the network (localhost, a cloud \
         metadata service, a name without a dot or under .internal, .local or .home.arpa); \
         refused unless CALLBACK_ALLOW_PRIVATE is set"
    )]
    InternalName {
        /// The host as written in the URL.
        host: String,
    },
    /// The host is a loopback, private, link-local or otherwise non-public address.
    #[error(
        "the callback URL's host {host} is not a public address (loopback, private, link-local \
         and similar are refused unless CALLBACK_ALLOW_PRIVATE is set)"
    )]
    Forbidden {
        /// The host as written in the URL.
        host: String,
    },
}

impl Destination {
    /// Checks a callback URL against the policy. With `allow_private`, non-public addresses
    /// (and `localhost`) pass.
    ///
    /// # Errors
    /// [`DestinationError`] naming the rule broken.
    pub fn parse(url: &str, allow_private: bool) -> Result<Self, DestinationError> {
        if url.len() > MAX_URL_BYTES {
            return Err(DestinationError::TooLong { bytes: url.len() });
        }
        let url = Url::parse(url).map_err(|err| DestinationError::Invalid {
            reason: err.to_string(),
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(DestinationError::Scheme {
                scheme: url.scheme().to_owned(),
            });
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(DestinationError::Credentials);
        }
        let destination = Self { url };
        let host = destination.host().ok_or(DestinationError::NoHost)?;
        if !allow_private {
            match destination.ip() {
                Some(ip) if is_forbidden(ip) => {
                    return Err(DestinationError::Forbidden {
                        host: host.to_owned(),
                    });
                }
                None if is_internal_name(host) => {
                    return Err(DestinationError::InternalName {
                        host: host.to_owned(),
                    });
                }
                _ => {}
            }
        }
        Ok(destination)
    }

    /// The URL, for sending. Its query may hold a token: log [`Destination::redacted`] instead.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The host as written (an IPv6 literal in brackets).
    pub fn host(&self) -> Option<&str> {
        self.url.host_str().filter(|host| !host.is_empty())
    }

    /// The host when it is an IP literal: such a host is connected to without resolving, so the
    /// policy judges it before sending.
    pub fn ip(&self) -> Option<IpAddr> {
        let host = self.host()?;
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        bare.parse().ok()
    }

    /// `scheme://host[:port]/path`: the URL without credentials, query or fragment, for logs
    /// and errors.
    pub fn redacted(&self) -> String {
        let mut shown = format!("{}://{}", self.url.scheme(), self.host().unwrap_or(""));
        if let Some(port) = self.url.port() {
            shown.push_str(&format!(":{port}"));
        }
        shown.push_str(self.url.path());
        shown
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Destination({})", self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_and_https_urls_with_a_host_and_no_credentials_pass() {
        let ok = Destination::parse("https://hooks.example.com/taskq?token=abc", false).unwrap();
        assert_eq!(ok.host(), Some("hooks.example.com"));
        assert_eq!(ok.url().query(), Some("token=abc"));
        Destination::parse("http://93.184.216.34:8080/x", false).unwrap();
        Destination::parse("http://[2606:4700:4700::1111]/x", false).unwrap();

        let refused = |url: &str| Destination::parse(url, true).unwrap_err();
        assert!(matches!(
            refused("ftp://example.com/"),
            DestinationError::Scheme { .. }
        ));
        assert!(matches!(
            refused("file:///etc/passwd"),
            DestinationError::Scheme { .. }
        ));
        assert!(matches!(
            refused("not a url"),
            DestinationError::Invalid { .. }
        ));
        // WHATWG parsing reads http:///x as host "x"; an empty host is a parse error.
        for hostless in ["http://", "https://:443/", "http://?q"] {
            assert!(
                matches!(
                    refused(hostless),
                    DestinationError::Invalid { .. } | DestinationError::NoHost
                ),
                "{hostless}"
            );
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_BYTES));
        assert!(matches!(refused(&long), DestinationError::TooLong { .. }));
        Destination::parse(&long[..MAX_URL_BYTES], false).unwrap();
    }

    #[test]
    fn credentials_are_refused_without_echoing_them() {
        for url in [
            "https://alice:hunter2@example.com/",
            "https://hunter2@example.com/",
            "https://:hunter2@example.com/",
        ] {
            let err = Destination::parse(url, true).unwrap_err();
            assert_eq!(err, DestinationError::Credentials, "{url}");
            assert!(!err.to_string().contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn forbidden_literals_and_localhost_are_refused_unless_private_is_allowed() {
        for url in [
            "http://127.0.0.1:9000/",
            "http://169.254.169.254/latest/meta-data/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[fd00:ec2::254]/",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://0/",
        ] {
            let err = Destination::parse(url, false).unwrap_err();
            assert!(
                matches!(err, DestinationError::Forbidden { .. }),
                "{url}: {err}"
            );
            Destination::parse(url, true).unwrap();
        }
    }

    #[test]
    fn names_of_hosts_inside_the_network_are_refused_unless_private_is_allowed() {
        for url in [
            "http://localhost:8080/",
            "http://LOCALHOST./",
            "http://api.localhost/",
            "http://metadata.google.internal/computeMetadata/v1/",
            "http://METADATA.google.internal./",
            "http://metadata/computeMetadata/v1/",
            "http://metadata.goog/",
            "http://instance-data/latest/meta-data/",
            "http://instance-data.ec2.internal/",
            "http://printer.local/",
            "http://nas.home.arpa/",
            "http://redis:6379/",
        ] {
            let err = Destination::parse(url, false).unwrap_err();
            assert!(
                matches!(err, DestinationError::InternalName { .. }),
                "{url}: {err}"
            );
            Destination::parse(url, true).unwrap();
        }
        for public in [
            "https://hooks.example.com/in",
            "https://internal.example.com/",
            "https://metadata.example.org/",
            "https://local.example/",
        ] {
            Destination::parse(public, false).unwrap();
        }
    }

    #[test]
    fn the_redacted_form_keeps_host_port_and_path_only() {
        let dest = Destination::parse(
            "https://hooks.example.com:8443/in/taskq?token=s3cret#frag",
            false,
        )
        .unwrap();
        assert_eq!(dest.redacted(), "https://hooks.example.com:8443/in/taskq");
        assert_eq!(dest.to_string(), dest.redacted());
        assert!(!format!("{dest:?}").contains("s3cret"));
        let ipv6 = Destination::parse("http://[2606:4700::1]/?k=v", false).unwrap();
        assert_eq!(ipv6.redacted(), "http://[2606:4700::1]/");
        assert_eq!(ipv6.ip(), Some("2606:4700::1".parse().unwrap()));
    }
}
