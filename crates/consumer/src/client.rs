//! The HTTP client of one queue's API: HTTPS with rustls (ring, the same crypto as the Redis
//! connection), the system's root certificates plus the extra authorities configured
//! (`API_CA_FILE` for every queue, a profile's `ca_file` for its own), HTTP/1.1 with keep-alive
//! (offered by ALPN, so servers that also speak HTTP/2 agree to it). HTTP/2 is left out on
//! purpose: it added 0.84 MB of code and 0.8 MiB to every consumer's memory (W2h, W3d), while a
//! pool of kept-alive HTTP/1.1 connections already keeps a call's cost at one round trip.
//!
//! The TLS settings are built here rather than by reqwest, so that the system's authorities
//! (a few hundred certificates, about 1.5 MiB of a consumer's memory once parsed) are loaded only
//! for an API called over `https://`, and so that a system without them (a slim container image)
//! is a clear error at start for such an API, not a failure of every queue.
//!
//! Redirects are followed only on the host the call was made to (at most five): an API cannot
//! send a call, with its credentials, anywhere the configuration did not name.

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::{Client, redirect};

use crate::api::same_origin;
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// Why the client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A certificate authority file could not be used.
    #[error("certificate authority file {}: {reason}", path.display())]
    CaFile {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The API is called over HTTPS and no authority is known to check its certificate.
    #[error(
        "the API is called over https:// but no certificate authority is known: the system has \
         none (install ca-certificates) and neither API_CA_FILE nor the profile's ca_file names one"
    )]
    NoAuthorities,
    /// rustls refused the settings.
    #[error("TLS settings: {0}")]
    Tls(rustls::Error),
    /// reqwest refused the settings.
    #[error("building the HTTP client: {0}")]
    Build(reqwest::Error),
}

/// How the client behaves.
#[derive(Debug, Clone)]
pub struct ClientSettings<'a> {
    /// How long one call may take, connection included.
    pub timeout: Duration,
    /// Idle connections kept per host (the queue's concurrency).
    pub connections: usize,
    /// Whether the API is called over HTTPS: then the system's authorities are trusted too.
    pub https: bool,
    /// PEM files of extra authorities to trust.
    pub ca_files: Vec<&'a Path>,
}

/// Builds the client.
///
/// # Errors
/// [`ClientError`] when a CA file cannot be read or holds no certificate, or an HTTPS API would
/// have no authority to trust.
pub fn build(settings: &ClientSettings<'_>) -> Result<Client, ClientError> {
    Client::builder()
        .timeout(settings.timeout)
        .connect_timeout(settings.timeout)
        .pool_max_idle_per_host(settings.connections)
        .tcp_nodelay(true)
        .tls_backend_preconfigured(tls(settings)?)
        .redirect(redirect::Policy::custom(|attempt| {
            let same_host = same_origin(attempt.url(), &attempt.previous()[0]);
            if attempt.previous().len() > 5 || !same_host {
                attempt.stop()
            } else {
                attempt.follow()
            }
        }))
        .build()
        .map_err(ClientError::Build)
}

/// The uploader of a queue whose profile sends multipart bodies (downloading the parts given by
/// URL), or `None`:
/// its own client, which follows no redirect and, unless the profile allows private sources,
/// resolves names through the destination guard (see [`crate::api::upload`]).
///
/// # Errors
/// [`ClientError`] as [`build`].
pub fn uploader(
    settings: &crate::config::QueueSettings,
    config: &crate::Config,
) -> Result<Option<crate::api::upload::Uploader>, ClientError> {
    let crate::api::Api::Profile(profile) = &settings.api else {
        return Ok(None);
    };
    if !profile.uploads() {
        return Ok(None);
    }
    let tls = tls(&ClientSettings {
        timeout: settings.api_timeout,
        connections: 1,
        https: true,
        ca_files: config
            .api_ca_file
            .as_deref()
            .into_iter()
            .chain(profile.ca_file.as_deref())
            .collect(),
    })?;
    let builder = Client::builder()
        .timeout(settings.api_timeout)
        .connect_timeout(settings.api_timeout)
        .redirect(redirect::Policy::none())
        .no_proxy()
        .tls_backend_preconfigured(tls);
    let client = webhooks::guarded(builder, profile.allow_private_sources)
        .build()
        .map_err(ClientError::Build)?;
    Ok(Some(crate::api::upload::Uploader::new(
        client,
        profile.allow_private_sources,
        settings.max_upload_bytes,
    )))
}

/// The TLS settings: the authorities to trust, ring, and ALPN offering HTTP/1.1.
fn tls(settings: &ClientSettings<'_>) -> Result<rustls::ClientConfig, ClientError> {
    let mut roots = RootCertStore::empty();
    for path in &settings.ca_files {
        for certificate in authorities(path)? {
            roots.add(certificate).map_err(|err| ClientError::CaFile {
                path: path.to_path_buf(),
                reason: err.to_string(),
            })?;
        }
    }
    if settings.https {
        webhooks::tls::add_system_authorities(&mut roots);
        if roots.is_empty() {
            return Err(ClientError::NoAuthorities);
        }
    }
    webhooks::tls::client_config(roots).map_err(ClientError::Tls)
}

