//! mock-api: the slow third-party API, simulated, so the whole system runs without the outside
//! world.
//!
//! `GET /?task-name=NAME` waits `delay` (a timer, so thousands of calls wait at once on a few
//! threads), then answers `{"status":"processing","data":{...}}` until the name's
//! `polls_until_done`-th successful call, which answers `{"status":"done","data":{...}}`; so does
//! every call after it. The data is a pure function of the name and the call number. A share of
//! calls (`failure_rate`, drawn from a seeded generator) answer HTTP 500 instead and do not
//! advance the name's progress. `GET /stats` counts calls; `POST /reset` forgets everything.
//!
//! For fault-injection tests the failing calls can use another status (`failure_status`: 429,
//! 503, 404, ...) with a `Retry-After` header, and every successful call can be made to answer a
//! broken body instead (`body`: not JSON, an unknown status, empty, or a huge one).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use taskq::TaskName;

/// The mock's settings.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "MOCK_API_ADDR", default_value = "127.0.0.1:9001")]
    pub addr: SocketAddr,
    /// How long every call waits before it answers (ms).
    #[arg(long, env = "MOCK_DELAY_MS", default_value_t = 3000)]
    pub delay_ms: u64,
    /// Which successful call for a name first answers "done" (1 = the first call; 3 = two
    /// "processing" answers, then "done").
    #[arg(long, env = "MOCK_POLLS_UNTIL_DONE", default_value_t = 2)]
    pub polls_until_done: u32,
    /// Share of calls answered with HTTP 500, from 0 to 1.
    #[arg(long, env = "MOCK_FAILURE_RATE", default_value_t = 0.0)]
    pub failure_rate: f64,
    /// Seed of the generator that picks the failing calls (same seed, same sequence).
    #[arg(long, env = "MOCK_SEED", default_value_t = 42)]
    pub seed: u64,
    /// The HTTP status of a failing call (500, 503, 429, 404, ...).
    #[arg(long, env = "MOCK_FAILURE_STATUS", default_value_t = 500, value_parser = clap::value_parser!(u16).range(100..=599))]
    pub failure_status: u16,
    /// A Retry-After header (seconds) on failing calls; none when unset.
    #[arg(long, env = "MOCK_RETRY_AFTER_SECS")]
    pub retry_after_secs: Option<u64>,
    /// What successful calls answer: the normal JSON, or a broken body.
    #[arg(long, env = "MOCK_BODY", value_enum, default_value = "normal")]
    pub body: BodyKind,
    /// The size of a `huge` body (bytes).
    #[arg(long, env = "MOCK_HUGE_BODY_BYTES", default_value_t = 16 << 20)]
    pub huge_body_bytes: usize,
}

/// What a successful call answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BodyKind {
    /// `{"status": "processing" | "done", "data": ...}`.
    Normal,
    /// Text that is not JSON.
    NotJson,
    /// JSON with a status nobody knows.
    UnknownStatus,
    /// Nothing at all.
    Empty,
    /// A JSON string of `huge_body_bytes` bytes.
    Huge,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 9001)),
            delay_ms: 3000,
            polls_until_done: 2,
            failure_rate: 0.0,
            seed: 42,
            failure_status: 500,
            retry_after_secs: None,
            body: BodyKind::Normal,
            huge_body_bytes: 16 << 20,
        }
    }
}

/// The mock's counters and per-name progress.
struct Mock {
    config: Config,
    /// Successful calls per name so far.
    progress: Mutex<HashMap<String, u32>>,
    rng: Mutex<fastrand::Rng>,
    calls: AtomicU64,
    done: AtomicU64,
    failures: AtomicU64,
}

/// The mock's routes.
pub fn app(config: Config) -> Router {
    let mock = Arc::new(Mock {
        rng: Mutex::new(fastrand::Rng::with_seed(config.seed)),
        config,
        progress: Mutex::default(),
        calls: AtomicU64::new(0),
        done: AtomicU64::new(0),
        failures: AtomicU64::new(0),
    });
    Router::new()
        .route("/", get(call))
        .route("/stats", get(stats))
        .route("/reset", post(reset))
        .with_state(mock)
}

/// Serves the mock on `listener` until `shutdown` resolves.
///
/// # Errors
/// When the server fails.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app(config))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn call(State(mock): State<Arc<Mock>>, RawQuery(query): RawQuery) -> Response {
    mock.calls.fetch_add(1, Ordering::Relaxed);
    let name = match TaskName::from_query(query.as_deref()) {
        Ok(name) => name,
        Err(err) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": err.to_string()})),
            )
                .into_response();
        }
    };
    let fails = {
        let rate = mock.config.failure_rate;
        rate > 0.0
            && mock
                .rng
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .f64()
                < rate
    };
    let call_number = if fails {
        None
    } else {
        let mut progress = mock.progress.lock().unwrap_or_else(PoisonError::into_inner);
        let seen = progress.entry(name.to_string()).or_insert(0);
        *seen = seen.saturating_add(1);
        Some(*seen)
    };
    tokio::time::sleep(Duration::from_millis(mock.config.delay_ms)).await;
    let Some(call_number) = call_number else {
        return failure(&mock);
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
            mock.done.fetch_add(1, Ordering::Relaxed);
        }
        json!({"status": "done", "data": result(name.as_str(), target)})
    } else {
        json!({"status": "processing", "data": partial(name.as_str(), call_number, target)})
    };
    Json(body).into_response()
}

/// A simulated failure, with the configured status and Retry-After.
fn failure(mock: &Mock) -> Response {
    mock.failures.fetch_add(1, Ordering::Relaxed);
    let status = StatusCode::from_u16(mock.config.failure_status)
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, Json(json!({"error": "simulated failure"}))).into_response();
    if let Some(secs) = mock.config.retry_after_secs {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
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
        "result": {"length": name.len(), "checksum": format!("{:016x}", fnv1a(name.as_bytes()))},
    })
}

/// FNV-1a: a stable, dependency-free fingerprint so results are deterministic per name.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

async fn stats(State(mock): State<Arc<Mock>>) -> Json<Value> {
    let tasks = mock
        .progress
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .len();
    Json(json!({
        "calls": mock.calls.load(Ordering::Relaxed),
        "tasks": tasks,
        "done": mock.done.load(Ordering::Relaxed),
        "failures": mock.failures.load(Ordering::Relaxed),
    }))
}

async fn reset(State(mock): State<Arc<Mock>>) -> StatusCode {
    mock.progress
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clear();
    for counter in [&mock.calls, &mock.done, &mock.failures] {
        counter.store(0, Ordering::Relaxed);
    }
    StatusCode::NO_CONTENT
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
