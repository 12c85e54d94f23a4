//! Where a callback may go. A client names the URL, and the consumer then POSTs from inside
//! taskq's network: without a policy, a callback URL is a way to make taskq call its own Redis
//! host, an admin port, or the cloud's metadata service (server-side request forgery).
//!
//! The policy has two halves. [`Destination::parse`] refuses what can be judged from the text:
//! a scheme other than `http`/`https`, a missing host, credentials (a URL is logged; the error
//! never repeats them), more than [`MAX_URL_BYTES`], a host that is an IP literal in a
//! forbidden range, and a host name that can only name a host inside the network
//! ([`is_internal_name`]: `localhost`, cloud metadata names, a name without a dot). Any other
//! host *name* can only be judged once resolved, at each delivery: that is
//! the delivering client's resolver (`resolver`), which refuses a name when any of its
//! addresses is forbidden, and the connection then uses exactly the addresses it judged.
//!
//! [`is_forbidden`] is the list of ranges: anything that is not a public unicast address.
//! Addresses that carry an IPv4 address inside an IPv6 one (mapped, compatible, NAT64, 6to4)
//! are judged by the IPv4 address they lead to.
//!
//! A URL's query string often carries a token, so what is logged and put in errors is
//! [`Destination::redacted`]: scheme, host, port and path only.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use reqwest::Url;

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

/// Whether a host name can only name a host inside the network, refused by name already, before
/// any resolving: `localhost` and its subdomains (answered with loopback without asking DNS,
/// RFC 6761); a name without a dot (`metadata`, `instance-data`, `redis`: completed by the
/// resolver's search domains, never a public host); names under `.internal` (ICANN's private
/// use, GCP's `metadata.google.internal`, AWS's `*.ec2.internal`), `.local` (multicast DNS) and
/// `.home.arpa`; and `metadata.goog`, Google's other name for its metadata service.
fn is_internal_name(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let under = |zone: &str| host == zone || host.ends_with(&format!(".{zone}"));
    !host.contains('.')
        || [
            "localhost",
            "internal",
            "local",
            "home.arpa",
            "metadata.goog",
        ]
        .into_iter()
        .any(under)
}

/// Whether a callback must not connect to `ip`: any address that is not public unicast.
///
/// IPv4: `0.0.0.0/8` (unspecified included), `10/8`, `100.64/10` (carrier-grade NAT),
/// `127/8`, `169.254/16` (link-local, where clouds serve instance metadata), `172.16/12`,
/// `192.0.0/24`, the documentation nets `192.0.2/24`, `198.51.100/24`, `203.0.113/24`,
/// `192.168/16`, `198.18/15` (benchmarking), `224/4` (multicast), `240/4` (reserved, the
/// broadcast address included).
///
/// IPv6: `::` and `::1`, `::ffff:0:0/96` (IPv4-mapped) and `::/96` (IPv4-compatible) judged as
/// their IPv4 address, `64:ff9b::/96` (NAT64) judged by the IPv4 address it embeds and
/// `64:ff9b:1::/48` (local NAT64) refused, `100::/64` (discard), `2001::/32` (Teredo, which
/// tunnels to an address it hides), `2001:db8::/32` (documentation), `2002::/16` (6to4)
/// judged by its embedded IPv4 address, `fc00::/7` (unique local, AWS's `fd00:ec2::254`
/// metadata address included), `fe80::/10` (link-local), `fec0::/10` (old site-local),
/// `ff00::/8` (multicast).
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_forbidden_v4(v4),
        IpAddr::V6(v6) => is_forbidden_v6(v6),
    }
}

fn is_forbidden_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    a == 0
        || a == 10
        || a == 127
        || (a == 100 && (64..128).contains(&b))
        || (a == 169 && b == 254)
        || (a == 172 && (16..32).contains(&b))
        || (a == 192 && b == 0 && c == 0)
        || (a == 192 && b == 0 && c == 2)
        || (a == 192 && b == 168)
        || (a == 198 && (b == 18 || b == 19))
        || (a == 198 && b == 51 && c == 100)
        || (a == 203 && b == 0 && c == 113)
        || a >= 224
}

