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

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;

use super::AppState;
use crate::config::BearerToken;
use crate::error::{AppError, Required};

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

/// Refuses requests to `guard`'s routes that do not present a token they accept (401).
pub async fn require(
    State((state, guard)): State<(AppState, Guard)>,
    request: Request,
    next: Next,
) -> Result<Response, AppError> {
    if let Some((required, accepted)) = state.tokens.required(guard) {
        let presented = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "));
        if !presented.is_some_and(|presented| accepted.iter().any(|token| token.matches(presented)))
        {
            return Err(AppError::Unauthorized(required));
        }
    }
    Ok(next.run(request).await)
}
