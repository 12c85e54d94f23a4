//! Who may call what: the bearer tokens the producer requires, and which of them each group of
//! routes accepts.
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
//!
//! The tokens are part of the state every handler may use ([`crate::state`]); the middleware
//! that checks a request against them is a route's concern ([`crate::routes::auth`]).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use crate::error::Required;

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

/// An empty bearer token: it would match a request with an empty `Bearer`. An empty variable is
/// read as unset before it gets here ([`service_kit::command_line`]); an empty flag is this error.
#[derive(Debug, thiserror::Error)]
#[error("the token is empty: leave it unset instead")]
pub struct EmptyToken;

impl FromStr for BearerToken {
    type Err = EmptyToken;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            Err(EmptyToken)
        } else {
            Ok(Self(s.into()))
        }
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
    pub(crate) fn required(&self, guard: Guard) -> Option<(Required, Vec<&BearerToken>)> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_matches_only_itself_and_never_shows() {
        let token: BearerToken = "s3cret".parse().unwrap();
        assert!(token.matches("s3cret"));
        for other in ["", "s3cre", "s3cret!", "S3cret"] {
            assert!(!token.matches(other), "{other}");
        }
        assert_eq!(format!("{token:?}"), "BearerToken(***)");
        assert!("".parse::<BearerToken>().is_err());
    }
}
