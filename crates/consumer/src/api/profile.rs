//! An API profile, compiled: how one queue's third-party API is called and how its answers
//! read. [`super::spec`] reads it from `QUEUES_FILE` and checks it once, at start; a call then
//! only renders and sends: nothing is parsed or looked up per task but the task's own values.
//!
//! A task's calls are steps: a submit (when the API makes a job), polls until an answer says
//! done, and a fetch (when the result is a call of its own); any step's answer may come in
//! pages. A provider that only pushes has no poll: the task waits for its webhook, whose body is
//! read as an answer (`hook`).

use std::path::PathBuf;
use std::sync::Arc;

use reqwest::header::HeaderName;
use reqwest::{Method, Url};
use serde::Deserialize;
use serde_json::Value;

use super::auth::Auth;
use super::secret::Secret;
use super::template::{BodyTemplate, Placeholder, Template};

/// What a poll's answer says of the job.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Still running: poll again.
    Processing,
    /// Finished: store the result.
    Done,
    /// Failed at the provider: the task is dead at once.
    Failed,
}

/// A compiled profile.
#[derive(Debug)]
pub struct Profile {
    /// Every path is appended to it.
    pub base: Url,
    /// Other origins a whole-URL fetch may go to (a CDN, presigned URLs): no profile header is
    /// sent there, only the fetch's own.
    pub hosts: Vec<Url>,
    /// Extra certificate authorities for this API.
    pub ca_file: Option<PathBuf>,
    /// Sent on every call to the base URL's origin (a step's own headers win).
    pub headers: Vec<(HeaderName, Secret)>,
    /// The credential put on every call to the base URL's origin, after its headers.
    pub auth: Option<Arc<Auth>>,
    /// The first call of a task, when the API has one.
    pub submit: Option<Submit>,
    /// The calls that ask how the job is doing; none for a provider that only pushes.
    pub poll: Option<Poll>,
    /// How a poll's answer reads (with a poll).
    pub status: Option<StatusRule>,
    /// The call that gets the result once a poll said done, when it is not in that answer.
    pub fetch: Option<Fetch>,
    /// How a provider's webhook body reads, when the profile takes answers from webhooks.
    pub hook: Option<HookRule>,
    /// Where the result is in a done answer (`None`: the whole answer).
    pub result: Option<String>,
    /// Where the partial data is in a processing answer (`None`: the whole answer).
    pub partial: Option<String>,
    /// Where a failed job's message is, in an answer that says so.
    pub error: Option<String>,
    /// Where the provider's message is in an unsuccessful (non-2xx) answer, in order (by
    /// default [`DEFAULT_HTTP_ERROR`], then `error`).
    pub http_error: Vec<String>,
    /// The paths of the submit's answer that later calls name (`{{submit.FIELD}}`): only these
    /// are kept in the task's record.
    pub kept: Vec<Vec<String>>,
    /// Whether files a multipart part downloads may come from private addresses.
    pub allow_private_sources: bool,
    /// What the provider allows (no rate, no cap: no limit but a shared pause, if keyed).
    pub limit: taskq::Limit,
    /// The key the limit is shared under (`None`: the queue's name).
    pub limit_key: Option<String>,
}

impl Profile {
    /// Whether a header of the profile or of a step is read from a secret file.
    pub fn reads_secret_files(&self) -> bool {
        self.headers
            .iter()
            .chain(self.requests().flat_map(|request| &request.headers))
            .any(|(_, secret)| secret.reads_files())
    }

    /// The calls of its steps.
    fn requests(&self) -> impl Iterator<Item = &Request> {
        [
            self.submit.as_ref().map(|s| &s.request),
            self.poll.as_ref().map(|p| &p.request),
            self.fetch.as_ref().map(|f| &f.request),
        ]
        .into_iter()
        .flatten()
    }

