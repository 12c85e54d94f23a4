//! Every failure of a request, as an HTTP status and a JSON `{"error": "..."}` body.
//!
//! Client mistakes say what was wrong. Server-side failures say only what a client can act on
//! (Redis is unavailable: try again) and log the cause once; internals never reach the body.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// The body of every error answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for a person.
    pub error: String,
}

/// A request that could not be served.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The request itself is wrong (400).
    #[error("{0}")]
    BadRequest(String),
    /// Nothing is known under that name (404).
    #[error("{0}")]
    NotFound(String),
    /// The task is not in a state that allows this (409).
    #[error("{0}")]
    Conflict(String),
    /// A guarded route without a token it accepts (401).
    #[error("{0}")]
    Unauthorized(Required),
    /// A provider webhook whose `sig` is missing or wrong (401).
    #[error(
        "the hook URL's sig is missing or does not match: use the URL the task was submitted with"
    )]
    BadSignature,
    /// A request an extractor refused, with the status it chose (413 body too large, 415 not
    /// JSON, 422 JSON of the wrong shape, ...).
    #[error("{1}")]
    Rejected(StatusCode, String),
    /// Admission control refused an enqueue (503 with `Retry-After`, in seconds).
    #[error("{0}")]
    Full(taskq::Full, u64),
    /// The queue failed underneath (503 when Redis is unreachable, 500 otherwise).
    #[error(transparent)]
    Queue(#[from] taskq::Error),
}

impl From<taskq::NameError> for AppError {
    fn from(err: taskq::NameError) -> Self {
        Self::BadRequest(err.to_string())
    }
}

impl From<crate::schedule::ScheduleError> for AppError {
    fn from(err: crate::schedule::ScheduleError) -> Self {
        Self::BadRequest(err.to_string())
    }
}

impl From<crate::query::QueryError> for AppError {
    fn from(err: crate::query::QueryError) -> Self {
        Self::BadRequest(err.to_string())
    }
}

/// The token a refused request should have presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Required {
    /// An admin route.
    #[error("this route requires the admin token: Authorization: Bearer <ADMIN_TOKEN>")]
    Admin,
    /// A client route while a client token is set.
    #[error("this route requires the client token: Authorization: Bearer <CLIENT_TOKEN>")]
    Client,
}

/// Extractor rejections become JSON errors with the status the extractor chose.
macro_rules! from_rejections {
    ($($rejection:ty),*) => {$(
        impl From<$rejection> for AppError {
            fn from(rejection: $rejection) -> Self {
                Self::Rejected(rejection.status(), rejection.body_text())
            }
        }
    )*};
}

from_rejections!(JsonRejection, QueryRejection, PathRejection);

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        // The one header some errors add: how to authenticate, or when to come back.
        let mut extra = None;
        let (status, message) = match self {
            Self::BadRequest(message) => (StatusCode::BAD_REQUEST, message),
            Self::NotFound(message) => (StatusCode::NOT_FOUND, message),
            Self::Conflict(message) => (StatusCode::CONFLICT, message),
            Self::Unauthorized(required) => {
                extra = Some((header::WWW_AUTHENTICATE, "Bearer".to_owned()));
                (StatusCode::UNAUTHORIZED, required.to_string())
            }
            Self::BadSignature => (StatusCode::UNAUTHORIZED, self.to_string()),
            Self::Rejected(status, message) => (status, message),
            Self::Full(refused, retry_after) => {
                extra = Some((header::RETRY_AFTER, retry_after.to_string()));
                (StatusCode::SERVICE_UNAVAILABLE, refused.to_string())
            }
            Self::Queue(err @ (taskq::Error::InvalidName(_) | taskq::Error::InvalidCursor(_))) => {
                (StatusCode::BAD_REQUEST, err.to_string())
            }
            Self::Queue(err @ taskq::Error::PayloadTooLarge { .. }) => {
                (StatusCode::PAYLOAD_TOO_LARGE, err.to_string())
            }
            Self::Queue(err @ (taskq::Error::Redis(_) | taskq::Error::Interrupted)) => {
                tracing::warn!(error = %err, "redis unavailable");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the queue is unavailable (redis did not answer); try again".to_owned(),
                )
            }
            Self::Queue(taskq::Error::Full(full)) => {
                extra = Some((header::RETRY_AFTER, "1".to_owned()));
                (StatusCode::SERVICE_UNAVAILABLE, full.to_string())
            }
            Self::Queue(err @ taskq::Error::NotReplicated { .. }) => {
                tracing::warn!(error = %err, "change not acknowledged by enough replicas");
                extra = Some((header::RETRY_AFTER, "1".to_owned()));
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the change is not yet held by enough redis replicas; try again (repeating \
                     it is safe)"
                        .to_owned(),
                )
            }
            Self::Queue(err) => {
                tracing::error!(error = %err, "queue error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error".to_owned(),
                )
            }
        };
        let mut response = (status, Json(ErrorBody { error: message })).into_response();
        if let Some((name, value)) = extra
            && let Ok(value) = HeaderValue::from_str(&value)
        {
            response.headers_mut().insert(name, value);
        }
        response
    }
}
