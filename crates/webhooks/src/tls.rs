//! TLS for `https://` callbacks: rustls with ring (the crypto the Redis connection uses; reqwest
//! here has no provider of its own), the system's certificate authorities, HTTP/1.1 offered by
//! ALPN. The consumer's API client is built from the same two pieces ([`add_system_authorities`],
//! [`client_config`]), so both clients speak TLS alike.
//!
//! The authorities are loaded at the first `https://` delivery, not when the deliverer is
//! built: parsed, they cost a consumer about 1.5 MiB, a cost a deployment whose callbacks are
//! all `http://` (or that has none) should not pay, and a slim image without them should fail
//! its `https://` callbacks with a clear reason rather than refuse to start.

use std::sync::Arc;

use rustls::RootCertStore;

/// Why TLS settings could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The system has no certificate authority to check a receiver's certificate with.
    #[error(
        "an https:// callback needs the system's certificate authorities and none were found \
         (install ca-certificates)"
    )]
    NoAuthorities,
    /// rustls refused the settings.
    #[error("TLS settings: {0}")]
    Rustls(rustls::Error),
}

/// TLS settings trusting nothing: for the `http://` client, which reqwest still asks for one.
pub(crate) fn without_authorities() -> Result<rustls::ClientConfig, TlsError> {
    client_config(RootCertStore::empty()).map_err(TlsError::Rustls)
}

/// TLS settings trusting the system's authorities (blocking: reads them from disk).
pub(crate) fn with_system_authorities() -> Result<rustls::ClientConfig, TlsError> {
    let mut roots = RootCertStore::empty();
    add_system_authorities(&mut roots);
    if roots.is_empty() {
        return Err(TlsError::NoAuthorities);
    }
    client_config(roots).map_err(TlsError::Rustls)
}

/// Adds the system's certificate authorities to `roots` (blocking: reads them from disk); those
/// that do not parse are skipped, and the counts logged.
pub fn add_system_authorities(roots: &mut RootCertStore) {
    let system = rustls_native_certs::load_native_certs();
    let (added, ignored) = roots.add_parsable_certificates(system.certs);
    tracing::debug!(added, ignored, "the system's certificate authorities");
}

/// A client's TLS settings trusting `roots`: ring, the safe default protocol versions, no client
/// certificate, HTTP/1.1 offered by ALPN.
///
/// # Errors
/// When rustls refuses the settings.
pub fn client_config(roots: RootCertStore) -> Result<rustls::ClientConfig, rustls::Error> {
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_authorities_load_or_their_absence_is_said_plainly() {
        without_authorities().unwrap();
        // Whether the machine has authorities is the machine's business: either they load,
        // or the error says what to install.
        match with_system_authorities() {
            Ok(_) => {}
            Err(err @ TlsError::NoAuthorities) => {
                assert!(err.to_string().contains("ca-certificates"))
            }
            Err(other) => panic!("{other}"),
        }
    }
}
