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
//! - [`shapes`]: one module per provider around the building blocks every shape shares;
//!   [`original`]: the first shape.
//! - [`jobs`]: the jobs of the real-API shapes and when they are due; [`webhooks`]: their
//!   deliveries.
//! - [`multipart`]: the form-data reader of the upload shapes; [`files`] and [`content`]: the
//!   file host and the bytes the mock makes up.
//! - [`limits`]: the provider's rate and concurrency limits; [`credentials`]: the token
//!   endpoint and what the API routes require instead of the API key; `tls`: HTTPS.

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
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

pub use original::{partial, result};

/// The mock's settings.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "MOCK_API_ADDR", default_value = "127.0.0.1:9001")]
    pub addr: SocketAddr,
    /// Which API to imitate: the original GET ?task-name=, or a real API's shape.
    #[arg(long, env = "MOCK_SHAPE", value_enum, default_value = "original")]
    pub shape: Shape,
    /// The credential the real-API shapes require in their header (401 without it).
    #[arg(
        long,
        env = "MOCK_API_KEY",
        default_value = "mock-key",
        hide_env_values = true,
        hide_default_value = true
    )]
    pub api_key: Secret,
    /// How long every call waits before it answers (ms).
    #[arg(long, env = "MOCK_DELAY_MS", default_value_t = 3000)]
    pub delay_ms: u64,
    /// Which successful call for a name (a job's poll, for the real-API shapes) first answers
    /// "done" (1 = the first; 3 = two "processing" answers, then "done").
    #[arg(long, env = "MOCK_POLLS_UNTIL_DONE", default_value_t = 2)]
    pub polls_until_done: u32,
    /// Share of calls answered with the failure status, from 0 to 1.
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
    /// Give that Retry-After as an HTTP date (now + the seconds) instead of seconds.
    #[arg(long, env = "MOCK_RETRY_AFTER_DATE", default_value_t = false)]
    pub retry_after_date: bool,
    /// What successful calls of the original shape answer: the normal JSON, or a broken body.
    #[arg(long, env = "MOCK_BODY", value_enum, default_value = "normal")]
    pub body: BodyKind,
    /// The size of a `huge` body (bytes).
    #[arg(long, env = "MOCK_HUGE_BODY_BYTES", default_value_t = 16 << 20)]
    pub huge_body_bytes: usize,
    /// The first N submits that make a job have their answer cut off mid-way (the job exists,
    /// the caller never learns its id).
    #[arg(long, env = "MOCK_DROP_SUBMIT_ANSWERS", default_value_t = 0)]
    pub drop_submit_answers: u32,
    /// Calls admitted in any one-second window (sliding); the others answer 429 with a
    /// Retry-After. 0: no limit.
    #[arg(long, env = "MOCK_RATE_LIMIT_PER_SEC", default_value_t = 0)]
    pub rate_limit_per_sec: u32,
    /// Calls answered at once, each from its admission to its answer (the delay included); the
    /// others answer 429 with `Retry-After: 1`. 0: no limit.
    #[arg(long, env = "MOCK_MAX_IN_FLIGHT", default_value_t = 0)]
    pub max_in_flight: u32,
    /// The largest multipart/form-data submit accepted (bytes, the whole body); a larger one
    /// answers 413 in the shape's error body.
    #[arg(long, env = "MOCK_MAX_UPLOAD_BYTES", default_value_t = 8 << 20)]
    pub max_upload_bytes: usize,
    /// Textract: the blocks of every document (PAGE, LINE and WORD blocks, 50 to a document
    /// page), answered in pages of `MaxResults`.
    #[arg(long, env = "MOCK_TEXTRACT_BLOCKS", default_value_t = 250)]
    pub textract_blocks: usize,
    /// Textract: every page of blocks carries a `NextToken`, past the last block too (pages of
    /// no blocks then), as a provider bug would: a page loop must be cut off by its caller.
    #[arg(
        long,
        env = "MOCK_TEXTRACT_ENDLESS_PAGES",
        default_value_t = false,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub textract_endless_pages: bool,
    /// Real-API shapes: when a job whose submit named a webhook (a top-level string "webhook"
    /// in the body, or the shape's own field: fal's `fal_webhook`, Rev.ai's
    /// `notification_config`) finishes, POST its finished answer to that URL (http:// only; a
    /// few retries on 5xx or no answer). Deepgram's `callback` is called whatever this says.
    /// 1/0, true/false, yes/no, on/off.
    #[arg(
        long,
        env = "MOCK_WEBHOOKS",
        default_value_t = false,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub webhooks: bool,
    /// Real-API shapes: a job finishes this long after its submit (ms), by the clock, whatever
    /// its polls. 0: at its MOCK_POLLS_UNTIL_DONE-th poll.
    #[arg(long, env = "MOCK_JOB_MS", default_value_t = 0)]
    pub job_ms: u64,
    /// A PEM certificate (chain) to serve HTTPS with; needs MOCK_TLS_KEY.
    #[arg(long, env = "MOCK_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of MOCK_TLS_CERT.
    #[arg(long, env = "MOCK_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// OAuth2 tokens or AWS signatures the API routes require instead of the API key.
    #[command(flatten)]
    pub credentials: credentials::Settings,
}

