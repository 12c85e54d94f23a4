//! HTTP as the tests and the benchmark speak it to the binaries: a client with the crypto
//! provider the workspace uses, and GETs answering text or JSON, fallible for the benchmark and
//! panicking with the URL for tests; the benchmark's also fail on a status other than 2xx.

use reqwest::StatusCode;
use serde_json::Value;

use crate::{Error, Result, started};

/// An HTTP client (see [`http_client_builder`]).
pub fn http_client() -> reqwest::Client {
    http_client_builder().build().expect("an HTTP client")
}

/// A builder of HTTP clients. reqwest is built with rustls and no crypto provider of
/// its own (the consumer hands it TLS settings made with ring, as the Redis client uses), so a
/// client with reqwest's own TLS settings needs ring installed as the default first: this does
/// it.
pub fn http_client_builder() -> reqwest::ClientBuilder {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
}

/// GETs `url` with `client`: the status and the body as text.
///
/// # Errors
/// When the request fails or the body cannot be read.
pub async fn try_get_text(
    client: &reqwest::Client,
    url: impl AsRef<str>,
) -> Result<(StatusCode, String)> {
    let url = url.as_ref();
    let failed = |e: reqwest::Error| Error(format!("GET {url}: {e}"));
    let response = client.get(url).send().await.map_err(failed)?;
    let status = response.status();
    Ok((status, response.text().await.map_err(failed)?))
}

/// GETs `url` with `client`: the status and the body as JSON.
///
/// # Errors
/// When the request fails or the body is not JSON.
pub async fn try_get_json(
    client: &reqwest::Client,
    url: impl AsRef<str>,
) -> Result<(StatusCode, Value)> {
    let url = url.as_ref();
    let (status, body) = try_get_text(client, url).await?;
    let json =
        serde_json::from_str(&body).map_err(|e| Error(format!("GET {url}: {e}: {body:?}")))?;
    Ok((status, json))
}

/// GETs `url` with `client`: the body as JSON, when the status is 2xx.
///
/// # Errors
/// When the request fails, the status is not 2xx or the body is not JSON.
pub async fn try_get_ok_json(client: &reqwest::Client, url: impl AsRef<str>) -> Result<Value> {
    let url = url.as_ref();
    match try_get_json(client, url).await? {
        (status, json) if status.is_success() => Ok(json),
        (status, json) => Err(Error(format!("GET {url}: {status}: {json}"))),
    }
}

/// [`try_get_text`] for tests: panics with the reason.
pub async fn get_text(client: &reqwest::Client, url: impl AsRef<str>) -> (StatusCode, String) {
    started(try_get_text(client, url).await)
}

/// [`try_get_json`] for tests: panics with the reason.
pub async fn get_json(client: &reqwest::Client, url: impl AsRef<str>) -> (StatusCode, Value) {
    started(try_get_json(client, url).await)
}
