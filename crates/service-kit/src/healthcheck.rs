//! `<binary> --healthcheck`: a container's health probe without curl in the image.
//!
//! A container runtime runs its healthcheck inside the container, so the image needed an HTTP
//! client for it; shipping curl (and its libraries) only for that doubled what the image held
//! besides the binaries. Each binary already knows the address it listens on, from the same
//! flags and environment as when it serves, so it can ask itself: one `GET` over plain HTTP/1.1
//! on a blocking socket, no runtime, and a short timeout so that a hung server is unhealthy
//! rather than a hung probe.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::Duration;

/// How long the probe waits to connect, and then for each read or write.
const TIMEOUT: Duration = Duration::from_secs(2);

/// The action flag each binary flattens into its command line.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct HealthcheckArgs {
    /// Ask the server this command would start whether it is healthy, and exit: GET its health
    /// route over plain HTTP on the address it would listen on (an unspecified address probes
    /// loopback), exit 0 on a 200 within 2 s, 1 otherwise. For container healthchecks.
    #[arg(long)]
    pub healthcheck: bool,
}

/// Why the server was found unhealthy.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Unhealthy {
    /// It could not be reached, or did not answer in time. (The failure is in the message, not
    /// a `source`: a container runtime keeps a probe's output, and one line reads best there.)
    #[error("GET http://{addr}{path}: {error}")]
    Io {
        /// Where the probe connected.
        addr: SocketAddr,
        /// The route asked.
        path: &'static str,
        /// The failure.
        error: std::io::Error,
    },
    /// It answered something other than 200.
    #[error("GET http://{addr}{path} answered {status:?}")]
    Status {
        /// Where the probe connected.
        addr: SocketAddr,
        /// The route asked.
        path: &'static str,
        /// The status line (or what came instead).
        status: String,
    },
}

/// GETs `path` from the server listening on `listen` (an unspecified address such as
/// `0.0.0.0` is probed on loopback).
///
/// # Errors
/// When the server cannot be reached within the timeout or does not answer 200.
pub fn probe(listen: SocketAddr, path: &'static str) -> Result<(), Unhealthy> {
    let addr = reachable(listen);
    let io = |error| Unhealthy::Io { addr, path, error };
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(io)?;
    stream.set_read_timeout(Some(TIMEOUT)).map_err(io)?;
    stream.set_write_timeout(Some(TIMEOUT)).map_err(io)?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(io)?;
    // The status line is all the probe reads; it fits in the first bytes of any answer.
    let mut head = [0; 64];
    let mut len = 0;
    while len < head.len() {
        match stream.read(&mut head[len..]).map_err(io)? {
            0 => break,
            n => len += n,
        }
        if head[..len].contains(&b'\n') {
            break;
        }
    }
    let status = String::from_utf8_lossy(&head[..len]);
    let status = status.lines().next().unwrap_or_default();
    match status.split(' ').nth(1) {
        Some("200") => Ok(()),
        _ => Err(Unhealthy::Status {
            addr,
            path,
            status: status.to_owned(),
        }),
    }
}

/// The address to probe for a server listening on `listen`.
fn reachable(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A server on loopback that answers one request with `answer`.
    fn answering(answer: &'static str) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = [0; 1024];
            let _ = stream.read(&mut request).unwrap();
            stream.write_all(answer.as_bytes()).unwrap();
        });
        addr
    }

    #[test]
    fn an_unspecified_address_is_probed_on_loopback() {
        assert_eq!(
            reachable("0.0.0.0:9002".parse().unwrap()),
            "127.0.0.1:9002".parse().unwrap()
        );
        assert_eq!(
            reachable("[::]:9003".parse().unwrap()),
            "[::1]:9003".parse().unwrap()
        );
        assert_eq!(
            reachable("10.1.2.3:9001".parse().unwrap()),
            "10.1.2.3:9001".parse().unwrap()
        );
    }

    #[test]
    fn a_200_is_healthy() {
        let addr = answering("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
        probe(addr, "/healthz").unwrap();
    }

    #[test]
    fn a_503_is_unhealthy_and_says_so() {
        let addr = answering("HTTP/1.1 503 Service Unavailable\r\n\r\n");
        let error = probe(addr, "/healthz").unwrap_err();
        assert!(
            error.to_string().contains("503 Service Unavailable"),
            "{error}"
        );
    }

    #[test]
    fn nothing_listening_is_unhealthy() {
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        assert!(matches!(probe(addr, "/healthz"), Err(Unhealthy::Io { .. })));
    }
}
