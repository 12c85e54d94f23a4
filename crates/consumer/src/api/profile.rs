//! An API profile: how one queue's third-party API is called and how its answers read, written
//! as data in `QUEUES_FILE` (the queue's `"api"` object) and checked once, at start.
//!
//! [`ApiSpec`] is the file's schema (serde, unknown keys refused); [`ApiSpec::compile`] turns it
//! into a [`Profile`]: URLs parsed, templates parsed into parts, headers expanded into secrets,
//! every rule checked, each error naming its field (`api.submit.id: ...`). A call then only
//! renders and sends: nothing is parsed or looked up per task but the task's own values.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use reqwest::header::HeaderName;
use reqwest::{Method, Url};
use serde::Deserialize;
use serde_json::Value;

use super::secret::{self, Secret};
use super::template::{BodyTemplate, Template};

/// The `"api"` object of a queue in `QUEUES_FILE`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSpec {
    /// Every path is under it; a `poll.url` must be on its host.
    base_url: String,
    /// Extra certificate authorities (PEM) trusted for this API, beside the system's.
    #[serde(default)]
    ca_file: Option<PathBuf>,
    /// Sent on every submit and poll; `${VAR}` is read from the environment at start.
    #[serde(default)]
    headers: BTreeMap<String, Unexpanded>,
    /// The call that creates the task's job, when the API has one.
    #[serde(default)]
    submit: Option<SubmitSpec>,
    /// The call that asks how the job is doing.
    poll: PollSpec,
    /// How a poll's answer says processing, done or failed.
    status: StatusSpec,
    /// JSON pointer to what is stored as the result when done (default: the whole answer).
    #[serde(default)]
    result: Option<String>,
    /// JSON pointer to what is shown as partial data while processing (default: the whole
    /// answer).
    #[serde(default)]
    partial: Option<String>,
    /// JSON pointer to the provider's error message.
    #[serde(default)]
    error: Option<String>,
}

/// A header value as written in the file: it may hold a credential, so it never prints.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
struct Unexpanded(String);

