//! The file host every shape serves: `GET /files/{name}` answers the bytes of
//! [`content::file`](crate::content::file) (`?bytes=N`, [`DEFAULT_BYTES`] when not given, at most
//! [`MAX_BYTES`]), with a content type by the name's extension. It stands for a provider's CDN or
//! a bucket, where a consumer downloads a file to upload, or a result a job names by URL: it
//! asks no credential, waits no delay, fails no call and is not limited. `downloads` in
//! `/stats` counts what it served.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::Mock;

/// A file's length when the call does not say.
pub const DEFAULT_BYTES: usize = 4096;
/// The longest file served (64 MiB).
pub const MAX_BYTES: usize = 64 << 20;

/// The query of `GET /files/{name}`.
#[derive(Debug, Deserialize)]
pub struct Length {
    /// How many bytes to serve.
    bytes: Option<usize>,
}

/// `GET /files/{name}[?bytes=N]`.
pub async fn serve(
    State(mock): State<Arc<Mock>>,
    Path(name): Path<String>,
    length: Result<Query<Length>, QueryRejection>,
) -> Response {
    let n = match length {
        Ok(Query(Length { bytes })) => bytes.unwrap_or(DEFAULT_BYTES),
        Err(err) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": err.body_text()})),
            )
                .into_response();
        }
    };
    if n > MAX_BYTES {
        let error = format!("bytes: at most {MAX_BYTES}");
        return (StatusCode::BAD_REQUEST, Json(json!({ "error": error }))).into_response();
    }
    mock.counters.downloads.fetch_add(1, Ordering::Relaxed);
    let content_type = crate::content::content_type(&name);
    let bytes = crate::content::file(&name, n);
    ([(header::CONTENT_TYPE, content_type)], bytes).into_response()
}