/// The certificates of a PEM file.
fn authorities(path: &Path) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    let refuse = |reason: String| ClientError::CaFile {
        path: path.to_owned(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|err| refuse(err.to_string()))?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| refuse(format!("not PEM: {err}")))?;
    if certificates.is_empty() {
        return Err(refuse("no certificate in it".into()));
    }
    Ok(certificates)
}

/// The longest URI a request can carry (the `http` crate's limit, and hyper's for a request
/// line): a longer URL is no valid URI.
const MAX_URI_BYTES: usize = 65_534;

/// A failed call in words a task record can keep: what failed, with its cause (a certificate
/// the system does not trust, a refused connection, a URL too long to send, ...), without the
/// URL.
pub fn describe(err: &reqwest::Error) -> String {
    describe_call_to(err, "the API")
}

/// [`describe`] for a call to `peer` ("the API", "the token endpoint").
pub fn describe_call_to(err: &reqwest::Error, peer: &str) -> String {
    let mut text = if err.is_builder() {
        let mut text = "the call cannot be made".to_owned();
        if let Some(url) = err.url().filter(|url| url.as_str().len() > MAX_URI_BYTES) {
            text.push_str(&format!(
                ": its URL is {} bytes, over the {MAX_URI_BYTES} a request may carry (a payload \
                 this large cannot travel as query parameters)",
                url.as_str().len()
            ));
        }
        text
    } else if err.is_timeout() {
        format!("{peer} did not answer in time")
    } else if err.is_connect() {
        format!("could not connect to {peer}")
    } else {
        format!("calling {peer} failed")
    };
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        let said = cause.to_string();
        // hyper's "client error (Connect)" only names the stage the words above already name.
        let stage_only = said.starts_with("client error (");
        if !stage_only && !causes.iter().any(|seen: &String| seen.contains(&said)) {
            causes.push(said);
        }
        source = cause.source();
    }
    let tls = causes.iter().any(|c| c.contains("certificate"));
    for cause in causes {
        text.push_str(": ");
        text.push_str(&cause);
    }
    if tls {
        text.push_str(
            " (TLS: is the authority that signed the API's certificate in API_CA_FILE or the profile's ca_file?)",
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_that_is_missing_or_holds_nothing_is_a_clear_error() {
        let settings = |path: &'static str| ClientSettings {
            timeout: Duration::from_secs(1),
            connections: 1,
            https: true,
            ca_files: vec![Path::new(path)],
        };
        let missing = build(&settings("/nonexistent/ca.pem")).unwrap_err();
        assert!(
            missing.to_string().contains("/nonexistent/ca.pem"),
            "{missing}"
        );
        let empty = std::env::temp_dir().join(format!("taskq-empty-ca-{}.pem", std::process::id()));
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = build(&ClientSettings {
            ca_files: vec![&empty],
            ..settings("/")
        })
        .unwrap_err();
        std::fs::remove_file(&empty).unwrap();
        assert!(err.to_string().contains("no certificate"), "{err}");
    }

    /// Serves `app` on a free loopback port; answers its address.
    async fn serve(app: axum::Router) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    }

    #[tokio::test]
    async fn redirects_are_followed_on_the_same_host_only() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicU32, Ordering};

        use axum::http::{StatusCode, header};
        use axum::routing::get;

        let elsewhere_hits = Arc::new(AtomicU32::new(0));
        let hits = Arc::clone(&elsewhere_hits);
        let elsewhere = serve(axum::Router::new().route(
            "/steal",
            get(move || async move {
                hits.fetch_add(1, Ordering::Relaxed);
                "stolen"
            }),
        ))
        .await;
        let api = serve(
            axum::Router::new()
                .route(
                    "/moved",
                    get(|| async { (StatusCode::FOUND, [(header::LOCATION, "/here")]) }),
                )
                .route("/here", get(|| async { "same host" }))
                .route(
                    "/away",
                    get(move || async move {
                        let to = format!("http://{elsewhere}/steal");
                        (StatusCode::FOUND, [(header::LOCATION, to)])
                    }),
                ),
        )
        .await;
        let client = build(&ClientSettings {
            timeout: Duration::from_secs(5),
            connections: 1,
            https: false,
            ca_files: Vec::new(),
        })
        .unwrap();

        let same = client
            .get(format!("http://{api}/moved"))
            .send()
            .await
            .unwrap();
        assert_eq!(same.text().await.unwrap(), "same host");
        let away = client
            .get(format!("http://{api}/away"))
            .send()
            .await
            .unwrap();
        assert_eq!(away.status(), 302, "the redirect is answered, not followed");
        assert_eq!(elsewhere_hits.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn an_http_api_needs_no_authority_and_an_https_one_without_any_is_refused() {
        let settings = |https| ClientSettings {
            timeout: Duration::from_secs(1),
            connections: 4,
            https,
            ca_files: Vec::new(),
        };
        build(&settings(false)).unwrap();
        // Whether the system has authorities depends on the machine: either the client builds
        // with them, or it is refused with the error that says what to do.
        match build(&settings(true)) {
            Ok(_) | Err(ClientError::NoAuthorities) => {}
            Err(other) => panic!("{other}"),
        }
    }
}
