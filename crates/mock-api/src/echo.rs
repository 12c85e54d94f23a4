//! `POST /echo`, which every shape serves: it answers what it was sent, read by its content type
//! (`application/x-www-form-urlencoded` fields, a JSON body, or the length of anything else),
//! so a test can see exactly how a consumer encoded a call's body. It asks no credential, waits
//! no delay, fails no call and is not limited, like the file host.

use axum::Json;
use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::http::header::CONTENT_TYPE;
use serde_json::{Map, Value, json};

/// `POST /echo`: `{"content_type", "form"}` for a form (fields in order, a repeated one's last
/// value), `{"content_type", "json"}` for JSON, `{"content_type", "bytes"}` for anything else.
pub async fn echo(headers: HeaderMap, body: Bytes) -> Json<Value> {
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    Json(match essence {
        "application/x-www-form-urlencoded" => {
            let form: Map<String, Value> = form_urlencoded::parse(&body)
                .map(|(name, value)| (name.into_owned(), Value::String(value.into_owned())))
                .collect();
            json!({"content_type": content_type, "form": form})
        }
        "application/json" => match serde_json::from_slice::<Value>(&body) {
            Ok(parsed) => json!({"content_type": content_type, "json": parsed}),
            Err(err) => json!({"content_type": content_type, "error": err.to_string()}),
        },
        _ => json!({"content_type": content_type, "bytes": body.len()}),
    })
}