impl fmt::Debug for Unexpanded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct SubmitSpec {
    #[serde(default)]
    method: Option<String>,
    path: String,
    #[serde(default)]
    body: Option<Value>,
    id: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PollSpec {
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    body: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusSpec {
    #[serde(default)]
    pointer: Option<String>,
    #[serde(default)]
    processing: Vec<Value>,
    #[serde(default)]
    done: Vec<Value>,
    #[serde(default)]
    failed: Vec<Value>,
    #[serde(default)]
    absent: Option<Verdict>,
    #[serde(default)]
    http: Option<HttpStatusSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpStatusSpec {
    #[serde(default)]
    processing: Vec<u16>,
    done: Vec<u16>,
    #[serde(default)]
    failed: Vec<u16>,
}

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
    lists: [(Vec<Value>, Verdict); 3],
    /// What an answer without the value means (`None`: an unknown status).
    absent: Option<Verdict>,
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
    lists: [(Vec<u16>, Verdict); 3],
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

/// Why a profile was refused: the field, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("api.{field}: {message}")]
pub struct ProfileError {
    /// The field's path in the profile (`submit.id`, `headers.Authorization`).
    pub field: String,
    /// What is wrong (never a header's value).
    pub message: String,
}

fn refuse(field: impl Into<String>, message: impl fmt::Display) -> ProfileError {
    ProfileError {
        field: field.into(),
        message: message.to_string(),
    }
}

fn method(field: &str, given: Option<&str>, default: Method) -> Result<Method, ProfileError> {
    match given {
        None => Ok(default),
        Some(text) => match text.to_ascii_uppercase().as_str() {
            "GET" => Ok(Method::GET),
            "POST" => Ok(Method::POST),
            "PUT" => Ok(Method::PUT),
            "PATCH" => Ok(Method::PATCH),
            "DELETE" => Ok(Method::DELETE),
            _ => Err(refuse(field, "use GET, POST, PUT, PATCH or DELETE")),
        },
    }
}

fn pointer(field: &str, given: Option<&str>) -> Result<Option<String>, ProfileError> {
    match given {
        Some(p) if !p.is_empty() && !p.starts_with('/') => Err(refuse(
            field,
            format!("{p:?} is not a JSON pointer: write \"/a/b\" (or \"\" for the whole answer)"),
        )),
        other => Ok(other.map(str::to_owned)),
    }
}

fn path_template(field: &str, text: &str) -> Result<Template, ProfileError> {
    if !text.starts_with('/') {
        return Err(refuse(field, "a path starts with /"));
    }
    Template::parse(text).map_err(|e| refuse(field, e))
}

fn body_template(field: &str, body: Option<&Value>) -> Result<Option<BodyTemplate>, ProfileError> {
    body.map(|json| BodyTemplate::parse(json).map_err(|e| refuse(field, e)))
        .transpose()
}

/// Refuses a value in two lists of one rule.
fn disjoint<T: PartialEq + fmt::Debug>(field: &str, lists: [&[T]; 3]) -> Result<(), ProfileError> {
    for (i, list) in lists.iter().enumerate() {
        for other in &lists[i + 1..] {
            if let Some(both) = list.iter().find(|v| other.contains(v)) {
                return Err(refuse(field, format!("{both:?} is in two lists")));
            }
        }
    }
    Ok(())
}

impl ApiSpec {
    /// Checks the profile and compiles it; `lookup` reads the environment for `${VAR}`.
    ///
    /// # Errors
    /// [`ProfileError`] naming the first field that is wrong.
    pub fn compile(
        &self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Profile, ProfileError> {
        let base = Url::parse(&self.base_url).map_err(|e| refuse("base_url", e))?;
        if !matches!(base.scheme(), "http" | "https") || base.host().is_none() {
            return Err(refuse(
                "base_url",
                "use an http:// or https:// URL with a host",
            ));
        }
        if !base.username().is_empty() || base.password().is_some() {
            return Err(refuse(
                "base_url",
                "credentials go in headers (with ${VAR}), not in the URL",
            ));
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(refuse(
                "base_url",
                "no query or fragment: put them in the paths",
            ));
        }
        let headers = self
            .headers
            .iter()
            .map(|(name, value)| {
                secret::header(name, &value.0, &lookup)
                    .map_err(|e| refuse(format!("headers.{name}"), e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let submit = self.submit.as_ref().map(compile_submit).transpose()?;
        let poll = compile_poll(&self.poll, submit.is_some())?;
        Ok(Profile {
            base,
            ca_file: self.ca_file.clone(),
            headers,
            submit,
            poll,
            status: compile_status(&self.status)?,
            result: pointer("result", self.result.as_deref())?,
            partial: pointer("partial", self.partial.as_deref())?,
            error: pointer("error", self.error.as_deref())?,
        })
    }
}

fn compile_submit(spec: &SubmitSpec) -> Result<Submit, ProfileError> {
    let path = path_template("submit.path", &spec.path)?;
    let body = body_template("submit.body", spec.body.as_ref())?;
    if path.uses_id() || body.as_ref().is_some_and(BodyTemplate::uses_id) {
        return Err(refuse(
            "submit",
            "{{id}} is what the submit answers: it cannot be used in the submit",
        ));
    }
    let id = match spec.id.strip_prefix("header:") {
        Some(name) => IdSource::Header(
            HeaderName::from_bytes(name.trim().as_bytes())
                .map_err(|_| refuse("submit.id", format!("{name:?} is not a header name")))?,
        ),
        None => IdSource::Pointer(
            pointer("submit.id", Some(&spec.id))?
                .filter(|p| !p.is_empty())
                .ok_or_else(|| {
                    refuse(
                        "submit.id",
                        "give a JSON pointer (\"/id\") or \"header:NAME\"",
                    )
                })?,
        ),
    };
    Ok(Submit {
        method: method("submit.method", spec.method.as_deref(), Method::POST)?,
        path,
        body,
        id,
    })
}

fn compile_poll(spec: &PollSpec, submits: bool) -> Result<Poll, ProfileError> {
    let target = match (&spec.path, &spec.url) {
        (Some(path), None) => PollTarget::Path(path_template("poll.path", path)?),
        (None, Some(url)) => {
            PollTarget::Url(Template::parse(url).map_err(|e| refuse("poll.url", e))?)
        }
        _ => return Err(refuse("poll", "give either path or url")),
    };
    let body = body_template("poll.body", spec.body.as_ref())?;
    let uses_id = match &target {
        PollTarget::Path(t) | PollTarget::Url(t) => t.uses_id(),
    } || body.as_ref().is_some_and(BodyTemplate::uses_id);
    if uses_id && !submits {
        return Err(refuse(
            "poll",
            "{{id}} comes from a submit: add one, or poll by {{name}}",
        ));
    }
    if matches!(target, PollTarget::Url(_)) && !submits {
        return Err(refuse(
            "poll.url",
            "a whole poll URL comes from a submit's id",
        ));
    }
    Ok(Poll {
        method: method("poll.method", spec.method.as_deref(), Method::GET)?,
        target,
        body,
    })
}

fn compile_status(spec: &StatusSpec) -> Result<StatusRule, ProfileError> {
    let body_lists =
        !spec.processing.is_empty() || !spec.done.is_empty() || !spec.failed.is_empty();
    match (&spec.pointer, &spec.http) {
        (Some(at), None) => {
            let pointer = pointer("status.pointer", Some(at))?.unwrap_or_default();
            if spec.done.is_empty() {
                return Err(refuse("status.done", "list the values that mean done"));
            }
            disjoint("status", [&spec.processing, &spec.done, &spec.failed])?;
            Ok(StatusRule::Pointer(PointerRule {
                pointer,
                lists: [
                    (spec.processing.clone(), Verdict::Processing),
                    (spec.done.clone(), Verdict::Done),
                    (spec.failed.clone(), Verdict::Failed),
                ],
                absent: spec.absent.clone(),
            }))
        }
        (None, Some(http)) if !body_lists && spec.absent.is_none() => {
            if http.done.is_empty() {
                return Err(refuse("status.http.done", "list the codes that mean done"));
            }
            if let Some(bad) = [&http.processing, &http.done, &http.failed]
                .into_iter()
                .flatten()
                .find(|code| !(100..=599).contains(*code))
            {
                return Err(refuse(
                    "status.http",
                    format!("{bad} is not an HTTP status"),
                ));
            }
            disjoint("status.http", [&http.processing, &http.done, &http.failed])?;
            Ok(StatusRule::Http(HttpRule {
                lists: [
                    (http.processing.clone(), Verdict::Processing),
                    (http.done.clone(), Verdict::Done),
                    (http.failed.clone(), Verdict::Failed),
                ],
            }))
        }
        (None, Some(_)) => Err(refuse(
            "status",
            "with http, the lists go inside it: {\"http\": {\"processing\": [202], \"done\": [200]}}",
        )),
        _ => Err(refuse(
            "status",
            "give either pointer (with processing, done, failed) or http",
        )),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "TOKEN").then(|| "s3cret".to_owned())
    }

    fn compile(spec: Value) -> Result<Profile, ProfileError> {
        serde_json::from_value::<ApiSpec>(spec)
            .unwrap()
            .compile(env)
    }

    fn replicate_like() -> Value {
        json!({
            "base_url": "https://api.example.com",
            "headers": {"Authorization": "Bearer ${TOKEN}"},
            "submit": {"path": "/v1/jobs", "body": {"input": "{{payload}}"}, "id": "/id"},
            "poll": {"path": "/v1/jobs/{{id}}"},
            "status": {"pointer": "/status", "processing": ["queued", "running"],
                       "done": ["succeeded"], "failed": ["failed", "canceled"]},
            "result": "/output",
            "error": "/error"
        })
    }

    /// `spec` with the member at `pointer` set to `value` (added when absent).
    fn with(mut spec: Value, pointer: &str, value: Value) -> Value {
        let (parent, member) = pointer.rsplit_once('/').unwrap();
        spec.pointer_mut(parent).unwrap()[member] = value;
        spec
    }

    #[test]
    fn a_full_profile_compiles() {
        let profile = compile(replicate_like()).unwrap();
        let submit = profile.submit.as_ref().unwrap();
        assert_eq!(submit.method, Method::POST);
        assert_eq!(submit.id, IdSource::Pointer("/id".into()));
        assert_eq!(profile.poll.method, Method::GET);
        assert_eq!(profile.result.as_deref(), Some("/output"));
        assert_eq!(profile.headers[0].0, "authorization");
        assert!(!format!("{profile:?}").contains("s3cret"));
    }

    #[test]
    fn each_mistake_is_refused_naming_its_field() {
        let cases = [
            (
                with(replicate_like(), "/base_url", json!("ftp://x")),
                "base_url",
            ),
            (
                with(replicate_like(), "/base_url", json!("https://u:p@x")),
                "base_url",
            ),
            (
                with(replicate_like(), "/headers", json!({"X": "${MISSING}"})),
                "headers.X",
            ),
            (
                with(replicate_like(), "/submit/id", json!("id")),
                "submit.id",
            ),
            (
                with(replicate_like(), "/submit/path", json!("/v1/{{id}}")),
                "submit",
            ),
            (
                with(replicate_like(), "/submit/body", json!({"a": "{{nope}}"})),
                "submit.body",
            ),
            (
                with(replicate_like(), "/submit/method", json!("BREW")),
                "submit.method",
            ),
            (with(replicate_like(), "/poll", json!({})), "poll"),
            (
                with(replicate_like(), "/poll", json!({"path": "v1"})),
                "poll.path",
            ),
            (
                with(replicate_like(), "/status/done", json!([])),
                "status.done",
            ),
            (
                with(replicate_like(), "/status/failed", json!(["succeeded"])),
                "status",
            ),
            (with(replicate_like(), "/status", json!({})), "status"),
            (
                with(
                    replicate_like(),
                    "/status",
                    json!({"http": {"done": [200, 700]}}),
                ),
                "status.http",
            ),
            (
                with(
                    replicate_like(),
                    "/status",
                    json!({"http": {"done": [200], "processing": [200]}}),
                ),
                "status.http",
            ),
            (with(replicate_like(), "/result", json!("output")), "result"),
        ];
        for (spec, field) in cases {
            let err = compile(spec.clone()).unwrap_err();
            assert_eq!(err.field, field, "{spec}: {err}");
        }
        let no_submit = with(replicate_like(), "/submit", Value::Null);
        assert_eq!(compile(no_submit).unwrap_err().field, "poll");
    }

    #[test]
    fn a_missing_variable_is_named_never_a_value() {
        let spec = with(replicate_like(), "/headers", json!({"X-Key": "${NOT_SET}"}));
        let err = compile(spec).unwrap_err().to_string();
        assert!(err.contains("NOT_SET"), "{err}");
        assert_eq!(
            err,
            "api.headers.X-Key: environment variable NOT_SET is not set"
        );
    }

    #[test]
    fn unknown_keys_are_refused() {
        let spec = with(
            replicate_like(),
            "/poll",
            json!({"path": "/x", "methd": "GET"}),
        );
        assert!(serde_json::from_value::<ApiSpec>(spec).is_err());
    }

    #[test]
    fn pointer_statuses_compare_as_json_and_absent_values_follow_the_rule() {
        let google = compile(json!({
            "base_url": "https://x",
            "submit": {"path": "/v1/run", "id": "/name"},
            "poll": {"path": "/v1/{{id}}"},
            "status": {"pointer": "/done", "processing": [false], "done": [true], "absent": "processing"},
        }))
        .unwrap();
        let StatusRule::Pointer(google) = google.status else {
            panic!("a pointer rule")
        };
        assert_eq!(google.verdict(&json!({"done": true})), Ok(Verdict::Done));
        assert_eq!(
            google.verdict(&json!({"done": false})),
            Ok(Verdict::Processing)
        );
        assert_eq!(
            google.verdict(&json!({"name": "x"})),
            Ok(Verdict::Processing)
        );
        let unknown = google.verdict(&json!({"done": "yes"})).unwrap_err();
        assert!(unknown.contains("\"yes\""), "{unknown}");

        let numbers = compile(with(
            replicate_like(),
            "/status",
            json!({"pointer": "/s", "processing": [1, 2], "done": [3]}),
        ))
        .unwrap();
        let StatusRule::Pointer(numbers) = numbers.status else {
            panic!("a pointer rule")
        };
        assert_eq!(numbers.verdict(&json!({"s": 3})), Ok(Verdict::Done));
        assert!(numbers.verdict(&json!({})).is_err());
    }

    #[test]
    fn http_statuses_read_the_code() {
        let stability = compile(with(
            replicate_like(),
            "/status",
            json!({"http": {"processing": [202], "done": [200]}}),
        ))
        .unwrap();
        let StatusRule::Http(stability) = stability.status else {
            panic!("an http rule")
        };
        assert_eq!(stability.verdict(202), Some(Verdict::Processing));
        assert_eq!(stability.verdict(200), Some(Verdict::Done));
        assert_eq!(stability.verdict(404), None);
    }

    #[test]
    fn ids_may_come_from_a_header_and_polls_from_a_whole_url() {
        let azure = compile(json!({
            "base_url": "https://x.cognitiveservices.azure.com",
            "headers": {"Ocp-Apim-Subscription-Key": "${TOKEN}"},
            "submit": {"path": "/analyze", "id": "header:Operation-Location"},
            "poll": {"url": "{{id}}"},
            "status": {"pointer": "/status", "processing": ["notStarted", "running"], "done": ["succeeded"], "failed": ["failed"]},
        }))
        .unwrap();
        let submit = azure.submit.unwrap();
        assert_eq!(
            submit.id,
            IdSource::Header(HeaderName::from_static("operation-location"))
        );
        assert!(matches!(azure.poll.target, PollTarget::Url(_)));
    }

    #[test]
    fn the_toml_form_reads_the_same() {
        let toml = r#"
            base_url = "https://api.example.com"
            headers = { Authorization = "Bearer ${TOKEN}" }
            submit = { path = "/v1/jobs", body = { input = "{{payload}}" }, id = "/id" }
            poll = { path = "/v1/jobs/{{id}}" }
            status = { pointer = "/status", processing = ["running"], done = ["succeeded"] }
        "#;
        let spec: ApiSpec = toml::from_str(toml).unwrap();
        let profile = spec.compile(env).unwrap();
        assert!(profile.submit.is_some());
    }
}
