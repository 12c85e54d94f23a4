//! Credentials that expire, rotate or sign: a profile's `auth` block, beside its `headers`.
//!
//! Three kinds, each compiled once at start ([`AuthSpec::compile`]) and then used by one
//! [`Credential`] per queue:
//! - `oauth2` (`client_credentials` or `refresh_token`) and `google_service_account` (a JWT
//!   signed RS256 with the key file's private key, exchanged for an access token) mint bearer
//!   tokens ([`token`]): cached, refreshed before they expire by one request however many calls
//!   wait, sent as `Authorization: Bearer` on every call to `base_url`'s origin (never to another
//!   `hosts` entry);
//! - `aws_sigv4` signs every call to `base_url`'s origin after its other headers are set
//!   ([`sigv4`], with AWS's own signer).
//!
//! Every value may be `${VAR}` (read at start) or `${file:/path}` (read again when the file
//! changes), so a rotated secret is used without a restart. None of them, nor a token, JWT or
//! signature, is ever printed: `Debug` shows `***`, errors name the field or the file.
//!
//! A credential that fails (a token endpoint that refuses it, a key file that cannot be read, a
//! fresh token the API still refuses) is a problem of the queue, not of its tasks: calls are
//! held, not failed ([`Credential::problem`] says why, for `/healthz` and `/metrics`), and
//! it is tried again with backoff until it works.

mod google;
mod sigv4;
mod spec;
mod token;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use reqwest::header::{HeaderName, HeaderValue};
use reqwest::{Client, Method, StatusCode, Url};

pub use spec::AuthSpec;
use token::TokenSource;

/// A compiled `auth` block.
#[derive(Debug)]
pub enum Auth {
    /// Bearer tokens minted by a token endpoint.
    Token(Arc<token::Minter>),
    /// Every call signed with AWS Signature Version 4.
    SigV4(Arc<sigv4::Signer>),
}

impl Auth {
    /// What `consumer --check` shows of it: the kind and where tokens come from, no value.
    pub fn describe(&self) -> String {
        match self {
            Self::Token(minter) => minter.describe(),
            Self::SigV4(signer) => signer.describe(),
        }
    }
}

/// Why a credential could not be used; never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// The provider refused the credential, or it cannot be read: held until it works.
    #[error("the credential was refused: {0}")]
    Refused(String),
    /// The token endpoint could not answer (429, 5xx, a timeout): tried again with backoff.
    #[error("the token endpoint is unavailable: {0}")]
    Unavailable(String),
    /// The credential failed a moment ago (this, in words) and is not tried again before its
    /// backoff ends.
    #[error("{0}")]
    Held(String),
}

/// One queue's credential at run time: its tokens, and whether it works.
#[derive(Debug)]
pub struct Credential {
    kind: Kind,
    health: Arc<Health>,
}

#[derive(Debug)]
enum Kind {
    Tokens(TokenSource),
    SigV4(Arc<sigv4::Signer>),
    /// No `auth` block, but headers read from secret files: only whether they can be read.
    Files,
}

/// The request a credential is put on: what a signature covers.
pub struct Outgoing<'a> {
    /// The method.
    pub method: &'a Method,
    /// The URL.
    pub url: &'a Url,
    /// Every header already set.
    pub headers: &'a [(HeaderName, HeaderValue)],
    /// The body's bytes, or `None` for a body streamed as it is read (signed unsigned).
    pub body: Option<&'a [u8]>,
}

impl Credential {
    /// The run-time credential of `auth`, minting tokens through `client`; without `auth`, the
    /// credential of headers read from secret files.
    pub fn new(auth: Option<&Auth>, client: Client) -> Self {
        let health = Arc::new(Health::default());
        let kind = match auth {
            Some(Auth::Token(minter)) => Kind::Tokens(TokenSource::new(
                Arc::clone(minter),
                client,
                Arc::clone(&health),
            )),
            Some(Auth::SigV4(signer)) => Kind::SigV4(Arc::clone(signer)),
            None => Kind::Files,
        };
        Self { kind, health }
    }

    /// Whether a 401 may be cured by a fresh token (then the call is made again once).
    pub fn refreshes(&self) -> bool {
        matches!(self.kind, Kind::Tokens(_))
    }

    /// The headers that authorize `outgoing`: a bearer token (a fresh one when `stale` is the
    /// token the API just refused), or a signature.
    ///
    /// # Errors
    /// [`CredentialError`] when no token can be had or the keys cannot be read.
    pub async fn authorize(
        &self,
        outgoing: &Outgoing<'_>,
        stale: Option<&HeaderValue>,
    ) -> Result<Vec<(HeaderName, HeaderValue)>, CredentialError> {
        match &self.kind {
            Kind::Tokens(tokens) => {
                let bearer = tokens.bearer(stale).await?;
                Ok(vec![(reqwest::header::AUTHORIZATION, bearer)])
            }
            Kind::SigV4(signer) => {
                let signed = signer.sign(outgoing);
                if let Err(error) = &signed {
                    self.health.fail(error);
                }
                signed
            }
            Kind::Files => Ok(Vec::new()),
        }
    }

    /// The API refused what `authorize` gave (after a refresh, for tokens), or a secret could
    /// not be read: the credential is failing until it works again.
    pub fn refused(&self, reason: String) {
        self.health.fail(&CredentialError::Refused(reason));
    }

