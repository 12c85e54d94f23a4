//! One delivery of a callback: a signed POST of the task's JSON to the client's URL, and what
//! came of it. Retrying is the caller's business; this module says whether retrying can help
//! ([`DeliveryError::is_permanent`]).
//!
//! The client is built so that a callback URL cannot turn taskq against its own network or
//! hold a worker:
//! - addresses: IP-literal hosts are judged here before sending, host names by the client's
//!   resolver (`resolver`), so no forbidden address is ever connected to (unless
//!   `CALLBACK_ALLOW_PRIVATE`); no proxy is used either, since a proxy would resolve the name
//!   itself, out of the policy's sight;
//! - redirects are not followed: a `3xx` is a failed delivery, as the Standard Webhooks
//!   specification advises, and cannot lead the POST elsewhere;
//! - one deadline (`CALLBACK_TIMEOUT_MS`) covers connecting, sending and the answer;
//! - at most [`MAX_SNIPPET_BYTES`] of the answer are read, then the connection is dropped, so
//!   a huge or endless answer costs neither memory nor time.
//!
//! Success is a `2xx`, anything else a failure, as the specification says. Failures are
//! retried except a refused destination, an invalid id and `410 Gone`, which the
//! specification names as the receiver's way of saying "stop sending": the other `4xx` are
//! retried too, since a receiver that is being deployed or misconfigured often answers 404 or
//! 401 for a while and then recovers, and the attempts are bounded by `CALLBACK_MAX_ATTEMPTS`.
//!
//! Every error and log line names the destination by [`Destination::redacted`]; none holds the
//! secret or the URL's query.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::CONTENT_TYPE;
use reqwest::{Client, Response, redirect};
use tokio::sync::OnceCell;

use crate::destination::Destination;
use crate::forbidden::is_forbidden;
use crate::resolver::ForbiddenAddress;
use crate::settings::CallbackSettings;
use crate::sign::{CallbackSecret, check_id};
use crate::tls::{self, TlsError};

/// The most of a receiver's answer read (and kept in [`DeliveryError::Status`]).
pub const MAX_SNIPPET_BYTES: usize = 4096;

/// The `user-agent` of every delivery.
pub const USER_AGENT: &str = concat!("taskq-callback/", env!("CARGO_PKG_VERSION"));

/// How long an idle connection to a receiver is kept for the next callback.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Delivers callbacks. Cheap to clone: clones share their connections.
#[derive(Debug, Clone)]
pub struct Deliverer {
    /// The client of `http://` callbacks, built at once (it needs no authority).
    http: Client,
    /// The client of `https://` callbacks, built at the first one (see `tls` for why).
    https: Arc<OnceCell<Client>>,
    /// Signs deliveries when set.
    secret: Option<CallbackSecret>,
    /// Whether non-public addresses may be called.
    allow_private: bool,
    /// One delivery's whole time.
    timeout: Duration,
}

/// A delivery the receiver accepted (a `2xx`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    /// The receiver's status.
    pub status: u16,
}

/// Why the deliverer could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The TLS settings were refused.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// reqwest refused the settings.
    #[error("building the callback client: {0}")]
    Client(reqwest::Error),
}

/// Why a delivery failed. `destination` is always [`Destination::redacted`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeliveryError {
    /// The destination is not a public address (its IP literal, or what its name resolves
    /// to). Permanent.
    #[error("callback to {destination} refused: {reason}")]
    Forbidden {
        /// Where it was going.
        destination: String,
        /// Which address was refused.
        reason: String,
    },
    /// The `webhook-id` given cannot be sent (see [`check_id`]). Permanent.
    #[error("callback to {destination} not sent: {reason}")]
    InvalidId {
        /// Where it was going.
        destination: String,
        /// The rule.
        reason: String,
    },
    /// The receiver answered something other than a `2xx` (a `3xx` included: redirects are
    /// not followed). Permanent for `410 Gone` only.
    #[error("callback to {destination} answered {status}")]
    Status {
        /// Where it went.
        destination: String,
        /// The receiver's status.
        status: u16,
        /// The start of the receiver's answer, at most [`MAX_SNIPPET_BYTES`] (invalid UTF-8
        /// replaced), for the task's record; not in the error's text.
        body_snippet: String,
    },
    /// No answer within `CALLBACK_TIMEOUT_MS`, connecting included.
    #[error("callback to {destination} got no answer within {timeout_ms} ms")]
    Timeout {
        /// Where it was going.
        destination: String,
        /// The deadline.
        timeout_ms: u64,
    },
    /// Resolving, connecting, TLS or the exchange failed (a name that does not resolve, a
    /// refused connection, an untrusted certificate, a reset).
    #[error("callback to {destination} failed: {reason}")]
    Connect {
        /// Where it was going.
        destination: String,
        /// What failed, with its causes.
        reason: String,
    },
    /// The `https://` client could not be made (the system has no certificate authorities).
    #[error("callback to {destination} not sent: {reason}")]
    Tls {
        /// Where it was going.
        destination: String,
        /// Why.
        reason: String,
    },
}

