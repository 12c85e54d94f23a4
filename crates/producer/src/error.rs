//! Every failure of a request, as an HTTP status and a JSON `{"error": "..."}` body.
//!
//! Client mistakes say what was wrong. Server-side failures say only what a client can act on
//! (Redis is unavailable: try again) and log the cause once; internals never reach the body.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// A request that could not be served.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The request itself is wrong (400).
    #[error("{0}")]
    BadRequest(String),
    /// Nothing is known under that name (404).
    #[error("{0}")]
    NotFound(String),
    /// The queue failed underneath (503 when Redis is unreachable, 500 otherwise).
    #[error(transparent)]
    Queue(#[from] taskq::Error),
}

impl From<taskq::NameError> for AppError {
    fn from(err: taskq::NameError) -> Self {
        Self::BadRequest(err.to_string())
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            Self::BadRequest(message) => (StatusCode::BAD_REQUEST, message),
            Self::NotFound(message) => (StatusCode::NOT_FOUND, message),
            Self::Queue(taskq::Error::InvalidName(err)) => {
                (StatusCode::BAD_REQUEST, err.to_string())
            }
            Self::Queue(err @ taskq::Error::Redis(_)) => {
                tracing::warn!(error = %err, "redis unavailable");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the queue is unavailable (redis did not answer); try again".to_owned(),
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
        (status, Json(json!({ "error": message }))).into_response()
    }
}
