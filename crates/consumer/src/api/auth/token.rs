//! Bearer tokens: minted by a token endpoint (OAuth2's grants, or a Google service account's
//! signed JWT), cached, and refreshed before they expire.
//!
//! A token is refreshed once less than the smaller of a tenth of its life and 60 s is left, so
//! a call never carries one about to lapse. However many calls want a token at once, one
//! request is made ([`TokenSource::bearer`] holds the others on one lock and hands them what it
//! got). A token the API refused (401) is replaced once: the call that saw the refusal asks
//! for a fresh one, and calls that saw the same refusal get the one it brought.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use reqwest::{Client, StatusCode, Url};
use serde::Deserialize;

use super::google::ServiceAccount;
use super::spec::ClientAuth;
use super::{CredentialError, Health};
use crate::api::secret::SecretText;
use crate::client::describe_call_to;

/// How a token is minted.
#[derive(Debug)]
pub enum Minter {
    /// An OAuth2 grant at `token_url`.
    OAuth2 {
        /// The token endpoint.
        token_url: Url,
        /// The client's id.
        client_id: Arc<SecretText>,
        /// How the client authenticates.
        client_auth: ClientAuth,
        /// The grant and its secrets.
        grant: Grant,
        /// `scope`, when asked for.
        scope: Option<String>,
        /// `audience`, when asked for (Auth0 and others).
        audience: Option<String>,
    },
    /// A Google service account's key file: a JWT signed with its key, exchanged at its
    /// `token_uri`.
    Google {
        /// The key file's text, read again when it changes.
        key: Arc<SecretText>,
        /// The scopes, space-separated.
        scopes: String,
    },
}

impl Minter {
    /// The kind and where its tokens come from (the key file's `token_uri` is read at its
    /// first token).
    pub(super) fn describe(&self) -> String {
        match self {
            Self::OAuth2 {
                token_url, grant, ..
            } => {
                let grant = match grant {
                    Grant::ClientCredentials { .. } => "client_credentials",
                    Grant::RefreshToken { .. } => "refresh_token",
                };
                format!(
                    "oauth2 {grant}, tokens from {}",
                    token_url.origin().ascii_serialization()
                )
            }
            Self::Google { scopes, .. } => {
                format!("google_service_account, tokens for {scopes}")
            }
        }
    }
}

/// An OAuth2 grant.
#[derive(Debug)]
pub enum Grant {
    /// `client_credentials`.
    ClientCredentials {
        /// The client secret.
        secret: Arc<SecretText>,
    },
    /// `refresh_token`.
    RefreshToken {
        /// The client secret, for a confidential client.
        secret: Option<Arc<SecretText>>,
        /// The refresh token.
        token: Arc<SecretText>,
    },
}

/// A token and when it is to be replaced.
#[derive(Clone)]
struct Token {
    /// `Bearer ...`, marked sensitive.
    bearer: HeaderValue,
    refresh_at: Instant,
    expires_at: Instant,
}

/// A queue's tokens.
pub struct TokenSource {
    minter: Arc<Minter>,
    client: Client,
    health: Arc<Health>,
    token: RwLock<Option<Token>>,
    /// Held while a token is minted: the single flight.
    minting: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSource(***)")
    }
}

/// A token endpoint's answer (RFC 6749 §5.1).
#[derive(Deserialize)]
struct Minted {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// A token endpoint's refusal (RFC 6749 §5.2).
#[derive(Deserialize)]
struct Refusal {
    error: String,
}

/// One token request: where, its form, and the client's id and secret for HTTP Basic.
struct TokenRequest {
    url: Url,
    form: Vec<(&'static str, String)>,
    basic: Option<(String, String)>,
}

/// The life assumed for a token whose endpoint does not say.
const DEFAULT_LIFE: Duration = Duration::from_secs(3600);
/// The most a token is refreshed ahead of its end.
const MAX_AHEAD: Duration = Duration::from_secs(60);
/// How long a token request may take.
const MINT_TIMEOUT: Duration = Duration::from_secs(10);

impl TokenSource {
    pub(super) fn new(minter: Arc<Minter>, client: Client, health: Arc<Health>) -> Self {
        Self {
            minter,
            client,
            health,
            token: RwLock::new(None),
            minting: tokio::sync::Mutex::new(()),
        }
    }