impl DeliveryError {
    /// Whether retrying cannot help: a refused destination, an invalid id, or `410 Gone`.
    pub fn is_permanent(&self) -> bool {
        match self {
            Self::Forbidden { .. } | Self::InvalidId { .. } => true,
            Self::Status { status, .. } => *status == 410,
            Self::Timeout { .. } | Self::Connect { .. } | Self::Tls { .. } => false,
        }
    }
}

impl Deliverer {
    /// Builds the deliverer (the `https://` client waits for the first such callback).
    ///
    /// # Errors
    /// [`BuildError`] when rustls or reqwest refuse the settings.
    pub fn new(settings: &CallbackSettings) -> Result<Self, BuildError> {
        let timeout = settings.timeout();
        let allow_private = settings.callback_allow_private;
        Ok(Self {
            http: client(timeout, allow_private, tls::without_authorities()?)
                .map_err(BuildError::Client)?,
            https: Arc::new(OnceCell::new()),
            secret: settings.callback_secret.clone(),
            allow_private,
            timeout,
        })
    }

    /// Whether it may call non-public addresses (`CALLBACK_ALLOW_PRIVATE`): the policy a caller
    /// checks a destination with before handing it over.
    pub fn allows_private(&self) -> bool {
        self.allow_private
    }

    /// POSTs `body` (the task's view, JSON) to `dest`, signed when a secret is set.
    ///
    /// Headers: `content-type: application/json`, `user-agent: taskq-callback/<version>`,
    /// `webhook-id: <id>` and `webhook-timestamp: <unix seconds now>` always (the id lets a
    /// receiver drop a repeated delivery even unsigned), and `webhook-signature` when a secret
    /// is set. `id` must be the same on every attempt at one callback and pass [`check_id`]
    /// ([`crate::message_id`] makes one).
    ///
    /// # Errors
    /// [`DeliveryError`]; [`DeliveryError::is_permanent`] says whether to try again.
    pub async fn deliver(
        &self,
        dest: &Destination,
        id: &str,
        body: &[u8],
    ) -> Result<Delivered, DeliveryError> {
        let destination = dest.redacted();
        check_id(id).map_err(|err| DeliveryError::InvalidId {
            destination: destination.clone(),
            reason: err.to_string(),
        })?;
        if !self.allow_private
            && let Some(ip) = dest.ip().filter(|ip| is_forbidden(*ip))
        {
            return Err(DeliveryError::Forbidden {
                destination,
                reason: format!("{ip} is not a public address"),
            });
        }
        let client = if dest.url().scheme() == "https" {
            self.https_client()
                .await
                .map_err(|err| DeliveryError::Tls {
                    destination: destination.clone(),
                    reason: err.to_string(),
                })?
        } else {
            &self.http
        };

        let timestamp = unix_now();
        let mut request = client
            .post(dest.url().clone())
            .header(CONTENT_TYPE, "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .body(body.to_vec());
        if let Some(secret) = &self.secret {
            request = request.header("webhook-signature", secret.sign(id, timestamp, body));
        }
        let response = request
            .send()
            .await
            .map_err(|err| self.failure(&destination, &err))?;
        let status = response.status().as_u16();
        let body_snippet = snippet(response).await;
        if (200..300).contains(&status) {
            tracing::debug!(destination, status, "callback delivered");
            Ok(Delivered { status })
        } else {
            tracing::debug!(destination, status, "callback refused by its receiver");
            Err(DeliveryError::Status {
                destination,
                status,
                body_snippet,
            })
        }
    }

    /// The `https://` client, built the first time (reading the system's authorities off the
    /// runtime's threads). A failure is not kept: the next `https://` callback tries again.
    async fn https_client(&self) -> Result<&Client, BuildError> {
        let (timeout, allow_private) = (self.timeout, self.allow_private);
        self.https
            .get_or_try_init(|| async move {
                let config = tokio::task::spawn_blocking(tls::with_system_authorities)
                    .await
                    .unwrap_or(Err(TlsError::NoAuthorities))?;
                client(timeout, allow_private, config).map_err(BuildError::Client)
            })
            .await
    }

    /// A failed exchange in words: a destination the resolver refused, a timeout, or what
    /// failed with its causes (never the URL: reqwest's own text holds it, query included).
    fn failure(&self, destination: &str, err: &reqwest::Error) -> DeliveryError {
        let mut causes: Vec<String> = Vec::new();
        let mut source = std::error::Error::source(err);
        while let Some(cause) = source {
            if let Some(forbidden) = cause.downcast_ref::<ForbiddenAddress>() {
                return DeliveryError::Forbidden {
                    destination: destination.to_owned(),
                    reason: forbidden.to_string(),
                };
            }
            let said = cause.to_string();
            // hyper's "client error (Connect)" only names the stage.
            if !said.starts_with("client error (") && !causes.iter().any(|c| c.contains(&said)) {
                causes.push(said);
            }
            source = cause.source();
        }
        if err.is_timeout() {
            return DeliveryError::Timeout {
                destination: destination.to_owned(),
                timeout_ms: u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX),
            };
        }
        let stage = if err.is_connect() {
            "could not connect"
        } else {
            "the exchange failed"
        };
        let reason = std::iter::once(stage.to_owned())
            .chain(causes)
            .collect::<Vec<_>>()
            .join(": ");
        DeliveryError::Connect {
            destination: destination.to_owned(),
            reason,
        }
    }
}

