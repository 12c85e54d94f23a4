//! The mock's settings: what it imitates, how slowly and how badly it answers, the limits and
//! credentials it enforces. One `clap::Args` struct, so `main` reads it from flags and the
//! environment while tests and `testkit` build it directly (`Config { shape, ..Default::default() }`);
//! the defaults of both must agree, hence the `Default` beside the attributes.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::credentials;

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

/// Which API the mock imitates (see [`crate::shapes`] for every endpoint).
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