    /// Whether an answer refuses this credential rather than the task: a 401, or for AWS
    /// signatures AWS's 403 for a signature or key it does not accept (a 403 for a resource the
    /// key may not touch is the task's, as is any other credential's 403).
    pub fn refused_by(&self, status: StatusCode, body: &[u8]) -> bool {
        status == StatusCode::UNAUTHORIZED
            || (status == StatusCode::FORBIDDEN
                && matches!(self.kind, Kind::SigV4(_))
                && sigv4::refuses_the_key(body))
    }

    /// A call went through with the credential.
    pub fn accepted(&self) {
        self.health.succeed();
    }

    /// Why the credential is failing now, if it is (never a value).
    pub fn problem(&self) -> Option<String> {
        self.health.problem()
    }

    /// Resolves once the credential may work: at once while it does; while it fails, after its
    /// backoff, once a token could be had (a signature is tried again by the next calls).
    pub async fn ready(&self) {
        while let Some(wait) = self.health.held_for() {
            tokio::time::sleep(wait).await;
            match &self.kind {
                Kind::Tokens(tokens) => {
                    if tokens.bearer(None).await.is_ok() {
                        return;
                    }
                }
                Kind::SigV4(_) | Kind::Files => return,
            }
        }
    }

    /// How long a held call waits before its task is tried again, while the credential fails.
    pub fn retry_in(&self) -> Duration {
        self.health.retry_in()
    }
}

/// Whether a credential works: its last failure and when to try again.
#[derive(Debug, Default)]
pub(crate) struct Health {
    state: Mutex<HealthState>,
    /// Whether a problem is noted: read without the lock by every call that went through and
    /// before every claim, so a working credential costs them one atomic load.
    failing: AtomicBool,
}

#[derive(Debug, Default)]
struct HealthState {
    problem: Option<String>,
    backoff: Duration,
    retry_at: Option<Instant>,
}

/// The first wait after a credential fails; it doubles per failure up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait between two tries of a failing credential.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

impl Health {
    fn state(&self) -> std::sync::MutexGuard<'_, HealthState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Notes a failure. Calls in flight together fail together: only the first failure after
    /// a backoff has ended doubles it.
    pub(crate) fn fail(&self, error: &CredentialError) {
        let mut state = self.state();
        let now = Instant::now();
        if state.retry_at.is_none_or(|at| at <= now) {
            state.backoff = (state.backoff * 2).clamp(FIRST_BACKOFF, MAX_BACKOFF);
            state.retry_at = Some(now + state.backoff);
        }
        let reason = error.to_string();
        if state.problem.as_ref() != Some(&reason) {
            tracing::warn!(problem = %reason, retry_in = ?state.backoff, "the queue's credential fails: its calls are held");
        }
        state.problem = Some(reason);
        self.failing.store(true, Ordering::Relaxed);
    }

    pub(crate) fn succeed(&self) {
        if !self.failing.load(Ordering::Relaxed) {
            return;
        }
        let mut state = self.state();
        self.failing.store(false, Ordering::Relaxed);
        if state.problem.take().is_some() {
            tracing::info!("the queue's credential works again");
        }
        state.backoff = Duration::ZERO;
        state.retry_at = None;
    }

    /// The failure to answer without trying, while the backoff lasts.
    pub(crate) fn held(&self) -> Option<CredentialError> {
        let state = self.state();
        match (&state.problem, state.retry_at) {
            (Some(problem), Some(at)) if Instant::now() < at => {
                Some(CredentialError::Held(problem.clone()))
            }
            _ => None,
        }
    }

    /// How long the backoff of a failing credential still lasts (a working one: no lock).
    fn held_for(&self) -> Option<Duration> {
        if !self.failing.load(Ordering::Relaxed) {
            return None;
        }
        let state = self.state();
        state.problem.as_ref()?;
        let left = state.retry_at?.saturating_duration_since(Instant::now());
        (!left.is_zero()).then_some(left)
    }

    fn problem(&self) -> Option<String> {
        self.state().problem.clone()
    }

    fn retry_in(&self) -> Duration {
        let state = self.state();
        state
            .retry_at
            .map_or(FIRST_BACKOFF, |at| {
                at.saturating_duration_since(Instant::now())
            })
            .max(Duration::from_millis(100))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::secret::secret_text;

    /// A client as the consumer builds one (no call is made with it here).
    fn client() -> Client {
        crate::client::build(&crate::client::ClientSettings {
            timeout: Duration::from_secs(5),
            connections: 1,
            https: false,
            ca_files: Vec::new(),
        })
        .expect("a client")
    }

    fn sigv4() -> Credential {
        let text = |value: &str| {
            Arc::new(secret_text(value, |_| None, Duration::from_secs(10)).expect("a secret"))
        };
        let signer = sigv4::Signer::new(
            "eu-west-1".into(),
            "textract".into(),
            text("AKIDEXAMPLE"),
            text("secret"),
            None,
        );
        Credential::new(Some(&Auth::SigV4(Arc::new(signer))), client())
    }

    #[test]
    fn a_401_refuses_any_credential_and_awss_key_errors_only_a_signature() {
        let files = Credential::new(None, client());
        let signed = sigv4();
        let expired = br#"{"__type": "ExpiredTokenException", "message": "..."}"#;
        let denied = br#"{"__type": "AccessDeniedException", "message": "..."}"#;
        for credential in [&files, &signed] {
            assert!(credential.refused_by(StatusCode::UNAUTHORIZED, b""));
            assert!(!credential.refused_by(StatusCode::FORBIDDEN, denied));
            assert!(!credential.refused_by(StatusCode::BAD_REQUEST, expired));
        }
        assert!(signed.refused_by(StatusCode::FORBIDDEN, expired));
        assert!(!files.refused_by(StatusCode::FORBIDDEN, expired));
    }
}
