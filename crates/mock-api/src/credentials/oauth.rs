//! The OAuth2 token endpoint (RFC 6749), `POST /oauth/token` with a form body, and the tokens
//! it issues.
//!
//! Grants: `client_credentials` (`scope` and `audience` accepted and ignored), `refresh_token`
//! (the configured refresh token), both with the configured client authenticated by HTTP Basic
//! (`Authorization: Basic base64(id:secret)`, each form-urlencoded first, §2.3.1) or by
//! `client_id` and `client_secret` in the form (never both); and the JWT bearer grant
//! (`urn:ietf:params:oauth:grant-type:jwt-bearer`, RFC 7523) with an `assertion` verified by
//! [`super::jwt`], no client authentication. A success is `{"access_token", "token_type":
//! "Bearer", "expires_in"}`; an error is §5.2's `{"error", "error_description"}`: 401
//! `invalid_client`, 400 `invalid_grant`, `unsupported_grant_type` or `invalid_request`.
//!
//! A token is random (32 bytes from the system's generator, base64url), so a consumer can hold
//! it only by asking for it. The tokens live behind one lock, taken for a lookup or an insert;
//! the expired ones are forgotten as new ones are issued. A revocation forgets them all and
//! refuses every grant until it is lifted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::{SecureRandom, SystemRandom};
use serde_json::json;

use super::jwt::{self, PublicKey};
use super::{Settings, after_scheme, bump, same};
use crate::shapes::json_response;
use crate::{Mock, Secret};

/// The grant type of a JWT bearer assertion (RFC 7523).
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// Who the token endpoint accepts.
#[derive(Debug)]
pub struct Endpoint {
    /// The client's id and secret, if one is configured.
    client: Option<(String, Secret)>,
    refresh_token: Option<Secret>,
    /// The key JWT assertions are signed with, if the grant is offered.
    public_key: Option<PublicKey>,
}

impl Endpoint {
    /// The endpoint `settings` configure; the public key file is read now.
    ///
    /// # Errors
    /// When the public key file cannot be read or is not an RSA public key.
    pub fn new(settings: &Settings) -> std::io::Result<Self> {
        let public_key = match &settings.jwt_public_key_file {
            Some(path) => Some(PublicKey::from_pem_file(path).map_err(|err| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("{}: {err}", path.display()),
                )
            })?),
            None => None,
        };
        Ok(Self {
            client: settings
                .oauth_client_id
                .clone()
                .zip(settings.oauth_client_secret.clone()),
            refresh_token: settings.oauth_refresh_token.clone(),
            public_key,
        })
    }

    /// Whether any grant can succeed (then the API routes require its tokens).
    pub fn configured(&self) -> bool {
        self.client.is_some() || self.public_key.is_some()
    }

    /// Whether the request authenticates the configured client.
    fn authenticate(&self, headers: &HeaderMap, form: &Form) -> Result<(), TokenError> {
        let (id, secret) = self.client.as_ref().ok_or(TokenError::InvalidClient)?;
        let basic = basic_credentials(headers)?;
        let in_body = (form.get("client_id"), form.get("client_secret"));
        let (given_id, given_secret) = match (basic, in_body) {
            (Some(_), (Some(_), _) | (_, Some(_))) => {
                return Err(TokenError::InvalidRequest(
                    "the client authenticated in two ways",
                ));
            }
            (Some(basic), _) => basic,
            (None, (Some(id), Some(secret))) => (id.to_owned(), secret.to_owned()),
            (None, _) => return Err(TokenError::InvalidClient),
        };
        if given_id == *id && same(&given_secret, secret) {
            Ok(())
        } else {
            Err(TokenError::InvalidClient)
        }
    }
}

/// The tokens issued, each with when it expires, and whether the credential is revoked.
#[derive(Debug)]
pub struct Tokens {
    ttl: Duration,
    random: SystemRandom,
    inner: Mutex<Issued>,
}

#[derive(Debug, Default)]
struct Issued {
    expires: HashMap<String, Instant>,
    revoked: bool,
}

