//! The name resolution of callback deliveries: the operating system's resolver (through tokio),
//! then the destination policy on every address it answers.
//!
//! Judging here, in the client's own resolver, rather than resolving once to check and letting
//! the client resolve again to connect, leaves no gap for DNS rebinding (a name answering a
//! public address to the check and `127.0.0.1` to the connection): the connection is made to
//! the addresses judged here and no others. A name is refused when *any* of its addresses is
//! forbidden, not only the one that would be tried first, so the order of the answers cannot
//! matter either.
//!
//! IP-literal hosts never reach a resolver; the deliverer judges them itself.

use std::net::{IpAddr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::forbidden::is_forbidden;

/// A resolver that refuses names leading to forbidden addresses.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct GuardedResolver;

/// `builder` with the destination policy on every name it resolves, unless `allow_private`:
/// a client for URLs that users choose (a callback, a file a task names), which must never reach
/// a loopback, private, link-local or metadata address. Pair it with [`Destination::parse`]
/// (IP literals never reach a resolver) and no redirects.
///
/// [`Destination::parse`]: crate::Destination::parse
pub fn guarded(builder: reqwest::ClientBuilder, allow_private: bool) -> reqwest::ClientBuilder {
    if allow_private {
        builder
    } else {
        builder.dns_resolver(GuardedResolver)
    }
}

/// The refusal of a guarded client's resolver in `err`'s causes, in words, if that is what
/// failed (a permanent failure: the name leads to a forbidden address).
pub fn refused_by_guard(err: &reqwest::Error) -> Option<String> {
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        if let Some(forbidden) = cause.downcast_ref::<ForbiddenAddress>() {
            return Some(forbidden.to_string());
        }
        source = cause.source();
    }
    None
}

/// A name resolved to a forbidden address. Found again in the client's error chain to tell a
/// refused destination (permanent) from a failed lookup (retried).
#[derive(Debug, thiserror::Error)]
#[error("{host} resolves to {ip}, which is not a public address")]
pub(crate) struct ForbiddenAddress {
    /// The name resolved.
    pub(crate) host: String,
    /// The first forbidden address among its answers.
    pub(crate) ip: IpAddr,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            // Port 0: reqwest puts the URL's port (or the scheme's) in its place.
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if let Some(bad) = addrs.iter().find(|addr| is_forbidden(addr.ip())) {
                return Err(Box::new(ForbiddenAddress { ip: bad.ip(), host }) as _);
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}