    /// Whether a step sends a multipart body (streamed by the queue's uploader).
    pub fn uploads(&self) -> bool {
        self.requests()
            .any(|request| matches!(&request.body, Some(Body::Multipart(_))))
    }
}

/// Where an unsuccessful answer's message usually is, when the profile does not say.
pub const DEFAULT_HTTP_ERROR: [&str; 4] = ["/error/message", "/error", "/message", "/detail"];

/// One call of a step: method, where it goes, its own headers and body.
#[derive(Debug)]
pub struct Request {
    /// The HTTP method.
    pub method: Method,
    /// Where it goes.
    pub target: Target,
    /// Sent on this step's calls, over the profile's.
    pub headers: Vec<(HeaderName, Secret)>,
    /// The body, if any.
    pub body: Option<Body>,
}

impl Request {
    /// Every placeholder the call reads (target and body).
    pub fn placeholders(&self) -> Vec<&Placeholder> {
        let mut all: Vec<&Placeholder> = match &self.target {
            Target::Path(t) | Target::Url(t) => t.placeholders().collect(),
        };
        if let Some(body) = &self.body {
            all.extend(body.placeholders());
        }
        all
    }

    /// Whether the call reads `placeholder`.
    pub fn uses(&self, placeholder: &Placeholder) -> bool {
        self.placeholders().contains(&placeholder)
    }
}

/// Where a call goes.
#[derive(Debug)]
pub enum Target {
    /// A path under the base URL (a query may follow: its values are percent-encoded).
    Path(Template),
    /// A whole URL (an id or a field of an answer), which must be on the base URL's origin (or,
    /// for a fetch, on one of the profile's `hosts`).
    Url(Template),
}

/// A call's body, in one of three encodings.
#[derive(Debug)]
pub enum Body {
    /// JSON (`application/json`).
    Json(BodyTemplate),
    /// `application/x-www-form-urlencoded`: field, value.
    Form(Vec<(String, Template)>),
    /// `multipart/form-data`: field, part.
    Multipart(Vec<(String, PartTemplate)>),
}

impl Body {
    /// Every placeholder the body reads.
    pub fn placeholders(&self) -> Vec<&Placeholder> {
        match self {
            Self::Json(json) => json.placeholders(),
            Self::Form(fields) => fields.iter().flat_map(|(_, t)| t.placeholders()).collect(),
            Self::Multipart(parts) => parts.iter().flat_map(|(_, p)| p.placeholders()).collect(),
        }
    }
}

/// One part of a multipart body.
#[derive(Debug)]
pub enum PartTemplate {
    /// A text field.
    Text(Template),
    /// A file the consumer downloads from a URL and streams into the part.
    Download(FilePart),
    /// Bytes carried in the task (base64 text).
    Base64(FilePart),
}

impl PartTemplate {
    fn placeholders(&self) -> Vec<&Placeholder> {
        match self {
            Self::Text(text) => text.placeholders().collect(),
            Self::Download(file) | Self::Base64(file) => file.source.placeholders().collect(),
        }
    }
}

/// A file part: where its bytes come from, and how the part names them.
#[derive(Debug)]
pub struct FilePart {
    /// The URL, or the base64 text.
    pub source: Template,
    /// The part's file name.
    pub filename: Option<String>,
    /// The part's content type (default `application/octet-stream`).
    pub content_type: Option<String>,
}

/// The call that creates a job.
#[derive(Debug)]
pub struct Submit {
    /// The call.
    pub request: Request,
    /// Where the job's id is in the answer.
    pub id: IdSource,
}

impl Submit {
    /// Whether the submit gives the provider the task's hook URL (`{{webhook_url}}`).
    pub fn uses_webhook_url(&self) -> bool {
        self.request.uses(&Placeholder::WebhookUrl)
    }
}

/// Where a submit's answer names the job.
#[derive(Debug, PartialEq, Eq)]
pub enum IdSource {
    /// A JSON pointer into the body (a string or a number).
    Pointer(String),
    /// A response header (`Operation-Location`, whose value is a full URL).
    Header(HeaderName),
}

