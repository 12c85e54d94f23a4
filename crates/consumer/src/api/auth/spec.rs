//! The `auth` block as `QUEUES_FILE` writes it (serde, unknown keys refused), and its
//! compilation: every value's `${VAR}` read and every `${file:...}` opened now, so a mistake
//! stops the start naming its key (`auth.oauth2.client_secret: ...`), never a value.

use std::sync::Arc;

use serde::Deserialize;

use super::Auth;
use super::google::ServiceAccount;
use super::sigv4::Signer;
use super::token::{Grant, Minter};
use crate::api::secret::{self, SecretText};
use crate::api::spec::{Env, ProfileError, Unexpanded, http_url, refuse};

/// A profile's `auth` block: one kind of credential.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum AuthSpec {
    /// OAuth2 tokens from a token endpoint.
    Oauth2(OAuth2Spec),
    /// Google's service accounts: a signed JWT exchanged for a token.
    GoogleServiceAccount(GoogleSpec),
    /// AWS Signature Version 4 on every call.
    AwsSigv4(SigV4Spec),
}

/// `auth.oauth2`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuth2Spec {
    token_url: String,
    grant: GrantSpec,
    client_id: Unexpanded,
    #[serde(default)]
    client_secret: Option<Unexpanded>,
    #[serde(default)]
    refresh_token: Option<Unexpanded>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    audience: Option<String>,
    #[serde(default)]
    client_auth: ClientAuth,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum GrantSpec {
    ClientCredentials,
    RefreshToken,
}

/// How the client authenticates at the token endpoint (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// HTTP Basic with the id and secret.
    #[default]
    Basic,
    /// `client_id` and `client_secret` in the form.
    Body,
}

/// `auth.google_service_account`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GoogleSpec {
    key_file: Unexpanded,
    scopes: Vec<String>,
}

/// `auth.aws_sigv4`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigV4Spec {
    region: String,
    service: String,
    access_key_id: Unexpanded,
    secret_access_key: Unexpanded,
    #[serde(default)]
    session_token: Option<Unexpanded>,
}

impl AuthSpec {
    /// Compiles the block.
    ///
    /// # Errors
    /// [`ProfileError`] naming the first key that is wrong (`auth.oauth2.client_secret`).
    pub(in crate::api) fn compile(&self, env: &Env<'_>) -> Result<Auth, ProfileError> {
        match self {
            Self::Oauth2(spec) => spec.compile(env).map(|m| Auth::Token(Arc::new(m))),
            Self::GoogleServiceAccount(spec) => spec.compile(env).map(|m| Auth::Token(Arc::new(m))),
            Self::AwsSigv4(spec) => spec.compile(env).map(|s| Auth::SigV4(Arc::new(s))),
        }
    }
}

impl OAuth2Spec {
    fn compile(&self, env: &Env<'_>) -> Result<Minter, ProfileError> {
        let at = |key: &str| format!("auth.oauth2.{key}");
        let client_secret = self
            .client_secret
            .as_ref()
            .map(|v| env.text(&at("client_secret"), v))
            .transpose()?;
        let grant = match self.grant {
            GrantSpec::ClientCredentials => {
                let Some(secret) = client_secret.clone() else {
                    return Err(refuse(
                        at("client_secret"),
                        "the client_credentials grant needs a client secret",
                    ));
                };
                if self.refresh_token.is_some() {
                    return Err(refuse(
                        at("refresh_token"),
                        "only the refresh_token grant takes one",
                    ));
                }
                Grant::ClientCredentials { secret }
            }
            GrantSpec::RefreshToken => {
                let Some(token) = &self.refresh_token else {
                    return Err(refuse(
                        at("refresh_token"),
                        "the refresh_token grant needs one",
                    ));
                };
                Grant::RefreshToken {
                    secret: client_secret.clone(),
                    token: env.text(&at("refresh_token"), token)?,
                }
            }
        };
        Ok(Minter::OAuth2 {
            token_url: http_url(
                &at("token_url"),
                &self.token_url,
                env,
                "no credentials in the URL",
            )?,
            client_id: env.text(&at("client_id"), &self.client_id)?,
            client_auth: self.client_auth,
            grant,
            scope: self.scope.clone(),
            audience: self.audience.clone(),
        })
    }
}

impl GoogleSpec {
    fn compile(&self, env: &Env<'_>) -> Result<Minter, ProfileError> {
        if self.scopes.is_empty() {
            return Err(refuse(
                "auth.google_service_account.scopes",
                "name at least one scope (https://www.googleapis.com/auth/cloud-platform)",
            ));
        }
        let field = "auth.google_service_account.key_file";
        // The path, `${VAR}` read (GOOGLE_APPLICATION_CREDENTIALS names one); the file is the
        // secret, read now and again whenever it changes.
        let path = secret::expand(&self.key_file.0, env.lookup).map_err(|e| refuse(field, e))?;
        if !path.starts_with('/') {
            return Err(refuse(field, "give the key file's absolute path"));
        }
        let key = SecretText::file(path.into(), env.reload).map_err(|e| refuse(field, e))?;
        let key = Arc::new(key);
        // Read now, so that a key file that is not one stops the start.
        let text = key.current().map_err(|e| refuse(field, e))?;
        ServiceAccount::parse(&text).map_err(|e| refuse(field, e))?;
        Ok(Minter::Google {
            key,
            scopes: self.scopes.join(" "),
        })
    }
}

impl SigV4Spec {
    fn compile(&self, env: &Env<'_>) -> Result<Signer, ProfileError> {
        let at = |key: &str| format!("auth.aws_sigv4.{key}");
        let scope = |key: &str, written: &str| {
            let value = secret::expand(written, env.lookup).map_err(|e| refuse(at(key), e))?;
            if value.is_empty() || !value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                return Err(refuse(
                    at(key),
                    "letters, digits and '-' (us-east-1, textract)",
                ));
            }
            Ok(value)
        };
        Ok(Signer::new(
            scope("region", &self.region)?,
            scope("service", &self.service)?,
            env.text(&at("access_key_id"), &self.access_key_id)?,
            env.text(&at("secret_access_key"), &self.secret_access_key)?,
            self.session_token
                .as_ref()
                .map(|v| env.text(&at("session_token"), v))
                .transpose()?,
        ))
    }
}