/// A credential the mock requires (an API key, a client secret, an AWS secret key...): never
/// printed (`Debug` shows `***`).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl From<String> for Secret {
    fn from(key: String) -> Self {
        Self(key)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// Which API the mock imitates (see [`shapes`] for every endpoint).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shape {
    /// `GET /?task-name=NAME`, answered `{"status", "data"}`.
    Original,
    /// Replicate's predictions: POST, id in the body, `status` strings.
    Replicate,
    /// A Google long-running operation: `{"done": bool}`, an error object, a slash in the id.
    Google,
    /// Azure's pattern: 202 + `Operation-Location` + `Retry-After`.
    Azure,
    /// Stability's results: HTTP 202 until HTTP 200.
    Stability,
    /// fal.ai's queue (`Authorization: Key`): the submit answers absolute `status_url` and
    /// `response_url`; the status is HTTP 202 `IN_QUEUE`/`IN_PROGRESS`, then 200 `COMPLETED`; the
    /// model's output (or its error, as a non-2xx) is a separate fetch; `fal_webhook` gets
    /// `{"request_id", "status": "OK", "payload"}`.
    Fal,
    /// OpenAI's Batch API (`Authorization: Bearer`): `validating` → `in_progress` →
    /// `finalizing` → `completed` with an `output_file_id` whose content is JSON Lines; errors
    /// as `{"error": {"message", "type", "param", "code"}}`.
    OpenaiBatch,
    /// Rev.ai's asynchronous jobs (`Authorization: Bearer`): `in_progress` → `transcribed`;
    /// the transcript is a separate fetch, text or JSON by `Accept`; errors as RFC 7807 problem
    /// details.
    Revai,
    /// Stability's creative upscale (`Authorization: Bearer`): a multipart submit with the image
    /// as a file; the result (HTTP 202, then 200) is the image's bytes, or JSON with them in
    /// base64, by `Accept`.
    StabilityUpscale,
    /// ElevenLabs' dubbing (`xi-api-key`): a multipart submit with a file or a `source_url`;
    /// `dubbing` → `dubbed`; the dubbed audio (binary) is a separate fetch per language.
    ElevenlabsDubbing,
    /// AWS Textract's text detection (AWS JSON 1.1: `POST /` with `X-Amz-Target`): the result's
    /// blocks come in pages, `NextToken` after `NextToken`; errors as `{"__type", "message"}`.
    Textract,
    /// Deepgram's pre-recorded audio with a `callback` (`Authorization: Token`): no status to
    /// poll; the full result is POSTed to the callback.
    Deepgram,
}

impl Shape {
    /// Whether the shape gives its results by webhook only (its callback is called whether
    /// `webhooks` is on or not).
    pub fn pushes_results(self) -> bool {
        matches!(self, Self::Deepgram)
    }
}

/// What a successful call of the original shape answers.
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
            shape: Shape::Original,
            api_key: Secret("mock-key".into()),
            delay_ms: 3000,
            polls_until_done: 2,
            failure_rate: 0.0,
            seed: 42,
            failure_status: 500,
            retry_after_secs: None,
            retry_after_date: false,
            body: BodyKind::Normal,
            huge_body_bytes: 16 << 20,
            drop_submit_answers: 0,
            rate_limit_per_sec: 0,
            max_in_flight: 0,
            max_upload_bytes: 8 << 20,
            textract_blocks: 250,
            textract_endless_pages: false,
            webhooks: false,
            job_ms: 0,
            tls_cert: None,
            tls_key: None,
            credentials: credentials::Settings::default(),
        }
    }
}

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
