//! The third-party API one queue calls, and how its answers read.
//!
//! Two kinds, chosen per queue: the original shape (`GET API_URL?task-name=NAME`, answered
//! `{"status", "data"}`), the default, and a profile from `QUEUES_FILE` for any other
//! asynchronous HTTP API: submit then poll an id, credentials in headers, status in any field
//! or in the HTTP code (Replicate, Google long-running operations, Azure `Operation-Location`,
//! Stability's 202-until-200, ...).
//!
//! - [`profile`]: the profile's schema, checked and compiled once at start.
//! - [`template`]: `{{name}}`, `{{id}}`, `{{payload.FIELD}}` in paths, URLs and bodies.
//! - [`secret`]: header values with `${VAR}` from the environment and `${file:/path}` read
//!   again as it changes, never shown.
//! - [`auth`]: credentials that expire, rotate or sign (OAuth2, Google service accounts, AWS
//!   SigV4), per queue.
//! - [`request`]: a profile's call for one task (submit or poll), kept on the configured host.
//! - [`read`]: what a profile's answer means.
//! - [`original`]: the original shape, request and answer.
//! - [`failure`]: what an unsuccessful answer means for any shape (throttled, retryable,
//!   permanent), and `Retry-After`.

pub mod auth;
pub mod failure;
pub mod original;
pub mod pages;
pub mod profile;
pub mod read;
pub mod request;
pub mod secret;
pub mod spec;
pub mod template;
pub mod upload;

use std::path::Path;
use std::sync::Arc;

use reqwest::Url;

pub use profile::Profile;
pub use spec::{ApiSpec, ProfileError};

/// Whether two URLs share scheme, host and port: the test every call and redirect passes, so
/// none leaves the host the configuration named.
pub fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host() == b.host()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// The API a queue calls.
#[derive(Debug, Clone)]
pub enum Api {
    /// The original shape at this URL.
    Original(Url),
    /// A profile.
    Profile(Arc<Profile>),
}

impl Api {
    /// Whether a task's first call is a submit (then claims give it a submit token).
    pub fn submits(&self) -> bool {
        matches!(self, Self::Profile(profile) if profile.submit.is_some())
    }

    /// Whether a submit gives the provider the task's hook URL (`{{webhook_url}}`).
    pub fn uses_webhook_url(&self) -> bool {
        matches!(self, Self::Profile(profile)
            if profile.submit.as_ref().is_some_and(profile::Submit::uses_webhook_url))
    }

    /// Whether the API is called over `https://`.
    pub fn is_https(&self) -> bool {
        let url = match self {
            Self::Original(url) => url,
            Self::Profile(profile) => &profile.base,
        };
        url.scheme() == "https"
    }

    /// The profile's own certificate authorities, if any.
    pub fn ca_file(&self) -> Option<&Path> {
        match self {
            Self::Original(_) => None,
            Self::Profile(profile) => profile.ca_file.as_deref(),
        }
    }
}