fn is_forbidden_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    let embedded = || Ipv4Addr::from_bits(ip.to_bits() as u32);
    if ip.is_unspecified() || ip.is_loopback() {
        return true;
    }
    // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible).
    if s[..5] == [0; 5] && (s[5] == 0xffff || s[5] == 0) {
        return is_forbidden_v4(embedded());
    }
    match s[0] {
        0x0064 if s[1] == 0xff9b && s[2..6] == [0; 4] => is_forbidden_v4(embedded()),
        0x0064 if s[1] == 0xff9b && s[2] == 1 => true,
        0x0100 if s[1..4] == [0; 3] => true,
        0x2001 if s[1] == 0 || s[1] == 0x0db8 => true,
        0x2002 => is_forbidden_v4(Ipv4Addr::from_bits(
            (u32::from(s[1]) << 16) | u32::from(s[2]),
        )),
        first => {
            (first & 0xfe00) == 0xfc00 // fc00::/7
                || (first & 0xffc0) == 0xfe80 // fe80::/10
                || (first & 0xffc0) == 0xfec0 // fec0::/10
                || (first & 0xff00) == 0xff00 // ff00::/8
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forbidden(ip: &str) -> bool {
        is_forbidden(ip.parse().unwrap())
    }

    #[test]
    fn non_public_ipv4_ranges_are_forbidden() {
        let ranges = [
            ("loopback", "127.0.0.1"),
            ("loopback, far end", "127.255.255.254"),
            ("unspecified", "0.0.0.0"),
            ("this network", "0.1.2.3"),
            ("private 10/8", "10.1.2.3"),
            ("private 172.16/12", "172.16.0.1"),
            ("private 172.16/12, far end", "172.31.255.255"),
            ("private 192.168/16", "192.168.1.1"),
            ("CGNAT 100.64/10", "100.64.0.1"),
            ("CGNAT 100.64/10, far end", "100.127.255.255"),
            ("link-local", "169.254.1.1"),
            ("cloud metadata", "169.254.169.254"),
            ("IETF protocol assignments", "192.0.0.8"),
            ("documentation 192.0.2/24", "192.0.2.1"),
            ("documentation 198.51.100/24", "198.51.100.7"),
            ("documentation 203.0.113/24", "203.0.113.9"),
            ("benchmarking 198.18/15", "198.18.0.1"),
            ("benchmarking 198.18/15, far end", "198.19.255.255"),
            ("multicast", "224.0.0.1"),
            ("multicast, far end", "239.255.255.250"),
            ("reserved 240/4", "240.0.0.1"),
            ("broadcast", "255.255.255.255"),
        ];
        for (what, ip) in ranges {
            assert!(forbidden(ip), "{what}: {ip}");
        }
    }

    #[test]
    fn public_ipv4_addresses_are_allowed_including_the_neighbours_of_forbidden_ranges() {
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "93.184.216.34",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "169.253.255.255",
            "192.0.1.1",
            "192.169.0.1",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
            "11.0.0.1",
            "126.255.255.255",
            "128.0.0.1",
        ] {
            assert!(!forbidden(ip), "{ip}");
        }
    }

    #[test]
    fn non_public_ipv6_ranges_are_forbidden() {
        let ranges = [
            ("loopback", "::1"),
            ("unspecified", "::"),
            ("unique local", "fc00::1"),
            ("unique local fd", "fd12:3456::1"),
            ("AWS metadata", "fd00:ec2::254"),
            ("link-local", "fe80::1"),
            ("link-local, far end", "febf::1"),
            ("site-local", "fec0::1"),
            ("multicast", "ff02::1"),
            ("mapped loopback", "::ffff:127.0.0.1"),
            ("mapped metadata", "::ffff:169.254.169.254"),
            ("mapped private", "::ffff:10.0.0.1"),
            ("compatible loopback", "::127.0.0.1"),
            ("compatible private", "::192.168.0.1"),
            ("NAT64 of loopback", "64:ff9b::127.0.0.1"),
            ("NAT64 of metadata", "64:ff9b::a9fe:a9fe"),
            ("local NAT64", "64:ff9b:1::8.8.8.8"),
            ("discard", "100::1"),
            ("Teredo", "2001:0:4136:e378::1"),
            ("documentation", "2001:db8::1"),
            ("6to4 of private", "2002:c0a8:0101::1"),
            ("6to4 of loopback", "2002:7f00:1::1"),
        ];
        for (what, ip) in ranges {
            assert!(forbidden(ip), "{what}: {ip}");
        }
    }

    #[test]
    fn public_ipv6_addresses_are_allowed_and_embedded_public_ipv4_too() {
        for ip in [
            "2606:4700:4700::1111",
            "2001:4860:4860::8888",
            "2a00:1450:4001::1",
            "::ffff:8.8.8.8",
            "64:ff9b::8.8.8.8",
            "2002:0808:0808::1",
            "fbff::1",
            "fe7f::1",
        ] {
            assert!(!forbidden(ip), "{ip}");
        }
    }

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
