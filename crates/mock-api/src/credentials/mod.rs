//! Credentials that expire or sign, as real providers ask for them, so the consumer's OAuth2,
//! service-account and AWS signing code is tested against something that refuses what a
//! provider refuses.
//!
//! - An OAuth2 token endpoint, `POST /oauth/token` (see [`oauth`]): the `client_credentials`
//!   and `refresh_token` grants (the client authenticated by HTTP Basic or in the form body) and
//!   the JWT bearer grant of Google's service accounts (the assertion checked against a public
//!   key, see [`jwt`]). Its tokens live `token_ttl_secs`. `POST /oauth/revoke` refuses every
//!   token issued so far and every grant until `POST /oauth/restore`: a credential revoked under
//!   a running consumer, then given back.
//! - The gate in front of the API routes (after the limits): with the token endpoint configured
//!   (a client id or a public key), every call must carry `Authorization: Bearer` with a token
//!   the mock issued, not expired, not revoked, instead of the shape's API key; with an AWS
//!   access key id, every call must carry a valid Signature Version 4 instead (see [`sigv4`],
//!   the mock's own verifier, checked against AWS's published test vectors). A call refused
//!   here is counted in `calls` and advances nothing: 401 in the shape's error body for a token
//!   (counted in `unauthorized`), 403 `InvalidSignatureException` for a signature (counted in
//!   `sigv4_refused`).
//!
//! No secret is ever printed: the settings hold them as [`Secret`]s, refusals say which check
//! failed and never a value, and nothing here logs a token, an assertion or a signature.
//! `/reset` zeroes the counts but keeps the tokens issued and the revocation as they are, so
//! that a consumer's cached token stays good across a test's resets.

pub mod jwt;
pub mod oauth;
pub mod sigv4;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::{Mock, Secret};

/// The credential settings of the mock (part of its [`crate::Config`]).
#[derive(Debug, Clone, clap::Args)]
pub struct Settings {
    /// The lifetime of the access tokens `POST /oauth/token` issues (its `expires_in`, s); a
    /// call with an expired one answers 401.
    #[arg(long, env = "MOCK_TOKEN_TTL_SECS", default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..))]
    pub token_ttl_secs: u64,
    /// The one OAuth2 client the token endpoint accepts (with MOCK_OAUTH_CLIENT_SECRET); when
    /// set, every API call needs a Bearer token from it instead of the API key.
    #[arg(long, env = "MOCK_OAUTH_CLIENT_ID", requires = "oauth_client_secret")]
    pub oauth_client_id: Option<String>,
    /// The secret of MOCK_OAUTH_CLIENT_ID (HTTP Basic, or `client_secret` in the form).
    #[arg(
        long,
        env = "MOCK_OAUTH_CLIENT_SECRET",
        requires = "oauth_client_id",
        hide_env_values = true
    )]
    pub oauth_client_secret: Option<Secret>,
    /// The refresh token `grant_type=refresh_token` accepts (the client authenticated too).
    #[arg(long, env = "MOCK_OAUTH_REFRESH_TOKEN", hide_env_values = true)]
    pub oauth_refresh_token: Option<Secret>,
    /// A PEM public key (RSA, `BEGIN PUBLIC KEY`) the JWT bearer grant's assertion must be
    /// signed with (RS256); when set, every API call needs a Bearer token instead of the API key.
    #[arg(long, env = "MOCK_JWT_PUBLIC_KEY_FILE")]
    pub jwt_public_key_file: Option<PathBuf>,
    /// How long the token endpoint takes to answer (ms).
    #[arg(long, env = "MOCK_TOKEN_DELAY_MS", default_value_t = 0)]
    pub token_delay_ms: u64,
    /// An AWS access key id: when set, every API call must be signed with AWS Signature
    /// Version 4 by it (with MOCK_AWS_SECRET_ACCESS_KEY) instead of carrying the API key.
    #[arg(
        long,
        env = "MOCK_AWS_ACCESS_KEY_ID",
        requires = "aws_secret_access_key",
        conflicts_with_all = ["oauth_client_id", "jwt_public_key_file"]
    )]
    pub aws_access_key_id: Option<String>,
    /// The secret key of MOCK_AWS_ACCESS_KEY_ID.
    #[arg(
        long,
        env = "MOCK_AWS_SECRET_ACCESS_KEY",
        requires = "aws_access_key_id",
        hide_env_values = true
    )]
    pub aws_secret_access_key: Option<Secret>,
    /// A session token every signed call must carry in `x-amz-security-token`, signed.
    #[arg(long, env = "MOCK_AWS_SESSION_TOKEN", hide_env_values = true)]
    pub aws_session_token: Option<Secret>,
    /// The region of the signatures' credential scope.
    #[arg(long, env = "MOCK_AWS_REGION", default_value = "us-east-1")]
    pub aws_region: String,
    /// The service of the signatures' credential scope.
    #[arg(long, env = "MOCK_AWS_SERVICE", default_value = "textract")]
    pub aws_service: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            token_ttl_secs: 3600,
            oauth_client_id: None,
            oauth_client_secret: None,
            oauth_refresh_token: None,
            jwt_public_key_file: None,
            token_delay_ms: 0,
            aws_access_key_id: None,
            aws_secret_access_key: None,
            aws_session_token: None,
            aws_region: "us-east-1".into(),
            aws_service: "textract".into(),
        }
    }
}

