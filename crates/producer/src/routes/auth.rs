//! The middleware that refuses a request without a token its routes accept (401), and the 401
//! as the OpenAPI document shows it. Which routes need which token: [`crate::tokens`].

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;

use crate::error::{AppError, ErrorBody};
use crate::tokens::{Guard, Tokens};

/// The 401 of every route a token guards, as the OpenAPI document shows it (one response,
/// referenced by each route): which tokens a route accepts is its `security`, and when each is
/// required, its tag's description and [`crate::tokens`]. The middleware answers it as
/// [`AppError::Unauthorized`].
#[derive(utoipa::ToResponse)]
#[response(
    description = "A token this route accepts is set (see its security and its tag) and the request presents none of them"
)]
pub struct Unauthorized(
    /// The body: which token the route requires.
    pub ErrorBody,
);

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