impl Tokens {
    /// No token yet; those issued live `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            random: SystemRandom::new(),
            inner: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Issued> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A new token, or why none: the credential is revoked.
    fn issue(&self) -> Result<String, TokenError> {
        let mut bytes = [0_u8; 32];
        self.random
            .fill(&mut bytes)
            .map_err(|_| TokenError::NoRandomness)?;
        let token = URL_SAFE_NO_PAD.encode(bytes);
        let now = Instant::now();
        let mut issued = self.lock();
        if issued.revoked {
            return Err(TokenError::InvalidGrant("the credential is revoked"));
        }
        issued.expires.retain(|_, expires| *expires > now);
        issued.expires.insert(token.clone(), now + self.ttl);
        Ok(token)
    }

    /// Whether `token` was issued, has not expired and was not revoked.
    pub fn valid(&self, token: &str) -> bool {
        let issued = self.lock();
        !issued.revoked
            && issued
                .expires
                .get(token)
                .is_some_and(|expires| *expires > Instant::now())
    }

    /// Forgets every token, and refuses every grant until [`Tokens::restore`].
    pub fn revoke(&self) {
        let mut issued = self.lock();
        issued.expires.clear();
        issued.revoked = true;
    }

    /// Lifts a revocation.
    pub fn restore(&self) {
        self.lock().revoked = false;
    }

    fn revoked(&self) -> bool {
        self.lock().revoked
    }
}

/// Why a token request was refused: its RFC 6749 §5.2 error. The descriptions never hold a
/// value the client sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// A parameter missing, repeated, or the client authenticated twice.
    #[error("invalid_request: {0}")]
    InvalidRequest(&'static str),
    /// The client is not the configured one, did not authenticate, or is revoked.
    #[error("invalid_client")]
    InvalidClient,
    /// A wrong refresh token, a bad or expired assertion, or a revoked credential.
    #[error("invalid_grant: {0}")]
    InvalidGrant(&'static str),
    /// A grant this endpoint does not offer.
    #[error("unsupported_grant_type")]
    UnsupportedGrantType,
    /// The system's random generator failed (a 500).
    #[error("no randomness for a token")]
    NoRandomness,
}

impl IntoResponse for TokenError {
    fn into_response(self) -> Response {
        let (status, error, description) = match self {
            Self::InvalidRequest(why) => (StatusCode::BAD_REQUEST, "invalid_request", why),
            Self::InvalidClient => (
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "client authentication failed",
            ),
            Self::InvalidGrant(why) => (StatusCode::BAD_REQUEST, "invalid_grant", why),
            Self::UnsupportedGrantType => (
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "the grant type is not offered",
            ),
            Self::NoRandomness => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "no token could be made",
            ),
        };
        let body = json!({"error": error, "error_description": description});
        let mut response = json_response(status, body);
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"mock-api\""),
            );
        }
        response
    }
}

/// A form's parameters, each given at most once.
type Form = HashMap<String, String>;

/// The form of a token request, or why not (a parameter given twice).
fn form(body: &[u8]) -> Result<Form, TokenError> {
    let mut form = Form::new();
    for (name, value) in form_urlencoded::parse(body) {
        if form.insert(name.into_owned(), value.into_owned()).is_some() {
            return Err(TokenError::InvalidRequest("a parameter is given twice"));
        }
    }
    Ok(form)
}

/// The id and secret of an `Authorization: Basic` header, if there is one (RFC 6749 §2.3.1:
/// each form-urlencoded, then joined by `:` and base64-encoded).
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, TokenError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let encoded = value
        .to_str()
        .ok()
        .and_then(|v| after_scheme(v, "basic"))
        .map(str::trim)
        .ok_or(TokenError::InvalidClient)?;
    let decoded = STANDARD
        .decode(encoded)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or(TokenError::InvalidClient)?;
    let (id, secret) = decoded.split_once(':').ok_or(TokenError::InvalidClient)?;
    let unencoded = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8()
            .map(|s| s.into_owned())
            .map_err(|_| TokenError::InvalidClient)
    };
    Ok(Some((unencoded(id)?, unencoded(secret)?)))
}

