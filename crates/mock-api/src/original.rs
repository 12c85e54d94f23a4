//! The original shape: `GET /?task-name=NAME` answers `{"status":"processing","data":{...}}`
//! until the name's `polls_until_done`-th successful call, which answers
//! `{"status":"done","data":{...}}`, as does every call after it. The data is a pure function of
//! the name and the call number. Failing calls do not advance the name's progress, and every
//! successful call can be made to answer a broken body instead (`body`).

use std::sync::{Arc, PoisonError};

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{BodyKind, Mock};

/// The query string of a call: the task's name (other parameters, such as a payload's, are
/// ignored).
#[derive(Deserialize)]
pub struct Call {
    #[serde(rename = "task-name")]
    name: String,
}

/// `GET /?task-name=NAME`.
pub async fn call(
    State(mock): State<Arc<Mock>>,
    query: Result<Query<Call>, QueryRejection>,
) -> Response {
    mock.counters.call();
    let name = match query {
        Ok(Query(call)) => call.name,
        Err(err) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": err.to_string()})),
            )
                .into_response();
        }
    };
    let failure = mock.injected_failure();
    let call_number = failure.is_none().then(|| {
        let mut progress = mock.progress.lock().unwrap_or_else(PoisonError::into_inner);
        let seen = progress.entry(name.clone()).or_insert(0);
        *seen = seen.saturating_add(1);
        *seen
    });
    mock.delay().await;
    let (Some(call_number), None) = (call_number, failure.as_ref()) else {
        return failure.unwrap_or_else(|| StatusCode::INTERNAL_SERVER_ERROR.into_response());
    };
    match mock.config.body {
        BodyKind::Normal => {}
        BodyKind::NotJson => return "<html>not json</html>".into_response(),
        BodyKind::UnknownStatus => {
            return Json(json!({"status": "pending", "data": 1})).into_response();
        }
        BodyKind::Empty => return StatusCode::OK.into_response(),
        BodyKind::Huge => {
            let mut body = vec![b'x'; mock.config.huge_body_bytes.max(2)];
            let last = body.len() - 1;
            (body[0], body[last]) = (b'"', b'"');
            return ([(header::CONTENT_TYPE, "application/json")], body).into_response();
        }
    }
    let target = mock.config.polls_until_done.max(1);
    let body = if call_number >= target {
        if call_number == target {
            mock.counters.finished();
        }
        json!({"status": "done", "data": result(name.as_str(), target)})
    } else {
        json!({"status": "processing", "data": partial(name.as_str(), call_number, target)})
    };
    Json(body).into_response()
}

/// The partial data of a name after `call` of `of` calls.
pub fn partial(name: &str, call: u32, of: u32) -> Value {
    json!({"task": name, "progress": call, "of": of})
}

/// The full result of a name.
pub fn result(name: &str, of: u32) -> Value {
    json!({
        "task": name,
        "progress": of,
        "of": of,
        "result": {"length": name.len(), "checksum": format!("{:016x}", crate::fnv1a(name.as_bytes()))},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_are_a_pure_function_of_the_name() {
        assert_eq!(result("a", 2), result("a", 2));
        assert_ne!(result("a", 2)["result"], result("b", 2)["result"]);
        assert_eq!(partial("a", 1, 3)["progress"], 1);
    }
}