/// What the API routes require instead of the shape's own key, if anything.
#[derive(Debug)]
enum Gate {
    /// The shape's API key, checked by the shape (see [`crate::shapes`]).
    ApiKey,
    /// A Bearer token the token endpoint issued.
    Bearer,
    /// A Signature Version 4 by this key.
    SigV4(sigv4::Verifier),
}

/// The credential state: what the gate requires, the token endpoint and its tokens, the counts.
#[derive(Debug)]
pub struct Credentials {
    gate: Gate,
    token_delay: Duration,
    /// The token endpoint's clients and keys.
    endpoint: oauth::Endpoint,
    /// The tokens issued and whether the credential is revoked.
    tokens: oauth::Tokens,
    counts: Counts,
}

/// What `/stats` counts of the credentials.
#[derive(Debug, Default)]
struct Counts {
    token_requests: AtomicU64,
    tokens_issued: AtomicU64,
    token_refused: AtomicU64,
    sigv4_verified: AtomicU64,
    sigv4_refused: AtomicU64,
}

impl Counts {
    fn all(&self) -> [(&'static str, &AtomicU64); 5] {
        [
            ("token_requests", &self.token_requests),
            ("tokens_issued", &self.tokens_issued),
            ("token_refused", &self.token_refused),
            ("sigv4_verified", &self.sigv4_verified),
            ("sigv4_refused", &self.sigv4_refused),
        ]
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Credentials {
    /// The credential state `settings` ask for.
    ///
    /// # Errors
    /// When the public key file cannot be read or is not an RSA public key.
    pub fn new(settings: &Settings) -> std::io::Result<Self> {
        let endpoint = oauth::Endpoint::new(settings)?;
        let gate = match (&settings.aws_access_key_id, &settings.aws_secret_access_key) {
            (Some(id), Some(secret)) => Gate::SigV4(sigv4::Verifier {
                access_key_id: id.clone(),
                secret: secret.clone(),
                session_token: settings.aws_session_token.clone(),
                region: settings.aws_region.clone(),
                service: settings.aws_service.clone(),
            }),
            _ if endpoint.configured() => Gate::Bearer,
            _ => Gate::ApiKey,
        };
        Ok(Self {
            gate,
            token_delay: Duration::from_millis(settings.token_delay_ms),
            endpoint,
            tokens: oauth::Tokens::new(Duration::from_secs(settings.token_ttl_secs)),
            counts: Counts::default(),
        })
    }

    /// Whether the shapes check their own API key (no token or signature stands in for it).
    pub fn api_key_required(&self) -> bool {
        matches!(self.gate, Gate::ApiKey)
    }

    /// The counts `/stats` shows, by name.
    pub fn stats(&self) -> impl Iterator<Item = (&'static str, u64)> {
        self.counts
            .all()
            .into_iter()
            .map(|(name, counter)| (name, counter.load(Ordering::Relaxed)))
    }

    /// Zeroes the counts (the tokens and the revocation stay).
    pub fn reset(&self) {
        for (_, counter) in self.counts.all() {
            counter.store(0, Ordering::Relaxed);
        }
    }
}

/// `POST /oauth/revoke`: every token issued so far is refused, and every grant until
/// `POST /oauth/restore`.
pub async fn revoke(State(mock): State<Arc<Mock>>) -> StatusCode {
    mock.credentials.tokens.revoke();
    StatusCode::NO_CONTENT
}

/// `POST /oauth/restore`: the grants work again (the tokens revoked stay refused).
pub async fn restore(State(mock): State<Arc<Mock>>) -> StatusCode {
    mock.credentials.tokens.restore();
    StatusCode::NO_CONTENT
}

/// The layer in front of the API routes: a call with the token or signature the mock
/// requires (or any call, when it requires neither) is served; any other is counted and
/// refused, after the configured delay, as every refusal is.
pub async fn gate(State(mock): State<Arc<Mock>>, request: Request, next: Next) -> Response {
    let admitted = match &mock.credentials.gate {
        Gate::ApiKey => Ok(request),
        Gate::Bearer => with_token(&mock, request),
        Gate::SigV4(verifier) => signed(&mock, verifier, request).await,
    };
    match admitted {
        Ok(request) => next.run(request).await,
        Err(refused) => {
            mock.counters.call();
            mock.delay().await;
            *refused
        }
    }
}

/// `request` if it carries a token the mock issued, not expired, not revoked; else its 401.
fn with_token(mock: &Mock, request: Request) -> Result<Request, Box<Response>> {
    if bearer(request.headers()).is_some_and(|token| mock.credentials.tokens.valid(token)) {
        return Ok(request);
    }
    mock.counters.unauthorized();
    let message = "invalid or expired token";
    Err(Box::new(crate::shapes::error(
        mock.config.shape,
        StatusCode::UNAUTHORIZED,
        message,
    )))
}

/// `request` (its body read, up to `max_upload_bytes`) if `verifier` finds it signed; else its
/// refusal.
async fn signed(
    mock: &Mock,
    verifier: &sigv4::Verifier,
    request: Request,
) -> Result<Request, Box<Response>> {
    let (parts, body) = request.into_parts();
    let limit = mock.config.max_upload_bytes;
    let Ok(body) = axum::body::to_bytes(body, limit).await else {
        let message = format!("the body is longer than {limit} bytes");
        let status = StatusCode::PAYLOAD_TOO_LARGE;
        return Err(Box::new(crate::shapes::error(
            mock.config.shape,
            status,
            &message,
        )));
    };
    let counts = &mock.credentials.counts;
    match verifier.verify(&sigv4::Signed::of(&parts, &body), SystemTime::now()) {
        Ok(()) => {
            bump(&counts.sigv4_verified);
            Ok(Request::from_parts(parts, axum::body::Body::from(body)))
        }
        Err(err) => {
            bump(&counts.sigv4_refused);
            tracing::debug!(reason = %err, "signature refused");
            Err(Box::new(err.into_response()))
        }
    }
}

/// The token of an `Authorization: Bearer` header, if any.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    after_scheme(value, "bearer").map(str::trim)
}

/// What follows `scheme` and a space in a credential header's value (`Bearer TOKEN`), the
/// scheme compared in any case as RFC 9110 has it; `None` for another scheme.
pub(crate) fn after_scheme<'a>(value: &'a str, scheme: &str) -> Option<&'a str> {
    let (given, rest) = value.split_once(' ')?;
    given.eq_ignore_ascii_case(scheme).then_some(rest)
}

/// Whether two secrets are equal, compared by their SHA-256 digests so that how long the
/// comparison takes says nothing of the secret.
fn same(given: &str, secret: &Secret) -> bool {
    let digest = |s: &str| ring::digest::digest(&ring::digest::SHA256, s.as_bytes());
    digest(given).as_ref() == digest(&secret.0).as_ref()
}

/// Lowercase hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bearer_token_is_read_in_any_case_of_the_scheme_and_nothing_else_is() {
        let headers = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::AUTHORIZATION, value.parse().expect("a value"));
            headers
        };

        assert_eq!(bearer(&headers("Bearer abc")), Some("abc"));
        assert_eq!(bearer(&headers("bearer abc")), Some("abc"));
        assert_eq!(bearer(&headers("Basic abc")), None);
        assert_eq!(bearer(&headers("abc")), None);
        assert_eq!(bearer(&HeaderMap::new()), None);
    }

    #[test]
    fn secrets_are_equal_only_when_every_byte_is() {
        let secret = Secret("s3cret".into());
        assert!(same("s3cret", &secret));
        assert!(!same("s3cre", &secret));
        assert!(!same("S3cret", &secret));
        assert_eq!(hex(&[0, 15, 255]), "000fff");
    }
}