/// `POST /oauth/token`: waits `token_delay_ms`, then issues a token or answers why not.
pub async fn token(State(mock): State<Arc<Mock>>, headers: HeaderMap, body: Bytes) -> Response {
    let credentials = &mock.credentials;
    bump(&credentials.counts.token_requests);
    tokio::time::sleep(credentials.token_delay).await;
    match grant(&mock, &headers, &body) {
        Ok(token) => {
            bump(&credentials.counts.tokens_issued);
            let ttl = credentials.tokens.ttl.as_secs();
            let body = json!({"access_token": token, "token_type": "Bearer", "expires_in": ttl});
            let mut response = json_response(StatusCode::OK, body);
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(err) => {
            bump(&credentials.counts.token_refused);
            tracing::debug!(reason = %err, "token request refused");
            err.into_response()
        }
    }
}

/// The token a request's grant earns, or why none.
fn grant(mock: &Mock, headers: &HeaderMap, body: &[u8]) -> Result<String, TokenError> {
    let credentials = &mock.credentials;
    let (endpoint, tokens) = (&credentials.endpoint, &credentials.tokens);
    let form = form(body)?;
    let grant_type = form
        .get("grant_type")
        .ok_or(TokenError::InvalidRequest("grant_type is missing"))?;
    match grant_type.as_str() {
        "client_credentials" => {
            endpoint.authenticate(headers, &form)?;
            if tokens.revoked() {
                return Err(TokenError::InvalidClient);
            }
        }
        "refresh_token" => {
            endpoint.authenticate(headers, &form)?;
            let given = form
                .get("refresh_token")
                .ok_or(TokenError::InvalidRequest("refresh_token is missing"))?;
            let accepted = endpoint.refresh_token.as_ref();
            if !accepted.is_some_and(|token| same(given, token)) {
                return Err(TokenError::InvalidGrant("the refresh token is not valid"));
            }
        }
        JWT_BEARER => {
            let key = endpoint
                .public_key
                .as_ref()
                .ok_or(TokenError::UnsupportedGrantType)?;
            let assertion = form
                .get("assertion")
                .ok_or(TokenError::InvalidRequest("assertion is missing"))?;
            jwt::verify(assertion, key, std::time::SystemTime::now())
                .map_err(|err| TokenError::InvalidGrant(err.description()))?;
        }
        _ => return Err(TokenError::UnsupportedGrantType),
    }
    tokens.issue()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let encoded = format!("Basic {}", STANDARD.encode(value));
        headers.insert(header::AUTHORIZATION, encoded.parse().expect("a value"));
        headers
    }

    #[test]
    fn basic_credentials_are_form_urldecoded_after_base64() {
        assert_eq!(
            basic_credentials(&basic("my%3Aid:a+b%26c")),
            Ok(Some(("my:id".to_owned(), "a b&c".to_owned())))
        );
        assert_eq!(basic_credentials(&HeaderMap::new()), Ok(None));
        assert_eq!(
            basic_credentials(&basic("no-colon")),
            Err(TokenError::InvalidClient)
        );
    }

    #[test]
    fn a_parameter_given_twice_is_an_invalid_request() {
        assert!(form(b"grant_type=client_credentials&scope=a").is_ok());
        assert_eq!(
            form(b"grant_type=a&grant_type=b"),
            Err(TokenError::InvalidRequest("a parameter is given twice"))
        );
    }

    #[test]
    fn a_revoked_credential_forgets_its_tokens_and_issues_none_until_restored() {
        let tokens = Tokens::new(Duration::from_secs(60));
        let first = tokens.issue().expect("a token");
        assert!(tokens.valid(&first));
        assert!(!tokens.valid("made-up"));

        tokens.revoke();
        assert!(!tokens.valid(&first));
        assert!(tokens.issue().is_err());

        tokens.restore();
        let second = tokens.issue().expect("a token");
        assert!(tokens.valid(&second) && !tokens.valid(&first));
        assert_ne!(first, second);
    }
}