    fn cached(&self) -> Option<Token> {
        self.token
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// A token to send: the cached one while it is fresh, else a new one (one request for all
    /// the calls waiting). `stale`: the token the API just refused, to be replaced.
    ///
    /// # Errors
    /// [`CredentialError`] when no usable token can be had.
    pub async fn bearer(
        &self,
        stale: Option<&HeaderValue>,
    ) -> Result<HeaderValue, CredentialError> {
        let usable = |token: &Token, now: Instant| match stale {
            None => now < token.refresh_at,
            Some(refused) => refused != token.bearer && now < token.expires_at,
        };
        if let Some(token) = self.cached()
            && usable(&token, Instant::now())
        {
            return Ok(token.bearer);
        }
        let _minting = self.minting.lock().await;
        let now = Instant::now();
        let cached = self.cached();
        if let Some(token) = &cached
            && usable(token, now)
        {
            return Ok(token.bearer.clone());
        }
        // Still valid but due for a refresh: used while the credential fails.
        let fallback = cached.filter(|t| stale.is_none() && now < t.expires_at);
        if let Some(held) = self.health.held() {
            return fallback.map(|t| t.bearer).ok_or(held);
        }
        match self.mint().await {
            Ok(token) => {
                self.health.succeed();
                let bearer = token.bearer.clone();
                *self.token.write().unwrap_or_else(PoisonError::into_inner) = Some(token);
                Ok(bearer)
            }
            Err(error) => {
                self.health.fail(&error);
                fallback.map(|t| t.bearer).ok_or(error)
            }
        }
    }

    /// One token request.
    async fn mint(&self) -> Result<Token, CredentialError> {
        let unreadable =
            |e: crate::api::secret::SecretError| CredentialError::Refused(e.to_string());
        let TokenRequest {
            url,
            mut form,
            basic,
        } = match &*self.minter {
            Minter::OAuth2 {
                token_url,
                client_id,
                client_auth,
                grant,
                scope,
                audience,
            } => {
                let id = client_id.current().map_err(unreadable)?;
                let (mut form, secret) = match grant {
                    Grant::ClientCredentials { secret } => (
                        vec![("grant_type", "client_credentials".to_owned())],
                        Some(secret.current().map_err(unreadable)?),
                    ),
                    Grant::RefreshToken { secret, token } => (
                        vec![
                            ("grant_type", "refresh_token".to_owned()),
                            ("refresh_token", token.current().map_err(unreadable)?),
                        ],
                        secret
                            .as_ref()
                            .map(|s| s.current())
                            .transpose()
                            .map_err(unreadable)?,
                    ),
                };
                form.extend(scope.clone().map(|s| ("scope", s)));
                form.extend(audience.clone().map(|a| ("audience", a)));
                let basic = match client_auth {
                    ClientAuth::Basic => Some((id, secret.unwrap_or_default())),
                    ClientAuth::Body => {
                        form.push(("client_id", id));
                        form.extend(secret.map(|s| ("client_secret", s)));
                        None
                    }
                };
                TokenRequest {
                    url: token_url.clone(),
                    form,
                    basic,
                }
            }
            Minter::Google { key, scopes } => {
                let text = key.current().map_err(unreadable)?;
                let account = ServiceAccount::parse(&text)
                    .map_err(|e| CredentialError::Refused(e.to_string()))?;
                let assertion = account
                    .assertion(scopes, std::time::SystemTime::now())
                    .map_err(|e| CredentialError::Refused(e.to_string()))?;
                let url = Url::parse(account.token_uri()).map_err(|_| {
                    CredentialError::Refused("the key file's token_uri is not a URL".into())
                })?;
                TokenRequest {
                    url,
                    form: vec![
                        (
                            "grant_type",
                            "urn:ietf:params:oauth:grant-type:jwt-bearer".to_owned(),
                        ),
                        ("assertion", assertion),
                    ],
                    basic: None,
                }
            }
        };
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form.drain(..))
            .finish();
        let mut request = self
            .client
            .post(url)
            .timeout(MINT_TIMEOUT)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(ACCEPT, "application/json")
            .body(body);
        if let Some((id, secret)) = basic {
            request = request.header(AUTHORIZATION, basic_authorization(&id, &secret));
        }
        // What went wrong on the way, with its cause, never the URL.
        let unavailable = |e: reqwest::Error| {
            CredentialError::Unavailable(describe_call_to(&e, "the token endpoint"))
        };
        let started = Instant::now();
        let response = request.send().await.map_err(unavailable)?;
        let status = response.status();
        let body = response.bytes().await.map_err(unavailable)?;
        if status.is_success() {
            let minted: Minted = serde_json::from_slice(&body).map_err(|_| {
                CredentialError::Unavailable(
                    "the token endpoint's answer has no access_token".into(),
                )
            })?;
            let life = minted.expires_in.map_or(DEFAULT_LIFE, Duration::from_secs);
            let ahead = (life / 10).min(MAX_AHEAD);
            let mut bearer = HeaderValue::from_str(&format!("Bearer {}", minted.access_token))
                .map_err(|_| {
                    CredentialError::Unavailable("the token holds what a header cannot".into())
                })?;
            bearer.set_sensitive(true);
            return Ok(Token {
                bearer,
                refresh_at: started + life - ahead,
                expires_at: started + life,
            });
        }
        let said = serde_json::from_slice::<Refusal>(&body)
            .map(|r| r.error)
            .ok()
            .filter(|e| e.len() <= 64 && e.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
        let reason = match &said {
            Some(error) => format!(
                "the token endpoint answered HTTP {} ({error})",
                status.as_u16()
            ),
            None => format!("the token endpoint answered HTTP {}", status.as_u16()),
        };
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            Err(CredentialError::Unavailable(reason))
        } else {
            Err(CredentialError::Refused(reason))
        }
    }
}

/// `Basic base64(id:secret)`, each form-urlencoded first (RFC 6749 §2.3.1), marked sensitive.
fn basic_authorization(id: &str, secret: &str) -> HeaderValue {
    let encode = |text: &str| form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>();
    let pair = format!("{}:{}", encode(id), encode(secret));
    let mut value = HeaderValue::from_str(&format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    ))
    .expect("base64 is a valid header value");
    value.set_sensitive(true);
    value
}

#[cfg(test)]
mod tests;