/// A client for one scheme: the policy's resolver, no redirects, no proxy, one deadline.
fn client(
    timeout: Duration,
    allow_private: bool,
    tls: rustls::ClientConfig,
) -> Result<Client, reqwest::Error> {
    let builder = Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(redirect::Policy::none())
        .no_proxy()
        .user_agent(USER_AGENT)
        .tcp_nodelay(true)
        .pool_idle_timeout(IDLE_TIMEOUT)
        .tls_backend_preconfigured(tls);
    crate::resolver::guarded(builder, allow_private).build()
}

/// Reads at most [`MAX_SNIPPET_BYTES`] of the answer and drops the rest with the connection.
/// A read that fails (the deadline, a reset) ends the snippet where it is.
async fn snippet(mut response: Response) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < MAX_SNIPPET_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = MAX_SNIPPET_BYTES - bytes.len();
                bytes.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok(None) | Err(_) => break,
        }
    }
    drop(response);
    let mut text = String::from_utf8_lossy(&bytes).into_owned();
    // Replacement characters are 3 bytes: a lossy text may outgrow the bytes read.
    if text.len() > MAX_SNIPPET_BYTES {
        let mut end = MAX_SNIPPET_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// Unix seconds now (0 for a clock before 1970, which no receiver would accept anyway).
fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_secs()).unwrap_or(i64::MAX)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16) -> DeliveryError {
        DeliveryError::Status {
            destination: "http://example.com/".into(),
            status,
            body_snippet: String::new(),
        }
    }

    #[test]
    fn only_a_refused_destination_an_invalid_id_and_gone_are_permanent() {
        assert!(status(410).is_permanent());
        for retried in [301, 302, 400, 401, 404, 408, 429, 500, 502, 503] {
            assert!(!status(retried).is_permanent(), "{retried}");
        }
        let destination = String::from("http://example.com/");
        assert!(
            DeliveryError::Forbidden {
                destination: destination.clone(),
                reason: String::new()
            }
            .is_permanent()
        );
        assert!(
            DeliveryError::InvalidId {
                destination: destination.clone(),
                reason: String::new()
            }
            .is_permanent()
        );
        assert!(
            !DeliveryError::Timeout {
                destination: destination.clone(),
                timeout_ms: 1
            }
            .is_permanent()
        );
        assert!(
            !DeliveryError::Connect {
                destination,
                reason: String::new()
            }
            .is_permanent()
        );
    }

    #[test]
    fn the_user_agent_names_taskq_and_its_version() {
        assert_eq!(
            USER_AGENT,
            format!("taskq-callback/{}", env!("CARGO_PKG_VERSION"))
        );
    }
}
