//! mock-api: the slow third-party API, simulated, so the whole system runs without the outside
//! world.
//!
//! It speaks one shape at a time (`shape`): the original `GET /?task-name=NAME` (see
//! [`original`]), or one of eleven real asynchronous APIs, each with its provider's own paths,
//! field names, status words, result formats and error bodies, behind its own credential header
//! (see [`shapes`]): submit then poll (Replicate, Google, Azure, Stability, fal, OpenAI Batch,
//! Rev.ai, Stability's upscale, ElevenLabs' dubbing, Textract), a result fetched apart (JSON
//! Lines, text, binary, pages), or pushed only (Deepgram). Every call waits `delay` (a timer, so
//! thousands of calls wait at once on a few threads). A share of calls (`failure_rate`, drawn
//! from a seeded generator) answer `failure_status` instead, in the shape's error body, with a
//! `Retry-After` in seconds or as an HTTP date, and do not advance anything. `GET /stats` counts
//! calls and jobs; `POST /reset` forgets everything. With a certificate and key it serves HTTPS.
//!
//! Like a real provider it can enforce limits (see [`limits`]): at most `rate_limit_per_sec`
//! calls admitted in any one-second window and `max_in_flight` answered at once, the others
//! refused with 429 and a `Retry-After` before anything else happens. `calls` counts the calls
//! admitted (served, a 401 or an injected failure included), `throttled` the calls refused, and
//! `max_in_flight_seen` the most answered at once, limited or not. A multipart upload longer
//! than `max_upload_bytes` is refused with 413 (see [`multipart`]).
//!
//! Like the providers whose credentials expire or sign, it can issue OAuth2 tokens and require
//! them instead of the API key, or require every call signed with AWS Signature Version 4 (see
//! [`credentials`]): `POST /oauth/token` answers the `client_credentials`, `refresh_token` and
//! JWT bearer grants with tokens that live `token_ttl_secs`; `POST /oauth/revoke` and
//! `POST /oauth/restore` take the credential away and give it back; a gate after the limits
//! refuses a call without a valid token (401) or signature (403) before anything advances.
//! `/stats` counts `token_requests`, `tokens_issued`, `token_refused`, `sigv4_verified` and
//! `sigv4_refused`.
//!
//! For fault-injection tests, successful calls of the original shape can answer a broken body
//! (`body`: not JSON, an unknown status, empty, or a huge one), and the first submits of a
//! real-API shape can have their answer cut off after the job was made (`drop_submit_answers`).
//! A job of a real-API shape fails, with the message its provider reports, when its submit asks
//! (a `"fail"` member, or a string starting with `fail:`, anywhere in its body or form).
//!
//! Like Replicate or fal, the real-API shapes can call a webhook when a job finishes
//! (`webhooks`; see [`webhooks`]): a submit that names one (a top-level string `"webhook"` in its
//! body, or its provider's own field) gets it POSTed what its provider posts (most often the
//! job's finished poll answer), in the background, with a few retries; Deepgram's callback is
//! called whatever `webhooks` says, being its only way to a result. `webhooks_sent` and
//! `webhooks_failed` count the deliveries, and `GET /webhooks` says when each delivery answered
//! 2xx was sent (ms since the Unix epoch), by job id. A job finishes at its
//! `polls_until_done`-th poll (the webhook is called as that poll sees it done), or, with
//! `job_ms`, that long after its submit whatever its polls, as a real job runs on its own (see
//! [`jobs`]); a result fetched apart counts no poll.
//!
//! Every shape also serves files (`GET /files/{name}?bytes=N`, see [`files`]): deterministic
//! bytes ([`content`]) a consumer downloads to upload, or fetches as a result named by URL;
//! `downloads` in `/stats` counts them. `POST /echo` answers what it was sent, read by its
//! content type (see [`echo`]), so a test sees how a consumer encoded a body.
//!
//! # Layout
//! - `config`: the settings ([`Config`]) and what they choose from ([`Shape`], [`BodyKind`]).
//! - [`shapes`]: one module per provider around the building blocks every shape shares;
//!   [`original`]: the first shape.
//! - [`jobs`]: the jobs of the real-API shapes and when they are due; [`webhooks`]: their
//!   deliveries.
//! - [`multipart`]: the form-data reader of the upload shapes; [`files`] and [`content`]: the
//!   file host and the bytes the mock makes up.
//! - [`limits`]: the provider's rate and concurrency limits; [`credentials`]: the token
//!   endpoint and what the API routes require instead of the API key; `tls`: HTTPS.