/// The call that asks how a job is doing.
#[derive(Debug)]
pub struct Poll {
    /// The call.
    pub request: Request,
    /// The done answer's further pages, when it comes in pages.
    pub pages: Option<Pages>,
}

/// The call that gets the result once a poll said done.
#[derive(Debug)]
pub struct Fetch {
    /// The call.
    pub request: Request,
    /// How its answer is read.
    pub read_as: ReadAs,
    /// Where the result is in a JSON answer (`None`: the whole answer).
    pub result: Option<String>,
    /// Its further pages, when it comes in pages.
    pub pages: Option<Pages>,
}

/// How a fetched result is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadAs {
    /// JSON, through the fetch's `result` pointer.
    Json,
    /// Text (UTF-8), kept as a JSON string; JSON Lines included.
    Text,
    /// Any bytes (audio, video, images), kept as a JSON string of their base64.
    Base64,
}

/// An answer that comes in pages: the token of the next page, where the call takes it, and the
/// array the pages add to.
#[derive(Debug)]
pub struct Pages {
    /// Where the next page's token is in an answer (absent or empty: the last page).
    pub next: String,
    /// The name the call takes the token under.
    pub param: String,
    /// Whether the token goes in the query or the JSON body.
    pub place: PagePlace,
    /// The array each page adds to the first page's.
    pub merge: String,
    /// The most pages read; an answer with more is a permanent failure.
    pub max: u32,
}

/// Where a page token goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PagePlace {
    /// A query parameter.
    Query,
    /// A member of the JSON body.
    Body,
}

/// How a provider's webhook body reads.
#[derive(Debug)]
pub struct HookRule {
    /// Processing, done or failed (`None`: a webhook means done).
    pub status: Option<StatusRule>,
    /// Where the result is (`None`: the whole body).
    pub result: Option<String>,
    /// Where a failed job's message is.
    pub error: Option<String>,
}

/// How a poll's answer says what became of the job.
#[derive(Debug, PartialEq)]
pub enum StatusRule {
    /// A value in the body.
    Pointer(PointerRule),
    /// The HTTP status code.
    Http(HttpRule),
}

/// A status read from the body: the value at a JSON pointer, compared as JSON with each list.
#[derive(Debug, PartialEq)]
pub struct PointerRule {
    /// Where the value is.
    pub pointer: String,
    /// Values that mean processing, done, failed.
    pub(super) lists: [(Vec<Value>, Verdict); 3],
    /// What an answer without the value means (`None`: an unknown status).
    pub(super) absent: Option<Verdict>,
}

impl PointerRule {
    /// What `body` says: a verdict, or the words for a status the rule does not know.
    pub fn verdict(&self, body: &Value) -> Result<Verdict, String> {
        let Some(value) = body.pointer(&self.pointer) else {
            return self
                .absent
                .clone()
                .ok_or_else(|| format!("no status at {}", self.pointer));
        };
        listed(&self.lists, value)
            .ok_or_else(|| format!("an unknown status {value} at {}", self.pointer))
    }
}

/// A status read from the HTTP code.
#[derive(Debug, PartialEq)]
pub struct HttpRule {
    /// Codes that mean processing, done, failed.
    pub(super) lists: [(Vec<u16>, Verdict); 3],
}

impl HttpRule {
    /// What the code says, when a list names it.
    pub fn verdict(&self, code: u16) -> Option<Verdict> {
        listed(&self.lists, &code)
    }
}

/// The verdict of the first list that holds `value`.
fn listed<T: PartialEq>(lists: &[(Vec<T>, Verdict); 3], value: &T) -> Option<Verdict> {
    lists
        .iter()
        .find(|(values, _)| values.contains(value))
        .map(|(_, verdict)| verdict.clone())
}
