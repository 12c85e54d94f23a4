//! An API profile, compiled: how one queue's third-party API is called and how its answers
//! read. [`super::spec`] reads it from `QUEUES_FILE` and checks it once, at start; a call then
//! only renders and sends: nothing is parsed or looked up per task but the task's own values.

use std::path::PathBuf;

use reqwest::header::HeaderName;
use reqwest::{Method, Url};
use serde::Deserialize;
use serde_json::Value;

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
    /// Extra certificate authorities for this API.
    pub ca_file: Option<PathBuf>,
    /// Sent on every call.
    pub headers: Vec<(HeaderName, Secret)>,
    /// The first call of a task, when the API has one.
    pub submit: Option<Submit>,
    /// Every call after the submit (every call, without one).
    pub poll: Poll,
    /// How a poll's answer reads.
    pub status: StatusRule,
    /// Where the result is in a done answer (`None`: the whole answer).
    pub result: Option<String>,
    /// Where the partial data is in a processing answer (`None`: the whole answer).
    pub partial: Option<String>,
    /// Where the provider's error message is.
    pub error: Option<String>,
    /// What the provider allows (no rate, no cap: no limit but a shared pause, if keyed).
    pub limit: taskq::Limit,
    /// The key the limit is shared under (`None`: the queue's name).
    pub limit_key: Option<String>,
}

/// The call that creates a job.
#[derive(Debug)]
pub struct Submit {
    /// POST unless said otherwise.
    pub method: Method,
    /// Under the base URL.
    pub path: Template,
    /// The JSON body, if any.
    pub body: Option<BodyTemplate>,
    /// Where the job's id is in the answer.
    pub id: IdSource,
}

impl Submit {
    /// Whether the submit gives the provider the task's hook URL (`{{webhook_url}}`).
    pub fn uses_webhook_url(&self) -> bool {
        self.body
            .as_ref()
            .is_some_and(|body| body.uses(&Placeholder::WebhookUrl))
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
    /// GET unless said otherwise.
    pub method: Method,
    /// Where it goes.
    pub target: PollTarget,
    /// The JSON body, if any.
    pub body: Option<BodyTemplate>,
}

/// Where a poll goes.
#[derive(Debug)]
pub enum PollTarget {
    /// A path under the base URL.
    Path(Template),
    /// A whole URL (usually `{{id}}`), which must be on the base URL's host.
    Url(Template),
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