mod config;
pub mod content;
pub mod credentials;
pub mod echo;
pub mod files;
pub mod jobs;
pub mod limits;
pub mod multipart;
pub mod original;
pub mod shapes;
mod tls;
pub mod webhooks;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

pub use config::{BodyKind, Config, Secret, Shape};
pub use original::{partial, result};

/// What `/stats` counts.
#[derive(Debug, Default)]
struct Counters {
    calls: AtomicU64,
    done: AtomicU64,
    failures: AtomicU64,
    unauthorized: AtomicU64,
    dropped: AtomicU64,
    /// Files served by `GET /files/{name}`.
    downloads: AtomicU64,
}

impl Counters {
    fn call(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
    }

    fn finished(&self) {
        self.done.fetch_add(1, Ordering::Relaxed);
    }

    fn unauthorized(&self) {
        self.unauthorized.fetch_add(1, Ordering::Relaxed);
    }
}

/// The mock's state.
pub struct Mock {
    config: Config,
    /// Successful calls per name so far (original shape).
    progress: Mutex<HashMap<String, u32>>,
    /// Jobs (real-API shapes).
    jobs: jobs::Jobs,
    rng: Mutex<fastrand::Rng>,
    counters: Counters,
    /// Submit answers dropped so far.
    drops: AtomicU32,
    /// The provider's limits: the layer in front of the call routes checks them, `/stats` and
    /// `/reset` read and clear their counts.
    limits: Arc<limits::Limits>,
    /// The webhook client and its counts; shared with the deliveries under way.
    webhooks: Arc<webhooks::Webhooks>,
    /// The token endpoint, its tokens, and what the API routes require.
    credentials: credentials::Credentials,
}

impl Mock {
    /// Waits the configured delay.
    async fn delay(&self) {
        tokio::time::sleep(Duration::from_millis(self.config.delay_ms)).await;
    }

    /// When a job is due. A shape that is never polled finishes its jobs by the clock: `job_ms`
    /// after the submit, or as soon as the submit is answered (`delay_ms`, at least 1 ms).
    fn pace(&self) -> jobs::Pace {
        match self.config.job_ms {
            0 if self.config.shape.pushes_results() => {
                jobs::Pace::Clock(Duration::from_millis(self.config.delay_ms.max(1)))
            }
            0 => jobs::Pace::Polls(self.config.polls_until_done),
            ms => jobs::Pace::Clock(Duration::from_millis(ms)),
        }
    }

    /// The scheme clients reach the mock by.
    fn scheme(&self) -> &'static str {
        if self.config.tls_cert.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// A failing call's answer, for the share of calls that fail: `{"error": "simulated
    /// failure"}`.
    fn injected_failure(&self) -> Option<Response> {
        self.injected_failure_as(|status| {
            (status, Json(json!({"error": "simulated failure"}))).into_response()
        })
    }

    /// A failing call's answer, for the share of calls that fail, its body made by `answer`
    /// from the failure status (a shape answers in its provider's error body); the
    /// `Retry-After` is added here.
    fn injected_failure_as(&self, answer: impl FnOnce(StatusCode) -> Response) -> Option<Response> {
        let rate = self.config.failure_rate;
        let fails = rate > 0.0
            && self
                .rng
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .f64()
                < rate;
        if !fails {
            return None;
        }
        self.counters.failures.fetch_add(1, Ordering::Relaxed);
        let status = StatusCode::from_u16(self.config.failure_status)
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = answer(status);
        if let Some(secs) = self.config.retry_after_secs {
            let value = if self.config.retry_after_date {
                let at = SystemTime::now() + Duration::from_secs(secs);
                HeaderValue::from_str(&httpdate::fmt_http_date(at)).ok()
            } else {
                Some(HeaderValue::from(secs))
            };
            if let Some(value) = value {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        Some(response)
    }

    /// Whether this submit's answer is one of the first `drop_submit_answers`, to be cut off.
    fn drop_this_answer(&self) -> bool {
        let limit = self.config.drop_submit_answers;
        let dropped = self
            .drops
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < limit).then_some(n + 1)
            })
            .is_ok();
        if dropped {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
        dropped
    }
}

/// An answer whose body breaks off after the status line: the connection is cut, and the caller
/// learns nothing of what it asked for.
fn dropped_answer() -> Response {
    let broken = futures_util::stream::once(async {
        Err::<axum::body::Bytes, std::io::Error>(std::io::Error::other("answer dropped on purpose"))
    });
    axum::body::Body::from_stream(broken).into_response()
}

