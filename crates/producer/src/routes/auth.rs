//! Who may call what: the bearer tokens and the middleware that checks them.
//!
//! | routes | `ADMIN_TOKEN` only | `CLIENT_TOKEN` set |
//! |---|---|---|
//! | admin (list, stats, retry, purge) | admin token | admin token |
//! | cancel (`DELETE /tasks/{name}`) | admin token | client or admin token |
//! | enqueue and read | open | client or admin token |
//!
//! With neither token set, everything is open (the producer warns at start). Cancelling needs a
//! token as soon as one is set: a cancelled name dedups for `DEAD_TTL_SECS`, so an open cancel
//! would let anyone block a name for days. Tokens are compared in constant time and never logged.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;

use crate::error::{AppError, Required};

/// A bearer token the producer requires; never shown in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct BearerToken(Arc<str>);

impl BearerToken {
    /// Whether `presented` is the token, in time that does not depend on where they differ.
    pub fn matches(&self, presented: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), presented.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0, |diff, (x, y)| diff | (x ^ y)) == 0
    }
}

impl BearerToken {
    /// The token, unless it is empty: an empty value (`ADMIN_TOKEN=` passed through from an
    /// environment that does not set it, as compose does) means no token.
    pub(crate) fn unless_empty(token: Option<&Self>) -> Option<Self> {
        token.filter(|token| !token.0.is_empty()).cloned()
    }
}

impl FromStr for BearerToken {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.into()))
    }
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerToken(***)")
    }
}

/// The tokens the producer requires, each optional.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    /// Guards the admin routes, and cancelling when there is no client token.
    pub admin: Option<BearerToken>,
    /// Guards the client routes (enqueue, read, cancel) when set.
    pub client: Option<BearerToken>,
}

/// Which routes a middleware guards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    /// List, stats, retry, purge.
    Admin,
    /// Enqueue and read.
    Client,
    /// Cancel.
    Cancel,
}

impl Tokens {
    /// What a request to `guard`'s routes must present (the token named in a refusal, and
    /// every token accepted), or `None` when they are open.
    fn required(&self, guard: Guard) -> Option<(Required, Vec<&BearerToken>)> {
        let admin = || {
            self.admin
                .as_ref()
                .map(|admin| (Required::Admin, vec![admin]))
        };
        let client = || {
            let client = self.client.as_ref()?;
            Some((
                Required::Client,
                self.admin.iter().chain([client]).collect(),
            ))
        };
        match guard {
            Guard::Admin => admin(),
            Guard::Client => client(),
            Guard::Cancel => client().or_else(admin),
        }
    }
}

/// The token of an `Authorization: Bearer <token>` value. The scheme is matched without regard
/// to case and may be followed by several spaces (RFC 9110, 11.1): `bearer x` is `Bearer x`.
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_start_matches(' '))
}

/// Refuses requests to `guard`'s routes that do not present a token they accept (401).
pub async fn require(
    State((tokens, guard)): State<(Tokens, Guard)>,
    request: Request,
    next: Next,
) -> Result<Response, AppError> {
    if let Some((required, accepted)) = tokens.required(guard) {
        let presented = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(bearer);
        if !presented.is_some_and(|presented| accepted.iter().any(|token| token.matches(presented)))
        {
            return Err(AppError::Unauthorized(required));
        }
    }
    Ok(next.run(request).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_is_matched_whatever_its_case() {
        for value in ["Bearer t0k", "bearer t0k", "BEARER t0k", "Bearer   t0k"] {
            assert_eq!(bearer(value), Some("t0k"), "{value:?}");
        }
        for value in ["Basic t0k", "Bearert0k", "t0k", ""] {
            assert_eq!(bearer(value), None, "{value:?}");
        }
    }
}