/// The mock's routes.
///
/// # Errors
/// When the public key file of the JWT bearer grant cannot be used.
pub fn app(config: Config) -> std::io::Result<Router> {
    let mock = Arc::new(Mock {
        credentials: credentials::Credentials::new(&config.credentials)?,
        rng: Mutex::new(fastrand::Rng::with_seed(config.seed)),
        progress: Mutex::default(),
        jobs: jobs::Jobs::default(),
        counters: Counters::default(),
        drops: AtomicU32::new(0),
        limits: Arc::new(limits::Limits::new(
            config.rate_limit_per_sec,
            config.max_in_flight,
        )),
        webhooks: Arc::new(webhooks::Webhooks::new(
            config.webhooks || config.shape.pushes_results(),
        )),
        config,
    });
    let calls = match mock.config.shape {
        Shape::Original => Router::new().route("/", get(original::call)),
        shape => shapes::routes(shape),
    };
    // The limits are checked first (the outer layer), then the credentials.
    let router = calls
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&mock),
            credentials::gate,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&mock.limits),
            limits::enforce,
        ))
        .route("/oauth/token", post(credentials::oauth::token))
        .route("/oauth/revoke", post(credentials::revoke))
        .route("/oauth/restore", post(credentials::restore))
        .route("/files/{name}", get(files::serve))
        .route("/echo", post(echo::echo))
        .route("/stats", get(stats))
        .route("/webhooks", get(webhooks_sent))
        .route("/reset", post(reset))
        .with_state(mock);
    Ok(router)
}

/// Serves the mock on `listener` until `shutdown` resolves: HTTPS when the config has a
/// certificate and key, else plain HTTP.
///
/// # Errors
/// When the certificate, its key or the JWT public key cannot be used, or the server fails.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let (Some(cert), Some(key)) = (config.tls_cert.clone(), config.tls_key.clone()) {
        let acceptor = tls::acceptor(&cert, &key)?;
        return tls::serve(listener, acceptor, app(config)?, shutdown).await;
    }
    axum::serve(listener, app(config)?)
        .with_graceful_shutdown(shutdown)
        .await
}

/// FNV-1a (64 bits): a stable, dependency-free fingerprint so results are deterministic per
/// name, and derived bytes can be checked against what was uploaded.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

async fn stats(State(mock): State<Arc<Mock>>) -> Json<Value> {
    let names = mock
        .progress
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .len();
    let (jobs, replays) = mock.jobs.counts();
    let count = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
    let c = &mock.counters;
    let limits = mock.limits.stats();
    let webhooks = mock.webhooks.stats();
    let mut stats = json!({
        "calls": count(&c.calls),
        "tasks": names as u64 + jobs,
        "jobs": jobs,
        "idempotent_replays": replays,
        "done": count(&c.done),
        "failures": count(&c.failures),
        "unauthorized": count(&c.unauthorized),
        "dropped_answers": count(&c.dropped),
        "downloads": count(&c.downloads),
        "throttled": limits.throttled,
        "max_in_flight_seen": limits.max_in_flight_seen,
        "in_flight": limits.in_flight,
        "webhooks_sent": webhooks.sent,
        "webhooks_failed": webhooks.failed,
    });
    for (name, count) in mock.credentials.stats() {
        stats[name] = json!(count);
    }
    Json(stats)
}

/// `{"sent_at_ms": {JOB_ID: ms, ...}}`: when each webhook answered 2xx since the last reset was
/// sent (its answered attempt's start, ms since the Unix epoch).
async fn webhooks_sent(State(mock): State<Arc<Mock>>) -> Json<Value> {
    Json(json!({"sent_at_ms": mock.webhooks.sent_at_ms()}))
}

async fn reset(State(mock): State<Arc<Mock>>) -> StatusCode {
    mock.progress
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clear();
    mock.jobs.reset();
    let c = &mock.counters;
    for counter in [
        &c.calls,
        &c.done,
        &c.failures,
        &c.unauthorized,
        &c.dropped,
        &c.downloads,
    ] {
        counter.store(0, Ordering::Relaxed);
    }
    mock.drops.store(0, Ordering::Relaxed);
    mock.limits.reset();
    mock.webhooks.reset();
    mock.credentials.reset();
    StatusCode::NO_CONTENT
}
